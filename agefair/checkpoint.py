"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load)."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from agefair.config import TrainConfig, validate
from agefair.errors import AgefairError
from agefair.io_utils import atomic_path
from agefair.model import AgeModel, create_model


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash leaves the old file intact."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise AgefairError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False, which would run the file's code: quote only
        # what it refused (e.g. "Unsupported global: GLOBAL posix.system").
        found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+", str(exc))
        what = found.group(0) if found else "content that is not plain tensors and values"
        raise AgefairError(f"{path}: refused: not a plain agefair checkpoint ({what}); it was not loaded") from None
    except Exception as exc:  # torch.load raises RuntimeError, KeyError, EOFError, BadZipFile... on garbage
        raise AgefairError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or "model" not in obj or "config" not in obj:
        raise AgefairError(f"{path}: not an agefair checkpoint (no model weights and config)")
    return obj


def model_from_checkpoint(path: str | Path) -> tuple[AgeModel, TrainConfig, dict[str, Any]]:
    """The model with its weights, its training config and the checkpoint's other fields."""
    ckpt = load_checkpoint(path)
    cfg = validate(TrainConfig, ckpt["config"], f"{path} (stored config)")
    model = create_model(cfg.model.model_copy(update={"pretrained": "none"}))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, KeyError, AttributeError):
        raise AgefairError(f"{path}: weights do not fit a {cfg.model.backbone} with a {cfg.model.head} head "
                           f"(checkpoint from another model?)") from None
    model.eval()
    return model, cfg, ckpt


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
