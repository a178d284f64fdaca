"""Helpers for the training-engine tests: a synthetic UTKFace-style folder and CLI runners.

Kept apart from conftest.py (owned by the data tests) so both can change independently.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent

HISTORY_COLUMNS = ["epoch", "train_loss", "train_mae", "val_loss", "val_mae", "lr", "seconds", "train_img_per_s"]
RUN_FILES = ["model.pt", "last.pt", "history.csv", "curves.html", "config.yaml", "split.json", "summary.json",
             "calibration.json"]

# The age range drawn for each default age bin of configs/data.yaml (0-9, 10-19, ..., 70+).
BIN_AGES = [(1, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 90)]


def face_image(rng: np.random.Generator, age: int, size: int = 200) -> np.ndarray:
    """A 200x200 RGB "face": brightness rises with age, plus a seeded gradient and noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    level = 30.0 + 180.0 * (age / 90.0)  # the learnable signal
    slope = rng.uniform(-25, 25, size=(2, 3)).astype(np.float32)
    arr = level + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    arr = arr + rng.normal(0, 10, size=(size, size, 3)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


# Images per age bin: imbalanced like UTKFace (20-39 common, children and 70+ rarer), a multiple of 4.
BIN_COUNTS = [8, 8, 24, 20, 12, 8, 8, 8]


def make_train_folder(path: Path, counts: list[int] | None = None, seed: int = 0) -> list[tuple[int, int, int]]:
    """JPEGs ``{age}_{gender}_{race}_{timestamp}.jpg.chip.jpg`` over ages 1-90 (96 by default).

    Bin ``b`` gets ``counts[b]`` images spread over ``counts[b] // 4`` (gender, race) pairs with
    4 images each, so every age-bin x gender x ethnicity stratum of the split gets 1 validation,
    1 test and 2 training images (strata of 1-2 images would stay in train). The age bins are
    imbalanced, so the weighted variants' weights differ from 1. Returns the (age, gender, race) labels.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    counts = counts or BIN_COUNTS
    rng = np.random.default_rng(seed)
    pairs = [(g, r) for r in range(5) for g in range(2)]
    labels = []
    ts = 20170101000000000
    for b, ((lo, hi), n) in enumerate(zip(BIN_AGES, counts)):
        assert n % 4 == 0 and n // 4 <= len(pairs)
        for j in range(n):
            age = int(rng.integers(lo, hi + 1))
            gender, race = pairs[(b + j // 4) % len(pairs)]
            buf = io.BytesIO()
            Image.fromarray(face_image(rng, age)).save(buf, format="JPEG", quality=85)
            (path / f"{age}_{gender}_{race}_{ts}.jpg.chip.jpg").write_bytes(buf.getvalue())
            ts += 1
            labels.append((age, gender, race))
    return labels


SMALL_CONFIG = {"model": {"image_size": 32}, "train": {"batch_size": 16, "eval_batch_size": 64}}


def write_override(path: Path, extra: dict | None = None) -> Path:
    """A --config YAML shrinking the cpu preset to 32x32 images and small batches, plus ``extra``
    ({section: {key: value}}) on top."""
    data = {k: dict(v) for k, v in SMALL_CONFIG.items()}
    for section, values in (extra or {}).items():
        data.setdefault(section, {}).update(values)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
    return Path(path)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # as in-process (train_settings): same numbers, no oversubscription
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_train_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agefair.train", *args], cwd=REPO_ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def popen_train_cli(args: list[str], log) -> subprocess.Popen:
    """Start ``python -m agefair.train`` writing stdout and stderr to the open file ``log``."""
    return subprocess.Popen([sys.executable, "-m", "agefair.train", *args], cwd=REPO_ROOT, env=subprocess_env(),
                            stdout=log, stderr=subprocess.STDOUT, text=True)


def read_history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "history.csv")


# --------------------------------------------------------------------------- fixtures


@dataclass
class TrainEnv:
    """A synthetic data folder, a work folder for its derived files and a small --config."""

    root: Path
    data: Path
    config: Path

    def args(self, variant: str, epochs: int = 1, *extra: str, out: Path | None = None,
             config: Path | None = None) -> list[str]:
        return ["--variant", variant, "--preset", "cpu", "--config", str(config or self.config),
                "--data", str(self.data), "--work", str(self.root / "work"),
                "--out", str(out or self.root / "runs"), "--epochs", str(epochs), "--quiet", *extra]

    def override(self, name: str, extra: dict) -> Path:
        """Another --config: the small one plus ``extra`` ({section: {key: value}})."""
        return write_override(self.root / name, extra)


@pytest.fixture(scope="module")
def train_env(tmp_path_factory) -> TrainEnv:
    root = tmp_path_factory.mktemp("train")
    make_train_folder(root / "data")
    return TrainEnv(root, root / "data", write_override(root / "small.yaml"))


@pytest.fixture(scope="module", autouse=True)
def train_settings():
    """For every test of a module that imports it: one torch thread and no curves.png.

    One thread: the 2 CPU cores are shared with other work, and oversubscribed OpenMP threads make
    torch many times slower; subprocesses get OMP_NUM_THREADS=1 too, so in-process and subprocess
    runs compute identically. No PNG: kaleido drives a browser for seconds; curves.html is still
    written. Module-scoped so that module-scoped training fixtures run under it too.
    """
    import torch

    import agefair.core.figures

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(agefair.core.figures, "find_browser", lambda: None)
            yield
    finally:
        torch.set_num_threads(threads)
