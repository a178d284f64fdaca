"""The resampling engine under agefair.fairness.compare, .standardise and .age_accuracy.

Every statistic these modules test is a function of *cell means*: the mean of a per-row value
(absolute error, an indicator, age x error ...) over the rows of a cell (a group of a grouping, an
age bin of a group, all rows). A ``Layout`` maps rows to cells (a row may sit in several: its
ethnicity, its age bin, "all"); a ``Resampler`` knows the resampling *unit* of each row (the row
itself, or its cluster: a subject or identity column, so that all images of one person are drawn
together).

The bootstrap draws units with replacement; a replicate is a vector of unit weights (how often each
unit was drawn) and each cell sum is ``weights @ S`` with ``S`` the sparse (units x cells) matrix of
per-unit cell sums. So no (n_boot x n) matrix is ever built: replicates come in chunks of at most
``MAX_WEIGHTS`` weights (e.g. 100 replicates of 20,000 units), and all models and statistics use the
same weights, which is what makes a bootstrap *paired*. The same scheme as
``agefair.fairness.metrics.bootstrap_group_metrics`` (all units resampled, a cell's size varies),
drawn in chunks.

A paired permutation draws, per unit, whether the two models' values are swapped: with
``D = S_b - S_a`` and a 0/1 swap vector ``s``, the permuted sums are ``S_a + s @ D`` and
``S_b - s @ D`` (cell sizes do not change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

MAX_WEIGHTS = 2_000_000  # unit weights per chunk of replicates (16 MB of float64)


def as_labels(x) -> np.ndarray:
    """Group labels as an object array of str (None where missing); a DataFrame's columns are joined
    with ' / ' as agefair.fairness.metrics.group_key names intersections."""
    if isinstance(x, pd.DataFrame):
        out = x.astype(str).agg(" / ".join, axis=1).to_numpy(dtype=object)
        out[x.isna().any(axis=1).to_numpy()] = None
        return out
    s = pd.Series(np.asarray(x, dtype=object))
    return np.where(s.isna(), None, s.astype(str)).astype(object)


@dataclass(frozen=True)
class Layout:
    """Which rows form each cell: ``incidence`` is the (rows x cells) 0/1 matrix; ``blocks`` names a
    run of cells: block name -> (first column, cell labels)."""

    incidence: sparse.csr_matrix
    blocks: dict[str, tuple[int, list[str]]]

    @property
    def n_cells(self) -> int:
        return self.incidence.shape[1]

    def cols(self, block: str) -> np.ndarray:
        first, labels = self.blocks[block]
        return np.arange(first, first + len(labels))

    def labels(self, block: str) -> list[str]:
        return self.blocks[block][1]

    def col(self, block: str, label: str) -> int:
        first, labels = self.blocks[block]
        return first + labels.index(label)

    def counts(self) -> np.ndarray:
        return np.asarray(self.incidence.sum(axis=0)).ravel()


def build_layout(blocks: Mapping[str, np.ndarray], n: int, mask: np.ndarray | None = None) -> Layout:
    """Cells from per-row labels: each block's rows are grouped by label (None, or outside ``mask``:
    in no cell of that block). Labels are sorted; an empty block has no cells."""
    rows, cols, named, first = [], [], {}, 0
    keep_all = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    for name, lab in blocks.items():
        lab = np.asarray(lab, dtype=object)
        keep = keep_all & np.array([v is not None for v in lab], bool)
        cats = sorted(set(lab[keep]))
        codes = pd.Categorical(lab[keep], categories=cats).codes
        rows.append(np.flatnonzero(keep))
        cols.append(codes.astype(np.int64) + first)
        named[name] = (first, cats)
        first += len(cats)
    r, c = np.concatenate(rows), np.concatenate(cols)
    inc = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, first))
    return Layout(inc, named)


@dataclass(frozen=True)
class Resampler:
    """The resampling unit of each row: the row itself, or its cluster."""

    unit_of_row: np.ndarray
    n_units: int
    clustered: bool

    @classmethod
    def of(cls, n: int, cluster=None) -> Resampler:
        if cluster is None:
            return cls(np.arange(n), n, False)
        codes, uniques = pd.factorize(pd.Series(np.asarray(cluster, dtype=object)), use_na_sentinel=False)
        if len(codes) != n:
            raise ValueError(f"cluster has {len(codes)} rows, the predictions {n}")
        return cls(codes.astype(np.int64), len(uniques), True)

    def sums(self, layout: Layout, values: np.ndarray | None = None) -> sparse.csc_matrix:
        """Per-unit cell sums (units x cells) of ``values`` (None: of 1, the cell sizes)."""
        n = len(self.unit_of_row)
        units = sparse.csr_matrix((np.ones(n), (self.unit_of_row, np.arange(n))), shape=(self.n_units, n))
        x = layout.incidence
        if values is not None:
            v = np.asarray(values, float)
            inside = np.asarray(x.sum(axis=1)).ravel() > 0
            if not np.all(np.isfinite(v[inside])):
                raise ValueError("values must be finite on the rows being compared")
            x = sparse.diags(np.where(inside, v, 0.0)) @ x
        return (units @ x).tocsc()

    def chunk(self) -> int:
        return max(1, min(500, MAX_WEIGHTS // max(self.n_units, 1)))

    def boot_weights(self, n_boot: int, seed: int) -> Iterator[np.ndarray]:
        """Chunks of bootstrap replicates: (chunk x units) draw counts, units drawn with replacement."""
        rng = np.random.default_rng(seed)
        u, step = self.n_units, self.chunk()
        for start in range(0, n_boot, step):
            r = min(step, n_boot - start)
            idx = rng.integers(0, u, size=(r, u)) + (np.arange(r) * u)[:, None]
            yield np.bincount(idx.ravel(), minlength=r * u).reshape(r, u).astype(float)

    def swaps(self, n_perm: int, seed: int) -> Iterator[np.ndarray]:
        """Chunks of paired permutations: (chunk x units) 0/1, 1 where the two models are swapped."""
        rng = np.random.default_rng([seed, 7919])  # a stream apart from the bootstrap's
        step = self.chunk()
        for start in range(0, n_perm, step):
            yield rng.integers(0, 2, size=(min(step, n_perm - start), self.n_units)).astype(float)


def apply(weights: np.ndarray, s: sparse.spmatrix) -> np.ndarray:
    """``weights @ s`` for dense (r x units) weights and sparse (units x cells) sums: (r x cells)."""
    return np.asarray(s.T @ weights.T).T


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a cell with no rows in that replicate)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def quantile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval at ``level``, ignoring NaN replicates (NaN when none is left)."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(s, [a, 1 - a])
    return float(lo), float(hi)


def nan_std(samples: np.ndarray) -> float:
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    return float(np.std(s, ddof=1)) if s.size > 1 else float("nan")


def spread(m: np.ndarray, kind: str) -> np.ndarray:
    """Per row of ``m`` over its finite columns: 'max', 'min', 'gap' (max - min) or 'std' (ddof 0);
    NaN when no column is finite ('gap' and 'std' need two)."""
    fin = np.isfinite(m)
    k = fin.sum(axis=1)
    hi = np.where(fin, m, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(fin, m, np.inf).min(axis=1, initial=np.inf)
    if kind == "max":
        return np.where(k >= 1, hi, np.nan)
    if kind == "min":
        return np.where(k >= 1, lo, np.nan)
    if kind == "gap":
        return np.where(k >= 2, hi - lo, np.nan)
    mean = np.where(fin, m, 0).sum(axis=1) / np.maximum(k, 1)
    var = np.where(fin, (m - mean[:, None]) ** 2, 0).sum(axis=1) / np.maximum(k, 1)
    return np.where(k >= 2, np.sqrt(var), np.nan)


def to_json_value(x):
    """NaN as None, tuples as lists, numpy scalars as Python numbers (recursively)."""
    if isinstance(x, dict):
        return {k: to_json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json_value(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
