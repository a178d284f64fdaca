"""Age-standardised group MAE and gaps (direct standardisation).

Two groups can differ in MAE only because their age mixes differ (errors grow with age; a group
with more 70+ faces looks worse). Direct standardisation re-weights each group's per-age-bin MAE
to one reference age distribution:

    std_MAE_g = sum_k w_k * MAE_{g,k} / sum_{k present in g} w_k

with ``w_k`` the reference share of age bin k: by default the age-bin mix of the whole evaluated
set (all rows passed), or any mapping bin -> weight. The reference is held fixed in the bootstrap
(a standard population, as in epidemiology); each replicate recomputes every cell's MAE.

A group that lacks a bin the reference has (no row of that group in that bin, or fewer than
``min_cell``): with ``missing="renormalise"`` (default) the weights are renormalised over the
bins the group has, and the group is flagged: ``missing_bins`` names the bins and ``coverage``
is the share of the reference weight it covers (1.0: complete). Its standardised MAE is then
standardised to a narrower age range and is not strictly comparable: read it with its coverage.
With ``missing="exclude"`` such a group gets no standardised MAE (NaN) and stays out of the gap.
In a bootstrap replicate a cell can come out empty (its rows not drawn): that replicate
renormalises the same way.

The standardised gap is worst - best standardised MAE over the groups with ``n >=
settings.min_group_size``, worst and best re-chosen in each replicate (as in
agefair.fairness.stats.compare); the raw gap on the same replicates is given alongside. The per-cell
table (``frame()``: index group x age bin, like fairlearn's ``control_features`` by_group frame)
holds n, MAE and the reference weight of each cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from agefair.fairness.engine.replicates import Job, Planned, run_planned
from agefair.fairness.engine.resampling import (
    Layout,
    Resampler,
    as_labels,
    build_layout,
    is_clustered,
    quantile_ci,
    spread,
    to_json_value,
)
from agefair.fairness.stats.compare import row_errors
from agefair.fairness.stats.metrics import AuditSettings

SEP = "\x1f"


@dataclass(frozen=True)
class StandardisedGroup:
    group: str
    n: int
    small: bool  # n < min_group_size: reported, never in the gap
    raw: float  # the group's plain MAE
    raw_ci: tuple[float, float]
    standardised: float  # NaN when excluded (missing="exclude" and a bin missing)
    standardised_ci: tuple[float, float]
    missing_bins: tuple[str, ...]  # reference bins the group lacks
    coverage: float  # share of the reference weight over the bins the group has


@dataclass(frozen=True)
class Standardisation:
    grouping: str
    metric: str  # mae or dist
    reference: dict[str, float]  # age bin -> weight (sums to 1)
    missing: str  # renormalise | exclude
    groups: tuple[StandardisedGroup, ...]
    raw_gap: float
    raw_gap_ci: tuple[float, float]
    gap: float  # standardised worst - best
    gap_ci: tuple[float, float]
    worst_group: str | None  # at the point estimate (standardised)
    best_group: str | None
    cells: tuple[dict, ...]  # {group, age_bin, n, mae, reference_weight}
    level: float
    n_boot: int
    clustered: bool

    def frame(self) -> pd.DataFrame:
        """The per-cell table, indexed by (group, age_bin)."""
        return pd.DataFrame(list(self.cells)).set_index(["group", "age_bin"])

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


class _Standardiser:
    """Cell means (R x cells) -> standardised group means (R x groups), renormalising per row over
    the finite cells."""

    def __init__(self, layout: Layout, groups: list[str], weights: dict[str, float], min_cell: int):
        counts = layout.counts()
        self.cols = layout.cols("cell")
        self.w = np.zeros((len(self.cols), len(groups)))
        for i, lab in enumerate(layout.labels("cell")):
            g, b = lab.split(SEP)
            if counts[self.cols[i]] >= min_cell and b in weights:
                self.w[i, groups.index(g)] = weights[b]

    def __call__(self, means: np.ndarray) -> np.ndarray:
        m = means[:, self.cols]
        fin = np.isfinite(m)
        num, den = np.where(fin, m, 0) @ self.w, fin.astype(float) @ self.w
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _reference(bins: np.ndarray, reference: Mapping[str, float] | None) -> dict[str, float]:
    if reference is None:
        lab, cnt = np.unique(bins[[b is not None for b in bins]].astype(str), return_counts=True)
        reference = dict(zip(lab.tolist(), cnt.tolist()))
    total = float(sum(reference.values()))
    if total <= 0 or any(v < 0 for v in reference.values()):
        raise ValueError("reference weights must be non-negative and not all 0")
    return {str(k): float(v) / total for k, v in reference.items() if v > 0}


@dataclass(frozen=True)
class _Plan:
    """One standardisation prepared: the bootstrap job and what the result needs besides its replicates."""

    job: Job
    grouping: str
    metric: str
    weights: dict[str, float]
    missing: str
    groups: list[str]
    lacking: dict[str, tuple[str, ...]]
    cover: dict[str, float]
    eligible: np.ndarray
    clustered: bool


# long: builds the cells, the standardiser and the statistics
def _plan(*, pred, age=None, age_lo=None, age_hi=None, age_bin, group, grouping: str = "group",
          reference: Mapping[str, float] | None = None, missing: str = "renormalise", min_cell: int = 1,
          cluster=None, settings: AuditSettings) -> _Plan:
    if missing not in ("renormalise", "exclude"):
        raise ValueError("missing must be 'renormalise' or 'exclude'")
    err, metric = row_errors(pred=pred, age=age, age_lo=age_lo, age_hi=age_hi)
    n = len(err)
    bins, labs = as_labels(age_bin), as_labels(group)
    weights = _reference(bins, reference)
    ok = ~(pd.isna(bins) | pd.isna(labs))
    cell = np.full(n, None, dtype=object)
    cell[ok] = (pd.Series(labs[ok]).astype(str) + SEP + pd.Series(bins[ok]).astype(str)).to_numpy(dtype=object)
    layout = build_layout({"group": labs, "cell": cell}, n, ok)
    groups = layout.labels("group")
    std = _Standardiser(layout, groups, weights, min_cell)
    gcols, counts = layout.cols("group"), layout.counts()
    present = {g: set() for g in groups}
    for lab, c in zip(layout.labels("cell"), layout.cols("cell")):
        if counts[c] >= min_cell:
            present[lab.split(SEP)[0]].add(lab.split(SEP)[1])
    lacking = {g: tuple(sorted(set(weights) - present[g])) for g in groups}
    cover = {g: float(sum(w for b, w in weights.items() if b in present[g])) for g in groups}
    usable = np.array([missing == "renormalise" or not lacking[g] for g in groups])
    eligible = np.flatnonzero((counts[gcols] >= settings.min_group_size) & usable)

    def std_of(m):
        return np.where(usable, std(m), np.nan)

    stats = [lambda m, c=c: m[:, c] for c in gcols] + [lambda m, j=j: std_of(m)[:, j] for j in range(len(groups))]
    stats += [lambda m: spread(m[:, gcols[eligible]], "gap"), lambda m: spread(std_of(m)[:, eligible], "gap")]
    job = Job([np.abs(np.where(ok, err, 0))], layout, stats)
    return _Plan(job, grouping, metric, weights, missing, groups, lacking, cover, eligible, is_clustered(cluster))


def _result(plan: _Plan, point, boot, settings: AuditSettings) -> Standardisation:
    layout, groups, eligible, weights = plan.job.layout, plan.groups, plan.eligible, plan.weights
    gcols, counts = layout.cols("group"), layout.counts()
    ci = [quantile_ci(boot[i, :, 0], settings.ci_level) for i in range(len(plan.job.stats))]
    G = len(groups)
    out = tuple(StandardisedGroup(g, int(counts[gcols[j]]), bool(counts[gcols[j]] < settings.min_group_size),
                                  float(point[j, 0]), ci[j], float(point[G + j, 0]), ci[G + j], plan.lacking[g],
                                  plan.cover[g]) for j, g in enumerate(groups))
    s_point = point[G:2 * G, 0][eligible]
    worst = best = None
    if len(eligible) >= 2 and np.isfinite(s_point).any():
        worst, best = groups[eligible[np.nanargmax(s_point)]], groups[eligible[np.nanargmin(s_point)]]
    cells = tuple({"group": lab.split(SEP)[0], "age_bin": lab.split(SEP)[1], "n": int(counts[c]),
                   "mae": float(point_cell), "reference_weight": weights.get(lab.split(SEP)[1], 0.0)}
                  for lab, c, point_cell in zip(layout.labels("cell"), layout.cols("cell"),
                                                _cell_means(layout, plan.job.values[0])))
    return Standardisation(plan.grouping, plan.metric, weights, plan.missing, out, float(point[2 * G, 0]), ci[2 * G],
                           float(point[2 * G + 1, 0]), ci[2 * G + 1], worst, best, cells, settings.ci_level,
                           settings.n_boot, plan.clustered)


def plan_standardised(calls: list[dict], *, cluster=None, settings: AuditSettings = AuditSettings()) -> Planned:
    """``standardised_many`` ready to run (agefair.fairness.engine.replicates.run_planned): its result is the
    list of Standardisation, one per call."""
    plans = [_plan(**c, cluster=cluster, settings=settings) for c in calls]
    return Planned([p.job for p in plans],
                   lambda done: [_result(p, point, boot, settings) for p, (point, boot) in zip(plans, done)])


def standardised_many(calls: list[dict], *, cluster=None, settings: AuditSettings = AuditSettings()
                      ) -> list[Standardisation]:
    """``standardised_mae`` for each of ``calls`` (its keyword arguments but cluster and settings), on the
    same rows and one bootstrap draw (the same numbers as one call each)."""
    planned = plan_standardised(calls, cluster=cluster, settings=settings)
    if not planned.jobs:
        return []
    res = Resampler.of(len(planned.jobs[0].values[0]), cluster, settings.bootstrap)
    return run_planned([planned], res, settings.n_boot, settings.seed)[0]


def standardised_mae(*, pred, age=None, age_lo=None, age_hi=None, age_bin, group, grouping: str = "group",
                     reference: Mapping[str, float] | None = None, missing: str = "renormalise", min_cell: int = 1,
                     cluster=None, settings: AuditSettings = AuditSettings()) -> Standardisation:
    """Raw and age-standardised MAE (``dist`` for interval labels) per group of ``group`` (labels;
    a DataFrame is an intersection), with bootstrap intervals, and the raw and standardised gaps."""
    return standardised_many([dict(pred=pred, age=age, age_lo=age_lo, age_hi=age_hi, age_bin=age_bin, group=group,
                                   grouping=grouping, reference=reference, missing=missing, min_cell=min_cell)],
                             cluster=cluster, settings=settings)[0]


def _cell_means(layout: Layout, values: np.ndarray) -> np.ndarray:
    inc = layout.incidence[:, layout.cols("cell")]
    return np.asarray(inc.T @ values).ravel() / np.asarray(inc.sum(axis=0)).ravel()
