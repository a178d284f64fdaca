"""Predictions of a trained variant on a split, cached by checkpoint hash.

A second audit of the same checkpoint on the same data and split reads the cached CSV instead of
running the model again. On a labels-CSV dataset the images go through agefair.data.inputs (whole
crops or detected faces); images where no face was found get no prediction and are counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from agefair.core.config import DataConfig
from agefair.core.io import atomic_path
from agefair.data.dataset import FaceDataset
from agefair.data.inputs import face_counts, model_inputs
from agefair.data.labels import age_bin
from agefair.data.prepare import PreparedData
from agefair.data.split import split_rows
from agefair.models.checkpoint import file_sha256, model_from_checkpoint
from agefair.models.posthoc import correction_of
from agefair.models.runtime import Runtime, predict_loader

COLUMNS = ["file", "variant", "age", "pred", "gender", "ethnicity", "age_bin", "row"]  # a UTKFace folder's



def prediction_frame(prepared: PreparedData, data_cfg: DataConfig, rows: np.ndarray, preds: np.ndarray,
                     variant: str, sigma: np.ndarray | None = None) -> pd.DataFrame:
    """One row per prediction with the image's labels: COLUMNS for a UTKFace folder; for a labels CSV,
    file, variant, the age (or age_group, age_lo, age_hi), pred, the attributes, age_bin, row. ``sigma``
    (the spread of the expectation head's age distribution) follows row when given and not all NaN."""
    m = prepared.manifest
    rows = np.asarray(rows, dtype=np.int64)
    out = labelled_predictions(m, rows, preds, variant, labels=prepared.labels, attributes=prepared.attributes,
                               age_bins=data_cfg.age_bins, int_ages=prepared.kind == "utkface")
    if "subject" in m.columns:  # the dataset config's subject column: comparisons resample subjects
        out["subject"] = m["subject"].to_numpy()[rows]
    out["row"] = rows
    if sigma is not None and np.isfinite(np.asarray(sigma, dtype=float)).any():
        out["sigma"] = np.round(np.asarray(sigma, dtype=float), 4)
    return pd.DataFrame(out)



def labelled_predictions(table: pd.DataFrame, rows: np.ndarray, preds: np.ndarray, variant: str, *, labels: str,
                         attributes, age_bins, int_ages: bool = False) -> dict[str, np.ndarray]:
    """The columns every prediction frame starts with, for ``rows`` of a labels ``table`` (a manifest, or a
    streamed batch's labels) and their ``preds``: file, variant, the age (``labels`` exact; ``int_ages``: as
    whole years) or age_group/age_lo/age_hi, pred (to 1e-4 years), the attributes, and the age bin."""
    out = {"file": table["file"].to_numpy()[rows], "variant": variant}
    if labels == "interval":
        for c in ("age_group", "age_lo", "age_hi"):
            out[c] = table[c].to_numpy()[rows]
    else:
        ages = table["age"].to_numpy()[rows]
        out["age"] = ages.astype(int) if int_ages else ages.astype(float)
    out["pred"] = np.round(np.asarray(preds, dtype=float), 4)
    for a in attributes:
        out[a] = table[a].to_numpy()[rows]
    if labels == "exact":
        out["age_bin"] = age_bin(table["age"].to_numpy()[rows], age_bins)
    return out


def _read_cache(cache: Path, head: str) -> pd.DataFrame | None:
    """The cached predictions, or None: none yet, or written before the expectation head's spread was kept."""
    if not cache.exists():
        return None
    cached = pd.read_csv(cache)
    return None if head == "expectation" and "sigma" not in cached.columns else cached


def predict_variant(variant: str, checkpoint: Path, prepared: PreparedData, data_cfg: DataConfig, split: str,
                    rt: Runtime, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Predictions on ``split`` (``row`` indexes the manifest) and the checkpoint's fields.

    ``info["faces"]`` counts, on a labels-CSV dataset, how the split's images were read (whole crop,
    detected face, no face found: those get no prediction)."""
    model, cfg, ckpt = model_from_checkpoint(checkpoint)
    digest = file_sha256(checkpoint)
    info = {"checkpoint": str(checkpoint), "checkpoint_sha256": digest, "config": ckpt["config"],
            "meta": ckpt.get("meta", {}), "epoch": ckpt.get("epoch"), "val_mae": ckpt.get("val_mae"),
            "history": ckpt.get("history", [])}
    correction = correction_of(ckpt, str(checkpoint))
    if correction is not None:
        info["uses_attributes"] = list(correction.attributes)
    frame = _predict_frame(variant, model, cfg, digest, prepared, data_cfg, split, rt, progress, info)
    if correction is not None:  # the calibrated variant: the base model's ages, corrected per group
        frame["pred"] = np.round(correction.apply(frame["pred"].to_numpy(float),
                                                  {a: frame[a].to_numpy() for a in correction.attributes}), 4)
    return frame, info


# long: the cache read, or the model run and the cache written
def _predict_frame(variant: str, model, cfg, digest: str, prepared: PreparedData, data_cfg: DataConfig, split: str,
                   rt: Runtime, progress: bool, info: dict) -> pd.DataFrame:
    """The model's own predictions on ``split`` (from the cache when this checkpoint already predicted it)."""
    # detected faces are landmark-aligned (agefair.data.align): "-lm", so box-crop predictions are not reused
    mode = f"-{prepared.aligned}-{prepared.detector}-lm" if prepared.kind == "csv" else ""
    precision = rt.measure_precision_name  # ages differ by precision: one cache entry each
    cache = (prepared.work_dir / "predictions"
             / f"{digest[:16]}-{prepared.data_hash[:12]}-{split}{mode}-{precision}.csv")
    rows = split_rows(prepared, split)
    cached = _read_cache(cache, cfg.model.head)
    if cached is not None:
        if prepared.kind == "csv":  # the face locations are cached too: reading them again is cheap
            from agefair.data.inputs import locate_faces

            info["faces"] = face_counts(locate_faces(prepared, rows, progress))
        return prediction_frame(prepared, data_cfg, cached["row"].to_numpy(), cached["pred"].to_numpy(), variant,
                                cached["sigma"].to_numpy() if "sigma" in cached else None)

    images, located = model_inputs(prepared, rows, cfg.model.image_size, progress)
    if prepared.kind == "csv":
        info["faces"] = face_counts(located)
    usable = rows[located.loc[rows, "how"].isin(["whole", "face"]).to_numpy()]
    # the labels are not the model's business here: the dataset's true ages (or 0 for age groups) only
    # enter the loss that predict_loader reports, which the audit does not use
    ages = (prepared.manifest["age"].to_numpy(np.float32) if prepared.labels == "exact"
            else np.zeros(len(prepared.manifest), np.float32))
    loader = DataLoader(FaceDataset(images, usable, ages[usable]), batch_size=cfg.train.eval_batch_size, shuffle=False)
    model = model.to(rt.device)
    out = predict_loader(model, loader, rt, cfg.train.loss, desc=f"predicting {variant} ({split})", progress=progress)
    frame = prediction_frame(prepared, data_cfg, out["rows"], out["pred"], variant, out["sigma"])
    with atomic_path(cache) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
