"""``python -m agefair.train``: what one run writes, --limit, refusing to clobber a run, --variant all."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from train_helpers import HISTORY_COLUMNS, RUN_FILES, read_history, run_train_cli, train_env, train_settings  # noqa: F401

from agefair.core.config import load_data_config
from agefair.data.image_cache import build_image_cache, load_face
from agefair.data.prepare import prepare
from agefair.models.calibration import load_run_calibration
from agefair.models.checkpoint import file_sha256, model_from_checkpoint
from agefair.models.network import to_input
from agefair.train import main
from agefair.training.variants import VARIANTS


@pytest.fixture(scope="module")
def weighted_run(train_env):
    """One epoch of the weighted variant, trained in-process."""
    assert main(train_env.args("weighted", 1)) == 0
    return train_env.root / "runs" / "weighted"


def test_one_epoch_writes_every_run_file(weighted_run):
    for name in RUN_FILES:
        assert (weighted_run / name).is_file(), f"{name} missing from {sorted(p.name for p in weighted_run.iterdir())}"
    assert not list(weighted_run.glob(".*.tmp")), "atomic writes left temporary files"

    history = read_history(weighted_run)
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1]
    assert np.isfinite(history.drop(columns="epoch").to_numpy(dtype=float)).all()
    assert (history[["train_loss", "train_mae", "val_loss", "val_mae", "lr", "seconds", "train_img_per_s"]] > 0).all(axis=None)

    assert "<html" in (weighted_run / "curves.html").read_text(encoding="utf-8").lower()

    config = yaml.safe_load((weighted_run / "config.yaml").read_text())
    assert config["model"]["backbone"] == "resnet18" and config["model"]["image_size"] == 32
    assert config["train"]["batch_size"] == 16 and config["train"]["epochs"] == 1
    run = config["run"]
    assert run["variant"] == "weighted" and run["limit"] is None
    assert run["n_train"] == 48 and run["n_val"] == 24  # 2 of each 4-image stratum train, 1 val, 1 test

    split = json.loads((weighted_run / "split.json").read_text())
    assert split["manifest_hash"] == run["manifest_hash"]
    assert split["split_seed"] == run["split_seed"] == 0

    summary = json.loads((weighted_run / "summary.json").read_text())
    assert summary["variant"] == "weighted"
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1
    assert summary["stopped_early"] is False
    assert summary["best_val_mae"] == pytest.approx(history["val_mae"].iloc[0], rel=1e-5)


def test_the_run_ends_with_a_conformal_calibration_of_its_best_checkpoint_on_the_validation_split(weighted_run):
    cal = load_run_calibration(weighted_run / "calibration.json")
    run = yaml.safe_load((weighted_run / "config.yaml").read_text())["run"]
    assert cal.checkpoint_sha256 == file_sha256(weighted_run / "model.pt")
    assert cal.manifest_hash == run["manifest_hash"] and cal.split == "val" and cal.marginal.n > 0
    assert list(cal.mondrian) == ["ethnicity"]  # small groups use the marginal q and say so
    assert all(g.fallback == (g.n < 50) for g in cal.mondrian["ethnicity"].groups)
    assert cal.coverage == 0.9 and cal.head == "expectation" and cal.marginal.score == "scaled"


def test_checkpoints_load_with_weights_only_and_rebuild_the_model(weighted_run, train_env):
    best = torch.load(weighted_run / "model.pt", map_location="cpu", weights_only=True)
    last = torch.load(weighted_run / "last.pt", map_location="cpu", weights_only=True)
    assert {"model", "config", "meta", "epoch", "val_mae", "history"} <= set(best)
    assert {"model", "config", "optimizer", "scheduler", "stale", "history"} <= set(last)
    assert "optimizer" not in best  # the deliverable model carries no optimizer state
    assert best["epoch"] == last["epoch"] == 1

    model, cfg, ckpt = model_from_checkpoint(weighted_run / "model.pt")
    assert cfg.model.backbone == "resnet18" and cfg.model.image_size == 32
    assert not model.training

    files = sorted(train_env.data.iterdir())[:8]
    batch = torch.from_numpy(np.stack([load_face(f, 32) for f in files])).permute(0, 3, 1, 2)
    with torch.no_grad():
        pred = model.predict(to_input(batch))
    assert pred.shape == (8,)
    assert torch.isfinite(pred).all()
    assert ((pred >= 0) & (pred <= cfg.model.max_age)).all()

    # The stored validation MAE is the MAE of these weights on the validation split.
    data_cfg = load_data_config()
    prepared = prepare(train_env.data, data_cfg, work_root=train_env.root / "work", progress=False)
    images = build_image_cache(prepared.data_dir, prepared.manifest, prepared.data_hash, 32, prepared.work_dir,
                               progress=False)
    val = np.flatnonzero(prepared.manifest["split"].to_numpy() == "val")
    x = torch.from_numpy(np.asarray(images[val])).permute(0, 3, 1, 2)
    with torch.no_grad():
        val_pred = model.predict(to_input(x)).numpy()
    mae = float(np.abs(val_pred - prepared.manifest["age"].to_numpy()[val]).mean())
    assert mae == pytest.approx(ckpt["val_mae"], abs=1e-3)


def test_limit_must_be_positive(train_env, capsys):
    with pytest.raises(SystemExit) as exc:
        main(train_env.args("baseline", 1, "--limit", "0", out=train_env.root / "zero"))
    assert exc.value.code == 2
    assert "argument --limit: must be at least 1, got 0" in capsys.readouterr().err
    assert not (train_env.root / "zero").exists()


def test_rerun_without_resume_or_overwrite_is_refused(weighted_run, train_env):
    before = {name: (weighted_run / name).stat().st_mtime_ns for name in ("model.pt", "last.pt", "history.csv")}
    result = run_train_cli(train_env.args("weighted", 1))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agefair: error:")
    assert "--resume" in lines[0] and "--overwrite" in lines[0]
    assert str(weighted_run) in lines[0]
    assert "Traceback" not in result.stderr
    after = {name: (weighted_run / name).stat().st_mtime_ns for name in before}
    assert after == before, "a refused run must not touch the existing one"


def test_variant_all_with_limit_trains_every_variant_on_that_many_images(train_env, capsys):
    out = train_env.root / "all"
    assert main(train_env.args("all", 1, "--limit", "40", out=out)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(VARIANTS) == ["baseline", "bmse", "calibrated", "groupdro",
                                                                         "lds", "oversample", "weighted"]
    printed = capsys.readouterr().out
    losses = {}
    trained = [v for v in VARIANTS if v != "calibrated"]  # calibrated: fitted on baseline, no training files
    assert json.loads((out / "calibrated" / "summary.json").read_text())["base"] == "baseline"
    assert "[calibrated] baseline corrected per ethnicity" in printed
    for variant in trained:
        run_dir = out / variant
        for name in RUN_FILES:
            assert (run_dir / name).is_file(), f"{variant}/{name}"
        assert json.loads((run_dir / "summary.json").read_text())["variant"] == variant
        run = yaml.safe_load((run_dir / "config.yaml").read_text())["run"]
        assert run["variant"] == variant
        # --limit 40 trains on 40 of the 48 training images; validation keeps all 24
        assert run["limit"] == 40 and run["n_train"] == 40 and run["n_val"] == 24
        assert torch.load(run_dir / "last.pt", weights_only=True)["meta"]["n_train"] == 40
        assert f"[{variant}] " in printed and "40 train / 24 val images" in printed
        history = read_history(run_dir)
        assert history["epoch"].tolist() == [1]
        losses[variant] = float(history["train_loss"].iloc[0])
        assert math.isfinite(losses[variant])
    # The data's age bins are imbalanced, so every imbalance-aware variant trains differently from baseline.
    for variant in ("oversample", "weighted", "lds", "groupdro", "bmse"):
        assert losses[variant] != pytest.approx(losses["baseline"], rel=1e-6), variant
    # --variant all reads and caches the data once, then prints a summary table
    table = printed[printed.index("variant      best val MAE"):]
    for variant in VARIANTS:
        assert f"\n{variant} " in table
