"""What a report records beyond the audit's own inputs so that it can be reproduced."""

from __future__ import annotations

import platform
import shlex
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from agefair import __version__


def git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (then the commit alone does not
    reproduce the run); None when git cannot tell."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def reproduce_command(runs_dir: Path | None, data_dir: Path, split_seed: int | None, split: str, thresholds_file: str,
                      variants: list[str], external: Sequence[tuple[Path, str]] = (),
                      table_preds: Sequence[str] | None = None) -> str:
    """The audit's command line with every input spelled out (absolute paths, seed, split, variants,
    external predictions files; a table audit: ``--table`` and each ``--pred COLUMN=NAME``)."""
    parts = ["python", "-m", "agefair.audit"]
    if table_preds is not None:
        parts += ["--table", str(Path(data_dir).resolve()), "--thresholds", str(Path(thresholds_file).resolve())]
        for spec in table_preds:
            parts += ["--pred", spec]
        return " ".join(shlex.quote(x) for x in parts)
    if runs_dir is not None:
        parts += ["--runs", str(Path(runs_dir).resolve())]
    parts += ["--data", str(Path(data_dir).resolve()), "--split-seed", str(split_seed), "--split", split,
              "--thresholds", str(Path(thresholds_file).resolve())]
    if variants:
        parts += ["--variant", *variants]
    for path, name in external:
        parts += ["--predictions", str(Path(path).resolve()), "--name", name]
    return " ".join(shlex.quote(x) for x in parts)

def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "agefair": __version__}
    for pkg in ("torch", "torchvision", "fairlearn", "pandas", "numpy", "scikit-learn", "plotly", "grad-cam"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
