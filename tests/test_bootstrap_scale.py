"""The bootstrap at scale (issue 15): memory bounded whatever n_boot x n, and the Poisson scheme
(``bootstrap: poisson``) agreeing with the multinomial one within resampling noise."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from agefair.data.labels import age_bin
from agefair.fairness.engine.keyed_draws import unit_keys
from agefair.fairness.engine.resampling import swap_chunks, weight_chunks
from agefair.fairness.stats.conformal_eval import evaluate_coverage
from agefair.fairness.stats.metrics import GROUPINGS, AuditSettings, audit_variant, bootstrap_group_metrics
from agefair.models.conformal import Intervals

ETHNICITY = ["White", "Black", "Asian", "Indian", "Others"]
MEAN_AGE = {"White": 38, "Black": 33, "Asian": 26, "Indian": 31, "Others": 23}


def _cpu_preset_like(rows: int = 3200, models: int = 4, seed: int = 0) -> dict[str, pd.DataFrame]:
    """UTKFace-like test rows (mean age ~33, the ethnicities' different age mixes) and 4 models' predictions."""
    rng = np.random.default_rng(seed)
    eth = rng.choice(ETHNICITY, rows, p=[0.42, 0.19, 0.15, 0.17, 0.07])
    mean = pd.Series(eth).map(MEAN_AGE).to_numpy(float)
    age = np.clip(np.round(rng.gamma(2.0, mean / 2.0)), 1, 116)
    base = pd.DataFrame({"age": age, "gender": rng.choice(["male", "female"], rows), "ethnicity": eth,
                         "age_bin": age_bin(age, [0, 10, 20, 30, 40, 50, 60, 70])})
    return {f"m{k}": base.assign(pred=age + rng.normal(0.3 * k, 4 + 0.06 * age + 0.5 * k * (eth == "Others")))
            for k in range(models)}


def _ends(audit: dict):
    """(group, metric, end) -> (value, interval width) of every group of adequate size."""
    out = {}
    for name, g in audit["groupings"].items():
        for grp in g["groups"]:
            if grp["n"] < 100:
                continue
            for m in ("mae", "rmse", "bias", "cs5"):
                lo, hi = grp[m]["ci"]
                out[(name, grp["group"], m, 0)] = (lo, hi - lo)
                out[(name, grp["group"], m, 1)] = (hi, hi - lo)
    return out


def test_poisson_intervals_agree_with_multinomial_within_resampling_noise():
    """Each interval end is a 2.5% / 97.5% quantile of 1,000 resamples: its Monte-Carlo standard error is
    about sqrt(q (1 - q) / B) / density = 0.085 sd of the bootstrap distribution (normal shape), so two
    independent estimates differ with an SE of ~0.12 sd. Ends of groups of n >= 100 must agree within
    4 such SEs (all but 1%) and 6 (all), and the Poisson intervals must be as wide on average."""
    groupings = {k: v for k, v in GROUPINGS.items() if k != "shot"}
    z, widths = [], []
    for pred in _cpu_preset_like().values():
        multi = _ends(audit_variant(pred, AuditSettings(n_boot=1000, seed=0), groupings))
        pois = _ends(audit_variant(pred, AuditSettings(n_boot=1000, seed=0, bootstrap="poisson"), groupings))
        assert multi.keys() == pois.keys()
        for key, (end, width) in multi.items():
            sd = width / (2 * 1.96)
            mc_se = np.sqrt(2) * np.sqrt(0.025 * 0.975 / 1000) / (np.exp(-1.96 ** 2 / 2) / np.sqrt(2 * np.pi)) * sd
            z.append((pois[key][0] - end) / mc_se)
            widths.append(pois[key][1] / width)
    z = np.abs(np.array(z))
    assert len(z) > 400
    assert np.mean(z < 4) >= 0.99 and z.max() < 6, (np.mean(z < 4), z.max())
    assert abs(np.mean(widths) - 1) < 0.03, np.mean(widths)


def test_poisson_weights_are_poisson_one():
    w = np.concatenate([c.ravel() for c in weight_chunks(50_000, 40, seed=1, scheme="poisson")])
    assert abs(w.mean() - 1) < 0.003 and abs(w.var() - 1) < 0.006
    for k, p in enumerate(np.exp(-1) / np.array([1, 1, 2, 6, 24])):
        assert abs(np.mean(w == k) - p) < 4 * np.sqrt(p * (1 - p) / len(w))
    again = np.concatenate([c.ravel() for c in weight_chunks(50_000, 40, seed=1, scheme="poisson")])
    np.testing.assert_array_equal(w, again)


def test_poisson_weights_and_swaps_follow_the_units_not_their_positions():
    """Keyed draws: shuffling the units shuffles their weights and swaps with them, for any chunk size;
    another seed draws other weights; a unit's weights are uncorrelated across replicates and with other units'."""
    keys = unit_keys([f"face{i}" for i in range(5_000)])
    order = np.random.default_rng(0).permutation(len(keys))
    for draw in (weight_chunks, swap_chunks):
        extra = {"step": 7} if draw is weight_chunks else {}
        w = np.vstack([c.copy() for c in draw(len(keys), 30, 3, "poisson", keys=keys, **extra)])
        shuffled = np.vstack([c.copy() for c in draw(len(keys), 30, 3, "poisson", keys=keys[order])])
        np.testing.assert_array_equal(w[:, order], shuffled)
        other = np.vstack([c.copy() for c in draw(len(keys), 30, 4, "poisson", keys=keys)])
        assert np.mean(w == other) < 0.6
    swaps = np.vstack(list(swap_chunks(len(keys), 40, 3, "poisson", keys=keys)))
    assert abs(swaps.mean() - 0.5) < 0.01 and set(np.unique(swaps)) == {0.0, 1.0}
    w = np.vstack([c.copy() for c in weight_chunks(len(keys), 40, 3, "poisson", keys=keys)])
    corr = np.corrcoef(w)[np.triu_indices(40, 1)]  # replicates: rows
    assert np.abs(corr).max() < 0.07, np.abs(corr).max()
    corr_units = np.corrcoef(w[:, :200].T)[np.triu_indices(200, 1)]
    assert abs(corr_units.mean()) < 0.01
    # the multinomial draw (bootstrap: auto up to 100,000 units) follows positions: another order, other weights
    multi = next(weight_chunks(len(keys), 30, 3, "vectorized"))
    assert not np.array_equal(multi[:, order], next(weight_chunks(len(keys), 30, 3, "vectorized")))


def test_multinomial_weights_do_not_depend_on_the_chunk_size():
    a = np.vstack(list(weight_chunks(1001, 30, seed=5, step=7)))
    b = np.vstack(list(weight_chunks(1001, 30, seed=5, step=30)))
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=1) == 1001).all()


@pytest.mark.timeout(120)
def test_group_bootstrap_memory_is_bounded():
    """200,000 rows x 1,000 resamples: the (n_boot x n) index matrix this replaced took 1.6 GB; the chunked
    draws stay under 200 MB."""
    rng = np.random.default_rng(0)
    n = 200_000
    err = rng.normal(0, 5, n)
    codes = rng.integers(0, 40, n)
    tracemalloc.start()
    try:
        out = bootstrap_group_metrics(err, codes, 40, 1000, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out["mae"].shape == (1000, 40) and np.isfinite(out["mae"]).all()
    assert peak < 200 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MiB"


@pytest.mark.timeout(120)
def test_coverage_bootstrap_memory_is_bounded():
    """100,000 rows x 1,000 resamples (the (n_boot x n) index and weight matrices this replaced: 1.6 GB)."""
    rng = np.random.default_rng(1)
    n = 100_000
    y = rng.uniform(1, 90, n)
    pred = y + rng.normal(0, 5, n)
    intervals = Intervals(lo=pred - 8, hi=pred + 8 + rng.uniform(0, 4, n), quantile=np.full(n, 8.0),
                          fallback=np.zeros(n, bool), unseen=np.zeros(n, bool), alpha=0.1, max_age=116)
    groups = {"ethnicity": rng.choice(ETHNICITY, n)}
    tracemalloc.start()
    try:
        rep = evaluate_coverage(intervals=intervals, y=y, groupings=groups,
                                settings=AuditSettings(n_boot=1000, bootstrap="poisson"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rep.overall.coverage["exact"].ci[0] < rep.overall.coverage["exact"].value < rep.overall.coverage["exact"].ci[1]
    assert peak < 300 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MiB"


def test_stacked_products_give_the_bits_of_each_product_alone():
    """replicate_many weights every job's cell sums with one sparse product per chunk (engine.replicates.Stacked):
    each result is summed in the same order as apply() on that CellSums alone, so the numbers are bit-identical;
    families planned apart and run on one draw (run_planned) get the numbers each gets alone."""
    from agefair.fairness.engine.replicates import Job, Planned, Stacked, replicate_many, run_planned
    from agefair.fairness.engine.resampling import Resampler, apply, build_layout

    rng = np.random.default_rng(2)
    n = 3_000
    labels = {"g": rng.choice(["a", "b", "c"], n).astype(object), "h": rng.choice(["x", "y"], n).astype(object)}
    layouts = [build_layout({"g": labels["g"]}, n), build_layout(labels, n)]
    for res in (Resampler.of(n, scheme="vectorized"), Resampler.of(n, rng.integers(0, 700, n), scheme="poisson")):
        parts = [res.sums(lay, v) for lay in layouts for v in (None, rng.normal(size=n), rng.exponential(size=n))]
        w = next(res.boot_weights(40, 0)).copy()
        for alone, together in zip([apply(w, p) for p in parts], Stacked(parts).apply(w)):
            np.testing.assert_array_equal(alone, together)
        jobs = [Job([rng.normal(size=n), rng.normal(size=n)], lay, [lambda m: m[:, 0], lambda m: m.sum(axis=1)])
                for lay in layouts]
        one = [replicate_many([j], res, 50, 1)[0] for j in jobs]
        planned = [Planned([j], lambda done: done[0]) for j in jobs]
        for (p1, b1), (p2, b2) in zip(one, run_planned(planned, res, 50, 1)):
            np.testing.assert_array_equal(p1, p2)
            np.testing.assert_array_equal(b1, b2)
