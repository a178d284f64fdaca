"""Coverage of conformal age intervals (agefair.models.conformal) on a test split, per group.

For each group of each grouping: the empirical coverage and the mean and median interval width, each
with a percentile-bootstrap interval from the audit's resampling scheme (all rows resampled with
replacement, ``AuditSettings.n_boot`` times from ``seed``, or Poisson(1) row weights with ``bootstrap:
poisson``; drawn in bounded chunks of replicates, group means from sparse sums, group medians from
per-resample row counts). Disparities over the groups with at least ``min_group_size``
test rows (smaller groups are reported and flagged ``small``): the coverage gap (highest minus lowest
group coverage) and the width ratio (widest over narrowest mean width), each with a bootstrap interval.

Coverage definitions (``CoverageReport.definitions``):

- ``exact`` (exact ages y): lo <= y <= hi.
- ``overlap`` (age-group labels [a, b), e.g. "20-29" = [20, 30)): the interval meets the group,
  lo < b and hi >= a: some age in the group is inside the interval.
- ``contains`` (age-group labels, stricter): the interval holds the whole group, lo <= a and
  hi >= min(b, max_age): an open group ("70+", b = ∞) is held when the interval reaches max_age.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import sparse

from agefair.core.errors import AgefairError
from agefair.fairness.engine.keyed_draws import unit_keys
from agefair.fairness.engine.resampling import scheme_of, weight_chunks
from agefair.fairness.stats.metrics import AuditSettings
from agefair.models.conformal import Intervals, group_labels


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class Stat(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: float | None  # null: not computable (e.g. a ratio over a zero width)
    ci: list[float | None]  # [lower, upper]; nulls without resamples


class Spread(Stat):
    low_group: str  # the group with the lowest value (coverage, or mean width)
    high_group: str


class CoverageGroup(BaseModel):
    model_config = ConfigDict(frozen=True)

    group: str
    n: int
    small: bool  # n < min_group_size: reported, left out of the disparities
    coverage: dict[str, Stat]  # per definition
    mean_width: Stat
    median_width: Stat
    fallback_rows: int  # rows whose interval used the marginal q for a small or unseen calibration group
    unseen_rows: int


class CoverageDisparity(BaseModel):
    model_config = ConfigDict(frozen=True)

    eligible_groups: int
    flagged_small_groups: int
    coverage_gap: dict[str, Spread] = {}  # per definition: highest minus lowest coverage
    width_ratio: Spread | None = None  # widest over narrowest mean width


class CoverageGrouping(BaseModel):
    model_config = ConfigDict(frozen=True)

    groups: list[CoverageGroup]
    disparity: CoverageDisparity


class CoverageReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: float  # 1 - alpha
    label_kind: str  # "exact" or "interval"
    definitions: list[str]
    n: int
    ci_level: float
    n_boot: int
    overall: CoverageGroup
    groupings: dict[str, CoverageGrouping]

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- coverage indicators

def covered(intervals: Intervals, *, y=None, age_lo=None, age_hi=None) -> dict[str, np.ndarray]:
    """Per-row coverage (bool) per definition: {'exact'} for ages ``y``, {'overlap', 'contains'} for
    age-group labels [age_lo, age_hi) (age_hi may be inf)."""
    lo, hi, n = intervals.lo, intervals.hi, len(intervals.lo)

    def vec(x, name):
        a = np.asarray(x, dtype=float).reshape(-1)
        if len(a) != n:
            raise AgefairError(f"{name}: {len(a)} rows, expected {n}")
        return a

    if y is not None:
        if age_lo is not None or age_hi is not None:
            raise AgefairError("coverage: give exact ages (y) or age groups (age_lo, age_hi), not both")
        yv = vec(y, "y")
        return {"exact": (lo <= yv) & (yv <= hi)}
    if age_lo is None or age_hi is None:
        raise AgefairError("coverage: needs exact ages (y) or age groups (age_lo and age_hi)")
    a, b = vec(age_lo, "age_lo"), vec(age_hi, "age_hi")
    if np.any(np.isnan(a) | np.isnan(b)) or np.any(b <= a):
        raise AgefairError("coverage: age groups need age_lo < age_hi on every row")
    return {"overlap": (lo < b) & (hi >= a),
            "contains": (lo <= a) & (hi >= np.minimum(b, intervals.max_age))}


# --------------------------------------------------------------------------- bootstrap

def _ci(samples: np.ndarray, q: list[float]) -> list[float | None]:
    with warnings.catch_warnings():  # all-NaN columns (group never drawn) warn and give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return [_num(x) for x in np.nanquantile(samples, q, axis=0)]


class _Boot:
    """The audit's resamples (rows with replacement from ``seed``, or Poisson(1) weights with
    ``bootstrap: poisson``), drawn once in chunks of replicates (agefair.fairness.engine.resampling.weight_chunks)
    for every grouping: per group the mean of each value and the median width. Memory is bounded by one
    chunk of weights, never n_boot x n."""

    def __init__(self, n: int, s: AuditSettings, codes: dict[str, tuple[np.ndarray, int]],
                 values: dict[str, np.ndarray], width: np.ndarray, ids=None):
        self.n_boot, self.n = s.n_boot, n
        scheme = scheme_of(s.bootstrap, n)
        keys = unit_keys(ids) if ids is not None and scheme == "poisson" else None
        names = list(values)
        self._means = {g: {v: np.empty((s.n_boot, k)) for v in names} for g, (_, k) in codes.items()}
        self._medians = {g: np.empty((s.n_boot, k)) for g, (_, k) in codes.items()}
        cols = np.column_stack([np.ones(n), *[np.asarray(values[v], float) for v in names]])
        design = {g: sparse.csr_matrix((cols.ravel(), (np.repeat(np.arange(n), cols.shape[1]),
                                                      (c[:, None] * cols.shape[1] + np.arange(cols.shape[1])).ravel())),
                                       shape=(n, k * cols.shape[1])) for g, (c, k) in codes.items()}
        orders = {g: [np.flatnonzero(c == j)[np.argsort(width[c == j], kind="stable")] for j in range(k)]
                  for g, (c, k) in codes.items()}
        start = 0
        for w in weight_chunks(n, s.n_boot, s.seed, scheme, keys=keys):
            r = slice(start, start + len(w))
            for g, (_, k) in codes.items():
                sums = np.asarray(design[g].T @ w.T).T.reshape(len(w), k, cols.shape[1])
                with np.errstate(invalid="ignore", divide="ignore"):
                    for i, v in enumerate(names):
                        self._means[g][v][r] = sums[..., 1 + i] / sums[..., 0]
                for j, order in enumerate(orders[g]):
                    self._medians[g][r, j] = self._median(w[:, order], width[order])
            start += len(w)

    @staticmethod
    def _median(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(r,) weighted medians of sorted ``v`` (mean of the two middle values; NaN when no weight)."""
        if len(v) == 0:
            return np.full(len(weights), np.nan)
        cum = np.cumsum(weights, axis=1)
        total = cum[:, -1]
        lower, upper = (np.minimum((cum < k[:, None]).sum(axis=1), len(v) - 1)
                        for k in ((total + 1) // 2, total // 2 + 1))
        return np.where(total > 0, (v[lower] + v[upper]) / 2, np.nan)

    def means(self, grouping: str, value: str) -> np.ndarray:
        """(n_boot, n_groups) group means of ``value``; NaN where a group was not drawn."""
        return self._means[grouping][value]

    def medians(self, grouping: str, j: int) -> np.ndarray:
        """(n_boot,) medians of the width over group ``j``'s rows in each resample."""
        return self._medians[grouping][:, j]


# --------------------------------------------------------------------------- evaluation

def _spread(values: dict[str, float], samples: np.ndarray | None, q: list[float], ratio: bool) -> Spread:
    low, high = min(values, key=values.get), max(values, key=values.get)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = values[high] / values[low] if ratio else values[high] - values[low]
        if samples is None:
            ci = [None, None]
        else:
            hi_s, lo_s = np.nanmax(samples, axis=1), np.nanmin(samples, axis=1)
            ci = _ci(hi_s / lo_s if ratio else hi_s - lo_s, q)
    return Spread(value=_num(value), ci=ci, low_group=low, high_group=high)


def _codes(keys: np.ndarray) -> tuple[list[str], np.ndarray]:
    names = sorted(set(keys))
    return names, np.searchsorted(np.array(names, dtype=object), keys).astype(np.int64)


def _grouping(name: str, keys: np.ndarray, cov: dict[str, np.ndarray], width: np.ndarray, intervals: Intervals,
              boot: _Boot | None, s: AuditSettings) -> CoverageGrouping:
    names, codes = _codes(keys)
    q = s.quantiles
    none = [None, None]
    b_cov = {d: boot.means(name, d) for d in cov} if boot else None
    b_width = boot.means(name, "__width__") if boot else None
    groups = []
    for j, g in enumerate(names):
        rows = np.flatnonzero(codes == j)
        b_median = boot.medians(name, j) if boot else None
        groups.append(CoverageGroup(
            group=g, n=len(rows), small=len(rows) < s.min_group_size,
            coverage={d: Stat(value=float(c[rows].mean()), ci=_ci(b_cov[d][:, j], q) if boot else none)
                      for d, c in cov.items()},
            mean_width=Stat(value=float(width[rows].mean()), ci=_ci(b_width[:, j], q) if boot else none),
            median_width=Stat(value=float(np.median(width[rows])), ci=_ci(b_median, q) if boot else none),
            fallback_rows=int(intervals.fallback[rows].sum()), unseen_rows=int(intervals.unseen[rows].sum())))
    eligible = [j for j, g in enumerate(groups) if not g.small]
    gap, ratio = {}, None
    if len(eligible) >= 2:
        for d in cov:
            values = {groups[j].group: groups[j].coverage[d].value for j in eligible}
            gap[d] = _spread(values, b_cov[d][:, eligible] if boot else None, q, ratio=False)
        values = {groups[j].group: groups[j].mean_width.value for j in eligible}
        ratio = _spread(values, b_width[:, eligible] if boot else None, q, ratio=True)
    disparity = CoverageDisparity(eligible_groups=len(eligible), flagged_small_groups=len(groups) - len(eligible),
                                  coverage_gap=gap, width_ratio=ratio)
    return CoverageGrouping(groups=groups, disparity=disparity)


def evaluate_coverage(*, intervals: Intervals, y=None, age_lo=None, age_hi=None,
                      groupings: Mapping[str, object] | None = None,
                      settings: AuditSettings = AuditSettings(), ids=None) -> CoverageReport:
    """Coverage and widths of ``intervals`` against test labels (exact ages ``y``, or age groups
    ``age_lo`` / ``age_hi``), overall and per group of each grouping (name -> one label per row, or a
    DataFrame of columns joined as in the audit); ``ids``: each row's id, the key of its bootstrap weights
    under ``bootstrap: poisson`` (default: its position)."""
    cov = covered(intervals, y=y, age_lo=age_lo, age_hi=age_hi)
    n = len(intervals.lo)
    if n == 0:
        raise AgefairError("coverage: no test rows")
    width = intervals.width.astype(float)
    keys = {"\0overall": np.full(n, "all", dtype=object)}
    for name, labels in (groupings or {}).items():
        keys[name] = group_labels(labels, n, name)
        keys[name][np.array([k is None for k in keys[name]], dtype=bool)] = "(missing)"
    boot = None
    if settings.n_boot > 0:
        codes = {g: (c, len(names)) for g, (names, c) in ((g, _codes(k)) for g, k in keys.items())}
        boot = _Boot(n, settings, codes, {**{d: c.astype(float) for d, c in cov.items()}, "__width__": width}, width,
                     ids=ids)
    overall = _grouping("\0overall", keys["\0overall"], cov, width, intervals, boot, settings).groups[0]
    out = {name: _grouping(name, keys[name], cov, width, intervals, boot, settings) for name in (groupings or {})}
    return CoverageReport(target=1 - intervals.alpha, label_kind="exact" if y is not None else "interval",
                          definitions=list(cov), n=n, ci_level=settings.ci_level, n_boot=settings.n_boot,
                          overall=overall, groupings=out)
