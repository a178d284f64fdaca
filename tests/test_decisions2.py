"""Issue 14, steps 4-6: age-standardised gaps, the regression gate against a previous audit
(--compare-to), label-noise suspects, AAR and error slopes -- in the summary, the rules and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agefair.core.config import ThresholdRule
from agefair.data.labels import age_bin
from agefair.fairness.age_adjusted import standardised_groupings
from agefair.fairness.metrics import AuditSettings, audit_variant
from agefair.fairness.result import AuditSummary
from agefair.fairness.thresholds import judge

SETTINGS = AuditSettings(n_boot=200, ci_level=0.95, seed=0, min_group_size=30)
BINS = [0, 10, 20, 30, 40, 50, 60, 70]


def age_mix_frame(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Two groups with the same error at every age (|error| = 0.15 x age) but different age mixes:
    group 'young' mostly 5-35, group 'old' mostly 40-80 (both span every age bin)."""
    rng = np.random.default_rng(seed)
    grp = np.where(np.arange(n) % 2 == 0, "young", "old")
    young = np.where(rng.random(n) < 0.85, rng.integers(5, 36, n), rng.integers(36, 80, n))
    old = np.where(rng.random(n) < 0.85, rng.integers(40, 80, n), rng.integers(5, 40, n))
    age = np.where(grp == "young", young, old)
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    pred = age + sign * 0.15 * age
    return pd.DataFrame({"file": [f"img/{i}.jpg" for i in range(n)], "age": age, "group": grp,
                         "age_bin": age_bin(age, BINS), "row": np.arange(n), "pred": pred, "variant": "m"})


def test_same_error_at_every_age_different_age_mix_standardised_gap_near_zero():
    f = age_mix_frame()
    groupings = {"group": ["group"], "age_bin": ["age_bin"]}
    audit = audit_variant(f, SETTINGS, groupings)
    audit["standardised"] = standardised_groupings(f, groupings, SETTINGS)
    st = audit["standardised"]["group"]
    assert list(audit["standardised"]) == ["group"]  # single attributes only, not age_bin
    assert st["raw_gap"] > 2.5 and abs(st["gap"]) < 0.6 and st["gap_ci"][0] < 0.6
    raw = ThresholdRule(metric="mae", grouping="group", statistic="difference", max=1.0)
    std = raw.model_copy(update={"standardised": True})
    worst = ThresholdRule(metric="mae", grouping="group", statistic="worst_group", max=100, standardised=True)
    rows = judge([raw, std, worst], {"m": audit})
    assert [r["passed"] for r in rows] == [False, True, True]
    assert rows[1]["standardised"] and "(age-standardised)" in rows[1]["rule"] and "standardised" not in rows[0]
    assert "(age-standardised)" in rows[1]["group"]
    s = AuditSummary.model_validate({"variants": {"m": {"audit": audit}}, "thresholds": rows})
    assert s.audit("m").standardised["group"].gap == pytest.approx(st["gap"])
    from agefair.reporting.page import render_html
    page = render_html(s, {})
    assert 'id="standardised-group"' in page and "age-standardised gap" in page
    assert "mae difference by group (age-standardised)" in page


def test_standardised_rule_validation():
    with pytest.raises(ValueError, match="standardised: true is for metric mae"):
        ThresholdRule(metric="rmse", grouping="group", statistic="difference", max=1, standardised=True)
    with pytest.raises(ValueError, match="standardised: true is for metric mae"):
        ThresholdRule(metric="mae", grouping="group", statistic="ratio", max=1, standardised=True)
    assert "standardised" not in ThresholdRule(metric="mae", max=1).model_dump()
