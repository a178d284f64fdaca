"""``python -m agefair.audit`` end to end on tiny synthetic runs: outputs, exit codes, caching."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from train_helpers import REPO_ROOT, make_train_folder, subprocess_env, write_override

VARIANTS = ["baseline", "oversample", "weighted", "lds"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    make_train_folder(root / "data")
    cfg = write_override(root / "small.yaml", {"model": {"image_size": 64}})
    args = ["--variant", *VARIANTS, "--preset", "cpu", "--config", str(cfg), "--data", str(root / "data"),
            "--work", str(root / "work"), "--out", str(root / "runs"), "--epochs", "1", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "agefair.train", *args], cwd=REPO_ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def audit(root, *extra, out="report", thresholds=None):
    th = thresholds or write_thresholds(root / "lenient.yaml", max_mae=1000)
    cmd = [sys.executable, "-m", "agefair.audit", "--runs", str(root / "runs"), "--data", str(root / "data"),
           "--work", str(root / "work"), "--out", str(root / out), "--thresholds", str(th), "--quiet", *extra]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)


def write_thresholds(path, max_mae, n_boot=200):
    path.write_text(yaml.safe_dump({
        "n_boot": n_boot, "min_group_size": 2, "gallery_k": 2,
        "rules": [{"metric": "mae", "max": max_mae},
                  {"metric": "mae", "grouping": "ethnicity", "statistic": "worst_group", "max": max_mae},
                  {"metric": "age_bin_spread", "max": max_mae}],
    }))
    return path


def test_audit_writes_report_summary_predictions_and_passes(trained):
    done = audit(trained)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = trained / "report"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == set(VARIANTS)
    assert summary["passed"] is True
    assert {r["variant"] for r in summary["leaderboard"]} == set(VARIANTS)
    assert summary["provenance"]["manifest_hash"] and summary["provenance"]["versions"]["fairlearn"]
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns[:7]) == ["file", "variant", "age", "pred", "gender", "ethnicity", "age_bin"]
    n_test = len(preds) // len(VARIANTS)
    assert preds.groupby("variant").size().eq(n_test).all()
    # the overall MAE in the summary is the MAE of the written predictions
    for v in VARIANTS:
        p = preds[preds["variant"] == v]
        assert summary["variants"][v]["audit"]["overall"]["mae"]["value"] == pytest.approx((p["pred"] - p["age"]).abs().mean(), abs=1e-3)
    # conformal intervals: each run's calibration.json (written by train, on the validation rows) is applied
    n_val = summary["data"]["split"]["counts"]["total"]["val"]
    for v in VARIANTS:
        iv = summary["variants"][v]["audit"]["intervals"]
        assert iv["calibration"]["source"].startswith("read from") and list(iv["methods"]) == ["marginal", "ethnicity"]
        assert json.loads((trained / "runs" / v / "calibration.json").read_text())["marginal"]["n"] == n_val
        assert iv["methods"]["marginal"]["n"] == n_test
    assert {"lo", "hi", "sigma"} <= set(preds.columns) and (preds["lo"] <= preds["hi"]).all()
    html = (out / "report.html").read_text()
    assert all(v in html for v in VARIANTS)
    assert 'id="intervals-table"' in html
    assert "data:image/jpeg;base64," in html  # Grad-CAM tiles embedded (JPEG thumbnails)
    assert "all 3 threshold checks passed" not in done.stderr
    assert "passed" in done.stdout


def test_second_audit_reuses_predictions_and_gives_same_numbers(trained):
    first = json.loads((trained / "report" / "summary.json").read_text()) if (trained / "report").exists() else None
    if first is None:
        assert audit(trained).returncode == 0
        first = json.loads((trained / "report" / "summary.json").read_text())
    cache = list((trained / "work").rglob("predictions/*.csv"))
    assert len(cache) == len(VARIANTS)
    done = audit(trained, "--no-gallery", out="report2")
    assert done.returncode == 0, done.stderr[-2000:]
    second = json.loads((trained / "report2" / "summary.json").read_text())
    assert second["leaderboard"] == first["leaderboard"]
    assert second["thresholds"] == first["thresholds"]


def test_too_strict_thresholds_exit_1_and_print_failing_rows(trained):
    strict = write_thresholds(trained / "strict.yaml", max_mae=0.01)
    done = audit(trained, "--no-gallery", out="strict", thresholds=strict)
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "thresholds FAILED" in done.stdout
    for v in VARIANTS:
        assert v in done.stdout


def test_variant_selection_and_missing_variant(trained):
    done = audit(trained, "--no-gallery", "--variant", "baseline", "lds", out="two")
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads((trained / "two" / "summary.json").read_text())["variants"]) == {"baseline", "lds"}
    done = audit(trained, "--variant", "nosuch", out="none")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agefair: error:") and "nosuch" in lines[0]


@pytest.mark.parametrize("case", ["missing_runs", "bad_thresholds"])
def test_bad_input_exits_2_with_one_line(trained, tmp_path, case):
    cmd = [sys.executable, "-m", "agefair.audit", "--data", str(trained / "data"), "--work", str(trained / "work"),
           "--out", str(tmp_path / "r")]
    if case == "missing_runs":
        cmd += ["--runs", str(tmp_path / "nope")]
        needle = "does not exist"
    else:
        bad = tmp_path / "bad.yaml"
        bad.write_text("rules:\n  - metric: happiness\n    max: 1\n")
        cmd += ["--runs", str(trained / "runs"), "--thresholds", str(bad)]
        needle = "rules.0.metric"
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agefair: error:") and needle in lines[0]
    assert "Traceback" not in done.stderr
