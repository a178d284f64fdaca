"""--resume after ``kill -9``: the finished history equals an uninterrupted run's; refusals and --overwrite."""

from __future__ import annotations

import json
import os
import signal
import time

import pandas as pd
import pytest
import torch
from train_helpers import popen_train_cli, read_history, train_env, train_settings  # noqa: F401

from agefair.core.errors import AgefairError
from agefair.train import main

VARIANT = "oversample"  # its sampler is seeded per epoch too: a resumed epoch must replay the same draws
EPOCHS = 3


@pytest.fixture(scope="module")
def reference_run(train_env):
    """An uninterrupted 3-epoch run (in-process)."""
    out = train_env.root / "reference"
    assert main(train_env.args(VARIANT, EPOCHS, out=out)) == 0
    return out / VARIANT


def history_rows(path) -> int:
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def assert_same_history(got: list[dict], want: list[dict], tol: float = 1e-5) -> None:
    assert [h["epoch"] for h in got] == [h["epoch"] for h in want]
    for g, w in zip(got, want):
        for key in ("train_loss", "train_mae", "val_loss", "val_mae", "lr"):
            assert g[key] == pytest.approx(w[key], rel=tol, abs=tol), f"epoch {g['epoch']} {key}"


def test_resume_after_kill_9_matches_an_uninterrupted_run(reference_run, train_env, capsys):
    out = train_env.root / "killed"
    run_dir = out / VARIANT
    log_path = train_env.root / "killed.log"
    with open(log_path, "w") as log:
        proc = popen_train_cli(train_env.args(VARIANT, EPOCHS, out=out), log)
        try:
            deadline = time.monotonic() + 240
            # Kill as soon as epoch 1 is on disk: epochs 2 and 3 (a second or more each) cannot both
            # finish within one 10 ms poll.
            while history_rows(run_dir / "history.csv") < 1:
                if proc.poll() is not None:
                    pytest.fail(f"training exited ({proc.returncode}) before it could be killed:\n"
                                + log_path.read_text())
                if time.monotonic() > deadline:
                    pytest.fail("no epoch finished within 240 s:\n" + log_path.read_text())
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL, log_path.read_text()
    assert "done:" not in log_path.read_text()

    rows_at_kill = history_rows(run_dir / "history.csv")
    assert 1 <= rows_at_kill < EPOCHS, "the run finished before the kill; the test proves nothing"
    # kill -9 can strike mid-write: last.pt is still a complete checkpoint (written to a temp file, then renamed)
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    # history.csv is written right after last.pt, so last.pt may be one epoch ahead of it
    assert last["epoch"] in (rows_at_kill, rows_at_kill + 1)
    assert last["epoch"] < EPOCHS
    torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)

    capsys.readouterr()
    assert main(train_env.args(VARIANT, EPOCHS, "--resume", out=out)) == 0
    printed = capsys.readouterr().out
    assert f"[{VARIANT}] resuming after epoch {last['epoch']}" in printed
    # only the remaining epochs were trained in this session
    trained = [line for line in printed.splitlines() if line.startswith(f"[{VARIANT}] epoch ")]
    assert [line.split()[2] for line in trained] == [f"{e}/{EPOCHS}" for e in range(last["epoch"] + 1, EPOCHS + 1)]

    ref_last = torch.load(reference_run / "last.pt", map_location="cpu", weights_only=True)
    got_last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert_same_history(got_last["history"], ref_last["history"])

    got_csv, ref_csv = read_history(run_dir), read_history(reference_run)
    assert got_csv["epoch"].tolist() == [1, 2, 3]
    for col in ("train_loss", "val_mae"):
        pd.testing.assert_series_equal(got_csv[col], ref_csv[col], rtol=1e-5, atol=1e-5)

    for name, tensor in ref_last["model"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(got_last["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)

    got_summary = json.loads((run_dir / "summary.json").read_text())
    ref_summary = json.loads((reference_run / "summary.json").read_text())
    assert got_summary["epochs_run"] == ref_summary["epochs_run"] == EPOCHS
    assert got_summary["best_epoch"] == ref_summary["best_epoch"]
    assert got_summary["best_val_mae"] == pytest.approx(ref_summary["best_val_mae"], abs=1e-5)
    best = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == ref_summary["best_epoch"]


def test_resume_of_a_finished_run_trains_nothing(reference_run, train_env, capsys):
    before = read_history(reference_run)
    assert main(train_env.args(VARIANT, EPOCHS, "--resume", out=reference_run.parent)) == 0
    printed = capsys.readouterr().out
    assert f"resuming after epoch {EPOCHS}" in printed
    assert "] epoch " not in printed
    pd.testing.assert_frame_equal(read_history(reference_run), before)
    assert json.loads((reference_run / "summary.json").read_text())["epochs_run"] == EPOCHS


@pytest.mark.parametrize("extra, message", [
    (["--limit", "40"], "another --limit"),
    (["--seed", "1"], "another configuration"),
])
def test_resume_refuses_a_different_run(reference_run, train_env, extra, message):
    before = (reference_run / "last.pt").read_bytes()
    with pytest.raises(AgefairError, match=message) as exc:
        main(train_env.args(VARIANT, EPOCHS, "--resume", *extra, out=reference_run.parent))
    assert "\n" not in str(exc.value)
    assert "--overwrite" in str(exc.value)
    assert (reference_run / "last.pt").read_bytes() == before


def test_resume_with_nothing_to_resume_starts_fresh(train_env, capsys):
    out = train_env.root / "fresh"
    assert main(train_env.args("baseline", 1, "--resume", "--limit", "40", out=out)) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert read_history(out / "baseline")["epoch"].tolist() == [1]


def test_overwrite_starts_over(train_env, capsys):
    out = train_env.root / "overwrite"
    assert main(train_env.args("baseline", 1, "--limit", "40", out=out)) == 0
    assert main(train_env.args("baseline", 1, "--limit", "40", "--overwrite", out=out)) == 0
    assert "resuming" not in capsys.readouterr().out
    assert read_history(out / "baseline")["epoch"].tolist() == [1]
