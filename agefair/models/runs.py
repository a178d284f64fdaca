"""The run-folder layout: what ``python -m agefair.train`` writes under RUNS_DIR/<variant>/, and
finding trained variants in it. Every other module names these files through this one."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from agefair.core.errors import AgefairError
from agefair.models.checkpoint import load_checkpoint

BEST = "model.pt"  # best weights by validation MAE: what the audit, predict and export use
LAST = "last.pt"  # everything needed to resume
HISTORY = "history.csv"
CURVES = "curves"  # curves.html (and curves.png)
CONFIG = "config.yaml"
SPLIT = "split.json"
SUMMARY = "summary.json"
CALIBRATION = "calibration.json"  # conformal calibration on the validation split (agefair.models.calibration)


def best_checkpoint(runs_dir: Path, variant: str) -> Path:
    return Path(runs_dir) / variant / BEST


def calibration_file(checkpoint: Path) -> Path:
    """The calibration.json beside a run's model.pt."""
    return Path(checkpoint).parent / CALIBRATION


def _run_folders(runs_dir: Path) -> list[Path]:
    """Sub-folders of ``runs_dir`` that can be runs: hidden ones are not (``.<variant>.new`` and ``.old``:
    an --overwrite being written or swapped in, agefair.core.publish)."""
    return [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]


def find_variants(runs_dir: Path) -> list[str]:
    """Sub-folders of ``runs_dir`` that hold a model.pt, sorted."""
    return sorted(p.name for p in _run_folders(runs_dir) if (p / BEST).exists()) if runs_dir.is_dir() else []

def unfinished_runs(runs_dir: Path) -> list[str]:
    """Sub-folders of ``runs_dir`` that hold a run's files (last.pt, config.yaml, history.csv) but no model.pt."""
    return sorted(p.name for p in _run_folders(runs_dir) if not (p / BEST).exists()
                  and any((p / f).exists() for f in (LAST, CONFIG, HISTORY)))

def note_unfinished(runs_dir: Path) -> None:
    """Name each unfinished run on stderr: it is left out, not silently dropped."""
    for name in unfinished_runs(runs_dir):
        print(f"agefair: note: {runs_dir / name} has no model.pt (training unfinished or failed): left out",
              file=sys.stderr)

def pick_best_run(runs_dir: Path) -> tuple[Path, str]:
    """The runs_dir/*/model.pt with the lowest stored val_mae, and a sentence saying why."""
    candidates = sorted(runs_dir / v / BEST for v in find_variants(runs_dir))
    if not candidates:
        raise AgefairError(f"no trained model in {runs_dir}/ (no */model.pt); train one with "
                           f"python -m agefair.train or pass --model CKPT")
    scored: list[tuple[float, Path]] = []
    skipped: list[str] = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except AgefairError as exc:
            skipped.append(f"{path.parent.name} ({str(exc).removeprefix(f'{path}: ')})")
            continue
        mae = ckpt.get("val_mae")
        if "posthoc" in ckpt:
            skipped.append(f"{path.parent.name} (corrects ages by a sensitive attribute: needs each person's group)")
            continue
        if not isinstance(mae, (int, float)) or not math.isfinite(mae):
            skipped.append(f"{path.parent.name} (no validation MAE stored)")
            continue
        scored.append((float(mae), path))
    if not scored:
        raise AgefairError(f"no usable model in {runs_dir}/: {'; '.join(skipped)}; pass --model CKPT")
    scored.sort(key=lambda t: (t[0], str(t[1])))
    mae, best = scored[0]
    others = ", ".join(f"{p.parent.name} {m:.2f}" for m, p in scored[1:])
    why = (f"lowest validation MAE in {runs_dir}/: {mae:.2f}" + (f" (others: {others})" if others else " (only run)")
           + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return best, why


def model_or_best_run(model: str | Path | None, runs_dir: str | Path) -> tuple[Path, str]:
    """``model`` where given (--model), else the run of ``runs_dir`` with the lowest validation MAE; and why."""
    if model:
        return Path(model), "given with --model"
    return pick_best_run(Path(runs_dir))


def select_variants(runs_dir: Path, wanted: list[str] | None) -> list[str]:
    """The variants to evaluate (every */model.pt, or ``wanted``); a one-line error when any is missing.

    A run folder without model.pt (training unfinished) is named on stderr and left out."""
    if not runs_dir.is_dir():
        raise AgefairError(f"runs folder {runs_dir} does not exist; train first: python -m agefair.train --variant all")
    found = find_variants(runs_dir)
    if wanted:
        missing = [v for v in wanted if v not in found]
        if missing:
            raise AgefairError(f"{runs_dir}: no trained model for {', '.join(missing)} (found: {', '.join(found) or 'none'})")
        return list(wanted)
    if not found:
        raise AgefairError(f"{runs_dir}: no trained variant (no */model.pt); train first: python -m agefair.train --variant all")
    note_unfinished(runs_dir)
    return found
