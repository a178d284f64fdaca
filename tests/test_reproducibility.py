"""Reproducibility (issue 6): the same seed gives the same report numbers, and the report records
everything needed to reproduce them.

Covered elsewhere: the same seed gives the same split (test_split::test_make_split_seeded,
test_split::test_folder_split_seed, test_utkface_data::test_split_csv_reproducible) and the same
training history on CPU (test_train_loop::test_same_seed_same_history). Here the whole chain runs
twice from nothing (a fresh work folder each time: scan, split, image cache, training, predictions,
bootstrap) and summary.json must hold the same numbers; then the command the report records is
run as written and must give them again.
"""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from train_helpers import make_train_folder, train_settings, write_override  # noqa: F401 (autouse: 1 thread, no PNG)

from agefair.core.errors import run_cli

# Fields that are about when, where and how fast the run happened, not about its results.
VOLATILE = {"generated", "seconds", "timings", "command", "reproduce", "checkpoint", "checkpoint_sha256",
            "data_dir", "thresholds_file", "torch_threads", "this_session_seconds", "git_dirty", "git_commit"}
VOLATILE_HISTORY = {"seconds", "train_img_per_s"}
# a variant's conformal calibration: where its calibration.json lies and that file's hash (it records the
# checkpoint's hash and when it was made); its quantiles and every coverage number are results
VOLATILE_CALIBRATION = {"file", "sha256", "source"}


def cli(module: str, argv: list[str]) -> int:
    import importlib

    with pytest.raises(SystemExit) as exc:
        run_cli(importlib.import_module(f"agefair.{module}").main, argv)
    return exc.value.code


def results_only(obj, key=None):
    """``obj`` without the volatile fields (recursively); history rows without their timings."""
    if isinstance(obj, dict):
        drop = (VOLATILE_HISTORY if key == "history_row" else
                VOLATILE | VOLATILE_CALIBRATION if key == "calibration" else VOLATILE)
        return {k: results_only(v, "history" if k == "history" else k) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [results_only(v, "history_row" if key == "history" else None) for v in obj]
    return obj


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same data, config and seeds, run twice from nothing: train one variant, then audit."""
    root = tmp_path_factory.mktemp("repro")
    make_train_folder(root / "data")
    cfg = write_override(root / "small.yaml")
    th = root / "fairness.yaml"
    th.write_text(yaml.safe_dump({"n_boot": 200, "min_group_size": 2, "gallery_k": 0,
                                  "rules": [{"metric": "mae", "max": 1000},
                                            {"metric": "mae", "grouping": "ethnicity", "statistic": "difference",
                                             "max": 1000, "judge": "ci_lower"}]}))
    summaries = []
    for k in (1, 2):
        work, runs, out = root / f"work{k}", root / f"runs{k}", root / f"report{k}"
        assert cli("train", ["--variant", "baseline", "--preset", "cpu", "--config", str(cfg), "--data",
                             str(root / "data"), "--work", str(work), "--out", str(runs), "--epochs", "1",
                             "--quiet"]) == 0
        assert cli("audit", ["--runs", str(runs), "--data", str(root / "data"), "--work", str(work), "--out", str(out),
                             "--thresholds", str(th), "--no-gallery", "--quiet"]) == 0
        summaries.append(json.loads((out / "summary.json").read_text()))
    return root, summaries


def test_same_seed_same_report_numbers(two_runs):
    _, (a, b) = two_runs
    assert results_only(a) == results_only(b)
    # the comparison is not vacuous: the numbers are there, with their intervals
    mae = a["variants"]["baseline"]["audit"]["overall"]["mae"]
    assert mae["value"] > 0 and mae["ci"][0] < mae["value"] < mae["ci"][1]
    training = a["variants"]["baseline"]["training"]
    assert len(training["history"]) == training["epoch"] >= 1  # model.pt: the best epoch's history
    assert a["leaderboard"] and a["thresholds"] and a["variants"]["baseline"]["audit"]["groupings"]["ethnicity"]


def test_report_records_what_reproduces_it(two_runs, capsys):
    root, (a, _) = two_runs
    p = a["provenance"]
    for key in ("data_dir", "manifest_hash", "split_seed", "split", "thresholds_file", "audit_settings",
                "git_commit", "git_dirty", "versions", "device", "precision", "torch_threads", "data_config",
                "command", "reproduce"):
        assert p.get(key) is not None, key
    assert p["audit_settings"]["seed"] == 0 and p["audit_settings"]["n_boot"] == 200
    assert p["data_config"]["age_bins"] == [0, 10, 20, 30, 40, 50, 60, 70]
    assert {"torch", "numpy", "fairlearn", "pandas"} <= set(p["versions"])
    training = a["variants"]["baseline"]["training"]
    assert len(training["checkpoint_sha256"]) == 64
    assert training["config"]["train"]["seed"] == 0 and training["meta"]["split_seed"] == 0
    assert training["meta"]["manifest_hash"] == p["manifest_hash"]
    # the recorded command, run as written (plus a fresh work and output folder), gives the same numbers
    argv = shlex.split(p["reproduce"])
    assert argv[:3] == ["python", "-m", "agefair.audit"]
    out = root / "reproduced"
    assert cli("audit", argv[3:] + ["--work", str(root / "work3"), "--out", str(out), "--no-gallery", "--quiet"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert results_only(again) == results_only(a)
    # and the report shows it
    page = (root / "report1" / "report.html").read_text(encoding="utf-8")
    for label in ("to reproduce", "uncommitted changes", "torch threads", "Data configuration (YAML)"):
        assert label in page, label
