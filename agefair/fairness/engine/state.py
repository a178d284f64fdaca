"""The keyed bootstrap and permutations as mergeable state: map blocks of units, merge by addition, finish.

Under ``bootstrap: poisson`` a unit's weight in replicate j (and its swap in permutation j) is a function of
(seed, the unit's key, j) alone (agefair.fairness.engine.keyed_draws). So the replicate sums of any per-unit
design ``x`` (units x columns: a cell's count and value sums, one column per finest cell and value) split
over the units: ``sums = sum over blocks of W_block @ x_block``. The engine computes them that way:

* **map**: ``map_block`` turns one block of ``BLOCK_UNITS`` units (its rows of ``x`` and its keys) into its
  (replicates x columns) partial sums, with the draw and the product fused in one compiled pass
  (agefair.fairness.engine.keyed_kernel);
* **merge**: the partial sums are added in block order (the same order wherever the blocks ran, so the
  in-process engine and Dask give the same bits);
* **finish**: every statistic reads the merged sums (agefair.fairness.engine.replicates and the families in
  agefair.fairness.stats).

The blocks are cut by the units' order, and the executor (agefair.fairness.engine.executor) runs the map in
this process or on a Dask cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from agefair.fairness.engine import executor
from agefair.fairness.engine.keyed_draws import BOOT_STREAM, SWAP_STREAM

BLOCK_UNITS = 1 << 18  # units per block of the map (262,144): the partition a task gets
MAX_CHUNK_FLOATS = 8_000_000  # replicates x columns a task computes at once (64 MB)


def map_block(x: sparse.csr_matrix, keys: np.ndarray, *, seed: int, stream: int, n: int, swap: bool) -> np.ndarray:
    """(n x columns) sums over one block of units of their keyed weights (``swap``: 0/1 swaps) times ``x``:
    the map step; a top-level function, so a Dask worker can run it."""
    from agefair.fairness.engine.keyed_kernel import keyed_block_sums

    cols = x.shape[1]
    out = np.empty((n, cols))
    step = max(16, MAX_CHUNK_FLOATS // max(cols, 1))
    for start in range(0, n, step):
        r = min(step, n - start)
        out[start:start + r] = keyed_block_sums(x, keys, seed, stream, start, r, swap=swap)
    return out


def blocks_of(x: sparse.csr_matrix, keys: np.ndarray, block: int = BLOCK_UNITS) -> Iterator[tuple]:
    """The map's partitions: (rows of ``x``, their keys) per ``block`` units, in order, one at a time (a
    block is a copy of its rows: made when the executor takes it)."""
    x = sparse.csr_matrix(x)
    for a in range(0, x.shape[0], block):
        yield x[a:a + block], np.asarray(keys[a:a + block], np.uint64)


def keyed_sums(x: sparse.csr_matrix, keys: np.ndarray, *, seed: int, n: int, swap: bool = False,
               block: int = BLOCK_UNITS) -> np.ndarray:
    """(n x columns) replicate sums ``W @ x`` of the keyed bootstrap weights (``swap``: of the keyed
    permutation swaps) of the units (rows of ``x``, keyed by ``keys``): mapped per block on the current
    executor, merged by addition in block order."""
    x = sparse.csr_matrix(x)
    keys = np.asarray(keys, np.uint64)
    if len(keys) != x.shape[0]:
        raise ValueError(f"{len(keys)} unit keys for {x.shape[0]} units")
    total = np.zeros((n, x.shape[1]))
    if x.shape[0] == 0 or n == 0:
        return total
    stream = SWAP_STREAM if swap else BOOT_STREAM
    for part in executor.current().map(map_block, blocks_of(x, keys, block), seed=seed, stream=stream, n=n,
                                       swap=swap):
        total += part
    return total
