"""Grouped metrics, bootstrap intervals, disparities and threshold judging (agefair.fairness.stats.metrics,
agefair.fairness.auditing.thresholds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agefair.cli.console import thresholds_text as table_text
from agefair.core.config import FairnessConfig, ThresholdRule, load_fairness_config, validate
from agefair.core.errors import AgefairError
from agefair.fairness.auditing.thresholds import judge
from agefair.fairness.results.result import Check
from agefair.fairness.stats.metrics import AuditSettings, audit_variant, grouped_metrics, overall_metrics, shot_labels


def synthetic_predictions(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Predictions whose error is larger for 'Others' and for old ages, by construction."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 90, n)
    eth = rng.choice(["White", "Black", "Asian", "Indian", "Others"], n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    noise = rng.normal(0, 4, n) * np.where(eth == "Others", 2.0, 1.0) * np.where(age >= 70, 1.5, 1.0)
    df = pd.DataFrame({"age": age, "pred": age + noise + 1.0, "ethnicity": eth,
                       "gender": rng.choice(["male", "female"], n)})
    df["age_bin"] = pd.cut(df["age"], [0, 10, 20, 30, 40, 50, 60, 70, 200], right=False,
                           labels=["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]).astype(str)
    df["shot"] = shot_labels(df["age"].to_numpy(), rng.integers(1, 90, 5000))
    return df


def test_point_estimates_match_plain_numpy():
    df = synthetic_predictions()
    res = grouped_metrics(df, ["ethnicity"], AuditSettings(n_boot=0))
    err = df["pred"] - df["age"]
    for g in res["groups"]:
        e = err[df["ethnicity"] == g["group"]]
        assert g["n"] == len(e)
        assert g["mae"]["value"] == pytest.approx(e.abs().mean())
        assert g["rmse"]["value"] == pytest.approx(np.sqrt((e ** 2).mean()))
        assert g["bias"]["value"] == pytest.approx(e.mean())
        assert g["cs5"]["value"] == pytest.approx((e.abs() <= 5).mean())


def test_vectorized_bootstrap_agrees_with_fairlearn_metricframe():
    df = synthetic_predictions(800)
    fast = grouped_metrics(df, ["gender"], AuditSettings(n_boot=300, seed=1))
    slow = grouped_metrics(df, ["gender"], AuditSettings(n_boot=300, seed=1, bootstrap="fairlearn"))
    for a, b in zip(fast["groups"], slow["groups"]):
        assert a["group"] == b["group"]
        for m in ("mae", "rmse", "cs5"):
            assert a[m]["value"] == pytest.approx(b[m]["value"])
            width = b[m]["ci"][1] - b[m]["ci"][0]
            # Two independent sets of 300 resamples: the bounds agree to a fraction of the width.
            assert a[m]["ci"][0] == pytest.approx(b[m]["ci"][0], abs=0.25 * width)
            assert a[m]["ci"][1] == pytest.approx(b[m]["ci"][1], abs=0.25 * width)
    fd, sd = fast["disparity"]["mae"], slow["disparity"]["mae"]
    assert fd["difference"] == pytest.approx(sd["difference"])
    w = sd["difference_ci"][1] - sd["difference_ci"][0]
    assert fd["difference_ci"][1] == pytest.approx(sd["difference_ci"][1], abs=0.3 * w)


def test_intervals_contain_estimate_and_are_seeded():
    df = synthetic_predictions()
    a = overall_metrics(df, AuditSettings(n_boot=200, seed=3))
    b = overall_metrics(df, AuditSettings(n_boot=200, seed=3))
    c = overall_metrics(df, AuditSettings(n_boot=200, seed=4))
    for m in ("mae", "rmse", "bias", "cs5"):
        assert a[m] == b[m]
    assert a["mae"]["ci"] != c["mae"]["ci"]
    assert a["mae"]["ci"][0] < a["mae"]["value"] < a["mae"]["ci"][1]
    assert a["n"]["value"] == len(df)


def test_disparity_finds_the_group_built_to_be_worst():
    df = synthetic_predictions(3000)
    d = grouped_metrics(df, ["ethnicity"], AuditSettings(n_boot=200))["disparity"]
    assert d["mae"]["worst_group"] == "Others"
    assert d["mae"]["difference"] > 2
    assert d["mae"]["difference_ci"][0] > 1  # credibly worse, not noise
    assert d["cs5"]["worst_group"] == "Others"  # lowest share within 5 years
    assert 0 < d["mae"]["ratio"] < 1


def test_small_groups_are_flagged_and_never_worst():
    df = synthetic_predictions(2000)
    # A tiny group with enormous errors: shown, flagged, but it must not decide the verdict.
    tiny = pd.DataFrame({"age": [30] * 5, "pred": [90.0] * 5, "ethnicity": ["Martian"] * 5,
                         "gender": ["male"] * 5, "age_bin": ["30-39"] * 5, "shot": ["many"] * 5})
    df = pd.concat([df, tiny], ignore_index=True)
    res = grouped_metrics(df, ["ethnicity"], AuditSettings(n_boot=100, min_group_size=30))
    martian = next(g for g in res["groups"] if g["group"] == "Martian")
    assert martian["small"] and martian["n"] == 5 and martian["mae"]["value"] == pytest.approx(60)
    assert res["disparity"]["flagged_small_groups"] == 1
    assert res["disparity"]["mae"]["worst_group"] == "Others"
    assert res["disparity"]["mae"]["difference"] < 20  # computed without the tiny group


def test_intersections_and_shot_and_spread():
    df = synthetic_predictions(3000)
    audit = audit_variant(df, AuditSettings(n_boot=50))
    inter = audit["groupings"]["gender x ethnicity"]["groups"]
    assert {g["group"] for g in inter} >= {"female / Others", "male / White"}
    assert sum(g["n"] for g in inter) == len(df)
    assert {g["group"] for g in audit["groupings"]["shot"]["groups"]} <= {"many", "medium", "few"}
    bins = [g["mae"]["value"] for g in audit["groupings"]["age_bin"]["groups"]]
    assert audit["age_bin_spread"] == pytest.approx(np.std(bins))


def test_shot_labels_thresholds():
    train = np.array([30] * 150 + [50] * 50 + [80] * 3)
    labels = shot_labels(np.array([30, 50, 80, 5]), train, many=100, few=20)
    assert list(labels) == ["many", "medium", "few", "few"]


def _audits():
    df = synthetic_predictions(2000)
    return {"good": audit_variant(df, AuditSettings(n_boot=100)),
            "bad": audit_variant(df.assign(pred=df["pred"] + 10), AuditSettings(n_boot=100))}


def test_judge_point_and_interval_bounds():
    audits = _audits()
    good_mae = audits["good"]["overall"]["mae"]
    limit = (good_mae["ci"][0] + good_mae["value"]) / 2  # between the lower bound and the estimate
    rules = [ThresholdRule(metric="mae", max=limit, judge="point"),
             ThresholdRule(metric="mae", max=limit, judge="ci_lower"),
             ThresholdRule(metric="mae", max=limit, judge="ci_upper")]
    rows = [r for r in judge(rules, audits) if r["variant"] == "good"]
    assert [r["passed"] for r in rows] == [False, True, False]
    assert rows[1]["judged_value"] == good_mae["ci"][0]
    text = table_text([Check.model_validate(r) for r in judge(rules, audits)], only_failed=True)
    assert "FAIL" in text and "pass" not in text


def test_judge_worst_group_difference_spread_and_nan():
    audits = _audits()
    rules = [ThresholdRule(metric="mae", grouping="ethnicity", statistic="worst_group", max=100),
             ThresholdRule(metric="mae", grouping="ethnicity", statistic="difference", max=0.01),
             ThresholdRule(metric="age_bin_spread", max=100),
             ThresholdRule(metric="cs5", grouping="overall", min=0.99)]
    rows = judge(rules, audits)
    good = [r for r in rows if r["variant"] == "good"]
    assert good[0]["passed"] and good[0]["group"] == "Others"
    assert not good[1]["passed"] and "Others vs" in good[1]["group"]
    assert good[2]["passed"]
    assert not good[3]["passed"]
    # a number that cannot be computed fails the gate
    broken = {"x": {"overall": {}, "groupings": {"ethnicity": {"disparity": {}}}}}
    r = judge([ThresholdRule(metric="mae", grouping="ethnicity", statistic="worst_group", max=5)], broken)[0]
    assert math.isnan(r["value"]) and not r["passed"]


@pytest.mark.parametrize("rules, key", [
    ([{"metric": "speed", "max": 1}], "rules.0.metric"),
    ([{"metric": "mae"}], "rules.0"),
    ([{"metric": "mae", "max": 1, "min": 0}], "rules.0"),
    ([{"metric": "mae", "grouping": "ethnicity", "max": 1}], "rules.0"),
    ([{"metric": "mae", "max": "high"}], "rules.0.max"),
    ([{"metric": "mae", "max": 1, "colour": "red"}], "rules.0.colour"),
])
def test_invalid_rules_are_one_line_errors_naming_the_key(rules, key):
    with pytest.raises(AgefairError) as exc:
        validate(FairnessConfig, {"rules": rules}, "fairness.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("fairness.yaml: ") and key in msg


def test_shipped_fairness_config_is_valid():
    cfg = load_fairness_config()
    assert cfg.n_boot == 1000 and cfg.min_group_size == 30 and len(cfg.rules) >= 4


def test_point_values_from_group_sums_equal_metricframe_on_every_grouping():
    """The default path's per-group values, differences and ratios are MetricFrame's (bootstrap: fairlearn)."""
    df = synthetic_predictions(900)
    for cols in (["gender"], ["ethnicity"], ["age_bin", "ethnicity"]):
        fast = grouped_metrics(df, cols, AuditSettings(n_boot=0))
        slow = grouped_metrics(df, cols, AuditSettings(n_boot=0, bootstrap="fairlearn"))
        assert [g["group"] for g in fast["groups"]] == [g["group"] for g in slow["groups"]]
        for a, b in zip(fast["groups"], slow["groups"]):
            assert a["n"] == b["n"]
            for m in ("mae", "rmse", "bias", "cs5"):
                assert a[m]["value"] == pytest.approx(b[m]["value"], rel=1e-12)
        for m in ("mae", "rmse", "bias", "cs5"):
            fd, sd = fast["disparity"].get(m), slow["disparity"].get(m)
            if sd is None:
                assert fd is None
                continue
            for k in ("worst_group", "best_group"):
                assert fd[k] == sd[k]
            for k in ("worst", "best", "difference", "ratio"):
                assert fd[k] == pytest.approx(sd[k], rel=1e-12)
