"""Conformal intervals in the audit (agefair.fairness.auditing.intervals), their rules and their report section,
on synthetic predictions: no model, no images."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from agefair.core.config import FairnessConfig, ThresholdRule
from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError
from agefair.fairness.auditing.intervals import Calibrated, audit_intervals, run_calibration
from agefair.fairness.auditing.thresholds import judge, not_applicable
from agefair.fairness.stats.metrics import AuditSettings
from agefair.models.calibration import load_run_calibration, save_run_calibration
from agefair.models.checkpoint import file_sha256
from agefair.models.runs import calibration_file

GROUPINGS = {"ethnicity": ["ethnicity"], "age_bin": ["age_bin"]}
SETTINGS = AuditSettings(n_boot=200, seed=0, min_group_size=30)


def frame(n: int, seed: int, noisy: str = "B") -> pd.DataFrame:
    """Predictions whose error spread is 3 years, 9 for group ``noisy``; sigma is the model's (constant) guess."""
    rng = np.random.default_rng(seed)
    eth = rng.choice(["A", noisy], n, p=[0.7, 0.3])
    age = rng.uniform(1, 90, n).round()
    pred = age + rng.normal(0, np.where(eth == noisy, 9.0, 3.0))
    return pd.DataFrame({"file": [f"f{seed}_{i}" for i in range(n)], "age": age, "pred": pred,
                         "sigma": np.full(n, 4.0), "ethnicity": eth,
                         "age_bin": np.where(age < 30, "young", "old")})


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "runs" / "baseline" / "model.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights v1")
    return path


def calibrated(checkpoint, settings=ConformalSettings(), n=3000) -> Calibrated:
    out = run_calibration(checkpoint=checkpoint, settings=settings, val_pred=lambda: frame(n, 1), head="expectation",
                          max_age=116, manifest_hash="m")
    assert isinstance(out, Calibrated)
    return out


def test_a_run_without_calibration_gets_one_written_then_reads_it(checkpoint):
    first = calibrated(checkpoint)
    assert "written to" in first.source and first.file == calibration_file(checkpoint)
    saved = load_run_calibration(first.file)
    assert saved == first.calibration and list(saved.mondrian) == ["ethnicity"]
    calls = []
    again = run_calibration(checkpoint=checkpoint, settings=ConformalSettings(), val_pred=lambda: calls.append(1),
                            head="expectation", max_age=116, manifest_hash="m")
    assert again.source.startswith("read from") and calls == []  # the validation split is not predicted again


def test_other_settings_refit_in_memory_and_a_retrained_checkpoint_rewrites(checkpoint):
    calibrated(checkpoint)
    before = calibration_file(checkpoint).read_text()
    other = calibrated(checkpoint, ConformalSettings(coverage=0.8))
    assert other.file is None and "other settings" in other.source and other.calibration.coverage == 0.8
    assert calibration_file(checkpoint).read_text() == before  # the run's file is left as it was
    checkpoint.write_bytes(b"weights v2")
    fresh = calibrated(checkpoint)
    assert "another checkpoint" in fresh.source and fresh.file is not None
    assert load_run_calibration(fresh.file).checkpoint_sha256 == file_sha256(checkpoint)


def test_without_a_validation_split_there_are_no_intervals_and_the_reason_is_given(checkpoint):
    out = run_calibration(checkpoint=checkpoint, settings=ConformalSettings(), val_pred=None, head="expectation",
                          max_age=116, manifest_hash="m")
    assert isinstance(out, str) and "no calibration.json" in out and "not the data it was trained on" in out


def report_cal(checkpoint):
    return load_run_calibration(calibration_file(checkpoint))


def test_marginal_coverage_is_unequal_and_mondrian_equalises_it(checkpoint):
    test = frame(6000, 2)
    report = audit_intervals(test, calibrated(checkpoint), groupings=GROUPINGS, settings=SETTINGS)
    assert list(report.methods) == ["marginal", "ethnicity"]
    assert {"lo", "hi"} <= set(test.columns) and (test["lo"] <= test["hi"]).all()
    marginal, mondrian = report.methods["marginal"], report.methods["ethnicity"]
    assert abs(marginal.overall.coverage["exact"].value - 0.9) < 0.02
    cov = {g.group: g.coverage["exact"].value for g in marginal.groupings["ethnicity"].groups}
    assert cov["A"] > 0.95 and cov["B"] < 0.8  # one width for all: the noisy group is under-covered
    n_val = {g.group: g.n for g in report_cal(checkpoint).mondrian["ethnicity"].groups}
    for g in mondrian.groupings["ethnicity"].groups:  # within 3 standard errors (calibration and test sampling)
        se = math.sqrt(0.09 / n_val[g.group] + 0.09 / g.n)
        assert abs(g.coverage["exact"].value - 0.9) < 3 * se, (g.group, g.coverage["exact"].value, se)
    width = {g.group: g.mean_width.value for g in mondrian.groupings["ethnicity"].groups}
    assert width["B"] > 2 * width["A"]  # equal coverage costs unequal widths
    assert mondrian.groupings["ethnicity"].disparity.width_ratio.value > 2


def test_intervals_do_not_depend_on_the_test_labels(checkpoint):
    cal = calibrated(checkpoint)
    a, b = frame(500, 3), frame(500, 3)
    b["age"] = 0.0
    audit_intervals(a, cal, groupings=GROUPINGS, settings=SETTINGS)
    audit_intervals(b, cal, groupings=GROUPINGS, settings=SETTINGS)
    assert np.array_equal(a["lo"], b["lo"]) and np.array_equal(a["hi"], b["hi"])


def rule(**kw) -> ThresholdRule:
    return ThresholdRule.model_validate(kw)


def test_coverage_and_width_rules_judge_the_statistic_they_name(checkpoint):
    audit = {"labels": "exact", "attributes": ["ethnicity"],
             "intervals": audit_intervals(frame(6000, 2), calibrated(checkpoint), groupings=GROUPINGS,
                                          settings=SETTINGS).to_json()}
    rules = [rule(metric="coverage", min=0.85),
             rule(metric="coverage", grouping="ethnicity", statistic="worst_group", min=0.85, judge="ci_upper"),
             rule(metric="coverage", grouping="ethnicity", statistic="worst_group", min=0.85, judge="ci_upper",
                  intervals="ethnicity"),
             rule(metric="coverage", grouping="ethnicity", statistic="difference", max=0.05),
             rule(metric="interval_width", grouping="ethnicity", statistic="ratio", max=2.0, intervals="ethnicity")]
    rows = judge(rules, {"m": audit})
    overall, worst_marginal, worst_mondrian, gap, ratio = rows
    assert overall["passed"] and overall["group"] == "all"
    assert worst_marginal["group"] == "B" and worst_marginal["value"] < 0.8 and not worst_marginal["passed"]
    assert worst_mondrian["passed"] and worst_mondrian["rule"].endswith("(Mondrian by ethnicity)")
    assert gap["group"] == "A vs B" and gap["value"] > 0.15 and not gap["passed"]
    assert ratio["value"] > 2 and not ratio["passed"]


def test_models_without_intervals_are_not_judged_by_interval_rules():
    r = rule(metric="coverage", min=0.85)
    assert judge([r], {"external": {"labels": "exact"}}) == []
    (na,) = not_applicable([r], {"external": {"labels": "exact"}})
    assert "no audited model has conformal intervals" in na["reason"]
    uncalibrated = {"labels": "exact", "intervals": {"notes": ["no intervals: why"]}}  # the report says why
    assert judge([r], {"m": uncalibrated}) == [] and not_applicable([r], {"m": uncalibrated})


@pytest.mark.parametrize("bad, message", [  # pydantic's ValidationError (a ValueError)
    ({"metric": "coverage", "grouping": "ethnicity", "statistic": "ratio", "min": 0.8}, "coverage: statistic"),
    ({"metric": "interval_width", "grouping": "ethnicity", "statistic": "difference", "max": 3}, "interval_width"),
    ({"metric": "mae", "max": 8, "intervals": "ethnicity"}, "intervals: applies"),
])
def test_bad_interval_rules_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        rule(**bad)


def test_conformal_settings_are_validated():
    assert FairnessConfig().conformal.alpha == pytest.approx(0.1)
    for bad in ({"coverage": 1.0}, {"score": "cdf"}, {"mondrian": ["ethnicity", "ethnicity"]}, {"mondrian": ["marginal"]}):
        with pytest.raises(ValidationError):
            FairnessConfig.model_validate({"conformal": bad})
    assert ConformalSettings().score_for("regression") == "abs"


def test_a_malformed_run_calibration_is_reported_not_used(checkpoint):
    calibration_file(checkpoint).write_text("{not json")
    out = calibrated(checkpoint)
    assert "unreadable" in out.source and load_run_calibration(out.file).marginal.n == 3000
    calibration_file(checkpoint).write_text('{"version": 1}')
    with pytest.raises(AgefairError, match="not a valid calibration"):
        load_run_calibration(calibration_file(checkpoint))


def test_saving_is_atomic_and_round_trips(checkpoint, tmp_path):
    cal = calibrated(checkpoint).calibration
    target = tmp_path / "copy.json"
    save_run_calibration(cal, target)
    assert load_run_calibration(target) == cal and not list(tmp_path.glob(".*.tmp"))


def test_the_report_section_shows_both_calibrations_and_the_over_confident_groups(tmp_path):
    from test_report import EVIL, VARIANTS, synthetic_predictions, synthetic_summary

    from agefair.reporting.report import render_html

    summary = synthetic_summary()
    for k, (v, (bias, sd)) in enumerate(VARIANTS.items()):
        ckpt = tmp_path / f"run{k}" / "model.pt"
        ckpt.parent.mkdir()
        ckpt.write_bytes(f"weights {k}".encode())
        cal = run_calibration(checkpoint=ckpt, settings=ConformalSettings(), head="regression", max_age=116,
                              manifest_hash="m",
                              val_pred=lambda v=v, bias=bias, sd=sd: synthetic_predictions(v, bias, sd, n=900, seed=1))
        test = synthetic_predictions(v, bias, sd)
        test.loc[test["ethnicity"] == "White", "pred"] += 25  # far off for one group: under-covered
        summary["variants"][v]["audit"]["intervals"] = audit_intervals(
            test, cal, groupings=GROUPINGS | {"gender": ["gender"]}, settings=SETTINGS).to_json()
    page = render_html(summary)
    section = page[page.index('<section id="intervals">'):]
    section = section[:section.index("</section>")]
    assert 'id="intervals-table"' in section and section.count("Mondrian by ethnicity") >= len(VARIANTS)
    over = section[section.index('id="intervals-over-confident"'):]
    assert "ethnicity White" in over.split("</ul>")[0]
    assert EVIL not in section and "&lt;b&gt;x&lt;/b&gt;" in section
    assert "Coverage and width by age bin" in section or "Coverage and width by age_bin" in section


def test_age_group_labels_are_covered_when_the_interval_overlaps_the_group(checkpoint):
    test = frame(3000, 4)
    lo = (test["age"] // 10) * 10
    test = test.drop(columns=["age"]).assign(age_lo=lo, age_hi=np.where(lo >= 70, np.inf, lo + 10),
                                            age_group=[f"{int(a)}-{int(a) + 9}" for a in lo])
    report = audit_intervals(test, calibrated(checkpoint), groupings={"ethnicity": ["ethnicity"]}, settings=SETTINGS)
    marginal = report.methods["marginal"]
    assert marginal.label_kind == "interval" and marginal.definitions == ["overlap", "contains"]
    overlap, contains = (marginal.overall.coverage[d].value for d in ("overlap", "contains"))
    assert overlap > 0.9 > contains > 0  # meeting the group is easier than holding all of it
    (row,) = judge([rule(metric="coverage", min=0.5)], {"m": {"labels": "interval", "intervals": report.to_json()}})
    assert row["value"] == pytest.approx(overlap)


def test_a_balanced_mse_softmax_is_no_distribution_and_its_old_calibration_is_replaced(checkpoint):
    from agefair.models.calibration import interval_head

    assert interval_head("expectation", "l1") == "expectation"
    assert interval_head("expectation", "bmse") == "regression" and interval_head("regression", "l1") == "regression"
    assert calibrated(checkpoint).calibration.marginal.score == "scaled"
    again = run_calibration(checkpoint=checkpoint, settings=ConformalSettings(), val_pred=lambda: frame(3000, 1),
                            head="regression", max_age=116, manifest_hash="m")
    assert "treats the model's head as expectation" in again.source and again.file is not None
    assert load_run_calibration(again.file).marginal.score == "abs"
