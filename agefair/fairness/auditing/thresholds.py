"""Judge an audit summary against the fairness thresholds of configs/fairness.yaml.

A rule applies to the labels its metric is made for: mae, rmse, bias, cs5 and age_bin_spread to
exact ages, in_group, dist, signed, too_old and too_young to age-group labels. Rules for the other
kind of label are not applicable (listed by ``not_applicable``, never judged). ``grouping: every
attribute`` is checked on the grouping of each sensitive attribute of the audited data.
"""

from __future__ import annotations

import math

from agefair.core.config import EVERY_ATTRIBUTE, ThresholdRule, is_gate_metric
from agefair.core.rule_config import INTERVAL_METRICS
from agefair.fairness.stats.power import underpowered
from agefair.fairness.stats.specs import INTERVAL_RULE_METRICS


def applies(rule: ThresholdRule, audit: dict) -> bool:
    """Whether ``rule``'s metric is computed for ``audit``'s kind of labels."""
    if rule.metric in INTERVAL_METRICS:  # models with conformal intervals (not external predictions, nor a model
        return bool((audit.get("intervals") or {}).get("methods"))  # that could not be calibrated: a note says why)
    if is_gate_metric(rule.metric):
        return True
    return (rule.metric in INTERVAL_RULE_METRICS) == (audit.get("labels", "exact") == "interval")


def not_applicable(rules: list[ThresholdRule], audits: dict[str, dict], compared: bool = False) -> list[dict]:
    """The rules that no audited model's labels allow, and ``change`` rules without --compare-to (``compared``
    False), with the reason."""
    out = []
    for rule in rules:
        if rule.statistic == "change" and not compared:
            out.append({"rule": rule.label, "metric": rule.metric,
                        "reason": "statistic change needs --compare-to (a previous audit)"})
            continue
        if audits and rule.metric in INTERVAL_METRICS and not any(applies(rule, a) for a in audits.values()):
            out.append({"rule": rule.label, "metric": rule.metric, "reason": "no audited model has conformal "
                        "intervals (external predictions, no calibration, or conformal: enabled: false)"})
            continue
        if audits and not any(applies(rule, a) for a in audits.values()):
            kinds = "age-group labels" if rule.metric in INTERVAL_RULE_METRICS else "exact ages"
            out.append({"rule": rule.label, "metric": rule.metric, "reason": f"{rule.metric} is for {kinds}"})
    return out


def _gate_measure(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]] | dict:
    """An age-gate rule's (group, value, interval) when it is the overall rate, else its disparity."""
    nan2 = [math.nan, math.nan]
    result = next((g for g in audit.get("gates") or [] if g["gate"]["name"] == rule.gate
                   and g["grouping"] == rule.grouping), None)
    if result is None:
        return f"(gate {rule.gate!r} not audited by {rule.grouping!r})", math.nan, nan2
    if rule.grouping == "overall":
        group = result["groups"][0]
        if rule.metric.startswith("buffer_"):
            rate = next((b for b in group["buffers"] if f"buffer_{b['target']:g}" == rule.metric), None)
        else:
            rate = group.get(rule.metric)
        return ("all", _num(rate["value"]), [_num(x) for x in rate["ci"]]) if rate else ("(none)", math.nan, nan2)
    return result["disparities"].get(rule.metric) or {}


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _measure(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]]:
    """(group, value, interval) that ``rule`` looks at in one variant's audit."""
    nan2 = [math.nan, math.nan]
    if rule.gate is not None:
        d = _gate_measure(rule, audit)
        if isinstance(d, tuple):
            return d
        if d.get("worst_group") is None:
            return "(fewer than 2 groups of adequate size)", math.nan, nan2
        return _statistic(rule, {k: [_num(x) for x in v] if isinstance(v, (list, tuple)) else
                                 v if isinstance(v, str) else _num(v) for k, v in d.items()})
    if rule.metric == "age_bin_spread":
        return "age bins", float(audit.get("age_bin_spread", math.nan)), nan2
    if rule.standardised:
        return _standardised(rule, audit)
    if rule.metric in ("aar", "error_slope"):
        return _age_accuracy(rule, audit)
    if rule.metric in INTERVAL_METRICS:
        return _intervals(rule, audit)
    if rule.grouping == "overall":
        m = audit["overall"][rule.metric]
        return "all", m["value"], m["ci"]
    grouping = audit["groupings"].get(rule.grouping)
    if grouping is None:
        return f"(no grouping {rule.grouping!r} in this audit)", math.nan, nan2
    d = grouping["disparity"].get(rule.metric)
    if d is None:
        return "(fewer than 2 groups of adequate size)", math.nan, nan2
    return _statistic(rule, d)


def _age_accuracy(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]]:
    """The AAR (overall), or the error slope: overall, or the group whose slope is furthest from 0 (its
    interval's bounds as absolute values, the nearer-to-0 bound first; an interval over 0 starts at 0)."""
    nan2 = [math.nan, math.nan]
    if rule.metric == "aar":
        a = audit.get("aar")
        return ("all", _num(a["aar"]), [_num(x) for x in a["aar_ci"]]) if a else ("(no AAR in this audit)", math.nan,
                                                                                 nan2)
    grouping = None if rule.grouping == "overall" else rule.grouping
    rows = [r for r in audit.get("error_slopes") or [] if r["grouping"] == grouping and _num(r["slope"]) == _num(
        r["slope"])]
    if not rows:
        return f"(no error slope by {rule.grouping!r} in this audit)", math.nan, nan2
    r = max(rows, key=lambda r: abs(_num(r["slope"])))
    lo, hi = (_num(x) for x in r["ci"])
    ci = [0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi))]
    return r["group"] or "all", abs(_num(r["slope"])), ci


def _intervals(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]]:
    """A coverage / interval_width rule's number from the audit's conformal intervals (calibrator ``rule.intervals``):
    overall; the worst eligible group (lowest coverage, widest mean width); the coverage gap; the width ratio.
    Coverage is of exact ages, or (age-group labels) of intervals overlapping the labelled group."""
    nan2 = [math.nan, math.nan]
    iv = audit.get("intervals") or {}
    report = (iv.get("methods") or {}).get(rule.intervals)
    if report is None:
        why = "; ".join(iv.get("notes") or []) or "none audited"
        return f"(no {rule.intervals} intervals: {why})", math.nan, nan2
    definition = report["definitions"][0]
    width = rule.metric == "interval_width"

    def stat(g: dict) -> tuple[float, list[float]]:
        s = g["mean_width"] if width else g["coverage"][definition]
        return _num(s["value"]), [_num(x) for x in s["ci"]]

    if rule.grouping == "overall":
        return ("all", *stat(report["overall"]))
    grouping = report["groupings"].get(rule.grouping)
    if grouping is None:
        return f"(no grouping {rule.grouping!r} in this audit)", math.nan, nan2
    eligible = [g for g in grouping["groups"] if not g["small"]]
    if len(eligible) < 2:
        return "(fewer than 2 groups of adequate size)", math.nan, nan2
    if rule.statistic == "worst_group":
        g = (max if width else min)(eligible, key=lambda g: stat(g)[0])
        return (g["group"], *stat(g))
    d = grouping["disparity"]["width_ratio"] if width else grouping["disparity"]["coverage_gap"][definition]
    return f"{d['high_group']} vs {d['low_group']}", _num(d["value"]), [_num(x) for x in d["ci"]]


def _standardised(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]]:
    """A ``standardised: true`` rule's number: the age-standardised gap or worst group's standardised MAE."""
    nan2 = [math.nan, math.nan]
    st = (audit.get("standardised") or {}).get(rule.grouping)
    if st is None:
        return f"(no age-standardised {rule.grouping!r} in this audit)", math.nan, nan2
    if st.get("worst_group") is None:
        return "(fewer than 2 groups of adequate size)", math.nan, nan2
    if rule.statistic == "difference":
        return (f"{st['worst_group']} vs {st['best_group']} (age-standardised)", _num(st["gap"]),
                [_num(x) for x in st["gap_ci"]])
    g = next(x for x in st["groups"] if x["group"] == st["worst_group"])
    return f"{st['worst_group']} (age-standardised)", _num(g["standardised"]), [_num(x) for x in g["standardised_ci"]]


def _statistic(rule: ThresholdRule, d: dict) -> tuple[str, float, list[float]]:
    if rule.statistic == "worst_group":
        return d["worst_group"], d["worst"], d["worst_ci"]
    if rule.statistic == "difference":
        return f"{d['worst_group']} vs {d['best_group']}", d["difference"], d["difference_ci"]
    return f"{d['worst_group']} vs {d['best_group']}", d["ratio"], d["ratio_ci"]


def _change(rule: ThresholdRule, variant: str, changes: dict) -> tuple[str, float, list[float]] | None:
    """A ``change`` rule's (group, new - old, interval): overall, or the group whose judged change is largest
    (None: the model is not in the previous audit)."""
    if variant not in changes.get("models", []):
        return None
    nan2 = [math.nan, math.nan]
    if rule.grouping == "overall":
        rows = [r for r in changes.get("overall", []) if r["criterion"] == "overall"]
    else:
        rows = [r for r in changes.get("groups", []) if r["grouping"] == rule.grouping]
    rows = [r for r in rows if r["model_b"] == variant and r["metric"] == rule.metric]
    if not rows:
        return f"(no {rule.grouping!r} in the comparison with the previous audit)", math.nan, nan2
    pick = {"point": lambda r: _num(r["difference"]), "ci_lower": lambda r: _num(r["ci"][0]),
            "ci_upper": lambda r: _num(r["ci"][1])}[rule.judge]
    r = max(rows, key=lambda r: -math.inf if math.isnan(pick(r)) else pick(r) * (1 if rule.max is not None else -1))
    return r.get("group") or "all", _num(r["difference"]), [_num(x) for x in r["ci"]]


def judge(rules: list[ThresholdRule], audits: dict[str, dict], power: list[dict] = (),
          changes: dict | None = None) -> list[dict]:
    """One row per (variant, rule): the value, its interval, the judged number and pass/fail.

    A rule whose number cannot be computed (NaN) fails: a gate that cannot be checked is not passed. A rule
    with ``min_power`` fails when ``power`` (agefair.fairness.stats.power.group_power's rows) has an eligible
    group of its grouping that cannot detect a gap of its max; the row's ``underpowered`` says which.
    """
    rows = []
    for variant, audit in audits.items():
        expanded = []
        for rule in rules:
            if not applies(rule, audit) or (rule.statistic == "change" and changes is None):
                continue
            if rule.grouping != EVERY_ATTRIBUTE:
                expanded.append(rule)
                continue
            attrs = audit.get("attributes") or [None]  # none: judged as a missing grouping (fails)
            for g in attrs:
                label = f"{rule.name} ({g})" if rule.name else None
                expanded.append(rule.model_copy(update={"grouping": g or EVERY_ATTRIBUTE, "name": label}))
        for rule in expanded:
            measured = _change(rule, variant, changes) if rule.statistic == "change" else _measure(rule, audit)
            if measured is None:  # a change rule on a model the previous audit lacks
                continue
            group, value, ci = measured
            judged = {"point": value, "ci_lower": ci[0], "ci_upper": ci[1]}[rule.judge]
            if rule.max is not None:
                op, limit, ok = "<=", rule.max, judged <= rule.max
            else:
                op, limit, ok = ">=", rule.min, judged >= rule.min
            weak = underpowered(list(power), variant, rule, rule.grouping) if rule.min_power else []
            if weak:
                group = (f"{group}; underpowered: " + ", ".join(
                    f"{w['group']} (n {w['n']}, MDE {w['mde']:.2f} > {rule.max:g})" for w in weak))
            rows.append({
                "variant": variant, "rule": rule.label, "metric": rule.metric, "grouping": rule.grouping,
                "statistic": rule.statistic, "group": group, "value": value, "ci": list(ci), "judge": rule.judge,
                "judged_value": judged, "op": op, "threshold": limit,
                **({"standardised": True} if rule.standardised else {}),
                "passed": bool(ok and not math.isnan(judged) and not weak),
                **({"underpowered": [w["group"] for w in weak]} if rule.min_power else {}),
            })
    return rows

