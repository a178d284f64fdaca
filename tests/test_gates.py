"""Age-gate audit (agefair.fairness.stats.gates): synthetic predictions with known answers."""

from __future__ import annotations

import json
import math
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from agefair.data.age_groups import parse_age_group
from agefair.fairness.stats.gates import (
    DEFAULT_GATES,
    Gate,
    GateResult,
    RangeGate,
    RangeGateResult,
    ThresholdGate,
    ThresholdGateResult,
    audit_gate,
    audit_gates,
    curve_frame,
)
from agefair.fairness.stats.metrics import AuditSettings

C25 = ThresholdGate(name="challenge-25", legal_age=18, challenge_age=25, band_lo=13)
FAST = AuditSettings(n_boot=200, seed=0, min_group_size=30)


def _population(rng, n_per_group: int, shift: dict[str, float], same_noise: bool = True) -> pd.DataFrame:
    """Ages 5..60 (whole years) per group, estimates = age + N(0, 3) + the group's shift."""
    age = rng.integers(5, 61, n_per_group).astype(float)
    noise = rng.normal(0, 3, n_per_group)
    frames = []
    for g, s in shift.items():
        e = noise if same_noise else rng.normal(0, 3, n_per_group)
        frames.append(pd.DataFrame({"age": age, "pred": age + e + s, "g": g}))
    return pd.concat(frames, ignore_index=True)


def _group(result, name):
    return next(g for g in result.groups if g.group == name)


def _inverted_cdf_buffer(preds: np.ndarray, legal: float, target: float) -> float:
    """The documented definition: max(L, smallest multiple of 0.1 strictly above the (1 - t) inverted-CDF quantile)."""
    q = np.quantile(preds, 1 - target, method="inverted_cdf")
    return max(legal, (math.floor(round(q * 10, 6)) + 1) / 10)


# --- known answers ------------------------------------------------------------------------------

def test_a_shifted_group_passes_more_minors_and_needs_a_buffer_3_years_larger():
    df = _population(np.random.default_rng(1), 6000, {"A": 0.0, "B": 3.0})
    r = audit_gate(df, gate=C25, columns=["g"], settings=FAST)
    a, b = _group(r, "A"), _group(r, "B")
    assert b.false_pass.value > a.false_pass.value
    assert b.false_pass.n == a.false_pass.n == int((df.query("g == 'A'")["age"] < 18).sum())
    for ba, bb in zip(a.buffers, b.buffers):
        assert bb.value - ba.value == pytest.approx(3.0, abs=0.1 + 1e-9)  # same noise: exactly +3 on the 0.1 grid
        assert ba.ci[0] <= ba.value <= ba.ci[1]
    d = r.disparities["buffer_0.01"]
    assert (d.worst_group, d.best_group) == ("B", "A") and d.difference == pytest.approx(3.0, abs=0.11)
    assert math.isnan(d.ratio)  # no ratio of ages
    assert r.disparities["false_pass"].worst_group == "B"


def test_with_independent_noise_the_buffer_gap_is_about_3_years():
    df = _population(np.random.default_rng(2), 60000, {"A": 0.0, "B": 3.0}, same_noise=False)
    r = audit_gate(df, gate=C25, columns=["g"], settings=AuditSettings(n_boot=0))
    gap = [bb.value - ba.value for ba, bb in zip(_group(r, "A").buffers, _group(r, "B").buffers)]
    assert gap == pytest.approx([3.0, 3.0], abs=0.5)
    assert math.isnan(_group(r, "A").buffers[0].ci[0])  # n_boot 0: no intervals


def test_the_buffer_is_the_inverted_cdf_quantile_of_minors_estimates_with_ties():
    rng = np.random.default_rng(3)
    age = rng.integers(3, 18, 997).astype(float)
    pred = np.round((age + rng.normal(2, 4, 997)) * 2) / 2  # many ties, on grid values
    df = pd.DataFrame({"age": np.r_[age, 30.0], "pred": np.r_[pred, 31.0]})
    gate = ThresholdGate(name="g", legal_age=18, targets=(0.001, 0.01, 0.05, 0.2, 0.6))
    r = audit_gate(df, gate=gate, settings=AuditSettings(n_boot=0))
    for buf in r.groups[0].buffers:
        assert buf.value == pytest.approx(_inverted_cdf_buffer(pred, 18, buf.target))
        # brute force on the grid: the smallest C >= L with share(pred >= C) <= target
        grid = np.round(np.arange(180, 400) / 10, 1)
        ok = [c for c in grid if np.mean(pred >= c) <= buf.target]
        assert buf.value == pytest.approx(ok[0])
        assert buf.n == 997


def test_ties_at_the_challenge_age_pass():
    df = pd.DataFrame({"age": [15, 15, 15, 16, 30, 30], "pred": [25.0, 24.9, 25.0, 20.5, 25.0, 24.99]})
    r = audit_gate(df, gate=C25, settings=AuditSettings(n_boot=0))
    g = r.groups[0]
    assert g.false_pass.value == pytest.approx(2 / 4)  # estimates of exactly 25 pass
    assert g.false_challenge_over.value == pytest.approx(1 / 2)  # 25.0 passes, 24.99 is challenged
    assert [b.value for b in g.buffers] == [25.1, 25.1]  # 2 of 4 minors estimated 25.0: only C > 25 stops them
    curve = curve_frame(r).set_index("challenge_age")
    assert curve.loc[20.5, "false_pass"] == 1.0  # the 20.5 estimate passes at C = 20.5 ...
    assert curve.loc[21.0, "false_pass"] == pytest.approx(3 / 4)  # ... and not at 21


def test_exact_estimates_never_pass_a_minor_and_the_buffer_is_the_legal_age():
    age = np.arange(0, 70, dtype=float).repeat(3)
    r = audit_gate(pd.DataFrame({"age": age, "pred": age}), gate=C25, settings=FAST)
    g = r.groups[0]
    assert g.false_pass.value == 0 and g.false_pass_band.value == 0 and g.false_challenge_over.value == 0
    assert g.false_challenge_between.value == 1  # 18..24 estimated exactly are all challenged, by design
    assert [b.value for b in g.buffers] == [18.0, 18.0]
    assert g.buffers[0].ci == (18.0, 18.0)


def test_a_group_without_minors_is_nan_with_n_0_and_flagged():
    df = pd.DataFrame({"age": np.r_[np.full(50, 30.0), np.full(60, 12.0), np.full(60, 40.0)],
                       "pred": np.r_[np.full(50, 31.0), np.full(60, 26.0), np.full(60, 20.0)],
                       "g": ["adults"] * 50 + ["mixed"] * 120})
    r = audit_gate(df, gate=C25, columns=["g"], settings=FAST)
    adults = _group(r, "adults")
    assert math.isnan(adults.false_pass.value) and adults.false_pass.n == 0 and adults.false_pass.small
    assert math.isnan(adults.buffers[0].value) and adults.buffers[0].n == 0
    assert math.isnan(adults.false_pass.ci[0])
    assert adults.false_challenge.value == 0 and not adults.false_challenge.small
    d = r.disparities["false_pass"]
    assert d.eligible_groups == 1 and d.flagged_small_groups == 1 and d.worst_group is None
    assert r.disparities["false_challenge"].worst_group == "mixed"
    assert json.loads(json.dumps(r.to_json()))["groups"][0]["false_pass"]["value"] is None  # NaN as null


def test_a_small_group_is_reported_but_never_the_worst():
    df = pd.DataFrame({"age": np.full(110, 15.0), "pred": np.r_[np.full(100, 10.0), np.full(10, 30.0)],
                       "g": ["big"] * 100 + ["tiny"] * 10})
    r = audit_gate(df, gate=C25, columns=["g"], settings=FAST)
    assert _group(r, "tiny").false_pass.value == 1 and _group(r, "tiny").false_pass.small
    assert r.disparities["false_pass"].eligible_groups == 1 and r.disparities["false_pass"].worst_group is None


def test_a_range_gate_on_a_hand_computed_example():
    rows = [  # (age, estimate): 13-16 is ages [13, 17)
        (14, 15), (16, 16.9), (13, 17.0), (15, 12.9),  # inside: 2 of 4 estimated inside
        (10, 13.0), (12, 12.99), (8, 9),  # below: 1 of 3 estimated inside
        (17, 16.99), (17, 17), (30, 20), (20, 14),  # above: 2 of 4 estimated inside
    ]
    df = pd.DataFrame(rows, columns=["age", "pred"])
    r = audit_gate(df, gate=RangeGate(name="13-16", first=13, last=16), settings=AuditSettings(n_boot=0))
    g = r.groups[0]
    assert isinstance(r, RangeGateResult)
    assert (g.tpr.value, g.tpr.n) == (0.5, 4)
    assert (g.fpr_below.value, g.fpr_below.n) == (pytest.approx(1 / 3), 3)
    assert (g.fpr_above.value, g.fpr_above.n) == (0.5, 4)
    assert (g.fpr.value, g.fpr.n) == (pytest.approx(3 / 7), 7)


# --- age-group labels -------------------------------------------------------------------------

def _labelled(labels_by_group: dict[str, list[tuple[str, float]]]) -> pd.DataFrame:
    rows = []
    for g, items in labels_by_group.items():
        for label, pred in items:
            ag = parse_age_group(label)
            rows.append({"age_group": ag.label, "age_lo": ag.lo, "age_hi": ag.hi, "pred": pred, "g": g})
    return pd.DataFrame(rows)


def test_age_group_labels_straddling_the_legal_age_are_excluded_and_counted():
    df = _labelled({
        "straddling": [("10-19", 30.0)] * 40,
        "sides": [("3-9", 26.0)] * 10 + [("3-9", 8.0)] * 30 + [("10-19", 26.0)] * 7 + [("13-17", 26.0)] * 4
        + [("13-17", 12.0)] * 4 + [("20-29", 21.0)] * 20 + [("30-39", 24.0)] * 5 + [("30-39", 35.0)] * 15,
    })
    r = audit_gate(df, gate=C25, columns=["g"], settings=FAST)
    assert r.labels == "interval"
    s = _group(r, "straddling")
    assert (s.n_rows, s.n_kept, s.n_excluded) == (40, 0, 40)
    assert math.isnan(s.false_pass.value) and s.false_pass.n == 0 and math.isnan(s.false_challenge.value)
    k = _group(r, "sides")
    assert (k.n_rows, k.n_kept, k.n_excluded) == (95, 88, 7)
    assert (k.false_pass.value, k.false_pass.n) == (pytest.approx(14 / 48), 48)  # 3-9 and 13-17, not 10-19
    assert (k.false_pass_band.value, k.false_pass_band.n) == (0.5, 8)  # only 13-17 lies inside [13, 18)
    assert (k.false_challenge.value, k.false_challenge.n) == (pytest.approx(25 / 40), 40)
    assert (k.false_challenge_over.value, k.false_challenge_over.n) == (0.25, 20)  # 30-39 only: 20-29 straddles 25
    assert k.false_challenge_between.n == 0 and math.isnan(k.false_challenge_between.value)


def test_age_group_labels_in_a_range_gate_keep_only_rows_wholly_on_one_side():
    df = _labelled({"x": [("10-12", 14.0), ("13-15", 14.0), ("13-15", 20.0), ("10-19", 14.0), ("20-29", 16.5),
                          ("20-29", 30.0), ("16-16", 16.0)]})
    g = audit_gate(df, gate=RangeGate(name="13-16", first=13, last=16), settings=AuditSettings(n_boot=0)).groups[0]
    assert (g.n_kept, g.n_excluded) == (6, 1)
    assert (g.tpr.value, g.tpr.n) == (pytest.approx(2 / 3), 3)
    assert (g.fpr_below.value, g.fpr_above.value) == (1.0, 0.5)


# --- intervals, determinism, speed --------------------------------------------------------------

def test_intervals_cover_the_true_rate_at_about_the_nominal_level():
    rng = np.random.default_rng(4)
    gate = ThresholdGate(name="18", legal_age=18, curve_span=0)
    hits = {"false_pass": 0, "false_challenge": 0}
    for draw in range(200):
        passed, challenged = rng.random(300) < 0.1, rng.random(300) < 0.3  # known Bernoulli rates
        df = pd.DataFrame({"age": np.r_[np.full(300, 15.0), np.full(300, 40.0)],
                           "pred": np.r_[np.where(passed, 20.0, 12.0), np.where(challenged, 16.0, 41.0)]})
        g = audit_gate(df, gate=gate, settings=AuditSettings(n_boot=400, seed=draw)).groups[0]
        hits["false_pass"] += g.false_pass.ci[0] <= 0.1 <= g.false_pass.ci[1]
        hits["false_challenge"] += g.false_challenge.ci[0] <= 0.3 <= g.false_challenge.ci[1]
    for name, h in hits.items():
        assert 0.90 <= h / 200 <= 0.99, (name, h / 200)


def test_the_same_seed_gives_the_same_numbers():
    df = _population(np.random.default_rng(5), 800, {"A": 0.0, "B": 1.5})
    one = [x.to_json() for x in audit_gates(df, groupings={"g": ["g"]}, settings=FAST)]
    two = [x.to_json() for x in audit_gates(df, groupings={"g": ["g"]}, settings=FAST)]
    other = audit_gates(df, groupings={"g": ["g"]}, settings=AuditSettings(n_boot=200, seed=1))
    assert one == two and len(one) == len(DEFAULT_GATES)
    assert one[0]["groups"][0]["buffers"][0]["ci"] != other[0].to_json()["groups"][0]["buffers"][0]["ci"]


def test_1000_resamples_of_200000_rows_take_seconds_and_little_memory():
    rng = np.random.default_rng(6)
    age = rng.uniform(3, 80, 200_000)
    df = pd.DataFrame({"age": age, "pred": age + rng.normal(0, 4, age.size), "g": rng.choice(list("ABCD"), age.size)})
    t = time.perf_counter()
    r = audit_gate(df, gate=C25, columns=["g"], settings=AuditSettings(n_boot=1000))
    seconds = time.perf_counter() - t
    tracemalloc.start()
    audit_gate(df, gate=DEFAULT_GATES[3], columns=["g"], settings=AuditSettings(n_boot=1000))
    audit_gate(df.iloc[:50_000], gate=C25, columns=["g"], settings=AuditSettings(n_boot=1000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 10, seconds
    assert peak < 200e6, peak / 1e6  # a (1000, 200000) index matrix alone would be 1.6 GB
    assert all(g.false_pass.ci[0] < g.false_pass.value < g.false_pass.ci[1] for g in r.groups)


# --- curves, configs, results -------------------------------------------------------------------

def test_curves_are_a_tidy_frame_on_the_grid_with_bands():
    df = _population(np.random.default_rng(7), 2000, {"A": 0.0, "B": 2.0})
    r = audit_gate(df, gate=C25, columns=["g"], settings=FAST)
    frame = curve_frame(r)
    assert len(frame) == 2 * 41 and frame["challenge_age"].min() == 18 and frame["challenge_age"].max() == 38
    for _, c in frame.groupby("group"):
        assert (np.diff(c["false_pass"]) <= 0).all() and (np.diff(c["false_challenge"]) >= 0).all()
        assert (c["false_pass_lo"] <= c["false_pass"] + 1e-12).all()
        assert (c["false_pass"] <= c["false_pass_hi"] + 1e-12).all()
    at25 = frame[(frame.group == "A") & (frame.challenge_age == 25)].iloc[0]
    assert at25["false_pass"] == _group(r, "A").false_pass.value
    assert at25["false_challenge"] == _group(r, "A").false_challenge.value


def test_gate_configs_validate_like_yaml():
    gates = TypeAdapter(list[Gate]).validate_python([
        {"kind": "threshold", "name": "18+", "legal_age": 18},
        {"kind": "range", "name": "teen", "first": 13, "last": 16},
    ])
    assert gates[0].challenge_age == 18 and gates[0].band_lo == 13 and isinstance(gates[1], RangeGate)
    assert [g.name for g in DEFAULT_GATES] == ["challenge-25", "age-18", "age-13", "range-13-16"]
    for bad in ({"kind": "threshold", "name": "x", "legal_age": 18, "colour": 1},
                {"kind": "threshold", "name": "x", "legal_age": 18, "challenge_age": 16},
                {"kind": "threshold", "name": "x", "legal_age": 18, "band_lo": 18},
                {"kind": "threshold", "name": "x", "legal_age": 18.05},
                {"kind": "threshold", "name": "x", "legal_age": 18, "targets": [0.0]},
                {"kind": "range", "name": "x", "first": 16, "last": 13},
                {"kind": "other", "name": "x"}):
        with pytest.raises(ValidationError):
            TypeAdapter(Gate).validate_python(bad)


def test_results_round_trip_and_are_json_ready():
    df = _population(np.random.default_rng(8), 300, {"A": 0.0, "B": 1.0}).assign(e="x")
    for r in audit_gates(df, groupings={"overall": [], "g x e": ["g", "e"]}, settings=AuditSettings(n_boot=50)):
        back = TypeAdapter(GateResult).validate_python(r.model_dump())
        assert type(back) is type(r) and back.to_json() == r.to_json()
        json.dumps(r.to_json(), allow_nan=False)
        assert isinstance(r, (ThresholdGateResult, RangeGateResult))
    assert r.grouping == "g x e" and [g.group for g in r.groups] == ["A / x", "B / x"]
    with pytest.raises(ValidationError):
        r.groups[0].tpr.value = 1.0  # frozen


def test_missing_columns_are_one_line_errors():
    from agefair.core.errors import AgefairError
    with pytest.raises(AgefairError, match="lack column"):
        audit_gate(pd.DataFrame({"age": [1.0], "pred": [2.0]}), gate=C25, columns=["gender"])
