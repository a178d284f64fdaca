"""Interruptions: whatever moment a run is stopped at, its outputs are one whole run or report, old or new.

- ``train --overwrite`` of a finished run writes the new run in ``runs/.<variant>.new`` and swaps it
  in at its first saved epoch: stopped before, the previous run is intact (the staging folder is
  removed by the next train, --resume or --overwrite); after, the folder is the new, unfinished run.
- ``audit`` publishes report.html, summary.json and predictions.csv together (agefair.core.publish).
- ``predict --out FILE`` replaces the file in one rename.

The slow test starts each command as a subprocess and sends SIGINT or SIGKILL after a seeded random
delay (from the start, or from the moment a staging folder appears), then checks the outputs by
their run identity: config.yaml's run section against model.pt's and last.pt's stored meta and
summary.json; summary.json's ``generated`` against the report's and predictions.csv's rows.
SIGINT must print ``agefair: interrupted`` and exit 130.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from train_helpers import REPO_ROOT, subprocess_env, train_env, train_settings  # noqa: F401

from agefair import predict, train
from agefair.models.checkpoint import load_checkpoint
from agefair.models.runs import find_variants, unfinished_runs

VARIANT = "baseline"
OLD_SEED = 1


def train_args(env, seed: int, epochs: int, *extra: str) -> list[str]:
    return env.args(VARIANT, epochs, "--seed", str(seed), *extra)


def run_identity(run: Path) -> int:
    """The seed of the one run the folder holds; fails on any file from another run."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())["run"]
    best, last = load_checkpoint(run / "model.pt"), load_checkpoint(run / "last.pt")
    assert best["meta"] == cfg and last["meta"] == cfg, "checkpoints of another run than config.yaml"
    epochs = [h["epoch"] for h in last["history"]]
    assert set(pd.read_csv(run / "history.csv")["epoch"]) <= set(epochs)
    if (run / "summary.json").exists():
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs_run"] == len(epochs) and summary["best_val_mae"] == pytest.approx(best["val_mae"])
    return cfg["seed"]


@pytest.fixture(scope="module")
def finished(train_env):
    """A finished 1-epoch run (seed 1) in runs/, trained in-process."""
    assert train.main(train_args(train_env, OLD_SEED, 1)) == 0
    return train_env.root / "runs"


def test_overwrite_stopped_before_its_first_epoch_keeps_the_previous_run(finished, train_env, monkeypatch,
                                                                          capsys):
    import agefair.training.trainer as trainer

    run = finished / VARIANT
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_one_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        train.main(train_args(train_env, 5, 1, "--overwrite"))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert (finished / f".{VARIANT}.new" / "config.yaml").exists()  # the new run's files stay apart
    assert find_variants(finished) == [VARIANT] and unfinished_runs(finished) == []
    # --resume continues the previous run (finished: nothing to do) and removes the staging folder
    capsys.readouterr()
    assert train.main(train_args(train_env, OLD_SEED, 1, "--resume")) == 0
    assert "interrupted --overwrite" in capsys.readouterr().err
    assert not (finished / f".{VARIANT}.new").exists() and run_identity(run) == OLD_SEED
    # an --overwrite that gets through its first epoch replaces the run: nothing of the old one is left
    assert train.main(train_args(train_env, 6, 1, "--overwrite")) == 0
    assert run_identity(run) == 6 and sorted(p.name for p in finished.iterdir()) == [VARIANT]
    assert train.main(train_args(train_env, OLD_SEED, 1, "--overwrite")) == 0  # back to the module's run


# --------------------------------------------------------------------------- signals at random moments

def start(module: str, args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"agefair.{module}", *args], cwd=REPO_ROOT,
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True)


def stop_at_random(proc: subprocess.Popen, sig: int, delay: float, log: Path,
                   after: Path | None = None) -> float | None:
    """Send ``sig`` ``delay`` seconds after the start (or after ``after`` appears); check SIGINT's exit.

    Returns the wall-clock time the signal was sent (None when the command finished first)."""
    t0 = time.monotonic()
    if after is not None:
        while not after.exists() and proc.poll() is None and time.monotonic() - t0 < 300:
            time.sleep(0.01)
        t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < delay:
        time.sleep(0.01)
    sent = None
    if proc.poll() is None:
        sent = time.time()
        proc.send_signal(sig)
    code = proc.wait(timeout=300)
    err = log.read_text()
    if code in (0, 1):  # finished before the signal
        return None
    assert "Traceback" not in err, err
    if sig == signal.SIGINT:
        assert code == 130 and err.splitlines()[-1] == "agefair: interrupted", (code, err)
    else:
        assert code == -signal.SIGKILL, (code, err)
    return sent


def check_report(out: Path) -> str:
    """The ``generated`` stamp of the one audit that out/ holds; fails on a mix."""
    summary = json.loads((out / "summary.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    preds = pd.read_csv(out / "predictions.csv")
    assert summary["generated"] in page, "report.html of another audit than summary.json"
    assert len(preds) == summary["dataset"]["images_in_split"] * len(summary["variants"])
    return summary["generated"]


@pytest.mark.slow
def test_sigint_and_sigkill_at_random_moments(finished, train_env, tmp_path):
    rng = random.Random(20240607)
    env = train_env
    runs = finished
    # train --overwrite of the finished run: measure an uninterrupted one, then stop three at random
    t0 = time.monotonic()
    log = tmp_path / "train.log"
    proc = start("train", train_args(env, 10, 3, "--overwrite"), log)
    assert proc.wait(timeout=600) == 0, log.read_text()
    duration = time.monotonic() - t0
    assert run_identity(runs / VARIANT) == 10
    seeds = {10}
    staging = runs / f".{VARIANT}.new"
    for i, (sig, from_staging) in enumerate([(signal.SIGKILL, False), (signal.SIGINT, True), (signal.SIGKILL, True)]):
        seed = 11 + i
        proc = start("train", train_args(env, seed, 3, "--overwrite"), log)
        delay = rng.uniform(0, 3) if from_staging else rng.uniform(0.2, 1.0) * duration
        stop_at_random(proc, sig, delay, log, after=staging if from_staging else None)
        got = run_identity(runs / VARIANT)
        assert got in seeds | {seed}, got
        seeds.add(got)
        assert find_variants(runs) == [VARIANT]

    # audit: one uninterrupted, then stopped at random moments
    out = tmp_path / "reports"
    audit_args = ["--runs", str(runs), "--out", str(out), "--data", str(env.data), "--work", str(env.root / "work"),
                  "--no-gallery", "--quiet"]
    t0 = time.monotonic()
    proc = start("audit", audit_args, log)
    assert proc.wait(timeout=600) in (0, 1), log.read_text()
    duration = time.monotonic() - t0
    stamps = {check_report(out)}
    for sig in (signal.SIGINT, signal.SIGKILL, signal.SIGINT):
        time.sleep(1.1)  # a new audit has a new ``generated`` stamp
        proc = start("audit", audit_args, log)
        sent = stop_at_random(proc, sig, rng.uniform(0.3, 1.05) * duration, log)
        stamp = check_report(out)
        # a new report is whole (check_report) and was published before the signal: a stopped audit
        # may have published already (the signal came while it printed or exited), never after
        assert stamp in stamps or sent is None or (out / "summary.json").stat().st_mtime <= sent
        stamps.add(stamp)

    # predict --out: the file is the old one or the whole new one
    ages = tmp_path / "ages.out"
    images = sorted(str(p) for p in env.data.iterdir())[:40]
    base = ["--model", str(runs / VARIANT / "model.pt"), "--detect", "never", "--out", str(ages), *images]
    assert predict.main([*base, "--format", "json"]) == 0
    old = ages.read_text()
    t0 = time.monotonic()
    proc = start("predict", [*base, "--format", "csv"], log)
    assert proc.wait(timeout=600) == 0, log.read_text()
    duration = time.monotonic() - t0
    new = ages.read_text()
    assert new != old and len(new.splitlines()) == len(images) + 1
    for sig in (signal.SIGKILL, signal.SIGINT):
        assert predict.main([*base, "--format", "json"]) == 0
        proc = start("predict", [*base, "--format", "csv"], log)
        stop_at_random(proc, sig, rng.uniform(0.3, 1.05) * duration, log)
        assert ages.read_text() in (old, new)
