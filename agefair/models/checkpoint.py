"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load)."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from agefair.core.config import TrainConfig, validate
from agefair.core.errors import AgefairError
from agefair.core.io import (
    atomic_path,
    file_sha256,  # noqa: F401  (re-exported: callers hash checkpoints here)
)
from agefair.models.network import AgeModel, create_model


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash leaves the old file intact.

    A failed write (disk full, no permission) is a one-line AgefairError; ``path`` is left as it was.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError("...unexpected pos...")
        if isinstance(exc, OSError) and exc.strerror:
            why = exc.strerror
        else:
            try:
                free = shutil.disk_usage(path.parent).free
            except OSError:
                free = -1
            need = _tensor_bytes(obj)
            why = (f"no space left on the disk ({need / 1e6:.1f} MB to write, {free / 1e6:.1f} MB free)"
                   if 0 <= free < need + (1 << 20) else f"write failed ({str(exc).splitlines()[0][:120]})")
        kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"
        raise AgefairError(f"{path}: cannot save the checkpoint: {why}; {kept}") from None


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested dict/list (about a checkpoint's size on disk)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


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


# What the model is built from: a stored config without one of these would be completed by the config's
# defaults (a 128 px input for a model trained at another size gives wrong ages without any error).
MODEL_FIELDS = ("backbone", "head", "image_size", "max_age")


def stored_config(ckpt: dict[str, Any], path: str | Path) -> TrainConfig:
    """The training config stored in a checkpoint; one without a model section or one of MODEL_FIELDS is
    refused (one line), never completed with defaults."""
    stored = ckpt.get("config")
    model = stored.get("model") if isinstance(stored, dict) else None
    if not isinstance(model, dict):
        raise AgefairError(f"{path}: the stored config has no model section (backbone, image size...); refused")
    missing = [k for k in MODEL_FIELDS if k not in model]
    if missing:
        raise AgefairError(f"{path}: the stored config lacks model.{', model.'.join(missing)}; refused rather than "
                           f"guessed (a wrong input size or head gives wrong ages silently)")
    return validate(TrainConfig, stored, f"{path} (stored config)")


def model_from_checkpoint(path: str | Path) -> tuple[AgeModel, TrainConfig, dict[str, Any]]:
    """The model with its weights, its training config and the checkpoint's other fields."""
    ckpt = load_checkpoint(path)
    cfg = stored_config(ckpt, path)
    model = create_model(cfg.model.model_copy(update={"pretrained": "none"}))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, KeyError, AttributeError):
        raise AgefairError(f"{path}: weights do not fit a {cfg.model.backbone} with a {cfg.model.head} head "
                           f"(checkpoint from another model?)") from None
    model.eval()
    return model, cfg, ckpt


