"""Decisions from paired comparisons: verdicts in words, which candidate is credibly best, and what
each group can detect.

* ``describe(row)``: one sentence per ``agefair.fairness.stats.compare.Comparison`` row. A difference is
  called *detected* when its p-value (BH-adjusted when ``adjust_bh`` has run) is below alpha
  (1 - the row's level); then "`B` lowers 70+ MAE by 3.1 years [2.2, 4.0] against `A` (BH-adjusted
  p = 0.001)", else "no detectable difference ...".
* ``practical(difference, ci, margin)``: practical significance against a margin m (the smallest
  difference that matters, configs/fairness.yaml ``comparisons: margins:``): *better* when the whole
  interval lies below -m, *worse* when above +m, *equivalent* when it lies inside (-m, +m) (an
  equivalence test: two one-sided tests, each at (1 - level) / 2), else *unclear* (can't tell: the
  interval reaches across a margin).
* ``credibly_best(...)``: among several candidates (the reference may be one of them) on one
  criterion, the candidate with the lowest point estimate is *credibly best* only when the paired
  bootstrap interval of (other - leader) lies above the margin (0 without one) for every other
  candidate; all candidates
  are resampled with the same draws, so every pairwise difference is paired. Each interval is at
  ``settings.ci_level`` on its own (no simultaneous adjustment: with many candidates the rule is a
  little liberal; pass a higher ``ci_level`` for a stricter rule). Otherwise no candidate is
  credibly best, and the candidates that the leader does not beat are named.
* ``detectability(rows)``: per row, the minimum detectable difference at the row's level with the
  given power, MDE = (z_{1-alpha/2} + z_{power}) * SE, SE the bootstrap standard error of the
  paired difference (a normal approximation); ``underpowered`` when the MDE exceeds ``size``, so a
  small group that "passes" a gap rule can be reported as unable to show a gap rather than fair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from agefair.fairness.engine.replicates import Job, replicate_many
from agefair.fairness.engine.resampling import Resampler, quantile_ci, to_json_value
from agefair.fairness.stats.compare import CRITERIA, Comparison, _design, _stats, row_errors
from agefair.fairness.stats.metrics import AuditSettings


def _num(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}".replace("-", "−")


def _p_text(p: float, adjusted: bool) -> str:
    name = "BH-adjusted p" if adjusted else "p"
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}"


Practical = Literal["better", "worse", "equivalent", "unclear"]


def practical(difference: float | None, ci, margin: float | None) -> Practical:
    """B - A (lower is better) against the margin: better | worse | equivalent | unclear (see the module)."""
    lo, hi = (float("nan"), float("nan")) if ci is None else (_float(ci[0]), _float(ci[1]))
    if not (np.isfinite(lo) and np.isfinite(hi)) or difference is None or not np.isfinite(difference):
        return "unclear"
    m = 0.0 if margin is None else float(margin)
    if hi < -m:
        return "better"
    if lo > m:
        return "worse"
    if m > 0 and -m < lo and hi < m:
        return "equivalent"
    return "unclear"


def _float(x) -> float:
    return float("nan") if x is None else float(x)


def describe(row: Comparison, *, unit: str = "years", decimals: int = 1, alpha: float | None = None,
             scale: float = 1.0, margin: float | None = None) -> str:
    """The comparison in one sentence (B against the reference A); ``scale`` multiplies the difference and its
    interval (100, with unit "percentage points", for a share such as a false-pass rate); with a ``margin``
    (in the row's units) the sentence says whether the difference is larger than it."""
    adjusted = row.p_adjusted is not None
    p = row.p_adjusted if adjusted else row.p_value
    a = (1 - row.level) if alpha is None else alpha
    lo, hi = (x * scale for x in row.ci)
    ci = f"[{_num(lo, decimals)}, {_num(hi, decimals)}]"
    ptxt = _p_text(p, adjusted) if np.isfinite(p) else "no p-value"
    if not np.isfinite(row.difference):
        return f"`{row.model_b}` and `{row.model_a}` cannot be compared on the {row.subject} (too few rows)."
    if margin is not None:
        return _describe_margin(row, practical(row.difference, row.ci, margin), margin * scale, unit, decimals,
                                scale, ci, ptxt)
    if np.isfinite(p) and p < a:
        verb = "lowers" if row.difference < 0 else "raises"
        size = f"{_num(abs(row.difference) * scale, decimals)} {unit}".rstrip()
        return f"`{row.model_b}` {verb} {row.subject} by {size} {ci} against `{row.model_a}` ({ptxt})."
    return (f"no detectable difference between `{row.model_b}` and `{row.model_a}` in the {row.subject} "
            f"({_num(row.difference * scale, decimals)} {ci}, {ptxt}).")


def _describe_margin(row: Comparison, kind: Practical, margin: float, unit: str, decimals: int, scale: float,
                     ci: str, ptxt: str) -> str:
    m = f"{_num(margin, max(decimals, 2 if margin < 1 else 1)).rstrip('0').rstrip('.')} {unit}".rstrip()
    size = f"{_num(abs(row.difference) * scale, decimals)} {unit}".rstrip()
    if kind in ("better", "worse"):
        verb = "lowers" if row.difference < 0 else "raises"
        return (f"`{row.model_b}` {verb} {row.subject} by {size} {ci} against `{row.model_a}`, more than the "
                f"{m} margin ({ptxt}).")
    if kind == "equivalent":
        return (f"`{row.model_b}` and `{row.model_a}` are practically equivalent in the {row.subject}: "
                f"{_num(row.difference * scale, decimals)} {ci}, inside ±{m} ({ptxt}).")
    return (f"can't tell whether `{row.model_b}` and `{row.model_a}` differ in the {row.subject} by more than "
            f"{m}: {_num(row.difference * scale, decimals)} {ci} ({ptxt}).")


@dataclass(frozen=True)
class PairwiseGap:
    """How much worse ``other`` is than the leader: value(other) - value(leader), paired interval."""

    other: str
    difference: float
    ci: tuple[float, float]
    margin: float = 0.0  # the lead must exceed it

    @property
    def leader_better(self) -> bool:
        return bool(np.isfinite(self.ci[0]) and self.ci[0] > self.margin)


@dataclass(frozen=True)
class BestVerdict:
    """Which candidate is credibly best on one criterion (lower is better), or that none is."""

    criterion: str  # e.g. 'overall MAE', 'ethnicity gap in MAE'
    values: dict[str, float]  # each candidate's point estimate
    leader: str | None  # the lowest point estimate
    best: str | None  # the leader, when every pairwise interval excludes 0 in its favour
    against_leader: tuple[PairwiseGap, ...]
    level: float
    statement: str
    margin: float | None = None

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


def _criterion_name(criterion: str, metric: str, grouping: str | None, group: str | None) -> str:
    m = metric.upper() if metric == "mae" else metric
    if criterion == "overall":
        return f"overall {m}"
    if criterion == "group":
        return f"{group} {m}"
    return f"{grouping} {criterion} in {m}"


def _best_plan(*, preds, age=None, age_lo=None, age_hi=None, criterion="overall", grouping=None, group=None,
               groupings=None, settings: AuditSettings, age_grouping="age_bin",
               margin: float | None = None) -> tuple[Job, str, list[str], float | None]:
    """(the bootstrap job of one criterion over every candidate, its name in words, the candidates)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")
    names = list(preds)
    if len(names) < 2:
        raise ValueError("credibly_best needs at least two candidates")
    errs = [row_errors(pred=preds[k], age=age, age_lo=age_lo, age_hi=age_hi) for k in names]
    metric = errs[0][1]
    n = len(errs[0][0])
    use = {grouping: groupings[grouping]} if grouping is not None else None
    layout = _design(use, n, None)
    stat = [s for s in _stats(layout, (criterion,), settings.min_group_size, age_grouping)
            if s.criterion == criterion and s.grouping == grouping and (group is None or s.group == group)]
    what = _criterion_name(criterion, metric, grouping, group)
    if len(stat) != 1:
        raise ValueError(f"no single statistic for {what} (too few groups of adequate size, or an unknown group)")
    return Job([np.abs(e) for e, _ in errs], layout, stat), what, names, margin


def credibly_best_many(calls: list[dict], *, cluster=None, settings: AuditSettings = AuditSettings()
                       ) -> list[BestVerdict | ValueError]:
    """``credibly_best`` for each of ``calls`` (its keyword arguments but cluster and settings), all on one
    bootstrap draw (the same numbers as one call each); a call that cannot be judged gives its ValueError."""
    plans: list = []
    for c in calls:
        try:
            plans.append(_best_plan(**c, settings=settings))
        except ValueError as exc:
            plans.append(exc)
    live = [p for p in plans if not isinstance(p, ValueError)]
    if not live:
        return plans
    resampler = Resampler.of(len(live[0][0].values[0]), cluster, settings.bootstrap)
    done = iter(replicate_many([p[0] for p in live], resampler, settings.n_boot, settings.seed))
    return [p if isinstance(p, ValueError) else _best_verdict(*next(done), p[1], p[2], settings, p[3])
            for p in plans]


def credibly_best(*, preds: Mapping[str, object], age=None, age_lo=None, age_hi=None, criterion: str = "overall",
                  grouping: str | None = None, group: str | None = None,
                  groupings: Mapping[str, object] | None = None, cluster=None,
                  settings: AuditSettings = AuditSettings(), age_grouping: str | None = "age_bin",
                  margin: float | None = None) -> BestVerdict:
    """The credibly best of ``preds`` (name -> predictions on the same rows) on ``criterion``
    (overall | group | gap | worst | spread; ``grouping`` names the grouping in ``groupings``,
    ``group`` the group for 'group'); with a ``margin`` the leader must beat every other by more than it."""
    out = credibly_best_many([dict(preds=preds, age=age, age_lo=age_lo, age_hi=age_hi, criterion=criterion,
                                   grouping=grouping, group=group, groupings=groupings, age_grouping=age_grouping,
                                   margin=margin)],
                             cluster=cluster, settings=settings)[0]
    if isinstance(out, ValueError):
        raise out
    return out


def _best_verdict(point, boot, what: str, names: list[str], settings: AuditSettings,
                  margin: float | None = None) -> BestVerdict:
    values = {k: float(v) for k, v in zip(names, point[0])}
    li = int(np.nanargmin(point[0]))
    leader = names[li]
    m = 0.0 if margin is None else float(margin)
    gaps = tuple(PairwiseGap(k, float(point[0, j] - point[0, li]),
                             quantile_ci(boot[0, :, j] - boot[0, :, li], settings.ci_level), m)
                 for j, k in enumerate(names) if j != li)
    credible = all(g.leader_better for g in gaps)
    pct = f"{settings.ci_level:.0%}"
    bound = f"the {m:g} margin" if m > 0 else "0"
    if credible:
        statement = (f"`{leader}` is credibly best on {what}: its paired {pct} interval against every other "
                     f"candidate lies above {bound} ({', '.join(f'`{g.other}` +{g.difference:.2f}' for g in gaps)}).")
    else:
        ties = [g for g in gaps if not g.leader_better]
        within = [g for g in ties if practical(g.difference, g.ci, m) == "equivalent"]
        statement = (f"no model is credibly best on {what}: `{leader}` is lowest, but not by more than {bound} "
                     f"against {', '.join(f'`{t.other}`' for t in ties)}")
        if within and m > 0:
            statement += (f" ({', '.join(f'`{g.other}`' for g in within)} practically equivalent: "
                          f"{', '.join(f'+{g.difference:.2f} [{g.ci[0]:.2f}, {g.ci[1]:.2f}]' for g in within)})")
        statement += "."
    return BestVerdict(what, values, leader, leader if credible else None, gaps, settings.ci_level, statement,
                       margin)


@dataclass(frozen=True)
class Detectability:
    """What a comparison row can detect: its minimum detectable difference at its level and power."""

    criterion: str
    grouping: str | None
    group: str | None
    n: int
    se: float
    mde: float  # (z_{1-alpha/2} + z_power) * se
    level: float
    power: float
    underpowered: bool | None  # mde > size (None when no size was given or se is unknown)

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


def minimum_detectable(se: float | np.ndarray, *, level: float = 0.95, power: float = 0.8) -> float | np.ndarray:
    """(z_{1-alpha/2} + z_power) * se, alpha = 1 - level (two-sided test, normal approximation)."""
    return (sps.norm.ppf(1 - (1 - level) / 2) + sps.norm.ppf(power)) * np.asarray(se, float)


def detectability(rows: Sequence[Comparison], *, power: float = 0.8, size: float | None = None) -> list[Detectability]:
    """Per row: n, the bootstrap SE of the paired difference and the MDE; ``underpowered`` when a
    ``size`` (the smallest difference worth detecting, in the metric's units) is given and the MDE
    exceeds it."""
    out = []
    for r in rows:
        mde = float(minimum_detectable(r.se, level=r.level, power=power))
        under = None if size is None or not np.isfinite(mde) else bool(mde > size)
        out.append(Detectability(r.criterion, r.grouping, r.group, r.n, r.se, mde, r.level, power, under))
    return out


def mark_underpowered(rows: Sequence[Comparison], *, size: float, power: float = 0.8) -> dict[tuple, bool]:
    """(grouping, group, criterion) -> True where the comparison cannot detect a difference of
    ``size`` with the given power (unknown SE counts as underpowered)."""
    return {(d.grouping, d.group, d.criterion): d.underpowered is not False
            for d in detectability(rows, power=power, size=size)}
