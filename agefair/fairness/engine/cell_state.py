"""Sums per finest cell, with their bootstrap replicates: the mergeable state a grouped statistic finishes from.

A ``CellState`` holds, for every *finest cell* (the rows sharing one label in every column of ``labels``:
gender x ethnicity x age bin ..., a few hundred cells however many rows), the row count and the sum of each
named per-row value (absolute error, squared error, an indicator ...), at the point (``point``) and in every
bootstrap replicate (``boot``: the rows weighted by that replicate's weights). Any grouping of those columns,
and the whole, is a sum of cells (``grouped``), so every group mean and its replicates follow without the rows.

Under the keyed Poisson scheme (agefair.fairness.engine.keyed_draws) a row's weights depend on its key alone,
so the states of two sets of rows merge by addition: ``a.merge(b)`` is the state of the rows of both, cells
matched by their labels (a cell that only one holds is kept). That is what ``audit --save-state`` writes and
``audit --state`` reads (agefair.fairness.results.state_files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agefair.fairness.engine.resampling import fine_boot_sums, finest_codes

ALL = "all"  # the one group of ``grouped([])``


@dataclass(frozen=True)
class GroupSums:
    """A grouping's sums: ``index`` the groups (as pandas groups them: sorted, empty ones left out),
    ``point`` (groups x 1 + values) and ``boot`` (n_boot x groups x 1 + values, or None)."""

    index: pd.Index
    point: np.ndarray
    boot: np.ndarray | None


@dataclass(frozen=True)
class CellState:
    """Row counts and value sums per finest cell, at the point and per bootstrap replicate."""

    labels: pd.DataFrame  # one row per finest cell: its label in each column
    values: tuple[str, ...]  # the summed values, after the row count (column 0)
    point: np.ndarray  # (cells, 1 + len(values))
    boot: np.ndarray | None  # (n_boot, cells, 1 + len(values)); None without a bootstrap

    @property
    def n_rows(self) -> int:
        return int(round(float(self.point[:, 0].sum()))) if len(self.point) else 0

    @property
    def n_boot(self) -> int:
        return 0 if self.boot is None else self.boot.shape[0]

    @classmethod
    def of_rows(cls, labels: pd.DataFrame, values: dict[str, np.ndarray], *, n_boot: int, seed: int,
                scheme: str = "vectorized", keys: np.ndarray | None = None) -> CellState:
        """The state of the rows of ``labels`` (one column per label) with per-row ``values``; ``n_boot``
        replicates of the bootstrap ``scheme`` (``keys``: the rows' keys under ``poisson``)."""
        codes = [pd.factorize(labels[c], use_na_sentinel=False)[0] for c in labels.columns]
        fine, first = finest_codes(codes or [np.zeros(len(labels), np.int64)])
        cols = [np.asarray(v, float) for v in values.values()]
        k = 1 + len(cols)
        point = np.zeros((len(first), k))
        if len(fine):
            point[:, 0] = np.bincount(fine, minlength=len(first))
            for i, v in enumerate(cols, start=1):
                point[:, i] = np.bincount(fine, v, minlength=len(first))
        boot = fine_boot_sums(fine, cols, n_boot, seed, scheme, keys=keys) if n_boot > 0 else None
        return cls(labels.iloc[first].reset_index(drop=True), tuple(values), point, boot)

    def grouped(self, columns: list[str]) -> GroupSums:
        """The sums of every group of ``columns`` (``[]``: one group, ``ALL``); a cell with a missing label
        in one of them is in no group (as pandas' groupby leaves such rows out)."""
        if not columns:
            onehot = np.ones((len(self.labels), 1))
            index = pd.Index([ALL])
        else:
            g = self.labels.groupby(columns if len(columns) > 1 else columns[0], sort=True, observed=True)
            of_cell = g.ngroup().to_numpy(np.int64)
            index = g.size().index
            onehot = np.zeros((len(of_cell), len(index)))
            ok = of_cell >= 0
            onehot[np.flatnonzero(ok), of_cell[ok]] = 1
        point = onehot.T @ self.point
        boot = None if self.boot is None else np.einsum("bfk,fg->bgk", self.boot, onehot)
        return GroupSums(index, point, boot)

    def merge(self, other: CellState) -> CellState:
        """The state of the rows of both (keyed draws: each row weighted as in its own state); the cells
        matched by their labels, in this state's order, then the other's new ones."""
        if tuple(other.labels.columns) != tuple(self.labels.columns) or other.values != self.values:
            raise ValueError(f"states of other columns or values: {list(self.labels.columns)} {self.values} and "
                             f"{list(other.labels.columns)} {other.values}")
        if other.n_boot != self.n_boot:
            raise ValueError(f"states of {self.n_boot} and {other.n_boot} bootstrap replicates")
        both = pd.concat([self.labels, other.labels], ignore_index=True)
        cols = list(both.columns)
        cell = (both.groupby(cols, sort=False, dropna=False, observed=True).ngroup().to_numpy(np.int64) if cols
                else np.zeros(len(both), np.int64))
        n = int(cell.max(initial=-1)) + 1
        first = np.full(n, len(both), np.int64)
        np.minimum.at(first, cell, np.arange(len(both)))
        a, b = cell[:len(self.labels)], cell[len(self.labels):]
        point = np.zeros((n, self.point.shape[1]))
        np.add.at(point, a, self.point)
        np.add.at(point, b, other.point)
        boot = None
        if self.boot is not None:
            boot = np.zeros((self.n_boot, n, self.boot.shape[2]))
            boot[:, a] += self.boot  # a's cells are distinct, so fancy-index addition is exact
            boot[:, b] += other.boot
        return CellState(both.iloc[first].reset_index(drop=True), self.values, point, boot)
