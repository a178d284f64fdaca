"""The Guess-The-Age AAR and error-vs-age slopes (agefair.fairness.stats.age_accuracy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agefair.fairness.stats.age_accuracy import aar, aar_group, error_slopes
from agefair.fairness.stats.metrics import AuditSettings


def test_aar_on_a_hand_computed_example():
    # 1-10 holds two rows (errors 1 and 3: MAE_1 = 2); 11-20 ... 61-70 one row each with error 2;
    # 70+ one row with error 10. MAE = 26 / 9; sigma over the 8 groups.
    age = np.array([5, 5, 15, 25, 35, 45, 55, 65, 80], float)
    err = np.array([1, -3, 2, -2, 2, -2, 2, -2, -10], float)
    r = aar(pred=age + err, age=age, settings=AuditSettings(n_boot=200))
    mae = 26 / 9
    sigma = math.sqrt((7 * (2 - mae) ** 2 + (10 - mae) ** 2) / 8)
    assert r.mae == pytest.approx(mae)
    assert r.sigma == pytest.approx(sigma)
    assert r.aar == pytest.approx((7 - mae) + (3 - sigma))  # 4.4630
    assert r.aar == pytest.approx(4.4630, abs=1e-4)
    assert r.group_mae["1-10"] == 2 and r.group_n["1-10"] == 2 and not r.missing_groups
    assert r.aar_ci[0] <= r.aar_ci[1]
    json.dumps(r.to_json())


def test_aar_terms_are_clipped_at_zero_and_group_edges():
    assert aar_group([0, 1, 10, 10.5, 70, 71, 99]).tolist() == ["1-10", "1-10", "1-10", "11-20", "61-70", "70+",
                                                                "70+"]
    age = np.array([5.0, 15.0, 85.0])
    r = aar(pred=age + np.array([1, 1, 30.0]), age=age, settings=AuditSettings(n_boot=0))
    assert r.aar == 0.0  # MAE 10.67 > 7 and sigma > 3
    assert set(r.missing_groups) == {"21-30", "31-40", "41-50", "51-60", "61-70"}


def test_error_slope_recovers_regression_to_the_mean():
    rng = np.random.default_rng(0)
    n = 3000
    age = rng.uniform(1, 90, n)
    grp = rng.choice(["p", "q"], n)
    slope = np.where(grp == "p", -0.3, -0.1)
    pred = age + slope * (age - 40) + rng.normal(0, 3, n)
    rows = error_slopes(pred=pred, age=age, groupings={"g": grp}, settings=AuditSettings(n_boot=300))
    by = {(r.grouping, r.group): r for r in rows}
    assert by[(None, None)].n == n and by[(None, None)].slope < 0
    for g, want in (("p", -0.3), ("q", -0.1)):
        r = by[("g", g)]
        assert r.ci[0] <= want <= r.ci[1] and abs(r.slope - want) < 0.03
    coef = np.polyfit(age[grp == "p"], (pred - age)[grp == "p"], 1)[0]
    assert by[("g", "p")].slope == pytest.approx(coef)
    clustered = error_slopes(pred=pred, age=age, cluster=np.repeat(np.arange(300), 10),
                             settings=AuditSettings(n_boot=100))
    assert clustered[0].slope == pytest.approx(by[(None, None)].slope)
