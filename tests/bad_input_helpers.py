"""Helpers of the bad-input suites (tests/test_bad_inputs*.py): run a command in-process, check the
one-line error, snapshot what is already written, tiny checkpoints and tiny labels-CSV datasets."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import jpeg_bytes

from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.errors import run_cli
from agefair.models.checkpoint import save_checkpoint
from agefair.models.network import create_model

SIZE = 32


def cli(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m agefair.<module> ARGV`` in-process, through run_cli: (exit code, stdout, stderr)."""
    main = importlib.import_module(f"agefair.{module}").main
    with pytest.raises(SystemExit) as exc:  # any other exception (a traceback) fails the test
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one non-empty stderr line ``agefair: error: ...`` holding every needle, no traceback."""
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("agefair: error: "), lines[0]
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with the hash of its bytes (what 'nothing already written changed' compares)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_checkpoint(path: Path, drop: tuple[str, ...] = ()) -> Path:
    """A tiny model.pt shaped like agefair.train's (resnet18, 32 px, random weights); ``drop``: model-config
    keys left out of the stored config."""
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE))
    torch.manual_seed(0)
    model = create_model(cfg.model)
    stored = cfg.model_dump(mode="json")
    for key in drop:
        del stored["model"][key]
    save_checkpoint({"model": model.state_dict(), "config": stored, "meta": {}, "epoch": 1, "val_mae": 9.0,
                     "history": [{"epoch": 1, "val_mae": 9.0}]}, path)
    return path


def make_csv_dataset(root: Path, n: int = 24, seed: int = 0, extra_rows: list[dict] | None = None,
                     attribute_values: tuple[str, str] = ("a", "b")) -> tuple[Path, pd.DataFrame]:
    """``root/labels.csv`` (file, age, group) over ``n`` tiny JPEGs in root/img, plus ``extra_rows``."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"img/{i}.jpg"
        (root / name).write_bytes(jpeg_bytes(rng, size=(40, 40)))
        rows.append({"file": name, "age": str(5 + 3 * i), "group": attribute_values[i % 2]})
    rows += extra_rows or []
    frame = pd.DataFrame(rows, columns=["file", "age", "group"])
    frame.to_csv(root / "labels.csv", index=False)
    return root / "labels.csv", frame


def lenient_thresholds(path: Path, min_group_size: int = 2) -> Path:
    path.write_text(yaml.safe_dump({"n_boot": 20, "min_group_size": min_group_size, "gallery_k": 0,
                                    "rules": [{"metric": "mae", "max": 1000}]}))
    return path
