"""``python -m agefair.tune`` and the one-command ``python -m agefair.run`` on tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from train_helpers import REPO_ROOT, make_train_folder, subprocess_env, write_override

from agefair.cli.audit_job import AuditOutcome, print_audit
from agefair.fairness.results.result import AuditSummary, Check


def test_tune_writes_sweep_and_grid(tmp_path):
    make_train_folder(tmp_path / "data")
    cfg = write_override(tmp_path / "small.yaml")
    cmd = [sys.executable, "-m", "agefair.tune", "--config", str(cfg), "--data", str(tmp_path / "data"),
           "--work", str(tmp_path / "work"), "--out", str(tmp_path / "reports"), "--lrs", "0.0003,0.003",
           "--weight-decays", "0,0.01", "--grid-lrs", "1", "--epochs", "1", "--limit", "40", "--quiet"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    sweep = pd.read_csv(tmp_path / "reports" / "tune_lr_sweep.csv")
    grid = pd.read_csv(tmp_path / "reports" / "tune_grid.csv")
    assert sorted(sweep["lr"]) == [0.0003, 0.003]
    assert sweep["final_train_loss"].notna().all() and sweep["best_val_mae"].gt(0).all()
    best_lr = sweep.sort_values("final_train_loss")["lr"].iloc[0]
    assert set(grid["lr"]) == {best_lr} and sorted(grid["weight_decay"]) == [0.0, 0.01]
    assert (tmp_path / "reports" / "tune.html").stat().st_size > 10_000
    assert "best: lr" in done.stdout


def test_run_does_eda_train_audit_in_one_command(tmp_path):
    make_train_folder(tmp_path / "data")
    th = tmp_path / "th.yaml"
    th.write_text(yaml.safe_dump({"n_boot": 50, "min_group_size": 2, "gallery_k": 1,
                                  "rules": [{"metric": "mae", "max": 1000}]}))
    env = subprocess_env() | {"AGEFAIR_WORK": str(tmp_path / "work")}
    cmd = [sys.executable, "-m", "agefair.run", "--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
           "--out", str(tmp_path / "reports"), "--epochs", "1", "--limit", "40", "--thresholds", str(th), "--quiet"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "reports"
    for name in ("eda.html", "data_quality.json", "report.html", "summary.json", "predictions.csv"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"baseline", "oversample", "weighted", "groupdro", "bmse", "calibrated"}
    # the documented name (a link into the current generation, docs/audit.md), not where it points now
    assert f"report: {(out / 'report.html').absolute()}" in done.stdout
    assert done.stdout.index("1/3 data quality") < done.stdout.index("2/3 training") < done.stdout.index("3/3 audit")


def _stub_job(monkeypatch, summary: AuditSummary) -> None:
    """agefair.run with its data, EDA, training and audit stubbed: the audit's ending alone, in a moment."""
    import agefair.run as run

    request = type("Request", (), {"prepare": lambda self: None, "data_cfg": None})()
    monkeypatch.setattr(run, "data_request_from_args", lambda args: request)
    monkeypatch.setattr(run, "write_eda", lambda *a, **k: None)
    monkeypatch.setattr(run, "eda_text", lambda *a: "eda")
    monkeypatch.setattr(run, "train_all", lambda **k: [])
    monkeypatch.setattr(run, "select_variants", lambda *a: [])
    monkeypatch.setattr(run, "run_audit_job", lambda job, *, prepared, data_cfg, findings: AuditOutcome(
        print_audit(summary, job.out, None, findings=findings), summary))


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_run_ends_with_the_report_and_its_findings(strict, code, tmp_path, monkeypatch, capsys):
    """A failed threshold is a finding: the job exits 0 and says so (1 with --strict, as the audit command)."""
    import agefair.run as run

    checks = [Check(variant="bmse", rule="mae value", group="all", value=8.32, ci=[8.0, 8.6], judged_value=8.32,
                    op="<=", threshold=8.0, passed=False),
              Check(variant="baseline", rule="mae difference by gender", group="female vs male", value=1.9,
                    ci=[1.6, 2.2], judge="ci_lower", judged_value=1.6, op="<=", threshold=1.5, passed=False),
              Check(variant="baseline", rule="mae value", group="all", value=7.1, judged_value=7.1, op="<=",
                    threshold=8.0, passed=True)]
    _stub_job(monkeypatch, AuditSummary(passed=False, thresholds=checks, seconds=1.0))
    out = tmp_path / "reports"
    argv = ["--runs", str(tmp_path / "runs"), "--out", str(out), "--quiet", *(["--strict"] if strict else [])]
    assert run.main(argv) == code
    printed = capsys.readouterr().out
    assert "FAILED" not in printed
    ending = printed[printed.index("== done: the job completed"):]
    assert f"report: {(out / 'report.html').absolute()} (open in a browser" in ending
    assert "findings: 2 of 3 fairness threshold checks fail" in ending
    assert "  - bmse: mae value 8.32 > 8\n" in ending
    assert "  - baseline: mae difference by gender (female vs male) 1.60 > 1.5 (interval's lower end)" in ending
    assert ("--strict: exit 1" in ending) == strict


def test_run_ends_with_all_checks_passing(tmp_path, monkeypatch, capsys):
    import agefair.run as run

    ok = Check(variant="baseline", rule="mae value", group="all", value=7.1, judged_value=7.1, op="<=",
               threshold=8.0, passed=True)
    _stub_job(monkeypatch, AuditSummary(passed=True, thresholds=[ok], seconds=1.0))
    assert run.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--quiet", "--strict"]) == 0
    assert "findings: all 1 fairness threshold checks pass" in capsys.readouterr().out
