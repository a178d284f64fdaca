"""The training loop: same seed -> same history, early stopping, the one-cycle schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from train_helpers import read_history, train_env, train_settings  # noqa: F401

import agefair.training.evaluate
import agefair.training.trainer
from agefair.core.config import load_train_config
from agefair.core.errors import AgefairError, run_cli
from agefair.train import main
from agefair.training.optim import make_scheduler

# --------------------------------------------------------------------------- determinism

def test_same_seed_same_history(train_env):
    runs = []
    for name in ("det_a", "det_b"):
        out = train_env.root / name
        assert main(train_env.args("lds", 2, "--limit", "40", "--seed", "7", out=out)) == 0
        runs.append(out / "lds")
    a, b = (read_history(r) for r in runs)
    assert a["epoch"].tolist() == b["epoch"].tolist() == [1, 2]
    for col in ("train_loss", "train_mae", "val_loss", "val_mae", "lr"):
        np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-6, err_msg=col)
    ha, hb = (torch.load(r / "last.pt", weights_only=True)["history"] for r in runs)
    for ea, eb in zip(ha, hb):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], abs=1e-6)
        assert ea["val_mae"] == pytest.approx(eb["val_mae"], abs=1e-6)

    # another seed trains differently (so the equality above is not vacuous)
    out = train_env.root / "det_c"
    assert main(train_env.args("lds", 1, "--limit", "40", "--seed", "8", out=out)) == 0
    assert read_history(out / "lds")["train_loss"].iloc[0] != pytest.approx(a["train_loss"].iloc[0], abs=1e-6)


# --------------------------------------------------------------------------- early stopping

def test_early_stopping_with_an_absurd_learning_rate(train_env, capsys):
    """lr 5.0 wrecks the model after the first epoch; with patience 1 training stops at epoch 2 of 6."""
    config = train_env.override("absurd.yaml", {"optim": {"lr": 5.0}, "train": {"patience": 1}})
    out = train_env.root / "absurd"
    assert main(train_env.args("baseline", 6, out=out, config=config)) == 0
    summary = json.loads((out / "baseline" / "summary.json").read_text())
    assert summary["stopped_early"] is True
    assert summary["epochs_run"] < 6
    assert summary["epochs_run"] == summary["best_epoch"] + 1  # patience 1: one epoch without improvement
    assert read_history(out / "baseline")["epoch"].tolist() == list(range(1, summary["epochs_run"] + 1))
    assert "(early stop)" in capsys.readouterr().out
    best = torch.load(out / "baseline" / "model.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"]


class ScriptedEpochs:
    """Stand-ins for train_one_epoch / predict_loader: no real training, validation MAEs from a script."""

    def __init__(self, val_maes):
        self.val_maes = list(val_maes)
        self.epochs_trained = 0

    def train_one_epoch(self, *args, **kwargs):
        self.epochs_trained += 1
        return {"loss": 1.0, "mae": 1.0, "n": 10, "seconds": 0.01, "img_per_s": 100.0}

    def predict(self, *args, **kwargs):
        mae = self.val_maes[self.epochs_trained - 1]
        # one validation image off by exactly the scripted MAE
        return {"loss": mae, "mae": mae, "rows": np.zeros(1, dtype=int), "pred": np.array([30.0 + mae]),
                "age": np.array([30.0])}


@pytest.mark.parametrize("val_maes, patience, epochs_run, best_epoch, stopped", [
    # improves, improves, then 2 epochs without improvement (a 1e-7 gain does not count): stop after 4
    ([10.0, 9.0, 9.5, 9.0 - 1e-7, 1.0, 1.0], 2, 4, 2, True),
    # an improvement resets the count
    ([10.0, 11.0, 9.0, 12.0, 8.0, 13.0], 2, 6, 5, False),
    # patience 1: the first epoch without improvement stops training
    ([10.0, 10.0, 1.0, 1.0, 1.0, 1.0], 1, 2, 1, True),
])
def test_early_stopping_logic(train_env, monkeypatch, val_maes, patience, epochs_run, best_epoch, stopped):
    script = ScriptedEpochs(val_maes)
    monkeypatch.setattr(agefair.training.trainer, "train_one_epoch", script.train_one_epoch)
    monkeypatch.setattr(agefair.training.evaluate, "predict_loader", script.predict)
    config = train_env.override(f"patience{patience}.yaml", {"train": {"patience": patience}})
    out = train_env.root / f"scripted-{'-'.join(map(str, val_maes))}"
    assert main(train_env.args("baseline", 6, "--limit", "40", out=out, config=config)) == 0
    summary = json.loads((out / "baseline" / "summary.json").read_text())
    assert script.epochs_trained == epochs_run
    assert summary["epochs_run"] == epochs_run
    assert summary["best_epoch"] == best_epoch
    assert summary["best_val_mae"] == pytest.approx(val_maes[best_epoch - 1])
    assert summary["stopped_early"] is stopped
    assert torch.load(out / "baseline" / "model.pt", weights_only=True)["epoch"] == best_epoch
    last = torch.load(out / "baseline" / "last.pt", weights_only=True)
    assert last["epoch"] == epochs_run
    assert read_history(out / "baseline")["val_mae"].tolist() == pytest.approx(val_maes[:epochs_run])


# --------------------------------------------------------------------------- schedule

@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 10])
@pytest.mark.parametrize("steps_per_epoch", [1, 2, 3, 4, 5, 8, 100])
def test_onecycle_schedule_never_breaks_on_few_steps(steps_per_epoch, epochs):
    # A one-cycle warm-up of exactly one step (warmup_fraction * total steps == 1, e.g. the cpu preset
    # with --limit 256 --epochs 1) made torch's OneCycleLR divide by zero.
    cfg = load_train_config("cpu", None, {"train": {"epochs": epochs}})
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim.lr)
    scheduler, per_batch = make_scheduler(optimizer, cfg, steps_per_epoch)
    lrs = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None and per_batch:
                scheduler.step()
        if scheduler is not None and not per_batch:
            scheduler.step()
    assert all(math.isfinite(lr) and 0 < lr <= cfg.optim.lr * (1 + 1e-9) for lr in lrs)
    if scheduler is not None:
        assert max(lrs) == pytest.approx(cfg.optim.lr, rel=0.05)  # the cycle reaches its peak
    if steps_per_epoch * epochs >= 40:
        assert per_batch and lrs[0] < cfg.optim.lr / 10 and lrs[-1] < cfg.optim.lr / 10  # a real one-cycle


def test_constant_schedule_has_no_scheduler():
    cfg = load_train_config("reference")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr)
    assert make_scheduler(optimizer, cfg, 10) == (None, False)


def test_cli_override_errors_name_the_key(train_env, capsys):
    # --seed -1 gets past the parser (an int) and is refused by the config's validation (seed >= 0);
    # --epochs 0 is refused earlier, by the parser itself (test_bad_inputs_cli.py)
    with pytest.raises(SystemExit) as exc:
        run_cli(main, train_env.args("baseline", 1, "--seed", "-1", out=train_env.root / "bad-seed"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("agefair: error:") and "train.seed" in err and err.count("\n") == 1


def test_cli_override_errors_do_not_blame_the_config_file(train_env):
    with pytest.raises(AgefairError) as exc:
        main(train_env.args("baseline", 1, "--seed", "-1", out=train_env.root / "bad-seed"))
    assert str(train_env.config) not in str(exc.value)
