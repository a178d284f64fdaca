"""The resampling engine under agefair.fairness.stats.compare, .standardise and .age_accuracy.

Every statistic these modules test is a function of *cell means*: the mean of a per-row value
(absolute error, an indicator, age x error ...) over the rows of a cell (a group of a grouping, an
age bin of a group, all rows). A ``Layout`` maps rows to cells (a row may sit in several: its
ethnicity, its age bin, "all"); a ``Resampler`` knows the resampling *unit* of each row (the row
itself, or its cluster: a subject or identity column, so that all images of one person are drawn
together).

The bootstrap draws units with replacement; a replicate is a vector of unit weights (how often each
unit was drawn) and each cell sum is ``weights @ S`` with ``S`` the sparse (units x cells) matrix of
per-unit cell sums. So no (n_boot x n) matrix is ever built: replicates come in chunks of at most
``MAX_WEIGHTS`` weights (e.g. 100 replicates of 20,000 units; at least 16: 16 of 1,000,000), and all models and
statistics use the same weights, which is what makes a bootstrap *paired*. ``S`` is kept per
*finest* cell (the rows sharing every label: a few hundred cells, one per row at most) with a small
(finest x cells) matrix that sums them into every block, so a replicate costs one pass over the rows
whatever the number of groupings (``CellSums``).

Two schemes (``weight_chunks``; every bootstrap of agefair.fairness draws its weights there):

* ``vectorized`` (multinomial, the default): each replicate draws n units uniformly with replacement
  (``rng.integers`` from ``default_rng(seed)``, the stream MetricFrame-like resampling always used);
  a unit's weight is how often it was drawn. The numbers do not depend on the chunk size.
* ``poisson``: each unit's weight is an independent Poisson(1) count (the "Poisson bootstrap":
  the replicate's size varies around n; per-cell statistics are ratios, so they are unchanged in
  distribution to O(1/n)), drawn by a counter-based generator from (seed, the unit's key, the
  replicate) (agefair.fairness.engine.keyed_draws): the numbers do not depend on the order of the rows or on
  how they are split, and drawing is about 8x faster than the multinomial draw. Its permutation swaps are
  keyed the same way. A unit's key is the hash of its id (``Units``); without ids, of its position.

A paired permutation draws, per unit, whether the two models' values are swapped: with
``D = S_b - S_a`` and a 0/1 swap vector ``s``, the permuted sums are ``S_a + s @ D`` and
``S_b - s @ D`` (cell sizes do not change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import sparse

from agefair.fairness.engine.keyed_draws import index_keys, keyed_poisson, keyed_swaps, unit_keys
from agefair.fairness.engine.state import keyed_sums

MAX_WEIGHTS = 2_000_000  # unit weights per chunk of replicates (16 MB of float64)
MIN_CHUNK = 16  # replicates per chunk however many units
SCHEMES = ("vectorized", "poisson")
AUTO_POISSON_UNITS = 100_000  # bootstrap: auto draws Poisson weights above this many resampling units


def scheme_of(bootstrap: str, n_units: int = 0) -> str:
    """The weight scheme of a fairness.yaml ``bootstrap:`` value for ``n_units`` resampling units:
    ``auto`` is multinomial (``vectorized``) up to AUTO_POISSON_UNITS units and Poisson above, where it is
    about five times faster per weight; fairlearn's own draws are multinomial."""
    if bootstrap == "auto":
        return "poisson" if n_units > AUTO_POISSON_UNITS else "vectorized"
    return "poisson" if bootstrap == "poisson" else "vectorized"


def chunk_rows(n_units: int, n_boot: int = 500) -> int:
    """Replicates per chunk: ``MAX_WEIGHTS`` weights (fewer replicates as n grows), at most 500 and at
    least ``MIN_CHUNK`` (so that the statistics of a chunk stay vectorised at a million rows: 16
    replicates of 1,000,000 units are 128 MB of weights). Never more than n_boot."""
    return max(1, min(n_boot, max(MIN_CHUNK, min(500, MAX_WEIGHTS // max(n_units, 1)))))


def weight_chunks(n_units: int, n_boot: int, seed: int, scheme: str = "vectorized",
                  step: int | None = None, keys: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Chunks of bootstrap replicates: (chunk x units) float weights, Fortran-ordered (the sparse products
    read a unit's weights together), chunk <= ``step`` (default ``chunk_rows``). ``vectorized``: multinomial
    draw counts (units drawn with replacement, from ``default_rng(seed)``); ``poisson``: independent
    Poisson(1) counts keyed by (seed, ``keys``, replicate) (agefair.fairness.engine.keyed_draws; default keys: the
    units' positions). At most one chunk held at once (``poisson``: each chunk is drawn into the previous
    one's array: copy a chunk to keep it past the next)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown bootstrap scheme {scheme!r}; choose from {SCHEMES}")
    u, step = n_units, step or chunk_rows(n_units, n_boot)
    if scheme == "poisson":
        keys = index_keys(u) if keys is None else _checked(keys, u)
        buffer = np.empty(step * u)
        for start in range(0, n_boot, step):
            yield keyed_poisson(keys, seed, start, min(step, n_boot - start), buffer)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, step):
        r = min(step, n_boot - start)
        idx = rng.integers(0, u, size=(r, u))
        idx += (np.arange(r) * u)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * u).reshape(r, u).astype(float, order="F")


def swap_chunks(n_units: int, n_perm: int, seed: int, scheme: str = "vectorized",
                keys: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Chunks of paired permutations: (chunk x units) 0/1, 1 where the two models are swapped; a
    stream apart from the bootstrap's (``poisson``: keyed as its weights)."""
    step = chunk_rows(n_units, n_perm)
    if scheme == "poisson":
        keys = index_keys(n_units) if keys is None else _checked(keys, n_units)
        for start in range(0, n_perm, step):
            yield keyed_swaps(keys, seed, start, min(step, n_perm - start))
        return
    rng = np.random.default_rng([seed, 7919])
    for start in range(0, n_perm, step):
        r = min(step, n_perm - start)
        yield rng.integers(0, 2, size=(r, n_units)).astype(float, order="F")


def _checked(keys: np.ndarray, n_units: int) -> np.ndarray:
    keys = np.asarray(keys, np.uint64)
    if len(keys) != n_units:
        raise ValueError(f"{len(keys)} unit keys for {n_units} units")
    return keys


def as_labels(x) -> np.ndarray:
    """Group labels as an object array of str (None where missing); a DataFrame's columns are joined
    with ' / ' as agefair.fairness.stats.metrics.group_key names intersections."""
    if isinstance(x, pd.DataFrame):
        keys = x.iloc[:, 0].astype(str)
        for c in range(1, x.shape[1]):  # vectorised: a row-wise join is slow at a million rows
            keys = keys + " / " + x.iloc[:, c].astype(str)
        out = keys.to_numpy(dtype=object)
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

    @cached_property
    def finest(self) -> tuple[np.ndarray, sparse.csr_matrix]:
        """(each row's finest cell: the rows with the same cell in every block, the (finest x cells)
        0/1 matrix of the cells each finest cell belongs to). A row in no cell has a finest cell too
        (its matrix row is empty)."""
        inc = self.incidence.tocsc()
        n = inc.shape[0]
        key = np.zeros(n, np.int64)
        for first, labels in self.blocks.values():
            block = inc[:, first:first + len(labels)]
            code = np.asarray(block @ np.arange(1, len(labels) + 1, dtype=float)).ravel().astype(np.int64)
            _, key = np.unique(key * (len(labels) + 1) + code, return_inverse=True)
        key = key.ravel()
        n_fine = int(key.max()) + 1 if n else 0
        first_row = np.full(n_fine, n, np.int64)
        np.minimum.at(first_row, key, np.arange(n))
        return key, (self.incidence[first_row] != 0).astype(float).tocsr() if n else sparse.csr_matrix((0, 0))


@dataclass(frozen=True)
class CellSums:
    """Per-unit sums per finest cell (units x finest, sparse) and the (finest x cells) matrix that sums
    them into cells: ``apply(w, s)`` is ``w @ per_unit @ agg``, one pass over the units."""

    per_unit: sparse.csr_matrix  # units x finest: its transpose is CSC, so a product streams the weights
    agg: sparse.csr_matrix

    @property
    def shape(self) -> tuple[int, int]:
        return self.per_unit.shape[0], self.agg.shape[1]

    def sum(self, axis: int = 0) -> np.ndarray:
        if axis != 0:
            raise ValueError("CellSums sums over units only (axis 0)")
        return np.asarray(self.agg.T @ np.asarray(self.per_unit.sum(axis=0)).ravel()).reshape(1, -1)

    def __sub__(self, other: CellSums) -> CellSums:
        return CellSums((self.per_unit - other.per_unit).tocsr(), self.agg)

    def tocsc(self) -> CellSums:
        return self


def build_layout(blocks: Mapping[str, np.ndarray], n: int, mask: np.ndarray | None = None) -> Layout:
    """Cells from per-row labels: each block's rows are grouped by label (None, or outside ``mask``:
    in no cell of that block). Labels are sorted; an empty block has no cells."""
    rows, cols, named, first = [], [], {}, 0
    keep_all = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    for name, lab in blocks.items():
        lab = np.asarray(lab, dtype=object)
        keep = keep_all & (lab != None)  # noqa: E711 - elementwise: a None label is in no cell
        codes, uniques = pd.factorize(lab[keep], sort=True)
        cats = list(uniques)
        rows.append(np.flatnonzero(keep))
        cols.append(codes.astype(np.int64) + first)
        named[name] = (first, cats)
        first += len(cats)
    r, c = np.concatenate(rows), np.concatenate(cols)
    inc = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, first))
    return Layout(inc, named)


@dataclass(frozen=True)
class Units:
    """How an audit's rows are resampled: each row's id (under ``bootstrap: poisson`` the key of its
    random draws, so they do not depend on the row's position) and, when the dataset names one, each
    row's cluster (a subject: all its rows drawn together, keyed by the subject)."""

    ids: np.ndarray
    cluster: np.ndarray | None = None


def is_clustered(cluster) -> bool:
    """Whether a ``cluster`` argument (None, per-row labels or ``Units``) resamples clusters, not rows."""
    return cluster is not None and not (isinstance(cluster, Units) and cluster.cluster is None)


ROW_ID, SUBJECT = "file", "subject"  # a prediction frame's row id and, when the dataset names one, cluster columns


def units_of(frame: pd.DataFrame) -> Units:
    """The resampling units of a prediction frame: its rows keyed by id, clustered by subject when it has one."""
    ids = frame[ROW_ID].to_numpy() if ROW_ID in frame.columns else np.arange(len(frame))
    return Units(ids, frame[SUBJECT].to_numpy() if SUBJECT in frame.columns else None)


@dataclass(frozen=True)
class Resampler:
    """The resampling unit of each row (the row itself, or its cluster), the weight scheme and, for the
    keyed Poisson scheme, each unit's key."""

    unit_of_row: np.ndarray
    n_units: int
    clustered: bool
    scheme: str = "vectorized"  # or "poisson" (see weight_chunks)
    keys: np.ndarray | None = None  # per unit (poisson); None: keyed by position

    @classmethod
    def of(cls, n: int, cluster=None, scheme: str = "vectorized") -> Resampler:
        """``cluster``: None (each row a unit), per-row cluster labels, or ``Units`` (ids and clusters)."""
        ids = None
        if isinstance(cluster, Units):
            ids, cluster = cluster.ids, cluster.cluster
            if len(ids) != n:
                raise ValueError(f"{len(ids)} row ids for {n} rows")
        if cluster is None:
            chosen = scheme_of(scheme, n)
            keys = unit_keys(ids) if ids is not None and chosen == "poisson" else None
            return cls(np.arange(n), n, False, chosen, keys)
        codes, uniques = pd.factorize(pd.Series(np.asarray(cluster, dtype=object)), use_na_sentinel=False)
        if len(codes) != n:
            raise ValueError(f"cluster has {len(codes)} rows, the predictions {n}")
        chosen = scheme_of(scheme, len(uniques))
        return cls(codes.astype(np.int64), len(uniques), True, chosen,
                   unit_keys(uniques) if chosen == "poisson" else None)

    def sums(self, layout: Layout, values: np.ndarray | None = None) -> CellSums:
        """Per-unit cell sums of ``values`` (None: of 1, the cell sizes), kept per finest cell."""
        n = len(self.unit_of_row)
        fine, agg = layout.finest
        v = np.ones(n)
        if values is not None:
            v = np.asarray(values, float)
            inside = np.diff(layout.incidence.indptr) > 0
            if not np.all(np.isfinite(v[inside])):
                raise ValueError("values must be finite on the rows being compared")
            v = np.where(inside, v, 0.0)
        m = sparse.csr_matrix((v, (self.unit_of_row, fine)), shape=(self.n_units, agg.shape[0]))
        m.sum_duplicates()
        return CellSums(m, agg)

    def chunk(self) -> int:
        return chunk_rows(self.n_units)

    def boot_weights(self, n_boot: int, seed: int) -> Iterator[np.ndarray]:
        """Chunks of bootstrap replicates: (chunk x units) weights (``weight_chunks``)."""
        return weight_chunks(self.n_units, n_boot, seed, self.scheme, self.chunk(), keys=self.keys)

    def swaps(self, n_perm: int, seed: int) -> Iterator[np.ndarray]:
        """Chunks of paired permutations: (chunk x units) 0/1, 1 where the two models are swapped."""
        return swap_chunks(self.n_units, n_perm, seed, self.scheme, keys=self.keys)


def finest_codes(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(each row's finest cell, the first row of each finest cell) of the rows sharing every code."""
    key = np.zeros(len(codes[0]) if codes else 0, np.int64)
    for c in codes:
        c = np.asarray(c, np.int64)
        _, key = np.unique(key * (int(c.max(initial=0)) + 2) + c + 1, return_inverse=True)
    key = key.ravel()
    first = np.full(int(key.max(initial=-1)) + 1, len(key), np.int64)
    np.minimum.at(first, key, np.arange(len(key)))
    return key, first


def fine_boot_sums(fine: np.ndarray, values: list[np.ndarray], n_boot: int, seed: int,
                   scheme: str = "vectorized", keys: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, finest cells, 1 + len(values)) bootstrap sums per finest cell: the weighted row count,
    then each value's weighted sum; rows are the resampling units. One pass over the rows per chunk of
    replicates, so memory is bounded by the chunk, never by n_boot x n. ``keys``: the rows' keys (poisson)."""
    n, n_fine = len(fine), int(fine.max(initial=-1)) + 1
    cols = np.column_stack([np.ones(n), *[np.asarray(v, float) for v in values]])
    k = cols.shape[1]
    x = sparse.csr_matrix((cols.ravel(), (np.repeat(np.arange(n), k), (fine[:, None] * k + np.arange(k)).ravel())),
                          shape=(n, n_fine * k))
    if scheme == "poisson":  # the mergeable engine: blocks of rows mapped, merged by addition
        keys = index_keys(n) if keys is None else _checked(keys, n)
        return keyed_sums(x, keys, seed=seed, n=n_boot).reshape(n_boot, n_fine, k)
    out = np.empty((n_boot, n_fine, k))
    start = 0
    for w in weight_chunks(n, n_boot, seed, scheme, keys=keys):
        out[start:start + len(w)] = np.asarray(x.T @ w.T).T.reshape(len(w), n_fine, k)
        start += len(w)
    return out


def apply(weights: np.ndarray, s) -> np.ndarray:
    """``weights @ s`` for dense (r x units) weights and sparse (units x cells) sums or ``CellSums``:
    (r x cells)."""
    if isinstance(s, CellSums):
        fine = np.asarray(s.per_unit.T @ weights.T)  # (finest x r)
        return np.asarray(s.agg.T @ fine).T
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
