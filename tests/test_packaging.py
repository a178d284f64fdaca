"""A wheel built from the repo works outside the source checkout: installed non-editable into a fresh
virtual environment, its console script and ``python -m`` entry points run, and every shipped config
loads from inside the installed package (not from the checkout's configs/)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

LOAD_EVERY_CONFIG = """
import sys
from pathlib import Path
import agefair
from agefair.core import config
root = Path(agefair.__file__).resolve().parent
assert Path(config.CONFIG_DIR).resolve().is_relative_to(root), (config.CONFIG_DIR, root)
files = sorted(Path(config.CONFIG_DIR).rglob("*.yaml"))
names = [str(f.relative_to(config.CONFIG_DIR)) for f in files]
assert {"data.yaml", "fairness.yaml", "presets/cpu.yaml", "presets/reference.yaml"} <= set(names), names
config.load_data_config()
config.load_fairness_config()
for preset in config.PRESETS:
    config.load_train_config(preset)
for f in files:
    if f.parent.name == "datasets":
        config.load_dataset_config(f.stem)
assert (root / "reporting" / "templates").is_dir()
print("configs:", ", ".join(names))
"""


def _not_sources(folder: str, names: list[str]) -> set[str]:
    """What the wheel copy leaves out: caches everywhere; at the repo root, environments and outputs."""
    skip = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".egg-info")}
    if Path(folder) == REPO_ROOT:
        skip |= {n for n in names if n in (".git", "build", "runs", "reports", ".agefair", "data") or n.startswith(".venv")}
    return skip


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    # Built from a clean copy of the sources: setuptools reuses a checkout's build/ folder, whose stale
    # files could hide a package missing from pyproject.toml.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=_not_sources)
    wheel_dir = tmp_path / "wheel"
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(wheel_dir), str(source)], cwd=tmp_path, env=dict(os.environ))
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheel_dir.glob("agefair-*.whl"))

    # A fresh venv with agefair installed from the wheel alone. Its dependencies (torch & co., several
    # GB) are borrowed from this environment's site-packages through a path entry: that directory's
    # own .pth files (the editable install's finder) are not processed, so agefair resolves only to
    # the installed wheel.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)  # ensurepip: offline, from the bundled wheel
    py = env_dir / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                   dict(os.environ)).stdout.strip()
    (Path(purelib) / "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp_path, env)
    assert install.returncode == 0, install.stderr[-2000:]

    where = _run([str(py), "-c", "import agefair; print(agefair.__file__)"], tmp_path, env)
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(Path(purelib)), where.stdout  # not the checkout

    loaded = _run([str(py), "-c", LOAD_EVERY_CONFIG], tmp_path, env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]

    script = env_dir / "bin" / "agefair"
    assert script.exists(), "the wheel installs no agefair console script"
    for cmd in ([str(script), "audit", "--help"], [str(py), "-m", "agefair.train", "--help"],
                [str(py), "-m", "agefair", "--help"]):
        out = _run(cmd, tmp_path, env)
        assert out.returncode == 0, (cmd, out.stderr[-2000:])
        assert "usage:" in out.stdout
