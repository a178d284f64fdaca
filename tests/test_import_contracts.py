"""The import contracts of pyproject.toml (run by make lint) hold, and they can fail: a copy of the
package with one upward import, or one cycle, added is refused by lint-imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "agefair", root / "agefair", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "configs", root / "agefair" / "configs")  # as the wheel lays it out
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    return root


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_contracts_hold():
    out = _lint(REPO_ROOT)
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.parametrize("module, line, broken", [
    ("core/errors.py", "import agefair.fairness.stats.metrics  # an upward import", "Layers"),
    ("training/trainer.py", "import agefair.cli.args  # a library importing command helpers", "Layers"),
    ("reporting/format.py", "import torch  # torch in the report", "no torch"),
    ("data/labels.py", "import agefair.data.prepare  # a cycle: prepare imports labels", "cycles"),
    ("fairness/engine/resampling.py", "import agefair.fairness.stats.metrics  # the engine importing a statistic",
     "Fairness layers"),
])
def test_a_broken_rule_fails_the_check(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    target = root / "agefair" / module
    if not target.exists():  # the module named may move; any module of that package will do
        target = sorted((root / "agefair" / Path(module).parent).glob("[a-z]*.py"))[0]
    _append(target, line)
    out = _lint(root)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and broken in out.stdout.split("Broken contracts")[-1], out.stdout[-3000:]
