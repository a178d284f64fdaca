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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agefair.fairness.engine.resampling import Layout, Resampler, apply, ratio


@dataclass(frozen=True)
class Job:
    """Per-row ``values`` (one array per model), their cells and the statistics of the cell means."""

    values: Sequence[np.ndarray]
    layout: Layout
    stats: Sequence[Callable[[np.ndarray], np.ndarray]]
    joint: bool = False  # True: each statistic reads the means of every value side by side (one column out)


def replicate_many(jobs: Sequence[Job], resampler: Resampler, n_boot: int, seed: int
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per job: point estimates (stats x models) and bootstrap replicates (stats x n_boot x models),
    every job and model on the same draws."""
    prepared = []
    for job in jobs:
        cnt = resampler.sums(job.layout)
        sums = [resampler.sums(job.layout, v) for v in job.values]
        tot = np.asarray(cnt.sum(axis=0))
        means = [ratio(np.asarray(s.sum(axis=0)), tot) for s in sums]
        point = np.array([_apply_stat(f, means, job.joint)[0] for f in job.stats]).reshape(len(job.stats), -1)
        prepared.append((cnt, sums, point, np.empty((len(job.stats), n_boot, point.shape[1]))))
    start = 0
    for w in resampler.boot_weights(n_boot, seed):
        for job, (cnt, sums, _, boot) in zip(jobs, prepared):
            c = apply(w, cnt)
            means = [ratio(apply(w, s), c) for s in sums]
            for i, f in enumerate(job.stats):
                boot[i, start:start + len(w)] = _apply_stat(f, means, job.joint).reshape(len(w), -1)
        start += len(w)
    return [(point, boot) for _, _, point, boot in prepared]


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
    prepared = []
    for job, obs in zip(jobs, observed):
        va, vb = job.values
        cnt = resampler.sums(job.layout)
        tot = np.asarray(cnt.sum(axis=0))
        sa, sb = resampler.sums(job.layout, va), resampler.sums(job.layout, vb)
        d = (sb - sa).tocsc()
        ta, tb = np.asarray(sa.sum(axis=0)), np.asarray(sb.sum(axis=0))
        tol = 1e-9 * (1 + np.abs(obs))
        prepared.append((tot, d, ta, tb, tol, np.zeros(len(job.stats)), np.zeros(len(job.stats))))
    for s in resampler.swaps(n_perm, seed):
        for job, obs, (tot, d, ta, tb, tol, hits, valid) in zip(jobs, observed, prepared):
            moved = apply(s, d)
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
