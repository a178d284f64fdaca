"""torchrun / DistributedDataParallel: two CPU processes with the gloo backend on a tiny synthetic set.

Checks that (a) both ranks finish, (b) the checkpoint holds what rank 0 reports, and (c) each saved
epoch's validation MAE equals a single-process evaluation of that epoch's weights.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
from train_helpers import REPO_ROOT, read_history, subprocess_env, train_env, train_settings  # noqa: F401

from agefair.core.config import TrainConfig, load_data_config
from agefair.data.prepare import prepare
from agefair.models.checkpoint import load_checkpoint, save_checkpoint
from agefair.models.network import create_model
from agefair.models.runtime import make_runtime
from agefair.training.batches import load_train_data
from agefair.training.distributed import DistContext
from agefair.training.evaluate import evaluate

VARIANT = "oversample"  # the sampler whose semantics sharding could break
EPOCHS = 2


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "agefair.train", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ddp_run(train_env):
    out = train_env.root / "ddp"
    proc = torchrun(train_env.args(VARIANT, EPOCHS, "--device", "cpu", out=out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / VARIANT, proc


def single_process_val_mae(train_env, state: dict) -> float:
    cfg = TrainConfig.model_validate(state["config"])
    prepared = prepare(train_env.data, load_data_config(), work_root=train_env.root / "work", progress=False)
    data = load_train_data(prepared, load_data_config(), cfg, state["meta"]["limit"], progress=False)
    model = create_model(cfg.model)
    model.load_state_dict(state["model"])
    rt = make_runtime("cpu", cfg.train.precision, cfg.train.channels_last)
    return evaluate(model.to(memory_format=torch.channels_last), data, data.val_rows, cfg, rt, DistContext(),
                    "val", progress=False)["mae"]


def test_both_ranks_finish(ddp_run):
    run_dir, proc = ddp_run
    assert "[rank 0/2] finished" in proc.stdout and "[rank 1/2] finished" in proc.stdout
    assert "2 processes: effective batch 32" in proc.stdout  # batch 16 per process (tests' small config)
    assert proc.stdout.count(f"[{VARIANT}] done:") == 1  # only rank 0 logs


def test_checkpoint_holds_what_rank_0_reports(ddp_run):
    run_dir, proc = ddp_run
    summary = json.loads((run_dir / "summary.json").read_text())
    best = load_checkpoint(run_dir / "model.pt")
    history = read_history(run_dir)
    assert summary["world_size"] == 2 and best["meta"]["world_size"] == 2
    assert best["meta"]["effective_batch_size"] == 32
    assert best["epoch"] == summary["best_epoch"]
    assert best["val_mae"] == pytest.approx(summary["best_val_mae"], abs=1e-9)
    assert history["val_mae"].min() == pytest.approx(summary["best_val_mae"], rel=1e-5)  # CSV keeps 6 digits
    assert f"best val MAE {summary['best_val_mae']:.3f}" in proc.stdout
    assert len(history) == EPOCHS and load_checkpoint(run_dir / "last.pt")["epoch"] == EPOCHS


def test_validation_mae_equals_single_process_evaluation(ddp_run, train_env):
    run_dir, _ = ddp_run
    history = read_history(run_dir).set_index("epoch")
    for name in ("model.pt", "last.pt"):
        state = load_checkpoint(run_dir / name)
        got = single_process_val_mae(train_env, state)
        assert got == pytest.approx(history.loc[state["epoch"], "val_mae"], abs=1e-3), name


def test_resume_under_torchrun_continues(ddp_run, train_env, tmp_path):
    """--resume works the same under torchrun: a run stopped after epoch 1 (its last.pt rewound to epoch 1)
    resumes at epoch 2, keeping epoch 1's history row."""
    run_dir, _ = ddp_run
    out = tmp_path / "runs"
    shutil.copytree(run_dir, out / VARIANT)
    state = load_checkpoint(out / VARIANT / "last.pt")
    first = state["history"][0]
    state.update(epoch=1, history=[first], best_mae=first["val_mae"], best_epoch=1, stale=0)
    save_checkpoint(state, out / VARIANT / "last.pt")

    proc = torchrun(train_env.args(VARIANT, EPOCHS, "--device", "cpu", "--resume", out=out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "resuming after epoch 1" in proc.stdout
    history = pd.read_csv(out / VARIANT / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert history.iloc[0]["val_mae"] == pytest.approx(first["val_mae"], rel=1e-5)
