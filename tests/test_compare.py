"""Paired comparisons, BH adjustment, verdicts, the credibly-best rule and detectability
(agefair.fairness.stats.compare, agefair.fairness.stats.decide), on synthetic predictions of known structure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from agefair.fairness.stats.compare import adjust_bh, bh_adjust, compare_models, compare_values
from agefair.fairness.stats.decide import credibly_best, describe, detectability, mark_underpowered, minimum_detectable
from agefair.fairness.stats.metrics import AuditSettings, bootstrap_group_metrics


def _data(n: int, seed: int, groups=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    age = rng.uniform(1, 90, n)
    grp = rng.choice(list(groups), n)
    bins = np.minimum(age // 10, 7).astype(int).astype(str)
    return rng, age, grp, bins


def _row(rows, criterion, grouping=None, group=None):
    return next(r for r in rows if r.criterion == criterion and r.grouping == grouping and r.group == group)


def _abs_normal_mean(mu: float, sd: float) -> float:
    """E|X| for X ~ N(mu, sd^2)."""
    return sd * math.sqrt(2 / math.pi) * math.exp(-mu ** 2 / (2 * sd ** 2)) + mu * (1 - 2 * sps.norm.cdf(-mu / sd))


def test_identical_models_give_zero_differences_and_p_one():
    rng, age, grp, bins = _data(500, 0)
    pred = age + rng.normal(0, 5, len(age))
    rows = compare_models(pred_a=pred, pred_b=pred.copy(), age=age, groupings={"g": grp, "age_bin": bins},
                          settings=AuditSettings(n_boot=200, min_group_size=20))
    assert {r.criterion for r in rows} == {"overall", "group", "gap", "worst", "spread"}
    for r in rows:
        assert r.difference == 0 and r.ci == (0.0, 0.0) and r.p_value == 1.0
    json.dumps([r.to_json() for r in rows])


def _null_pvalues(group_bias: float, n_sets: int = 300):
    """Paired-permutation p-values (overall MAE, gap) and bootstrap results over ``n_sets`` small
    datasets where B is A with fresh noise of the same law: the null holds."""
    s = AuditSettings(n_boot=100, min_group_size=10)
    p_overall, p_gap, excl, z = [], [], [], []
    for seed in range(n_sets):
        rng, age, grp, _ = _data(80, seed, groups=("a", "b"))
        bias = np.where(grp == "b", group_bias, 0.0)
        pa, pb = age + bias + rng.normal(0, 5, 80), age + bias + rng.normal(0, 5, 80)
        rows = compare_models(pred_a=pa, pred_b=pb, age=age, groupings={"g": grp}, settings=s, n_perm=199,
                              criteria=("overall", "gap"), age_grouping=None)
        o, g = _row(rows, "overall"), _row(rows, "gap", "g")
        p_overall.append(o.p_value)
        p_gap.append(g.p_value)
        excl.append(not (o.ci[0] <= 0 <= o.ci[1]))
        z.append(o.difference / o.se)
    return np.array(p_overall), np.array(p_gap), np.array(excl), np.array(z)


BAND = sps.binom.ppf([0.001, 0.999], 300, 0.05) / 300  # a 99.8% binomial band around 5%


def test_exchangeable_models_false_positive_rate_is_nominal():
    """Both models share a real gap of about 2.5 years between the groups: every p is ~ uniform."""
    p_overall, p_gap, excl, z = _null_pvalues(group_bias=8.0)
    for p in (p_overall, p_gap):
        assert BAND[0] <= np.mean(p <= 0.05) <= BAND[1]
        assert sps.kstest(p, "uniform").pvalue > 0.001
    assert np.mean(excl) <= BAND[1] + 0.02  # the percentile interval is near nominal too
    assert abs(np.mean(z)) < 0.25  # centred on 0 (in standard errors)


def test_gap_test_is_valid_but_conservative_when_no_group_differs():
    """With no real gap, max - min saturates (|T| is bounded by a permutation-invariant quantity and
    the observed value often sits on the bound): ties make the test conservative, never liberal."""
    p_overall, p_gap, _, _ = _null_pvalues(group_bias=0.0)
    assert BAND[0] <= np.mean(p_overall <= 0.05) <= BAND[1]
    assert np.mean(p_gap <= 0.05) <= BAND[1]


def test_a_shift_in_one_group_is_detected_with_sign_and_size():
    rng, age, grp, bins = _data(2400, 1)
    err_a = 3 + rng.normal(0, 3, len(age))
    pa = age + err_a
    pb = pa + np.where(grp == "b", 1.0, 0.0)
    rows = adjust_bh(compare_models(pred_a=pa, pred_b=pb, age=age, groupings={"g": grp, "age_bin": bins},
                                    settings=AuditSettings(n_boot=400), names=("baseline", "shifted")))
    true = _abs_normal_mean(4, 3) - _abs_normal_mean(3, 3)  # about 0.75 years
    b = _row(rows, "group", "g", "b")
    assert b.difference > 0 and b.ci[0] <= true <= b.ci[1]
    assert abs(b.difference - true) < 4 * b.se
    assert b.p_value < 0.01 and b.significant
    for other in ("a", "c"):
        r = _row(rows, "group", "g", other)
        assert r.difference == 0 and r.p_value == 1.0 and not r.significant
    gap = _row(rows, "gap", "g")
    assert gap.worst_b == "b" and gap.difference > 0 and gap.ci[0] > 0 and gap.significant
    text = describe(b)
    assert text.startswith("`shifted` raises b MAE by 0.") and "against `baseline`" in text
    assert "BH-adjusted p" in text
    assert describe(_row(rows, "group", "g", "a")).startswith("no detectable difference between `shifted`")


def test_paired_interval_is_narrower_than_unpaired_when_errors_correlate():
    rng, age, grp, _ = _data(1500, 2)
    pa = age + rng.normal(0, 5, len(age))
    pb = pa + rng.normal(0.2, 1, len(age))  # B's errors track A's
    s = AuditSettings(n_boot=500)
    o = _row(compare_models(pred_a=pa, pred_b=pb, age=age, settings=s, criteria=("overall",)), "overall")
    codes = np.zeros(len(age), int)
    ba = bootstrap_group_metrics(pa - age, codes, 1, s.n_boot, 11, ("mae",))["mae"][:, 0]
    bb = bootstrap_group_metrics(pb - age, codes, 1, s.n_boot, 12, ("mae",))["mae"][:, 0]
    unpaired = np.quantile(bb - ba, s.quantiles)
    assert (o.ci[1] - o.ci[0]) < 0.5 * (unpaired[1] - unpaired[0])


def test_cluster_bootstrap_is_wider_when_errors_correlate_within_clusters():
    rng, age, grp, _ = _data(2000, 3)
    cluster = np.repeat(np.arange(100), 20)
    pa = age + 4 + rng.normal(0, 2, len(age))
    pb = pa + rng.normal(0, 1, 100)[cluster] + rng.normal(0, 0.3, len(age))  # a per-subject shift
    s = AuditSettings(n_boot=400)
    rows = compare_models(pred_a=pa, pred_b=pb, age=age, settings=s, criteria=("overall",))
    crow = compare_models(pred_a=pa, pred_b=pb, age=age, settings=s, criteria=("overall",), cluster=cluster)
    w_row, w_cl = (r[0].ci[1] - r[0].ci[0] for r in (rows, crow))
    assert crow[0].clustered and not rows[0].clustered
    assert w_cl > 2 * w_row
    assert crow[0].p_value > rows[0].p_value or rows[0].p_value < 0.05


def test_bh_matches_scipy():
    p = np.random.default_rng(4).uniform(0, 1, 40) ** 3
    np.testing.assert_allclose(bh_adjust(p), sps.false_discovery_control(p, method="bh"))
    with_nan = np.r_[p[:5], np.nan]
    np.testing.assert_allclose(bh_adjust(with_nan)[:5], sps.false_discovery_control(p[:5]))
    assert np.isnan(bh_adjust(with_nan)[5])


def test_adjust_bh_sets_raw_adjusted_and_flag():
    rng, age, grp, bins = _data(600, 5)
    pa = age + rng.normal(0, 5, len(age))
    rows = compare_models(pred_a=pa, pred_b=pa + rng.normal(0, 2, len(age)), age=age, groupings={"g": grp},
                          settings=AuditSettings(n_boot=100))
    adj = adjust_bh(rows, alpha=0.05)
    q = sps.false_discovery_control([r.p_value for r in rows])
    for r, a, qq in zip(rows, adj, q):
        assert a.p_value == r.p_value and a.p_adjusted == pytest.approx(qq) and a.significant == (qq < 0.05)


def test_generic_hook_compares_a_rate_on_a_sub_population():
    rng = np.random.default_rng(6)
    n = 3000
    minor = rng.uniform(0, 1, n) < 0.3
    pass_a = (rng.uniform(0, 1, n) < 0.10).astype(float)
    pass_b = np.where(rng.uniform(0, 1, n) < 0.5, pass_a, (rng.uniform(0, 1, n) < 0.20).astype(float))
    (r,) = compare_values(value_a=pass_a, value_b=pass_b, mask=minor, criteria=("overall",), metric="gate_pass",
                          settings=AuditSettings(n_boot=300))
    assert r.n == minor.sum() and r.metric == "gate_pass"
    assert r.value_a == pytest.approx(pass_a[minor].mean()) and r.value_b == pytest.approx(pass_b[minor].mean())
    assert r.difference > 0 and r.ci[0] > 0 and r.p_value < 0.01


def test_interval_labels_compare_distances():
    rng, age, grp, _ = _data(400, 7)
    lo = np.floor(age / 10) * 10
    rows = compare_models(pred_a=age + rng.normal(0, 6, 400), pred_b=age + rng.normal(0, 3, 400), age_lo=lo,
                          age_hi=lo + 10, settings=AuditSettings(n_boot=100), criteria=("overall",))
    assert rows[0].metric == "dist" and rows[0].difference < 0 and rows[0].subject == "overall dist"


def test_credibly_best_names_a_clear_winner_and_refuses_a_tie():
    rng, age, grp, _ = _data(1500, 8)
    base = rng.normal(0, 5, len(age))
    preds = {"baseline": age + base, "twin": age + rng.normal(0, 5, len(age)),  # exchangeable with baseline
             "good": age + 0.6 * base}
    s = AuditSettings(n_boot=300)
    v = credibly_best(preds=preds, age=age, settings=s)
    assert v.best == "good" and "credibly best on overall MAE" in v.statement
    assert all(g.ci[0] > 0 for g in v.against_leader)
    tie = credibly_best(preds={"baseline": preds["baseline"], "twin": preds["twin"]}, age=age, settings=s)
    assert tie.best is None and tie.statement.startswith("no model is credibly best on overall MAE")
    g = credibly_best(preds=preds, age=age, criterion="gap", grouping="g", groupings={"g": grp}, settings=s)
    assert g.criterion == "g gap in MAE"
    json.dumps(v.to_json())


def test_detectability_marks_small_groups_underpowered():
    rng, age, _, _ = _data(3000, 9)
    grp = np.where(rng.uniform(0, 1, 3000) < 0.02, "tiny", "big")
    pa = age + rng.normal(0, 5, 3000)
    rows = compare_models(pred_a=pa, pred_b=pa + rng.normal(0, 3, 3000), age=age, groupings={"g": grp},
                          settings=AuditSettings(n_boot=300), criteria=("group",))
    det = {d.group: d for d in detectability(rows, size=0.5)}
    assert det["tiny"].n < 100 < det["big"].n
    assert det["tiny"].mde == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * det["tiny"].se)
    assert det["tiny"].mde > det["big"].mde
    assert det["tiny"].underpowered and not det["big"].underpowered
    flags = mark_underpowered(rows, size=0.5)
    assert flags[("g", "tiny", "group")] and not flags[("g", "big", "group")]
    assert minimum_detectable(1.0, level=0.9, power=0.5) == pytest.approx(sps.norm.ppf(0.95))
