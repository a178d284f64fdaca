"""Conformal age intervals (agefair.models.conformal, agefair.fairness.stats.conformal_eval) on synthetic data
with known noise: marginal and Mondrian coverage, the scaled and cdf scores, fallbacks, age-group coverage,
the bootstrap, and the calibration file."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agefair.core.errors import AgefairError
from agefair.fairness.stats.conformal_eval import covered, evaluate_coverage
from agefair.fairness.stats.metrics import AuditSettings
from agefair.models.conformal import (
    Calibration,
    calibrate,
    conformal_quantile,
    distribution_quantiles,
    expected_age,
    load_calibration,
    predict_intervals,
    predictive_spread,
    save_calibration,
)

FAST = AuditSettings(n_boot=200, seed=0, min_group_size=30)


def two_groups(n: int, seed: int, sigma=(2.0, 8.0)) -> pd.DataFrame:
    """Ages 5..80, predictions with noise σ=2 for group A and σ=8 for group B."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["A", "B"], n)
    y = rng.uniform(5, 80, n)
    pred = y + rng.normal(0, np.where(g == "A", sigma[0], sigma[1]))
    return pd.DataFrame({"y": y, "pred": pred, "group": g})


def discrete_normal(mu: np.ndarray, sd: np.ndarray, max_age: int = 116) -> np.ndarray:
    ages = np.arange(max_age + 1)
    p = np.exp(-0.5 * ((ages[None, :] - mu[:, None]) / sd[:, None]) ** 2)
    return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- the quantile rule

def test_conformal_quantile_is_the_finite_sample_order_statistic():
    s = np.arange(1, 20, dtype=float)  # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(s, alpha=0.1) == 18.0
    assert conformal_quantile(np.arange(1, 101, dtype=float), alpha=0.1) == 91.0  # ceil(101 * 0.9) = 91
    assert math.isinf(conformal_quantile(np.arange(8, dtype=float), alpha=0.1))  # n = 8 < 1/α - 1
    c = calibrate(y=np.zeros(5), pred=np.ones(5), alpha=0.1, max_age=100)
    assert c.quantile is None  # infinite: the whole range
    iv = predict_intervals(c, pred=[30.0])
    assert (iv.lo[0], iv.hi[0]) == (0.0, 100.0)


def test_marginal_coverage_matches_the_target_over_many_seeds():
    n_cal, n_test, alpha = 500, 2000, 0.1
    cover = []
    for seed in range(200):
        d = two_groups(n_cal + n_test, seed, sigma=(4.0, 4.0))
        val, test = d.iloc[:n_cal], d.iloc[n_cal:]
        c = calibrate(y=val.y, pred=val.pred, alpha=alpha)
        iv = predict_intervals(c, pred=test.pred)
        cover.append(covered(iv, y=test.y)["exact"].mean())
    cover = np.array(cover)
    # coverage given the calibration set is Beta(k, n + 1 - k), k = ceil((n + 1)(1 - α)); plus the test binomial
    k = math.ceil((n_cal + 1) * (1 - alpha))
    beta = stats.beta(k, n_cal + 1 - k)
    sd = math.sqrt(beta.var() + beta.mean() * (1 - beta.mean()) / n_test)
    assert abs(cover.mean() - beta.mean()) < 4 * sd / math.sqrt(len(cover))
    assert 0.75 * sd < cover.std(ddof=1) < 1.25 * sd
    assert cover.mean() >= 1 - alpha - 4 * sd / math.sqrt(len(cover))


def test_mondrian_equalises_coverage_that_marginal_leaves_unequal():
    val, test = two_groups(4000, 1), two_groups(20000, 2)
    marginal = calibrate(y=val.y, pred=val.pred)
    mondrian = calibrate(y=val.y, pred=val.pred, groups=val.group, grouping="group")
    by = {}
    for name, c in (("marginal", marginal), ("mondrian", mondrian)):
        iv = predict_intervals(c, pred=test.pred, groups=test.group)
        cov = covered(iv, y=test.y)["exact"]
        by[name] = {g: cov[test.group.to_numpy() == g].mean() for g in "AB"}
    assert by["marginal"]["A"] > 0.99 and by["marginal"]["B"] < 0.85  # A over-covered, B under-covered
    for g in "AB":
        assert abs(by["mondrian"][g] - 0.9) < 0.02
    q = {g.group: g.quantile for g in mondrian.groups}
    assert q["A"] == pytest.approx(1.645 * 2, rel=0.1) and q["B"] == pytest.approx(1.645 * 8, rel=0.1)
    assert not any(g.fallback for g in mondrian.groups)


def test_scaled_score_narrows_where_the_spread_is_small_and_keeps_coverage():
    def data(n, seed):
        rng = np.random.default_rng(seed)
        sigma = rng.uniform(1, 8, n)
        y = rng.uniform(10, 80, n)
        return y, y + rng.normal(0, sigma), sigma

    y_v, p_v, s_v = data(4000, 3)
    y_t, p_t, s_t = data(20000, 4)
    scaled = calibrate(y=y_v, pred=p_v, sigma=s_v, score="scaled")
    plain = calibrate(y=y_v, pred=p_v)
    iv_s, iv_a = predict_intervals(scaled, pred=p_t, sigma=s_t), predict_intervals(plain, pred=p_t)
    assert abs(covered(iv_s, y=y_t)["exact"].mean() - 0.9) < 0.015
    calm, wild = s_t < 2.5, s_t > 6.5
    assert iv_s.width[calm].mean() < 0.5 * iv_s.width[wild].mean()
    assert iv_s.width[calm].mean() < iv_a.width[calm].mean()
    # roughly conditional coverage too, where the plain score fails it
    cov_s, cov_a = covered(iv_s, y=y_t)["exact"], covered(iv_a, y=y_t)["exact"]
    assert abs(cov_s[wild].mean() - 0.9) < 0.03 and cov_a[wild].mean() < 0.8
    assert iv_s.width.mean() < iv_a.width.mean()  # adaptive intervals are shorter on average here


def test_spread_and_cdf_score_from_probabilities():
    rng = np.random.default_rng(5)
    n = 6000
    sd = rng.uniform(1.5, 8, n)
    mu = rng.uniform(30, 80, n)  # far from 0 and max_age: no truncation
    probs = discrete_normal(mu, sd)
    assert expected_age(probs) == pytest.approx(mu, abs=0.05)
    assert predictive_spread(probs) == pytest.approx(sd, rel=0.05)
    lo, hi = distribution_quantiles(probs[:1], alpha=0.1)
    assert lo[0] <= mu[0] <= hi[0]
    y = mu + rng.normal(0, sd)  # the predicted distribution is the true one
    half = n // 2
    for score in ("scaled", "cdf"):
        c = calibrate(y=y[:half], probs=probs[:half], pred=expected_age(probs[:half]), score=score)
        iv = predict_intervals(c, probs=probs[half:])
        cov = covered(iv, y=y[half:])["exact"]
        assert abs(cov.mean() - 0.9) < 0.025, score
        calm = sd[half:] < 3
        assert iv.width[calm].mean() < 0.6 * iv.width[~calm].mean(), score
    with pytest.raises(AgefairError, match="needs probs"):
        calibrate(y=y, pred=mu, score="cdf")
    with pytest.raises(AgefairError, match="columns"):
        calibrate(y=y[:3], probs=probs[:3, :50], score="scaled")


def test_intervals_never_use_test_labels():
    assert "y" not in inspect.signature(predict_intervals).parameters
    val, test = two_groups(1000, 6), two_groups(500, 7)
    c = calibrate(y=val.y, pred=val.pred, groups=val.group, grouping="group")
    first = predict_intervals(c, pred=test.pred, groups=test.group)
    shuffled = test.assign(y=np.random.default_rng(0).permutation(test.y.to_numpy()))
    c2 = calibrate(y=val.y, pred=val.pred, groups=val.group, grouping="group")
    second = predict_intervals(c2, pred=shuffled.pred, groups=shuffled.group)
    assert c2 == c
    np.testing.assert_array_equal(first.lo, second.lo)
    np.testing.assert_array_equal(first.hi, second.hi)


def test_intervals_are_clipped_to_the_age_range():
    c = calibrate(y=[10.0] * 100, pred=np.linspace(0, 40, 100), max_age=60)
    iv = predict_intervals(c, pred=[1.0, 59.0])
    assert iv.lo.min() >= 0 and iv.hi.max() <= 60 and iv.lo[0] == 0 and iv.hi[1] == 60


def test_small_calibration_groups_fall_back_and_unseen_groups_are_flagged():
    d = two_groups(400, 8)
    groups = np.where(np.arange(400) < 20, "tiny", d.group)
    c = calibrate(y=d.y, pred=d.pred, groups=groups, grouping="group", min_calibration_size=50)
    tiny = next(g for g in c.groups if g.group == "tiny")
    assert tiny.fallback and tiny.n == 20 and tiny.quantile == c.quantile
    assert not any(g.fallback for g in c.groups if g.group != "tiny")
    iv = predict_intervals(c, pred=[30.0, 30.0, 30.0, 30.0], groups=["A", "tiny", "new", None])
    assert iv.fallback.tolist() == [False, True, True, True]
    assert iv.unseen.tolist() == [False, False, True, True]
    assert iv.quantile[2] == c.quantile and iv.quantile[0] == next(g.quantile for g in c.groups if g.group == "A")
    rep = evaluate_coverage(intervals=iv, y=[30.0] * 4, groupings={"group": ["A", "tiny", "new", "new"]},
                            settings=AuditSettings(n_boot=0))
    rows = {g.group: g for g in rep.groupings["group"].groups}
    assert rows["new"].unseen_rows == 2 and rows["tiny"].fallback_rows == 1 and rows["A"].fallback_rows == 0


def test_age_group_coverage_definitions_on_a_hand_made_example():
    from agefair.models.conformal import Intervals

    lo = np.array([18.0, 25.0, 31.0, 15.0, 65.0, 65.0])
    hi = np.array([28.0, 35.0, 40.0, 35.0, 90.0, 100.0])
    iv = Intervals(lo=lo, hi=hi, quantile=np.ones(6), fallback=np.zeros(6, bool), unseen=np.zeros(6, bool),
                   alpha=0.1, max_age=100)
    a = np.array([20, 20, 20, 20, 70, 70], dtype=float)  # "20-29" = [20, 30); "70+" = [70, ∞)
    b = np.array([30, 30, 30, 30, math.inf, math.inf])
    cov = covered(iv, age_lo=a, age_hi=b)
    # [18,28] meets 20-29 but stops before 30; [25,35] meets it; [31,40] misses it; [15,35] holds all of it;
    # [65,90] meets 70+ without reaching max_age; [65,100] holds 70+ up to max_age
    assert cov["overlap"].tolist() == [True, True, False, True, True, True]
    assert cov["contains"].tolist() == [False, False, False, True, False, True]
    edge = Intervals(lo=np.array([30.0, 10.0]), hi=np.array([35.0, 20.0]), quantile=np.ones(2),
                     fallback=np.zeros(2, bool), unseen=np.zeros(2, bool), alpha=0.1, max_age=100)
    assert covered(edge, age_lo=[20, 20], age_hi=[30, 30])["overlap"].tolist() == [False, True]  # [a, b): 30 is out
    rep = evaluate_coverage(intervals=iv, age_lo=a, age_hi=b, settings=AuditSettings(n_boot=0))
    assert rep.label_kind == "interval" and rep.definitions == ["overlap", "contains"]
    assert rep.overall.coverage["overlap"].value == pytest.approx(5 / 6)
    assert rep.overall.coverage["contains"].value == pytest.approx(2 / 6)
    with pytest.raises(AgefairError, match="not both"):
        covered(iv, y=np.zeros(6), age_lo=a, age_hi=b)


def test_evaluation_per_group_with_bootstrap_intervals_and_disparities():
    val, test = two_groups(3000, 9), two_groups(3000, 10)
    test = test.assign(tiny=np.where(np.arange(3000) < 10, "x", "y"))
    c = calibrate(y=val.y, pred=val.pred)  # marginal: unequal coverage by construction
    iv = predict_intervals(c, pred=test.pred)
    rep = evaluate_coverage(intervals=iv, y=test.y, groupings={"group": test.group, "both": test[["group", "tiny"]]},
                            settings=FAST)
    json.dumps(rep.to_json(), allow_nan=False)
    grp = rep.groupings["group"]
    rows = {g.group: g for g in grp.groups}
    cov = covered(iv, y=test.y)["exact"]
    for g in "AB":
        r, m = rows[g], test.group.to_numpy() == g
        assert r.coverage["exact"].value == pytest.approx(cov[m].mean())
        assert r.median_width.value == pytest.approx(np.median(iv.width[m]))
        for stat in (r.coverage["exact"], r.mean_width, r.median_width):
            assert stat.ci[0] <= stat.value <= stat.ci[1]
    gap = grp.disparity.coverage_gap["exact"]
    assert gap.low_group == "B" and gap.high_group == "A" and gap.value > 0.1 and gap.ci[0] > 0.05
    assert grp.disparity.width_ratio.value == pytest.approx(1.0, abs=0.05)  # marginal: one width (bar clipping)
    both = rep.groupings["both"]
    assert both.disparity.flagged_small_groups == 2 and {"A / x", "B / x"} & {g.group for g in both.groups if g.small}
    # medians from resample counts equal medians of explicitly resampled rows
    rng = np.random.default_rng(FAST.seed)
    idx = rng.integers(0, len(test), size=(FAST.n_boot, len(test)))
    w = np.random.default_rng(1).uniform(0, 1, len(test))
    iv2 = predict_intervals(c, pred=test.pred)
    object.__setattr__(iv2, "hi", iv2.lo + w)
    rep2 = evaluate_coverage(intervals=iv2, y=test.y, settings=FAST)
    explicit = np.quantile(np.median(w[idx], axis=1), FAST.quantiles)
    assert rep2.overall.median_width.ci == pytest.approx(list(explicit))


def test_calibration_round_trips_through_json(tmp_path):
    d = two_groups(300, 11)
    c = calibrate(y=d.y, pred=d.pred, groups=np.where(np.arange(300) < 10, "tiny", d.group), grouping="group",
                  alpha=0.2, min_calibration_size=40, max_age=100)
    path = tmp_path / "calibration.json"
    save_calibration(c, path)
    data = json.loads(path.read_text())
    assert data["method"] == "mondrian" and data["grouping"] == "group" and data["alpha"] == 0.2
    assert {g["group"]: g["fallback"] for g in data["groups"]} == {"A": False, "B": False, "tiny": True}
    assert load_calibration(path) == c
    assert Calibration.from_json(c.to_json()) == c
    tiny = calibrate(y=[1.0, 2.0], pred=[1.0, 2.0])  # an infinite quantile is written as null
    assert Calibration.from_json(json.loads(json.dumps(tiny.to_json()))).quantile is None


@pytest.mark.parametrize("change, message", [
    ({"method": "bayesian"}, "method"),
    ({"alpha": 1.5}, "alpha"),
    ({"quantile": -1.0}, "quantiles"),
    ({"grouping": None}, "grouping"),
    ({"groups": [{"group": "A", "n": 3}]}, "groups.0"),
    ({"extra": 1}, "extra"),
])
def test_a_malformed_calibration_is_one_line(tmp_path, change, message):
    d = two_groups(200, 12)
    data = calibrate(y=d.y, pred=d.pred, groups=d.group, grouping="group").to_json() | change
    with pytest.raises(AgefairError, match=message) as exc:
        Calibration.from_json(data)
    assert "\n" not in str(exc.value)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AgefairError) as exc:
        load_calibration(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_an_unreadable_calibration_file_is_one_line(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    with pytest.raises(AgefairError, match="cannot be read as JSON"):
        load_calibration(path)
    with pytest.raises(AgefairError, match="JSON object"):
        Calibration.from_json([1, 2])
