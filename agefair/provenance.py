"""What a report records beyond the audit's own inputs so that it can be reproduced."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path


def git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (then the commit alone does not
    reproduce the run); None when git cannot tell."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def reproduce_command(runs_dir: Path, data_dir: Path, split_seed: int, split: str, thresholds_file: str,
                      variants: list[str]) -> str:
    """The audit's command line with every input spelled out (absolute paths, seed, split, variants)."""
    parts = ["python", "-m", "agefair.audit", "--runs", str(runs_dir.resolve()), "--data", str(data_dir.resolve()),
             "--split-seed", str(split_seed), "--split", split, "--thresholds", str(Path(thresholds_file).resolve()),
             "--variant", *variants]
    return " ".join(shlex.quote(x) for x in parts)
