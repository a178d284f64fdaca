"""Conformal age intervals in the audit: each trained variant's calibration (its run's calibration.json,
fitted on the validation split; written here for runs trained before it existed) applied to the audited
split, and their coverage and widths per group (agefair.fairness.stats.conformal_eval).

Marginal calibration gives everybody the same rule (same width under the abs score) and leaves coverage
free to differ between groups; Mondrian calibration per group of a grouping equalises coverage and
lets widths differ. The audit reports both, so the report can state the trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError
from agefair.data.table import ModelIntervals
from agefair.fairness.engine.resampling import units_of
from agefair.fairness.results.interval_types import CalibrationInfo, CalibratorInfo, IntervalsAudit
from agefair.fairness.stats.conformal_eval import evaluate_coverage
from agefair.fairness.stats.metrics import AuditSettings, label_kind
from agefair.models import runs
from agefair.models.calibration import (
    MARGINAL,
    RunCalibration,
    fit_run_calibration,
    load_run_calibration,
    save_run_calibration,
)
from agefair.models.checkpoint import file_sha256
from agefair.models.conformal import Intervals


@dataclass(frozen=True)
class Calibrated:
    """A variant's calibration and a sentence saying where it came from."""

    calibration: RunCalibration
    file: Path | None  # the calibration.json it is saved in (None: in memory only)
    source: str


def _read(path: Path, sha: str, settings: ConformalSettings, head: str) -> tuple[RunCalibration | None, str]:
    """(the run's calibration if usable, else None; why not)."""
    if not path.exists():
        return None, "the run has no calibration.json"
    try:
        cal = load_run_calibration(path)
    except AgefairError as exc:
        return None, f"its calibration.json is unreadable ({exc})"
    if cal.checkpoint_sha256 != sha:
        return None, "its calibration.json is of another checkpoint"
    if cal.head != head:  # e.g. written before a Balanced-MSE softmax stopped counting as a distribution
        return None, f"its calibration.json treats the model's head as {cal.head}, not {head}"
    if not cal.matches(settings):
        return cal, "its calibration.json has other settings than fairness.yaml's conformal: section"
    return cal, ""


def run_calibration(*, checkpoint: Path, settings: ConformalSettings, val_pred, head: str, max_age: int,
                    manifest_hash: str | None, checkpoint_sha256: str | None = None) -> Calibrated | str:
    """The variant's calibration, or a sentence saying why there is none.

    ``val_pred``: a callable giving the validation split's prediction frame (called only when the run's
    calibration.json is missing, stale or of other settings), or None when the audited data is not the
    data the variant was trained on (its validation split is not at hand)."""
    path = runs.calibration_file(checkpoint)
    sha = checkpoint_sha256 or file_sha256(checkpoint)  # the audit has hashed it already
    cal, why = _read(path, sha, settings, head)
    if cal is not None and not why:
        return Calibrated(cal, path, f"read from {path}")
    if val_pred is None:
        return f"no intervals: {why}, and the audited data is not the data it was trained on (no validation split)"
    frame = val_pred()
    groups = {g: frame[g].to_numpy(dtype=object) for g in settings.mondrian if g in frame.columns}
    fitted = fit_run_calibration(y=frame["age"].to_numpy(float), pred=frame["pred"].to_numpy(float),
                                 sigma=frame["sigma"].to_numpy(float) if "sigma" in frame else None, groups=groups,
                                 settings=settings, head=head, max_age=max_age, checkpoint_sha256=sha,
                                 manifest_hash=manifest_hash)
    if cal is None:  # missing or stale: the run gets the calibration it should have had
        save_run_calibration(fitted, path)
        return Calibrated(fitted, path, f"fitted on the validation split by this audit ({why}); written to {path}")
    return Calibrated(fitted, None, f"fitted on the validation split by this audit ({why}; the file is left as is)")


def _calibration_info(c: Calibrated) -> CalibrationInfo:
    cal = c.calibration
    calibrators = [CalibratorInfo(method=m, n=cal.calibrator(m).n, quantile=cal.calibrator(m).quantile,
                                  groups=[g.model_dump() for g in cal.calibrator(m).groups]) for m in cal.methods]
    return CalibrationInfo(file=str(c.file) if c.file else None, sha256=file_sha256(c.file) if c.file else None,
                           source=c.source, score=cal.marginal.score, coverage=cal.coverage, calibrators=calibrators)


def _labels(pred: pd.DataFrame) -> dict:
    if label_kind(pred) == "interval":
        return {"age_lo": pred["age_lo"].to_numpy(float), "age_hi": pred["age_hi"].to_numpy(float)}
    return {"y": pred["age"].to_numpy(float)}


def audit_intervals(pred: pd.DataFrame, calibrated: Calibrated, *, groupings: dict[str, list[str]],
                    settings: AuditSettings) -> IntervalsAudit:
    """Coverage of each calibrator's intervals on ``pred`` (the audited split; its labels are read only
    here, after the intervals are made), per group of each grouping present. Adds the marginal interval
    to ``pred`` as columns ``lo`` and ``hi``."""
    cal = calibrated.calibration
    sigma = pred["sigma"].to_numpy(float) if "sigma" in pred else None
    present = {name: pred[cols] for name, cols in groupings.items() if all(c in pred.columns for c in cols)}
    methods, notes = {}, []
    for method in cal.methods:
        if method != MARGINAL and method not in pred.columns:
            notes.append(f"Mondrian by {method}: the audited data has no {method} column")
            continue
        intervals = cal.intervals(pred=pred["pred"].to_numpy(float), sigma=sigma, method=method,
                                  groups=pred[method].to_numpy(dtype=object) if method != MARGINAL else None)
        if method == MARGINAL:  # predictions.csv keeps them: a later --table audit of it measures their coverage
            pred["lo"], pred["hi"] = np.round(intervals.lo, 2), np.round(intervals.hi, 2)
            pred["coverage"] = cal.coverage
        methods[method] = evaluate_coverage(intervals=intervals, groupings=present, settings=settings,
                                            ids=units_of(pred).ids, **_labels(pred))
    return IntervalsAudit(calibration=_calibration_info(calibrated), methods=methods, notes=notes)


def table_intervals(pred: pd.DataFrame, given: ModelIntervals, rows: np.ndarray, *, groupings: dict[str, list[str]],
                    settings: AuditSettings, max_age: int) -> IntervalsAudit:
    """Coverage of intervals a table gives (a previous audit's lo / hi / coverage per model) on ``pred``
    (the table's rows ``rows``); rows without both ends are left out and counted in a note."""
    lo, hi = given.lo[rows], given.hi[rows]
    ok = np.isfinite(lo) & np.isfinite(hi)
    notes = [] if ok.all() else [f"{int((~ok).sum())} rows have no interval in the table: left out of the coverage"]
    if ok.sum() == 0:
        return IntervalsAudit(notes=["no row has an interval in the table"])
    n = int(ok.sum())
    intervals = Intervals(lo=lo[ok], hi=hi[ok], quantile=np.full(n, np.nan), fallback=np.zeros(n, bool),
                          unseen=np.zeros(n, bool), alpha=round(1 - given.coverage, 10), max_age=max_age)
    sub = pred.loc[ok].reset_index(drop=True)
    present = {name: sub[cols] for name, cols in groupings.items() if all(c in sub.columns for c in cols)}
    report = evaluate_coverage(intervals=intervals, groupings=present, settings=settings, ids=units_of(sub).ids,
                               **_labels(sub))
    info = CalibrationInfo(source="read from the table (lo_, hi_ and coverage_ columns)", coverage=given.coverage)
    return IntervalsAudit(calibration=info, methods={MARGINAL: report}, notes=notes)
