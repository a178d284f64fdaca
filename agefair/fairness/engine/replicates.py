"""Bootstrap replicates and paired permutations of statistics of cell means, several jobs on one draw.

A *job* is a set of per-row values (one per model), a ``Layout`` of cells and the statistics read from
the cell means. Every job on the same rows and resampling units sees the same weights (the bootstrap
is seeded once: ``agefair.fairness.engine.resampling.weight_chunks``), so running jobs together gives
exactly the numbers each would give alone, while the weights (the costly part at a million rows: one
random draw per unit and replicate) are drawn once. agefair.fairness.stats.compare, .standardise, .decide
and .age_accuracy run their bootstraps here; agefair.fairness.auditing.decisions runs every comparison of an
audit (all models, all gates) on one draw and one set of permutation swaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from agefair.fairness.engine.keyed_draws import index_keys
from agefair.fairness.engine.resampling import CellSums, Layout, Resampler, ratio
from agefair.fairness.engine.state import keyed_sums


@dataclass(frozen=True)
class Job:
    """Per-row ``values`` (one array per model), their cells and the statistics of the cell means."""

    values: Sequence[np.ndarray]
    layout: Layout
    stats: Sequence[Callable[[np.ndarray], np.ndarray]]
    joint: bool = False  # True: each statistic reads the means of every value side by side (one column out)


class Stacked:
    """Many ``CellSums`` on the same units, weighted together: one sparse product per chunk of weights for
    every ``GROUP`` of them (the weights, a million units x a chunk of replicates, are read once per group,
    not once per CellSums). Each output is summed over the units in the same order as ``apply`` alone: the
    same bits. Takes the parts' place: each slot of ``parts`` is emptied once stacked, so memory holds one
    copy of the sums (and one group's stacking at a time), not two."""

    GROUP = 8

    def __init__(self, parts: list[CellSums]):
        self.aggs = [p.agg for p in parts]
        self.groups = []
        for first in range(0, len(parts), self.GROUP):
            block = parts[first:first + self.GROUP]
            stack = sparse.hstack([p.per_unit for p in block], format="csr")
            parts[first:first + self.GROUP] = [None] * len(block)
            del block
            self.groups.append((first, stack, np.cumsum([0] + [a.shape[0] for a in self.aggs[first:first + self.GROUP]])))

    def apply(self, weights: np.ndarray) -> list[np.ndarray]:
        """``apply(weights, part)`` for every part: (r x cells) each."""
        out = []
        for first, stack, edges in self.groups:
            out += self._cells(first, edges, np.asarray(stack.T @ weights.T))
        return out

    def _cells(self, first: int, edges: np.ndarray, fine: np.ndarray) -> list[np.ndarray]:
        """A group's (finest cells x r) sums summed into each part's cells: (r x cells) per part."""
        return [np.asarray(agg.T @ fine[a:b]).T
                for agg, a, b in zip(self.aggs[first:first + self.GROUP], edges[:-1], edges[1:])]

    def chunks(self, resampler: Resampler, n: int, seed: int, swap: bool = False
               ) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(first replicate, every part's (r x cells) sums) per chunk of the ``n`` bootstrap replicates
        (``swap``: of the ``n`` permutations' swaps). Under the keyed Poisson scheme the sums come from the
        mergeable engine (agefair.fairness.engine.state.keyed_sums: blocks of units mapped on the current
        executor, merged by addition), all ``n`` replicates at once per group of parts; otherwise from the
        materialised weights of ``resampler``, one chunk at a time."""
        if resampler.scheme != "poisson":
            start = 0
            for w in (resampler.swaps(n, seed) if swap else resampler.boot_weights(n, seed)):
                yield start, self.apply(w)
                start += len(w)
            return
        keys = resampler.keys if resampler.keys is not None else index_keys(resampler.n_units)
        fine = [keyed_sums(stack, keys, seed=seed, n=n, swap=swap) for _, stack, _ in self.groups]  # (n x finest)
        step = resampler.chunk()
        for start in range(0, n, step):  # summed into cells a chunk at a time: memory holds the finest sums only
            yield start, [c for (first, _, edges), f in zip(self.groups, fine)
                          for c in self._cells(first, edges, f[start:start + step].T)]


def replicate_many(jobs: Sequence[Job], resampler: Resampler, n_boot: int, seed: int
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per job: point estimates (stats x models) and bootstrap replicates (stats x n_boot x models),
    every job and model on the same draws."""
    prepared, parts = [], []
    for job in jobs:
        cnt = resampler.sums(job.layout)
        sums = [resampler.sums(job.layout, v) for v in job.values]
        tot = np.asarray(cnt.sum(axis=0))
        means = [ratio(np.asarray(s.sum(axis=0)), tot) for s in sums]
        point = np.array([_apply_stat(f, means, job.joint)[0] for f in job.stats]).reshape(len(job.stats), -1)
        prepared.append((len(parts), len(sums), point, np.empty((len(job.stats), n_boot, point.shape[1]))))
        parts += [cnt, *sums]
        del cnt, sums
    stacked = Stacked(parts)
    for start, weighted in stacked.chunks(resampler, n_boot, seed):
        r = len(weighted[0])
        for job, (first, k, _, boot) in zip(jobs, prepared):
            c = weighted[first]
            means = [ratio(x, c) for x in weighted[first + 1:first + 1 + k]]
            for i, f in enumerate(job.stats):
                boot[i, start:start + r] = _apply_stat(f, means, job.joint).reshape(r, -1)
    return [(point, boot) for _, _, point, boot in prepared]


@dataclass(frozen=True)
class Planned:
    """A family of statistics ready to run: its jobs, and how their (point, replicates) pairs become the
    family's result. Families planned on the same rows and units share one draw (``run_planned``), each
    getting exactly the numbers it would get alone."""

    jobs: Sequence[Job]
    finish: Callable[[list[tuple[np.ndarray, np.ndarray]]], object]


def run_planned(planned: Sequence[Planned], resampler: Resampler, n_boot: int, seed: int) -> list:
    """Each family's result, every job of every family on one bootstrap draw (no draw when there is no job)."""
    jobs = [j for p in planned for j in p.jobs]
    done = replicate_many(jobs, resampler, n_boot, seed) if jobs else []
    out, start = [], 0
    for p in planned:
        out.append(p.finish(done[start:start + len(p.jobs)]))
        start += len(p.jobs)
    return out


def _apply_stat(f, means: list[np.ndarray], joint: bool) -> np.ndarray:
    """(r x models) values of statistic ``f``; joint: (r x 1) of f over the means side by side."""
    if joint:
        return np.asarray(f(np.hstack(means)))[:, None]
    return np.column_stack([f(m) for m in means])


def replicate_stats(*, values: Sequence[np.ndarray], layout: Layout, resampler: Resampler,
                    stats: Sequence[Callable[[np.ndarray], np.ndarray]], n_boot: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates (stats x models) and bootstrap replicates (stats x n_boot x models) of each
    statistic of cell means, every model on the same draws."""
    return replicate_many([Job(values, layout, stats)], resampler, n_boot, seed)[0]


def perm_pvalues_many(jobs: Sequence[Job], observed: Sequence[np.ndarray], resampler: Resampler, n_perm: int,
                      seed: int) -> list[np.ndarray]:
    """Per job of two models (A, B): two-sided paired-permutation p-values of each statistic's
    difference B - A, every job on the same swaps."""
    prepared, diffs = [], []
    for job, obs in zip(jobs, observed):
        va, vb = job.values
        cnt = resampler.sums(job.layout)
        tot = np.asarray(cnt.sum(axis=0))
        sa, sb = resampler.sums(job.layout, va), resampler.sums(job.layout, vb)
        diffs.append(sb - sa)
        ta, tb = np.asarray(sa.sum(axis=0)), np.asarray(sb.sum(axis=0))
        del sa, sb
        tol = 1e-9 * (1 + np.abs(obs))
        prepared.append((tot, ta, tb, tol, np.zeros(len(job.stats)), np.zeros(len(job.stats))))
    stacked = Stacked(diffs)
    for _, moved_all in stacked.chunks(resampler, n_perm, seed, swap=True):
        for job, obs, moved, (tot, ta, tb, tol, hits, valid) in zip(jobs, observed, moved_all, prepared):
            ma, mb = ratio(ta + moved, tot), ratio(tb - moved, tot)
            for i, f in enumerate(job.stats):
                t = f(mb) - f(ma)
                ok = np.isfinite(t)
                valid[i] += ok.sum()
                hits[i] += (np.abs(t[ok]) >= np.abs(obs[i]) - tol[i]).sum()
    out = []
    for obs, (*_, hits, valid) in zip(observed, prepared):
        with np.errstate(invalid="ignore"):
            out.append(np.where(np.isfinite(obs), (1 + hits) / (1 + valid), np.nan))
    return out
