"""Predictions of a trained variant on a split, cached by checkpoint hash.

A second audit of the same checkpoint on the same data and split reads the cached CSV instead of
running the model again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from agefair.checkpoint import file_sha256, model_from_checkpoint
from agefair.config import DataConfig
from agefair.data.dataset import FaceDataset
from agefair.data.image_cache import build_image_cache
from agefair.data.labels import age_bin
from agefair.data.prepare import PreparedData
from agefair.engine import Runtime, predict
from agefair.io_utils import atomic_path

COLUMNS = ["file", "variant", "age", "pred", "gender", "ethnicity", "age_bin", "row"]


def find_variants(runs_dir: Path) -> list[str]:
    """Sub-folders of ``runs_dir`` that hold a model.pt, sorted."""
    return sorted(p.parent.name for p in runs_dir.glob("*/model.pt"))


def unfinished_runs(runs_dir: Path) -> list[str]:
    """Sub-folders of ``runs_dir`` that hold a run's files (last.pt, config.yaml, history.csv) but no model.pt."""
    return sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and not (p / "model.pt").exists()
                  and any((p / f).exists() for f in ("last.pt", "config.yaml", "history.csv")))


def note_unfinished(runs_dir: Path) -> None:
    """Name each unfinished run on stderr: it is left out, not silently dropped."""
    import sys

    for name in unfinished_runs(runs_dir):
        print(f"agefair: note: {runs_dir / name} has no model.pt (training unfinished or failed): left out",
              file=sys.stderr)


def predict_variant(variant: str, checkpoint: Path, prepared: PreparedData, data_cfg: DataConfig, split: str,
                    rt: Runtime, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Predictions on ``split`` (COLUMNS; ``row`` indexes the manifest) and the checkpoint's fields."""
    model, cfg, ckpt = model_from_checkpoint(checkpoint)
    digest = file_sha256(checkpoint)
    info = {"checkpoint": str(checkpoint), "checkpoint_sha256": digest, "config": ckpt["config"],
            "meta": ckpt.get("meta", {}), "epoch": ckpt.get("epoch"), "val_mae": ckpt.get("val_mae"),
            "history": ckpt.get("history", [])}
    cache = prepared.work_dir / "predictions" / f"{digest[:16]}-{prepared.data_hash[:12]}-{split}.csv"
    manifest = prepared.manifest
    if cache.exists():
        cached = pd.read_csv(cache)
        return cached.assign(variant=variant)[COLUMNS], info

    rows = np.flatnonzero(manifest["split"].to_numpy() == split)
    images = build_image_cache(prepared.data_dir, manifest, prepared.data_hash, cfg.model.image_size,
                               prepared.work_dir, progress=progress)
    ages = manifest["age"].to_numpy(np.float32)
    loader = DataLoader(FaceDataset(images, rows, ages[rows]), batch_size=cfg.train.eval_batch_size, shuffle=False)
    model = model.to(rt.device)
    out = predict(model, loader, rt, cfg.train.loss, desc=f"predicting {variant} ({split})", progress=progress)
    r = out["rows"]
    frame = pd.DataFrame({
        "file": manifest["file"].to_numpy()[r], "variant": variant, "age": ages[r].astype(int),
        "pred": np.round(out["pred"].astype(float), 4), "gender": manifest["gender"].to_numpy()[r],
        "ethnicity": manifest["ethnicity"].to_numpy()[r],
        "age_bin": age_bin(ages[r], data_cfg.age_bins), "row": r,
    })[COLUMNS]
    with atomic_path(cache) as tmp:
        frame.to_csv(tmp, index=False)
    return frame, info
