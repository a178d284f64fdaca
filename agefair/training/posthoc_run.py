"""The ``calibrated`` variant's run: no training. The base variant's best checkpoint predicts the
validation split, a per-group correction is fitted on it (agefair.models.posthoc), and the run folder
gets the base's weights with the correction (model.pt, key ``posthoc``), config.yaml, split.json,
summary.json and its own conformal calibration.json. The test split is never read.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import yaml

from agefair.core.config import DataConfig, TrainConfig
from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError
from agefair.core.io import write_json_atomic, write_text_atomic
from agefair.data.prepare import PreparedData
from agefair.models import runs
from agefair.models.calibration import interval_head, save_run_calibration
from agefair.models.checkpoint import file_sha256, model_from_checkpoint, save_checkpoint
from agefair.models.posthoc import fit_group_correction
from agefair.models.runtime import make_runtime, predict_loader
from agefair.training.batches import TrainData, eval_loader
from agefair.training.calibrate import calibrate_rows


def _base_checkpoint(out_root: Path, cfg: TrainConfig, prepared: PreparedData) -> tuple[Path, dict]:
    base = cfg.calibrated.base
    path = runs.best_checkpoint(out_root, base)
    if base == "calibrated" or not path.exists():
        raise AgefairError(f"{path}: calibrated corrects the {base} variant's ages: train it first "
                           f"(python -m agefair.train --variant {base})")
    _, _, ckpt = model_from_checkpoint(path)
    if "posthoc" in ckpt:
        raise AgefairError(f"{path}: calibrated.base must be a trained variant, not a corrected one")
    trained = ckpt.get("meta", {}).get("manifest_hash")
    if trained not in (None, prepared.data_hash):
        raise AgefairError(f"{path} was trained on other data (manifest {str(trained)[:12]}); calibrated fits on "
                           f"this data's validation split")
    return path, ckpt


def _validation(path: Path, data: TrainData, device: str, progress: bool) -> dict:
    model, base_cfg, _ = model_from_checkpoint(path)
    rt = make_runtime(device, "auto", True)
    return predict_loader(model.to(rt.device), eval_loader(data, data.val_rows, base_cfg, rt), rt,
                          base_cfg.train.loss, desc="calibrated: validation", progress=progress)


def _check_out(out: Path, resume: bool, overwrite: bool) -> bool:
    """Whether to (re)fit: an existing run is kept with --resume, replaced with --overwrite, else refused."""
    if not (out / runs.BEST).exists():
        return True
    if resume:
        return False
    if overwrite:
        return True
    raise AgefairError(f"{out} already holds a run; pass --resume to keep it or --overwrite to fit it again")


# long: one straight sequence: predict, fit, write the run's files
def fit_calibrated(*, cfg: TrainConfig, data_cfg: DataConfig, prepared: PreparedData, data: TrainData, out_root: Path,
                   device: str = "auto", resume: bool = False, overwrite: bool = False, progress: bool = True,
                   conformal: ConformalSettings = ConformalSettings()) -> dict:
    """Fit the correction on the validation split and write runs/calibrated/; its summary."""
    t0 = time.perf_counter()
    out = Path(out_root) / "calibrated"
    if not _check_out(out, resume, overwrite):
        print(f"[calibrated] {out / runs.BEST} exists (--resume): kept")
        return json.loads((out / runs.SUMMARY).read_text())
    path, ckpt = _base_checkpoint(Path(out_root), cfg, prepared)
    s = cfg.calibrated
    va = _validation(path, data, device, progress)
    rows = va["rows"]
    missing = [a for a in s.attributes if a not in data.manifest.columns]
    if missing:
        raise AgefairError(f"calibrated.attributes: {', '.join(missing)} is not an attribute of {prepared.data_dir}")
    attrs = {a: data.manifest[a].to_numpy(dtype=object)[rows] for a in s.attributes}
    y = data.manifest["age"].to_numpy(float)[rows]
    correction = fit_group_correction(y=y, pred=va["pred"], attributes=attrs, names=list(s.attributes), base=s.base,
                                      max_age=cfg.model.max_age, min_group_size=s.min_group_size,
                                      slope_range=tuple(s.slope_range))
    corrected = correction.apply(va["pred"], attrs)
    mae_before, mae_after = float(np.abs(va["pred"] - y).mean()), float(np.abs(corrected - y).mean())
    meta = {**ckpt.get("meta", {}), "variant": "calibrated", "base": s.base, "base_sha256": file_sha256(path),
            "uses_attributes": list(s.attributes)}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint({**ckpt, "meta": meta, "val_mae": mae_after, "posthoc": correction.model_dump(mode="json"),
                     "history": []}, out / runs.BEST)
    (out / runs.LAST).unlink(missing_ok=True)  # no training state: nothing to resume
    config = {**yaml.safe_load((path.parent / runs.CONFIG).read_text()), "calibrated": s.model_dump(mode="json")}
    write_text_atomic(out / runs.CONFIG, yaml.safe_dump({**config, "run": meta}, sort_keys=False))
    write_json_atomic(out / runs.SPLIT, {"manifest_hash": prepared.data_hash, "split_seed": prepared.split_meta["seed"],
                                         "fractions": prepared.split_meta["fractions"]})
    summary = {"variant": "calibrated", "base": s.base, "best_val_mae": mae_after, "base_val_mae": mae_before,
               "epochs_run": 0, "best_epoch": int(ckpt.get("epoch") or 0), "stopped_early": False,
               "seconds": time.perf_counter() - t0, "fitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "correction": correction.model_dump(mode="json")}
    write_json_atomic(out / runs.SUMMARY, summary)
    if conformal.enabled:
        cal = calibrate_rows(data=data, rows=rows, pred=corrected, sigma=va["sigma"],
                             head=interval_head(ckpt["config"]["model"]["head"], ckpt["config"]["train"]["loss"]),
                             max_age=cfg.model.max_age, settings=conformal, checkpoint=out / runs.BEST,
                             manifest_hash=prepared.data_hash)
        save_run_calibration(cal, runs.calibration_file(out / runs.BEST))
    print(f"[calibrated] {s.base} corrected per {' x '.join(s.attributes)} ({len(correction.groups)} groups, "
          f"{sum(g.pooled for g in correction.groups)} pooled): validation MAE {mae_before:.3f} -> {mae_after:.3f}; "
          f"{out / runs.BEST}")
    return summary
