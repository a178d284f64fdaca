"""Paired comparisons of two models on the same test rows: B - A with evidence.

For every criterion (overall MAE; each group's MAE; per grouping the gap, the worst-group MAE and,
for the age grouping, the age-bin spread) a row gives both models' values, the difference B - A, a
paired percentile-bootstrap interval and a paired permutation p-value:

* **Paired bootstrap.** Each replicate draws units (rows, or clusters when ``cluster`` is given:
  all images of one subject together) with replacement and recomputes the statistic for both
  models on the *same* draw; the interval is the percentile interval of the replicate differences
  at ``settings.ci_level``. ``se`` is their standard deviation.
* **Paired permutation test.** Under the null that the two models are exchangeable on each unit,
  swapping their values on a random half of the units leaves the distribution of the data
  unchanged. Each permutation swaps per unit (per cluster when clustered), recomputes the
  statistic difference; two-sided Monte-Carlo p = (1 + #{|T*| >= |T|}) / (1 + n_perm). The same
  test serves every statistic, disparities included (the null is exchangeability, which implies an
  equal gap, worst-group MAE and spread; it is a test of "the same model", a little stronger than
  "the same gap").
* **Worst and best groups are re-chosen in every replicate and permutation.** The gap is the
  functional max - min over the eligible groups (as ``agefair.fairness.stats.metrics.grouped_metrics``
  computes its ``difference_ci``), each model with its own worst and best group. Fixing the groups
  from the point estimate would condition on a data-chosen pair (a winner's curse: the selected
  worst group looks worse than it is) and ignore the uncertainty about which group is worst; the
  permutation test must re-choose anyway, because its statistic is the statistic. Which groups
  are eligible (``n >= settings.min_group_size`` on the full data) is fixed, as in the audit.
  The point estimate's worst and best groups are reported (``worst_a`` ...) for the wording.
  A consequence, checked in tests: when no group truly differs, max - min saturates (with two
  groups |T*| is bounded by a quantity the swaps leave unchanged, and the observed T often sits on
  that bound), so ties make the gap test conservative (p-values pile up near 1), never liberal;
  with a real common gap its p-values are uniform under the null. Ties are counted (a 1e-9
  relative tolerance), so identical models get p = 1.

Errors: ``pred - age`` for exact ages, or the signed distance to the labelled interval
(``age_lo``/``age_hi``, see agefair.data.age_groups.interval_error); the metric is then ``dist``.
``compare_values`` is the generic hook: any per-row value (an age-gate indicator, ...) averaged
over a sub-population (``mask``), compared the same way.

``adjust_bh`` adds Benjamini-Hochberg adjusted p-values and a ``significant`` flag across a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats as sps

from agefair.fairness.engine.replicates import Job, perm_pvalues_many, replicate_many, replicate_stats  # noqa: F401
from agefair.fairness.engine.resampling import (
    Layout,
    Resampler,
    as_labels,
    build_layout,
    nan_std,
    quantile_ci,
    ratio,
    spread,
    to_json_value,
)
from agefair.fairness.stats.metrics import AuditSettings, interval_error

CRITERIA = ("overall", "group", "gap", "worst", "spread", "worst_any")
DEFAULT_CRITERIA = CRITERIA[:5]  # worst_any on request (the age gates' worst group over every attribute)
ALL = "__all__"
ANY = "every attribute"  # the grouping of a worst_any row: the worst group over every grouping given


@dataclass(frozen=True)
class Comparison:
    """One paired comparison B - A (lower is better for every criterion here: MAE-like values)."""

    criterion: str  # overall | group | gap | worst | spread | worst_any (worst over every grouping given)
    metric: str  # mae, dist, or the name given to compare_values
    grouping: str | None
    group: str | None  # the group, for criterion 'group'
    model_a: str  # the reference
    model_b: str
    n: int  # rows in the group (gap, worst, spread: in the eligible groups)
    value_a: float
    value_b: float
    difference: float  # value_b - value_a
    ci: tuple[float, float]  # paired percentile bootstrap interval of the difference
    se: float  # bootstrap standard error of the difference
    p_value: float  # paired permutation test, two-sided
    level: float  # the interval's confidence level
    n_boot: int
    n_perm: int
    clustered: bool
    worst_a: str | None = None  # gap / worst / spread: model A's worst group at the point estimate
    worst_b: str | None = None
    best_a: str | None = None
    best_b: str | None = None
    p_adjusted: float | None = None  # set by adjust_bh
    significant: bool | None = None  # p_adjusted < alpha (set by adjust_bh)
    notes: tuple[str, ...] = field(default=())

    @property
    def subject(self) -> str:
        """What is compared, in words: 'overall MAE', '70+ MAE', 'ethnicity gap in MAE'."""
        m = self.metric.upper() if self.metric in ("mae", "rmse") else self.metric
        if self.criterion == "overall":
            return f"overall {m}"
        if self.criterion == "group":
            return f"{self.group} {m}"
        if self.criterion == "worst_any":
            return f"worst group's {m}"
        word = {"gap": "gap", "worst": "worst-group", "spread": "spread (SD of bin"}[self.criterion]
        return f"{self.grouping} {word} {m}" + (")" if self.criterion == "spread" else "")

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


@dataclass(frozen=True)
class _Stat:
    criterion: str
    grouping: str | None
    group: str | None
    n: int
    cols: np.ndarray  # the cells it reads
    kind: str  # 'value' (one cell), 'gap', 'max', 'std'
    labels: tuple[str, ...] = ()

    def __call__(self, means: np.ndarray) -> np.ndarray:
        m = means[:, self.cols]
        return m[:, 0] if self.kind == "value" else spread(m, self.kind)

    def extremes(self, point: np.ndarray) -> tuple[str | None, str | None]:
        """(worst, best) group at the point estimate (one row of means)."""
        if self.kind == "value":
            return None, None
        m = point[self.cols]
        if not np.isfinite(m).any():
            return None, None
        return self.labels[int(np.nanargmax(m))], self.labels[int(np.nanargmin(m))]


def row_errors(*, pred, age=None, age_lo=None, age_hi=None) -> tuple[np.ndarray, str]:
    """Signed errors and the name of their mean absolute value: ``pred - age`` ('mae'), or the
    signed distance to the labelled age interval when ``age`` is None ('dist')."""
    if age is not None:
        return np.asarray(pred, float) - np.asarray(age, float), "mae"
    if age_lo is None or age_hi is None:
        raise ValueError("give age, or age_lo and age_hi")
    return interval_error(age_lo, age_hi, pred), "dist"


def _design(groupings: Mapping[str, object] | None, n: int, mask) -> Layout:
    blocks = {ALL: np.full(n, "all", dtype=object)}
    for name, labels in (groupings or {}).items():
        lab = as_labels(labels)
        if len(lab) != n:
            raise ValueError(f"grouping {name!r} has {len(lab)} rows, the values {n}")
        blocks[name] = lab
    return build_layout(blocks, n, mask)


def _stats(layout: Layout, criteria: Sequence[str], min_group_size: int, age_grouping: str | None) -> list[_Stat]:
    counts = layout.counts()
    out = []
    if "overall" in criteria:
        c = layout.cols(ALL)
        out.append(_Stat("overall", None, None, int(counts[c].sum()), c, "value"))
    for name in layout.blocks:
        if name == ALL:
            continue
        cols, labels = layout.cols(name), layout.labels(name)
        if "group" in criteria:
            out += [_Stat("group", name, g, int(counts[c]), np.array([c]), "value") for c, g in zip(cols, labels)]
        ok = counts[cols] >= min_group_size
        e, el = cols[ok], tuple(g for g, k in zip(labels, ok) if k)
        if len(e) < 2:
            continue
        n_e = int(counts[e].sum())
        if "gap" in criteria:
            out.append(_Stat("gap", name, None, n_e, e, "gap", el))
        if "worst" in criteria:
            out.append(_Stat("worst", name, None, n_e, e, "max", el))
        if "spread" in criteria and name == age_grouping:
            out.append(_Stat("spread", name, None, n_e, e, "std", el))
    if "worst_any" in criteria:  # the worst eligible group over every grouping (a row counts once per grouping)
        eligible = [(c, f"{name}: {g}") for name in layout.blocks if name != ALL
                    for c, g in zip(layout.cols(name), layout.labels(name)) if counts[c] >= min_group_size]
        if len(eligible) >= 2:
            cols = np.array([c for c, _ in eligible])
            out.append(_Stat("worst_any", ANY, None, int(counts[layout.cols(ALL)].sum()), cols, "max",
                             tuple(g for _, g in eligible)))
    return out


@dataclass(frozen=True)
class _Plan:
    """One compare_values call prepared: its job (the two models' values, cells, statistics) and labels."""

    job: Job
    stats: list[_Stat]
    names: tuple[str, str]
    metric: str


def _plan(*, value_a, value_b, groupings=None, mask=None, names=("A", "B"), metric="mae",
          age_grouping="age_bin", criteria=DEFAULT_CRITERIA, settings: AuditSettings) -> _Plan | None:
    va, vb = np.asarray(value_a, float), np.asarray(value_b, float)
    if va.shape != vb.shape or va.ndim != 1:
        raise ValueError(f"value_a and value_b must be 1-D and aligned, got {va.shape} and {vb.shape}")
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; choose from {CRITERIA}")
    layout = _design(groupings, len(va), mask)
    stats = _stats(layout, criteria, settings.min_group_size, age_grouping)
    return _Plan(Job([va, vb], layout, stats), stats, tuple(names), metric) if stats else None


def _rows(plan: _Plan, point, boot, p, resampler: Resampler, settings: AuditSettings, n_perm: int) -> list[Comparison]:
    observed = point[:, 1] - point[:, 0]
    layout = plan.job.layout
    tot = layout.counts()
    pm = [ratio(np.asarray(resampler.sums(layout, v).sum(axis=0)).ravel(), tot) for v in plan.job.values]
    rows = []
    for i, st in enumerate(plan.stats):
        diff = boot[i, :, 1] - boot[i, :, 0]
        (wa, ba), (wb, bb) = st.extremes(pm[0]), st.extremes(pm[1])
        notes = ()
        if st.criterion == "group" and st.n < settings.min_group_size:
            notes = (f"small group: n = {st.n} < {settings.min_group_size}",)
        rows.append(Comparison(
            criterion=st.criterion, metric=plan.metric, grouping=st.grouping, group=st.group, model_a=plan.names[0],
            model_b=plan.names[1], n=st.n, value_a=float(point[i, 0]), value_b=float(point[i, 1]),
            difference=float(observed[i]), ci=quantile_ci(diff, settings.ci_level), se=nan_std(diff),
            p_value=float(p[i]), level=settings.ci_level, n_boot=settings.n_boot, n_perm=n_perm,
            clustered=resampler.clustered, worst_a=wa, worst_b=wb, best_a=ba, best_b=bb, notes=notes))
    return rows


def compare_many(calls: Sequence[dict], *, cluster=None, settings: AuditSettings = AuditSettings(),
                 n_perm: int | None = None) -> list[list[Comparison]]:
    """``compare_values`` for each of ``calls`` (its keyword arguments but cluster, settings and n_perm),
    all on the same rows: one bootstrap draw and one set of permutation swaps for them all, so each
    call's rows are exactly what ``compare_values`` gives it alone."""
    n_perm = settings.n_boot if n_perm is None else n_perm
    plans = [_plan(**c, settings=settings) for c in calls]
    live = [p for p in plans if p is not None]
    if not live:
        return [[] for _ in plans]
    n = len(live[0].job.values[0])
    if any(len(p.job.values[0]) != n for p in live):
        raise ValueError("compare_many: every call must be on the same rows")
    resampler = Resampler.of(n, cluster, settings.bootstrap)
    results = replicate_many([p.job for p in live], resampler, settings.n_boot, settings.seed)
    observed = [point[:, 1] - point[:, 0] for point, _ in results]
    pvals = perm_pvalues_many([p.job for p in live], observed, resampler, n_perm, settings.seed)
    done = iter(_rows(p, point, boot, pv, resampler, settings, n_perm)
                for p, (point, boot), pv in zip(live, results, pvals))
    return [next(done) if p is not None else [] for p in plans]


def compare_values(*, value_a, value_b, groupings: Mapping[str, object] | None = None, mask=None, cluster=None,
                   settings: AuditSettings = AuditSettings(), names: tuple[str, str] = ("A", "B"),
                   metric: str = "mae", age_grouping: str | None = "age_bin", criteria: Sequence[str] = DEFAULT_CRITERIA,
                   n_perm: int | None = None) -> list[Comparison]:
    """Paired comparisons of the per-row ``value_b`` against ``value_a`` (lower is better), each
    averaged over the rows in ``mask`` (default all) overall and per group of each grouping
    (label arrays; a DataFrame of several columns is an intersection).

    The generic hook: an age-gate rate is ``value = indicator``, ``mask = the sub-population``,
    ``criteria=("overall",)``. ``n_perm`` defaults to ``settings.n_boot``; the permutation test
    uses its own stream of ``settings.seed``.
    """
    call = dict(value_a=value_a, value_b=value_b, groupings=groupings, mask=mask, names=names, metric=metric,
                age_grouping=age_grouping, criteria=criteria)
    return compare_many([call], cluster=cluster, settings=settings, n_perm=n_perm)[0]


def compare_models(*, pred_a, pred_b, age=None, age_lo=None, age_hi=None, groupings: Mapping[str, object] | None = None,
                   cluster=None, settings: AuditSettings = AuditSettings(), names: tuple[str, str] = ("A", "B"),
                   age_grouping: str | None = "age_bin", criteria: Sequence[str] = DEFAULT_CRITERIA,
                   n_perm: int | None = None) -> list[Comparison]:
    """Paired comparisons of model B's predictions against reference A's on the same rows: overall
    MAE (``dist`` with interval labels), each group's, and each grouping's gap, worst-group MAE and
    (``age_grouping``) age-bin spread. See the module docstring for the methods."""
    ea, metric = row_errors(pred=pred_a, age=age, age_lo=age_lo, age_hi=age_hi)
    eb, _ = row_errors(pred=pred_b, age=age, age_lo=age_lo, age_hi=age_hi)
    return compare_values(value_a=np.abs(ea), value_b=np.abs(eb), groupings=groupings, cluster=cluster,
                          settings=settings, names=names, metric=metric, age_grouping=age_grouping,
                          criteria=criteria, n_perm=n_perm)


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control); NaN stays NaN and
    does not count as a test."""
    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def adjust_bh(rows: Sequence[Comparison], *, alpha: float | None = None) -> list[Comparison]:
    """The rows with ``p_adjusted`` (BH across all of them: pass one table, one family) and
    ``significant``: p_adjusted < alpha (default alpha = 1 - each row's level) AND the paired bootstrap
    interval excludes 0 where it is known. Both tests must agree, so that a statement the report makes
    ("raises X by d [lo, hi]") never quotes an interval that contains no change."""
    adj = bh_adjust([r.p_value for r in rows])
    out = []
    for r, q in zip(rows, adj):
        a = (1 - r.level) if alpha is None else alpha
        ok = bool(np.isfinite(q))
        lo, hi = (r.ci if r.ci is not None else (math.nan, math.nan))
        straddles = bool(np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi)
        out.append(replace(r, p_adjusted=float(q) if ok else None,
                           significant=bool(q < a and not straddles) if ok else None))
    return out
