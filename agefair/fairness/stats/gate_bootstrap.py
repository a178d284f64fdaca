"""The counting engine of the age-gate audit (agefair.fairness.stats.gates): cells, resamples, rates.

Every number of a gate is a ratio of counts of rows in *cells*: (group, truth class, prediction
bin). A threshold gate's classes say where the true age lies (a minor in the band, another minor,
an adult in [L, C), an adult at or over C, another adult, a row the gate cannot place); its bins
are the predictions in tenths of a year from the legal age L up (bin 0: every prediction under L).
A range gate's bins are three: estimated below, inside and above the range.

The bootstrap is the one of agefair.fairness.stats.metrics (resample all rows with replacement, recompute
every group's numbers), drawn through the cells: the cell counts of a resample of n rows are one
multinomial draw (n, each cell's share of the rows), exactly the distribution of counting n rows
drawn with replacement, so a resample costs O(cells), not O(rows), and no (n_boot, n) index matrix
is ever built; resamples are drawn in chunks of bounded memory. Adults' predictions only matter at
the decision points (the gate's C and the curve grid), so they are binned there, which keeps the
number of cells small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# threshold-gate truth classes
BAND, YOUNG, BETWEEN, OVER, ADULT_OTHER, UNPLACED = range(6)
MINORS, ADULTS = (BAND, YOUNG), (BETWEEN, OVER, ADULT_OTHER)
# range-gate truth classes; its prediction bins are 0 below, 1 inside, 2 above the range
INSIDE, BELOW, ABOVE, R_UNPLACED = range(4)

MAX_PRED_TENTHS = 2000  # predictions over 200 years are counted as 200 (bins stay bounded)
CHUNK_ELEMENTS = 2_000_000  # cells x resamples held at once


def tenths(x) -> np.ndarray:
    """The largest integer v with v / 10 <= x, exactly as ``x >= v / 10`` compares floats (NaN: -1)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        v = np.floor(x * 10)
        v = np.where(x >= (v + 1) / 10, v + 1, np.where(x < v / 10, v - 1, v))
    return np.where(np.isnan(v), -1, v).astype(np.int64)


@dataclass(frozen=True)
class ThresholdSpec:
    """A threshold gate in tenths of a year: legal age L, challenge age C, band [band_lo, L)."""

    legal10: int
    challenge10: int
    band_lo10: int
    targets: tuple[float, ...]
    grid10: tuple[int, ...]  # the curve's challenge ages, each >= legal10

    def index(self, c10) -> np.ndarray:
        """The bin holding predictions of exactly ``c10`` tenths (bins at and after it: pred >= c10 / 10)."""
        return np.asarray(c10) - self.legal10 + 1


def threshold_classes(spec: ThresholdSpec, *, age=None, lo=None, hi=None) -> np.ndarray:
    """Each row's truth class: from exact ages, or from age-group intervals [lo, hi) placed only when
    wholly on one side of L (wholly inside [band_lo, L) for the band, [L, C) or [C, inf) for the split)."""
    L, C, b = spec.legal10 / 10, spec.challenge10 / 10, spec.band_lo10 / 10
    with np.errstate(invalid="ignore"):
        if age is not None:
            a = np.asarray(age, dtype=float)
            minor, adult, band, between = a < L, a >= L, (a >= b) & (a < L), (a >= L) & (a < C)
            over = a >= C
        else:
            lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
            minor, adult = hi <= L, lo >= L
            band, between, over = minor & (lo >= b), adult & (hi <= C), lo >= C
    return np.select([band, minor, between, over, adult], [BAND, YOUNG, BETWEEN, OVER, ADULT_OTHER],
                     UNPLACED).astype(np.int64)


def threshold_cells(spec: ThresholdSpec, classes: np.ndarray, pred: np.ndarray, codes: np.ndarray,
                    n_groups: int) -> np.ndarray:
    """Counts of rows per (group, class, prediction bin): an (n_groups, 6, n_bins) integer array."""
    v = tenths(pred)
    minor = np.isin(classes, MINORS)
    top10 = max(spec.challenge10, max(spec.grid10), int(v[minor].max(initial=0)))
    top10 = min(top10, MAX_PRED_TENTHS)
    n_bins = top10 - spec.legal10 + 2
    j = np.clip(spec.index(v), 0, n_bins - 1)
    decision = np.unique(np.concatenate([[0], spec.index([spec.challenge10, *spec.grid10])]))
    adult = np.isin(classes, ADULTS)
    j = np.where(adult, decision[np.searchsorted(decision, j, side="right") - 1], j)  # snap down: same counts
    j = np.where(classes == UNPLACED, 0, j)
    key = (codes * 6 + classes) * n_bins + j
    return np.bincount(key, minlength=n_groups * 6 * n_bins).reshape(n_groups, 6, n_bins)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def threshold_stats(spec: ThresholdSpec, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every rate of a threshold gate from cell counts (r, groups, 6, bins): (r, groups) per rate,
    (r, groups, targets) for ``buffer``, (r, groups, grid) for the ``curve_*`` arrays."""
    tail = np.flip(np.cumsum(np.flip(counts, -1), -1), -1)  # tail[..., j]: rows with prediction bin >= j
    total = tail[..., 0]
    jc = int(spec.index(spec.challenge10))
    minors_tail = tail[:, :, BAND] + tail[:, :, YOUNG]
    n_minors, n_band = minors_tail[..., 0], total[:, :, BAND]
    n_adults = total[:, :, list(ADULTS)].sum(-1)
    out = {
        "false_pass": _ratio(minors_tail[..., jc], n_minors),
        "false_pass_band": _ratio(tail[:, :, BAND, jc], n_band),
        "false_challenge": _ratio(n_adults - tail[:, :, list(ADULTS), jc].sum(-1), n_adults),
        "false_challenge_over": _ratio(total[:, :, OVER] - tail[:, :, OVER, jc], total[:, :, OVER]),
        "false_challenge_between": _ratio(total[:, :, BETWEEN] - tail[:, :, BETWEEN, jc], total[:, :, BETWEEN]),
    }
    # buffer: the smallest C (tenths, >= L) with #minors predicted >= C <= floor(target * n_minors);
    # the tail is non-increasing in C, so that C is L plus the number of bins (from L up) violating it.
    allowed = np.floor(np.multiply.outer(n_minors, np.asarray(spec.targets)) + 1e-9)
    violations = (minors_tail[:, :, None, 1:] > allowed[..., None]).sum(-1)
    out["buffer"] = np.where(n_minors[..., None] > 0, (spec.legal10 + violations) / 10, np.nan)
    jg = spec.index(np.asarray(spec.grid10))
    out["curve_false_pass"] = _ratio(minors_tail[..., jg], n_minors[..., None])
    out["curve_false_pass_band"] = _ratio(tail[:, :, BAND][..., jg], n_band[..., None])
    adults_tail = tail[:, :, list(ADULTS)].sum(2)
    out["curve_false_challenge"] = _ratio(n_adults[..., None] - adults_tail[..., jg], n_adults[..., None])
    return out


def range_classes(first: int, last: int, *, age=None, lo=None, hi=None) -> np.ndarray:
    """Truth classes for the range [first, last + 1): exact ages, or intervals wholly inside/below/above it."""
    top = last + 1
    with np.errstate(invalid="ignore"):
        if age is not None:
            a = np.asarray(age, dtype=float)
            inside, below, above = (a >= first) & (a < top), a < first, a >= top
        else:
            lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
            inside, below, above = (lo >= first) & (hi <= top), hi <= first, lo >= top
    return np.select([inside, below, above], [INSIDE, BELOW, ABOVE], R_UNPLACED).astype(np.int64)


def range_cells(first: int, last: int, classes: np.ndarray, pred: np.ndarray, codes: np.ndarray,
                n_groups: int) -> np.ndarray:
    """Counts per (group, class, estimate below / inside / above the range): (n_groups, 4, 3)."""
    p = np.asarray(pred, dtype=float)
    with np.errstate(invalid="ignore"):
        j = np.where(p < first, 0, np.where(p < last + 1, 1, 2))
    j = np.where(np.isnan(p), 0, j)
    key = (codes * 4 + classes) * 3 + j
    return np.bincount(key, minlength=n_groups * 12).reshape(n_groups, 4, 3)


def range_stats(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Rates of a range gate from cell counts (r, groups, 4, 3): (r, groups) each."""
    n = counts.sum(-1)
    hit = counts[..., 1]
    return {
        "tpr": _ratio(hit[:, :, INSIDE], n[:, :, INSIDE]),
        "fpr": _ratio(hit[:, :, BELOW] + hit[:, :, ABOVE], n[:, :, BELOW] + n[:, :, ABOVE]),
        "fpr_below": _ratio(hit[:, :, BELOW], n[:, :, BELOW]),
        "fpr_above": _ratio(hit[:, :, ABOVE], n[:, :, ABOVE]),
    }


def bootstrap_cells(cells: np.ndarray, stats: Callable[[np.ndarray], dict[str, np.ndarray]], *, n_boot: int,
                    seed: int) -> dict[str, np.ndarray]:
    """``stats`` of ``n_boot`` resamples of all rows (``cells``: the observed counts per cell), each array
    with the resamples first. Empty when n_boot is 0 or there are no rows."""
    flat = cells.ravel()
    n = int(flat.sum())
    if n_boot <= 0 or n == 0:
        return {}
    nz = np.flatnonzero(flat)
    shares = flat[nz] / n
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_ELEMENTS // flat.size)
    parts = []
    for start in range(0, n_boot, chunk):
        r = min(chunk, n_boot - start)
        dense = np.zeros((r, flat.size), dtype=np.int64)
        dense[:, nz] = rng.multinomial(n, shares, size=r)
        parts.append(stats(dense.reshape(r, *cells.shape)))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
