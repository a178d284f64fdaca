"""Age-standardised group MAE and gaps (agefair.fairness.stats.standardise)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agefair.fairness.stats.metrics import AuditSettings
from agefair.fairness.stats.standardise import standardised_mae

BINS = np.arange(8)


def _two_mixes(n: int = 6000, seed: int = 0, drop_bin: int | None = None):
    """Two groups with the same error law at every age, one mostly young and one mostly old."""
    rng = np.random.default_rng(seed)
    grp = rng.choice(["young", "old"], n)
    young_mix = np.array([0.25, 0.25, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02])
    b = np.where(grp == "young", rng.choice(8, n, p=young_mix), rng.choice(8, n, p=young_mix[::-1]))
    if drop_bin is not None:
        b = np.where((grp == "young") & (b == drop_bin), drop_bin - 1, b)
    age = b * 10 + rng.uniform(0, 10, n)
    pred = age + rng.normal(0, 1, n) * (1 + age / 8)  # errors grow with age
    return age, pred, grp, b.astype(str)


def test_same_error_at_every_age_gives_no_standardised_gap():
    age, pred, grp, bins = _two_mixes()
    r = standardised_mae(pred=pred, age=age, age_bin=bins, group=grp, grouping="mix",
                         settings=AuditSettings(n_boot=300))
    assert r.raw_gap > 3  # the old group looks far worse ...
    assert r.raw_gap_ci[0] > 2
    assert r.gap < 0.1 * r.raw_gap and r.gap < 0.4  # ... only because of its age mix
    assert r.gap_ci[1] < r.raw_gap_ci[0]
    g = {x.group: x for x in r.groups}
    assert g["old"].standardised == pytest.approx(g["young"].standardised, abs=0.4)
    assert all(x.coverage == 1.0 and not x.missing_bins for x in r.groups)
    assert sum(r.reference.values()) == pytest.approx(1.0)
    frame = r.frame()
    assert frame.loc[("old", "7"), "n"] > frame.loc[("young", "7"), "n"]
    json.dumps(r.to_json())


def test_standardised_value_is_the_weighted_bin_mae():
    age, pred, grp, bins = _two_mixes(2000, 1)
    ref = {str(k): 1.0 for k in BINS}  # a flat reference
    r = standardised_mae(pred=pred, age=age, age_bin=bins, group=grp, reference=ref,
                         settings=AuditSettings(n_boot=0))
    err = np.abs(pred - age)
    for g in r.groups:
        want = np.mean([err[(grp == g.group) & (bins == str(k))].mean() for k in BINS])
        assert g.standardised == pytest.approx(want)
        assert g.raw == pytest.approx(err[grp == g.group].mean())


def test_a_missing_bin_is_renormalised_and_flagged_or_excluded():
    age, pred, grp, bins = _two_mixes(4000, 2, drop_bin=7)
    s = AuditSettings(n_boot=100)
    r = standardised_mae(pred=pred, age=age, age_bin=bins, group=grp, settings=s)
    young = next(x for x in r.groups if x.group == "young")
    assert young.missing_bins == ("7",) and young.coverage == pytest.approx(1 - r.reference["7"])
    assert np.isfinite(young.standardised)
    ex = standardised_mae(pred=pred, age=age, age_bin=bins, group=grp, settings=s, missing="exclude")
    young = next(x for x in ex.groups if x.group == "young")
    assert np.isnan(young.standardised) and np.isnan(ex.gap)
    with pytest.raises(ValueError):
        standardised_mae(pred=pred, age=age, age_bin=bins, group=grp, missing="drop")
