"""Training variants: inverse-frequency weights, LDS weights, the oversampling sampler, the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import train_helpers  # noqa: F401  (one torch thread)

from agefair.core.config import DataConfig, ImbalanceConfig, TrainConfig
from agefair.data.labels import age_bin_index
from agefair.models.runtime import make_runtime
from agefair.training.batches import TrainData, loss_weight_table, train_loader
from agefair.training.distributed import DistContext, ShardedEpochSampler
from agefair.training.variants import VARIANTS, bin_frequency_weights, lds_weights

EDGES = DataConfig().age_bins  # [0, 10, ..., 70]: 8 bins, the last one 70+


def ages_with_counts(counts: dict[int, int]) -> np.ndarray:
    """``counts[age]`` copies of each age."""
    return np.concatenate([np.full(n, age, dtype=np.float32) for age, n in counts.items()])


# --------------------------------------------------------------------------- inverse bin frequency

def test_bin_frequency_weights_mean_one_and_rare_bins_weigh_more():
    ages = ages_with_counts({25: 600, 35: 300, 5: 60, 75: 30})
    w = bin_frequency_weights(ages, EDGES)
    assert w.shape == ages.shape
    assert w.mean() == pytest.approx(1.0)
    by_age = {a: w[ages == a] for a in (25, 35, 5, 75)}
    for a, ws in by_age.items():
        assert np.ptp(ws) == pytest.approx(0.0), f"one weight per bin ({a})"
    assert by_age[75][0] > by_age[5][0] > by_age[35][0] > by_age[25][0]
    # power 1: weight proportional to 1 / count, so every bin carries the same total weight
    totals = [ws.sum() for ws in by_age.values()]
    assert np.allclose(totals, totals[0])
    assert by_age[75][0] / by_age[25][0] == pytest.approx(600 / 30)


def test_bin_frequency_weights_power_half_is_the_square_root():
    ages = ages_with_counts({25: 400, 75: 25, 45: 100})
    w1 = bin_frequency_weights(ages, EDGES, 1.0)
    w_half = bin_frequency_weights(ages, EDGES, 0.5)
    assert w_half.mean() == pytest.approx(1.0)
    rare, common = ages == 75, ages == 25
    assert w_half[rare][0] / w_half[common][0] == pytest.approx(np.sqrt(400 / 25))
    assert w_half[rare][0] / w_half[common][0] == pytest.approx(np.sqrt(w1[rare][0] / w1[common][0]))


def test_bin_frequency_weights_use_bins_not_ages():
    ages = np.array([20, 21, 29, 29.9, 70, 116], dtype=np.float32)  # bins 20-29 (x4) and 70+ (x2)
    w = bin_frequency_weights(ages, EDGES)
    assert np.allclose(w[:4], w[0]) and np.allclose(w[4:], w[4])
    assert w[4] / w[0] == pytest.approx(2.0)


def test_balanced_bins_get_weight_one():
    ages = np.repeat(np.arange(5, 80, 10), 7).astype(np.float32)  # 7 per bin
    assert np.allclose(bin_frequency_weights(ages, EDGES), 1.0)


# --------------------------------------------------------------------------- LDS

def test_lds_weights_mean_one_and_follow_the_smoothed_density():
    # counts fall linearly with age: 100 at age 0 ... 1 at age 99
    ages = ages_with_counts({a: 100 - a for a in range(100)})
    w = lds_weights(ages, sigma=2.0, kernel_size=5)
    assert w.mean() == pytest.approx(1.0)
    per_age = np.array([w[ages == a][0] for a in range(100)])
    for a in range(100):
        assert np.ptp(w[ages == a]) == pytest.approx(0.0)
    interior = per_age[3:97]  # away from the ends, where the zero padding lowers the smoothed density
    assert (np.diff(interior) > 0).all(), "rarer ages (lower density) must weigh more"
    # smooth: neighbouring ages get similar weights (where the density itself changes slowly)
    assert np.abs(np.diff(per_age[3:90]) / per_age[3:89]).max() < 0.1


def test_lds_weights_match_the_documented_formula():
    rng = np.random.default_rng(0)
    ages = rng.integers(1, 91, size=500).astype(np.float32)
    sigma, size = 3.0, 7
    density = np.bincount(ages.astype(int), minlength=117).astype(float)
    smoothed = np.zeros_like(density)
    for a in range(117):
        for d in range(-(size // 2), size // 2 + 1):
            if 0 <= a + d <= 116:
                smoothed[a] += density[a + d] * np.exp(-d * d / (2 * sigma * sigma))
    expected = 1 / np.sqrt(smoothed[ages.astype(int)])
    expected /= expected.mean()
    np.testing.assert_allclose(lds_weights(ages, sigma, size), expected, rtol=1e-10)


def test_lds_smooths_an_isolated_gap():
    # 100 samples at every age 25-45 except age 35, which has one: inverse frequency would weigh
    # it 100x (or 10x under a square root); LDS borrows density from its neighbours.
    counts = dict.fromkeys(range(25, 46), 100)
    counts[35] = 1
    ages = ages_with_counts(counts)
    w = lds_weights(ages, sigma=2.0, kernel_size=5)
    gap, neighbour = w[ages == 35][0], w[ages == 30][0]
    assert 1.0 < gap / neighbour < 1.3
    assert w[ages == 34][0] == pytest.approx(w[ages == 36][0])


def test_lds_tail_ages_weigh_more_than_the_bulk():
    ages = ages_with_counts({**dict.fromkeys(range(20, 40), 50), **dict.fromkeys(range(70, 90), 2)})
    w = lds_weights(ages, sigma=2.0, kernel_size=5)
    assert w[ages >= 70].min() > w[ages < 40].max()


# --------------------------------------------------------------------------- registry

def test_variant_registry():
    assert list(VARIANTS) == ["baseline", "oversample", "weighted", "lds", "groupdro", "bmse", "calibrated"]
    assert VARIANTS["baseline"].sampling_weights is None and VARIANTS["baseline"].loss_weights is None
    assert VARIANTS["oversample"].sampling_weights is not None and VARIANTS["oversample"].loss_weights is None
    assert VARIANTS["weighted"].sampling_weights is None and VARIANTS["weighted"].loss_weights is not None
    assert VARIANTS["lds"].sampling_weights is None and VARIANTS["lds"].loss_weights is not None
    for v in VARIANTS.values():
        assert v.description


def test_weighted_variant_inverse_and_sqrt_inverse():
    ages = ages_with_counts({25: 400, 75: 25, 45: 100, 5: 16})
    inverse = VARIANTS["weighted"].loss_weights(ages, EDGES, ImbalanceConfig(weighting="inverse"))
    sqrt_inverse = VARIANTS["weighted"].loss_weights(ages, EDGES, ImbalanceConfig(weighting="sqrt_inverse"))
    np.testing.assert_allclose(inverse, bin_frequency_weights(ages, EDGES, 1.0))
    np.testing.assert_allclose(sqrt_inverse, bin_frequency_weights(ages, EDGES, 0.5))
    assert not np.allclose(inverse, sqrt_inverse)


def test_lds_variant_uses_the_configured_kernel():
    ages = ages_with_counts({a: 1 + (a % 7) * 10 for a in range(1, 91)})
    cfg = ImbalanceConfig(lds_kernel_sigma=4.0, lds_kernel_size=9)
    np.testing.assert_allclose(VARIANTS["lds"].loss_weights(ages, EDGES, cfg), lds_weights(ages, 4.0, 9))
    assert not np.allclose(lds_weights(ages, 4.0, 9), lds_weights(ages, 2.0, 5))


# --------------------------------------------------------------------------- train_loader / loss table

# Heavily imbalanced: 1000 images in 20-29, 30 in 70+, the other bins in between.
IMBALANCED = {5: 50, 15: 120, 25: 1000, 35: 600, 45: 300, 55: 150, 65: 80, 75: 30}


def fake_train_data(counts: dict[int, int]) -> TrainData:
    ages = ages_with_counts(counts)
    manifest = pd.DataFrame({"file": [f"{i:05d}" for i in range(len(ages))], "age": ages.astype(int)})
    images = np.zeros((len(ages), 4, 4, 3), dtype=np.uint8)
    rows = np.arange(len(ages))
    return TrainData(images, manifest, rows, rows[:1])


def small_cfg(**imbalance) -> TrainConfig:
    return TrainConfig.model_validate({"train": {"batch_size": 64, "num_workers": 0, "seed": 3},
                                       "imbalance": imbalance})


def test_oversample_loader_balances_the_age_bins():
    data = fake_train_data(IMBALANCED)
    rt = make_runtime("cpu", "fp32", False)
    loader = train_loader(data, small_cfg(), "oversample", DataConfig(), epoch=1, rt=rt)
    sampler = loader.sampler
    assert isinstance(sampler, ShardedEpochSampler) and sampler.oversampling
    assert len(sampler) == len(data.train_rows)

    draws = np.concatenate([np.fromiter(iter(train_loader(data, small_cfg(), "oversample", DataConfig(), epoch=e,
                                                          rt=rt).sampler), dtype=np.int64)
                            for e in range(20)])  # ~46k draws over 20 epochs
    bins = age_bin_index(data.manifest["age"].to_numpy()[data.train_rows[draws]], EDGES)
    share = np.bincount(bins, minlength=len(EDGES)) / len(draws)
    n_bins = len(EDGES)
    assert np.abs(share - 1 / n_bins).max() < 0.02, share
    # without oversampling 70+ would be 30 / 2330 = 1.3% of the draws
    assert share[-1] > 0.1


def test_baseline_loader_shuffles_uniformly():
    data = fake_train_data(IMBALANCED)
    rt = make_runtime("cpu", "fp32", False)
    loader = train_loader(data, small_cfg(), "baseline", DataConfig(), epoch=1, rt=rt)
    assert isinstance(loader.sampler, ShardedEpochSampler) and not loader.sampler.oversampling
    assert sorted(iter(loader.sampler)) == list(range(len(data.train_rows)))  # a permutation: no oversampling


@pytest.mark.parametrize("variant", ["baseline", "oversample"])
def test_loader_order_is_seeded_per_epoch(variant):
    data = fake_train_data(IMBALANCED)
    rt = make_runtime("cpu", "fp32", False)

    def order(epoch: int) -> list[int]:
        return list(iter(train_loader(data, small_cfg(), variant, DataConfig(), epoch=epoch, rt=rt).sampler))

    assert order(2) == order(2)
    assert order(2) != order(3)


def test_loss_weight_table():
    data = fake_train_data(IMBALANCED)
    for variant in ("baseline", "oversample"):
        assert loss_weight_table(data, small_cfg(), variant, DataConfig()) is None
    table = loss_weight_table(data, small_cfg(weighting="sqrt_inverse"), "weighted", DataConfig())
    assert isinstance(table, torch.Tensor) and table.dtype == torch.float32
    ages = data.manifest["age"].to_numpy()
    np.testing.assert_allclose(table.numpy(), bin_frequency_weights(ages, EDGES, 0.5), rtol=1e-6)
    lds = loss_weight_table(data, small_cfg(), "lds", DataConfig())
    np.testing.assert_allclose(lds.numpy(), lds_weights(ages.astype(np.float32), 2.0, 5), rtol=1e-6)


def test_loss_weight_table_weighs_only_training_rows():
    data = fake_train_data(IMBALANCED)
    train_rows = data.train_rows[::2]
    data = TrainData(data.images, data.manifest, train_rows, data.train_rows[1::2])
    table = loss_weight_table(data, small_cfg(), "weighted", DataConfig()).numpy()
    ages = data.manifest["age"].to_numpy()
    np.testing.assert_allclose(table[train_rows], bin_frequency_weights(ages[train_rows], EDGES), rtol=1e-6)
    assert (table[data.val_rows] == 1).all()
    assert table[train_rows].mean() == pytest.approx(1.0, rel=1e-6)


# --------------------------------------------------------------------------- sharding across processes


@pytest.mark.parametrize("variant", ["baseline", "oversample"])
def test_sharded_epoch_is_the_single_process_epoch_dealt_out(variant):
    """Two processes together draw exactly what one process draws (plus wrap-around padding to equal
    shards), so shuffling and oversampling mean the same under torchrun."""
    data = fake_train_data(IMBALANCED)
    rt = make_runtime("cpu", "fp32", False)

    def order(rank: int, world: int) -> list[int]:
        ctx = DistContext(rank=rank, world_size=world)
        return list(iter(train_loader(data, small_cfg(), variant, DataConfig(), epoch=4, rt=rt, ctx=ctx).sampler))

    single = order(0, 1)
    shards = [order(r, 3) for r in range(3)]  # 2330 draws: 3 processes need 1 padding draw
    assert len({len(s) for s in shards}) == 1  # equal step counts: DDP needs them
    dealt = [shards[i % 3][i // 3] for i in range(len(single))]
    assert dealt == single
    assert sum(map(len, shards)) - len(single) == (-len(single)) % 3


def test_oversampling_balances_each_shard():
    data = fake_train_data(IMBALANCED)
    rt = make_runtime("cpu", "fp32", False)
    draws = np.concatenate([np.fromiter(iter(train_loader(data, small_cfg(), "oversample", DataConfig(), epoch=e,
                                                          rt=rt, ctx=DistContext(rank=1, world_size=2)).sampler),
                                        dtype=np.int64) for e in range(30)])
    bins = age_bin_index(data.manifest["age"].to_numpy()[data.train_rows[draws]], EDGES)
    share = np.bincount(bins, minlength=len(EDGES)) / len(draws)
    assert np.abs(share - 1 / len(EDGES)).max() < 0.025, share
