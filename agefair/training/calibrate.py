"""The conformal calibration written when a run ends: the best checkpoint's predictions on the
validation split, calibrated as fairness.yaml's ``conformal:`` section asks (agefair.models.calibration),
saved as the run's calibration.json. The test split is never read."""

from __future__ import annotations

from pathlib import Path

from agefair.core.conformal_config import ConformalSettings
from agefair.models import runs
from agefair.models.calibration import (
    RunCalibration,
    fit_run_calibration,
    interval_head,
    save_run_calibration,
)
from agefair.models.checkpoint import file_sha256, load_checkpoint
from agefair.models.runtime import Runtime, predict_loader
from agefair.training.batches import TrainData, eval_loader


def calibrate_checkpoint(model, *, checkpoint: Path, data: TrainData, cfg, rt: Runtime, settings: ConformalSettings,
                         manifest_hash: str | None, progress: bool = False) -> RunCalibration:
    """Load ``checkpoint``'s weights into ``model``, predict the validation rows and calibrate."""
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    out = predict_loader(model, eval_loader(data, data.val_rows, cfg, rt), rt, cfg.train.loss,
                         desc="calibrating (val)", progress=progress)
    return calibrate_rows(data=data, rows=out["rows"], pred=out["pred"], sigma=out["sigma"],
                          head=interval_head(cfg.model.head, cfg.train.loss), max_age=cfg.model.max_age,
                          settings=settings, checkpoint=checkpoint, manifest_hash=manifest_hash)


def calibrate_rows(*, data: TrainData, rows, pred, sigma, head: str, max_age: int, settings: ConformalSettings,
                   checkpoint: Path, manifest_hash: str | None) -> RunCalibration:
    """The calibration of ``checkpoint`` from its predictions ``pred`` (spreads ``sigma``) of the validation
    manifest ``rows``: true ages and the Mondrian groupings' labels read from the manifest."""
    groups = {g: data.manifest[g].to_numpy(dtype=object)[rows] for g in settings.mondrian if g in data.manifest}
    return fit_run_calibration(y=data.manifest["age"].to_numpy(float)[rows], pred=pred, sigma=sigma, groups=groups,
                               settings=settings, head=head, max_age=max_age,
                               checkpoint_sha256=file_sha256(checkpoint), manifest_hash=manifest_hash)


def write_calibration(model, *, out: Path, data: TrainData, cfg, rt: Runtime, settings: ConformalSettings,
                      manifest_hash: str | None, progress: bool = False) -> RunCalibration | None:
    """calibration.json beside ``out``'s model.pt (None: calibration disabled, or no best checkpoint)."""
    best = out / runs.BEST
    if not settings.enabled or not best.exists():
        return None
    cal = calibrate_checkpoint(model, checkpoint=best, data=data, cfg=cfg, rt=rt, settings=settings,
                               manifest_hash=manifest_hash, progress=progress)
    save_run_calibration(cal, runs.calibration_file(best))
    return cal


def describe(cal: RunCalibration) -> str:
    """One line for the training log: the marginal half-width (abs) or scale (scaled), and the Mondrian groups."""
    q = cal.marginal.quantile
    what = "± inf" if q is None else (f"± {q:.1f} years" if cal.marginal.score == "abs" else f"± {q:.2f} σ̂")
    groups = "; ".join(f"{name}: {len(c.groups)} groups ({sum(g.fallback for g in c.groups)} use the marginal q)"
                       for name, c in cal.mondrian.items())
    return (f"{cal.coverage:.0%} intervals calibrated on {cal.marginal.n} validation images: {what}"
            + (f"; Mondrian by {groups}" if groups else ""))

