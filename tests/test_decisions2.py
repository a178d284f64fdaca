"""Issue 14, steps 4-6: age-standardised gaps, the regression gate against a previous audit
(--compare-to), label-noise suspects, AAR and error slopes -- in the summary, the rules and the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from bad_input_helpers import cli, one_line_error
from conftest import jpeg_bytes

from agefair.core.config import FairnessConfig, ThresholdRule
from agefair.data.labels import age_bin
from agefair.fairness.auditing.age_adjusted import standardised_groupings
from agefair.fairness.auditing.thresholds import judge
from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.metrics import AuditSettings, audit_variant

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


# --------------------------------------------------------------------------- the audit command on a labels CSV

N_ROWS = 240
WRONG = [3, 50, 101, 150, 201]  # rows whose labels are planted wrong (true age + 40)


def rules_file(path, rules, **extra):
    path.write_text(yaml.safe_dump({"n_boot": 100, "min_group_size": 10, "gallery_k": 0,
                                    "comparisons": {"n_perm": 100}, "rules": rules, **extra}))
    return path


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """A labels CSV (file, age, group) over tiny images; two models' predictions files that agree closely
    on every row (the planted wrong labels: both far from the label, close to the true age)."""
    root = tmp_path_factory.mktemp("decisions2")
    rng = np.random.default_rng(1)
    (root / "data" / "img").mkdir(parents=True)
    true_age = rng.integers(5, 80, N_ROWS)
    label = true_age.copy()
    label[WRONG] = true_age[WRONG] + 40
    files = [f"img/{i}.jpg" for i in range(N_ROWS)]
    for f in files:
        (root / "data" / f).write_bytes(jpeg_bytes(rng, size=(40, 40)))
    group = np.where(np.arange(N_ROWS) % 2 == 0, "x", "y")
    pd.DataFrame({"file": files, "age": label, "group": group}).to_csv(root / "data" / "labels.csv", index=False)
    noise = rng.normal(0, 3, N_ROWS)
    for name, shift in (("a", 0.0), ("b", 0.5)):
        pd.DataFrame({"file": files, "pred": true_age + noise + shift}).to_csv(root / f"{name}.csv", index=False)
    worse = true_age + noise + np.where(group == "x", 4.0, 0.0)
    pd.DataFrame({"file": files, "pred": worse}).to_csv(root / "a_worse.csv", index=False)
    return root


def audit(ds, out, capsys, *extra, rules=None, a="a.csv"):
    thresholds = rules_file(out.parent / f"{out.name}.yaml", rules or [{"metric": "mae", "max": 1000}])
    return cli("audit", ["--data", str(ds / "data" / "labels.csv"), "--predictions", str(ds / a), "--predictions",
                         str(ds / "b.csv"), "--name", "a", "--name", "b", "--thresholds", str(thresholds),
                         "--out", str(out), "--work", str(ds / "work"), "--quiet", *map(str, extra)], capsys)


CHANGE_OK = {"metric": "mae", "grouping": "group", "statistic": "change", "max": 0.5, "judge": "ci_lower"}
CHANGE_OVERALL = {"metric": "mae", "grouping": "overall", "statistic": "change", "max": 0.5, "judge": "point"}


def test_compare_to_passes_and_fails_with_exit_codes(ds, tmp_path, capsys):
    old = tmp_path / "old"
    code, out, _ = audit(ds, old, capsys, rules=[CHANGE_OK])
    assert code == 0, out
    s = json.loads((old / "summary.json").read_text())
    assert "compare_to" not in s and any("needs --compare-to" in r["reason"] for r in s["thresholds_not_applicable"])
    assert (old / "summary.json").is_symlink()  # published: resolved through the symlink below
    code, out, _ = audit(ds, tmp_path / "same", capsys, "--compare-to", old / "summary.json",
                         rules=[CHANGE_OK, CHANGE_OVERALL])
    assert code == 0, out
    s = AuditSummary.model_validate(json.loads((tmp_path / "same" / "summary.json").read_text()))
    assert s.compare_to.models == ["a", "b"] and s.compare_to.matched["a"]["rows"] == s.compare_to.matched["a"]["new_rows"] >= N_ROWS - 5
    assert all(r.difference == 0 for r in s.compare_to.overall + s.compare_to.groups)
    changes = [c for c in s.thresholds if c.statistic == "change"]
    assert len(changes) == 4 and all(c.passed for c in changes)
    assert "compared with the previous audit" in out
    page = (tmp_path / "same" / "report.html").read_text()
    assert 'id="compare-to"' in page and 'id="compare-to-groups"' in page
    code, out, _ = audit(ds, tmp_path / "worse", capsys, "--compare-to", old, rules=[CHANGE_OK],
                         a="a_worse.csv")
    assert code == 1 and "fairness thresholds FAILED" in out
    s = json.loads((tmp_path / "worse" / "summary.json").read_text())
    failed = [c for c in s["thresholds"] if not c["passed"]]
    assert [(c["variant"], c["group"]) for c in failed] == [("a", "x")] and failed[0]["judged_value"] > 0.5


def test_compare_to_refuses_other_data_or_missing_predictions_in_one_line(ds, tmp_path, capsys):
    old = tmp_path / "old"
    assert audit(ds, old, capsys)[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    s = json.loads((old / "summary.json").read_text())
    s["dataset"]["manifest_hash"] = "0" * 64
    (other / "summary.json").write_text(json.dumps(s))
    shutil.copy(old / "predictions.csv", other / "predictions.csv")
    code, _, err = audit(ds, tmp_path / "n1", capsys, "--compare-to", other / "summary.json")
    one_line_error(code, err, "data manifest hash", "differs")
    (other / "predictions.csv").unlink()
    code, _, err = audit(ds, tmp_path / "n2", capsys, "--compare-to", other / "summary.json")
    one_line_error(code, err, "predictions.csv", "missing or unreadable")


def test_label_noise_suspects_aar_and_slope_rules(ds, tmp_path, capsys):
    rules = [{"metric": "aar", "min": 0.5}, {"metric": "aar", "min": 9.9, "name": "aar too strict"},
             {"metric": "error_slope", "grouping": "group", "statistic": "worst_group", "max": 0.5},
             {"metric": "error_slope", "max": 0.0001, "judge": "ci_lower", "name": "slope too strict"}]
    code, out, _ = audit(ds, tmp_path / "rep", capsys, rules=rules)
    assert code == 1
    s = AuditSummary.model_validate(json.loads((tmp_path / "rep" / "summary.json").read_text()))
    noise = s.label_noise
    assert {x.file for x in noise.suspects} <= {f"img/{i}.jpg" for i in WRONG} and len(noise.suspects) >= 4
    assert all(set(x.predictions) == {"a", "b"} and x.thumbnail.startswith("data:image/png") for x in noise.suspects)
    overall = [r for r in noise.sensitivity if r.grouping is None and r.model == "a"][0]
    assert overall.n_flagged == len(noise.suspects) and overall.without_flagged < overall.with_flagged - 0.5
    checks = {(c.variant, c.rule): c for c in s.thresholds}
    assert checks[("a", "aar value")].passed and not checks[("a", "aar too strict")].passed
    assert checks[("a", "error_slope worst_group by group")].passed
    assert not checks[("a", "slope too strict")].passed
    assert s.audit("a").aar.aar > 0 and s.audit("a").error_slopes[0].grouping is None
    page = (tmp_path / "rep" / "report.html").read_text()
    assert 'id="noise-suspects"' in page and 'id="aar-table"' in page and 'id="slope-table"' in page
    assert page.count('class="thumb"') == len(noise.suspects) and 'id="noise-sensitivity-table"' in page


def test_aar_and_slope_rule_validation():
    with pytest.raises(ValueError, match="aar is one number per model"):
        ThresholdRule(metric="aar", max=5)
    with pytest.raises(ValueError, match="error_slope"):
        ThresholdRule(metric="error_slope", grouping="group", statistic="difference", max=1)
    with pytest.raises(ValueError, match="statistic change"):
        ThresholdRule(metric="rmse", statistic="change", max=1)
    assert FairnessConfig.model_validate({"label_noise": {"k_years": 10, "enabled": False}}).label_noise.k_years == 10
