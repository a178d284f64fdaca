"""The keyed draw and the weighted sums in one compiled pass (numba): no (replicates x units) weight matrix.

``keyed_block_sums(x, keys, seed, stream, start, r)`` is ``W @ x`` for the (r x units) keyed weights ``W`` of
replicates start..start + r - 1 (agefair.fairness.engine.keyed_draws: Poisson(1) weights of the bootstrap
stream, 0/1 swaps of the permutation stream) and a sparse (units x columns) CSR ``x``, computed without
materialising ``W``: for each unit, its r weights are hashed into a few registers and added, times each of the
unit's entries, into the (columns x r) output. Each output element is a sum over the units in their order, so
the result does not depend on the number of threads (threads take disjoint groups of replicates).

The weights are the same bits as ``keyed_poisson`` / ``keyed_swaps`` (tests/test_engine_state.py); the sums
agree with ``W @ x`` to rounding (the order of the additions differs from scipy's product).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64
from scipy import sparse

from agefair.fairness.engine.keyed_draws import POISSON_TABLE, POISSON_THRESHOLDS, _stream_key

GROUP = 16  # replicates a thread keeps in registers per unit: the inner loop's width
CUT = 255  # in TABLE8: a bucket a CDF threshold cuts
# POISSON_TABLE as bytes (64 KiB, stays in the L2 cache; a float table is 512 KiB): weights are below 25
TABLE8 = np.where(np.isnan(POISSON_TABLE), CUT, np.nan_to_num(POISSON_TABLE)).astype(np.uint8)


@njit(cache=True, inline="always")
def _mix(x):
    x ^= x >> uint64(30)
    x *= uint64(0xBF58476D1CE4E5B9)
    x ^= x >> uint64(27)
    x *= uint64(0x94D049BB133111EB)
    x ^= x >> uint64(31)
    return x


@njit(cache=True, parallel=True)
def _sums(indptr, indices, data, keys, base, start, r, n_cols, swap, table, thresholds):
    """(groups, columns, GROUP) sums; group g holds replicates start + g * GROUP + q."""
    n_groups = (r + GROUP - 1) // GROUP
    out = np.zeros((n_groups, n_cols, GROUP))
    golden = uint64(0x9E3779B97F4A7C15)
    for g in prange(n_groups):
        first = g * GROUP
        m = min(GROUP, r - first)
        w = np.zeros(GROUP)
        acc = out[g]
        for i in range(len(keys)):
            lo, hi = indptr[i], indptr[i + 1]
            if lo == hi:
                continue
            base_i = keys[i] ^ base
            any_w = False
            for q in range(m):
                h = _mix(base_i + golden * uint64(start + first + q + 1))
                if swap:
                    v = float(h >> uint64(63))
                else:
                    t = table[h >> uint64(48)]
                    if t == CUT:  # a bucket a CDF threshold cuts: resolve with 32 more bits
                        exact = ((h >> uint64(48)) << uint64(32)) + (h & uint64(0xFFFFFFFF))
                        v = float(np.searchsorted(thresholds, exact, side="right"))
                    else:
                        v = float(t)
                w[q] = v
                any_w = any_w or v != 0.0
            if not any_w:
                continue
            for p in range(lo, hi):
                c, d = indices[p], data[p]
                for q in range(m):
                    acc[c, q] += d * w[q]
    return out


def keyed_block_sums(x: sparse.csr_matrix, keys: np.ndarray, seed: int, stream: int, start: int, r: int,
                     swap: bool = False) -> np.ndarray:
    """(r x columns) sums of the keyed weights (``swap``: the permutation swaps) of replicates start..start+r-1
    times the rows of CSR ``x`` (units x columns), a unit's key in ``keys``."""
    x = sparse.csr_matrix(x)
    n_cols = x.shape[1]
    if r == 0 or n_cols == 0:
        return np.zeros((r, n_cols))
    out = _sums(x.indptr.astype(np.int64), x.indices.astype(np.int64), np.asarray(x.data, np.float64),
                np.ascontiguousarray(keys, dtype=np.uint64), _stream_key(seed, stream), np.int64(start),
                np.int64(r), np.int64(n_cols), bool(swap), TABLE8, POISSON_THRESHOLDS)
    return out.transpose(0, 2, 1).reshape(-1, n_cols)[:r]
