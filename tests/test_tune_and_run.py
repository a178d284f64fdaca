"""``python -m agefair.tune`` and the one-command ``python -m agefair.run`` on tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import yaml
from train_helpers import REPO_ROOT, make_train_folder, subprocess_env, write_override


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
