"""What each group can detect: per model, grouping and group, n and the minimum detectable difference
(MDE) at the configured power, for the gap rules that judge the grouping.

A group's metric has a bootstrap interval; its standard error is read from it (percentile interval
width / (2 z_{1-alpha/2}), a normal approximation). A gap between the group and another is detectable
with power ``power`` when it exceeds MDE = (z_{1-alpha/2} + z_power) * sqrt(se_g^2 + se_o^2), the other
group ``o`` the most precisely measured other eligible group (the best case: no comparison involving
``g`` detects less). A group is *underpowered* for a rule (``statistic: difference`` with a ``max``)
when its MDE exceeds the rule's limit: the audit could not show a gap of the size the rule forbids, so
"passing" means "could not tell", not "fair". A rule with ``min_power: true`` fails then.
"""

from __future__ import annotations

import math

from scipy import stats as sps

from agefair.core.config import EVERY_ATTRIBUTE, ThresholdRule


def _se(ci, level: float) -> float:
    if not ci or ci[0] is None or ci[1] is None or any(math.isnan(float(x)) for x in ci[:2]):
        return math.nan
    return (float(ci[1]) - float(ci[0])) / (2 * sps.norm.ppf(1 - (1 - level) / 2))


def _judged_by(rules: list[ThresholdRule], metric: str, grouping: str, attributes: list[str]) -> ThresholdRule | None:
    """The first gap rule (statistic difference, a max) on ``metric`` that judges ``grouping``."""
    for r in rules:
        if r.metric == metric and r.statistic == "difference" and r.max is not None and r.gate is None and (
                r.grouping == grouping or (r.grouping == EVERY_ATTRIBUTE and grouping in attributes)):
            return r
    return None


# long: one pass over groupings and groups, each group's MDE against the most precise other group
def group_power(audits: dict[str, dict], rules: list[ThresholdRule], *, level: float, power: float,
                min_group_size: int) -> list[dict]:
    """One row per (model, grouping, eligible or small group): n, se, mde, the judging rule's limit and
    whether the group is underpowered for it."""
    z = sps.norm.ppf(1 - (1 - level) / 2) + sps.norm.ppf(power)
    out = []
    for variant, audit in audits.items():
        metric = "dist" if audit.get("labels") == "interval" else "mae"
        for name, g in audit.get("groupings", {}).items():
            groups = [x for x in g.get("groups", []) if x.get(metric)]
            ses = {x["group"]: _se(x[metric]["ci"], level) for x in groups}
            eligible = [x["group"] for x in groups if x["n"] >= min_group_size and not math.isnan(ses[x["group"]])]
            rule = _judged_by(rules, metric, name, audit.get("attributes", []))
            for x in groups:
                others = [ses[o] for o in eligible if o != x["group"]]
                se = ses[x["group"]]
                mde = z * math.sqrt(se ** 2 + min(others) ** 2) if others and not math.isnan(se) else math.nan
                limit = rule.max if rule else None
                under = None if limit is None else bool(math.isnan(mde) or mde > limit)
                out.append({"variant": variant, "grouping": name, "group": x["group"], "n": int(x["n"]),
                            "eligible": x["n"] >= min_group_size, "metric": metric, "se": se, "mde": mde,
                            "power": power, "level": level, "rule": rule.label if rule else None,
                            "threshold": limit, "underpowered": under})
    return out


def underpowered(rows: list[dict], variant: str, rule: ThresholdRule, grouping: str) -> list[dict]:
    """The eligible groups of ``grouping`` that cannot detect a gap of ``rule``'s limit for ``variant``."""
    return [r for r in rows if r["variant"] == variant and r["grouping"] == grouping and r["eligible"]
            and (math.isnan(r["mde"]) or r["mde"] > rule.max)]
