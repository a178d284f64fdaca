"""ONNX export of an age model, checked against torch: the library behind ``python -m agefair.export``
(whose docstring describes the exported graph's input and output). ``AgePredictor`` wraps the whole
predictor, normalisation and head included; ``export_checked`` exports it with torch's exporter,
checks onnxruntime against torch on a random batch (``PARITY_TOLERANCE``) and stores the metadata.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agefair.core.config import TrainConfig
from agefair.core.errors import AgefairError
from agefair.core.io import atomic_path
from agefair.models.calibration import save_run_calibration
from agefair.models.checkpoint import file_sha256
from agefair.models.network import AgeModel
from agefair.models.runs import calibration_file

INPUT_NAME, OUTPUT_NAME, SPREAD_NAME = "image", "age", "spread"
PARITY_TOLERANCE = 0.05  # years: the largest torch-vs-onnxruntime difference an export may have
PARITY_BATCH = 8  # random images of the parity check


class AgePredictor(nn.Module):
    """AgeModel.predict as a module: float [0, 1] NCHW in, ages (N,) out; for the expectation head also the
    spread (N,) of the predicted age distribution, which the scaled conformal intervals need."""

    def __init__(self, model: AgeModel):
        super().__init__()
        self.model = model

    @property
    def with_spread(self) -> bool:
        return self.model.head_kind == "expectation"

    def forward(self, image: torch.Tensor):
        return self.model.predict_with_spread(image) if self.with_spread else self.model.predict(image)


def export_onnx(model: AgeModel, image_size: int, out: str | Path, metadata: dict[str, str] | None = None,
                opset: int | None = None) -> Path:
    """Write ``model`` as ONNX to ``out`` (atomically, one file) with a dynamic batch axis."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it; fail early with a clear message)
    except ImportError as exc:
        raise AgefairError(f"ONNX export needs onnx and onnxscript (pip install onnx onnxscript): {exc}") from None
    out = Path(out)
    wrapper = AgePredictor(model.cpu().float()).eval()
    example = torch.rand(2, 3, image_size, image_size)
    with atomic_path(out, suffix=".tmp.onnx") as tmp:
        log = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):  # the exporter prints its steps
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, (example,), input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME, SPREAD_NAME] if wrapper.with_spread else [OUTPUT_NAME],
                dynamic_shapes={"image": {0: torch.export.Dim("batch")}}, opset_version=opset,
                dynamo=True, external_data=False, verbose=False)
        proto = program.model_proto
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.checker.check_model(proto)
        onnx.save_model(proto, str(tmp))
    return out


def parity(model: AgeModel, onnx_path: str | Path, images: torch.Tensor) -> float:
    """Largest |torch - onnxruntime| difference over ``images`` (float [0, 1] NCHW), of the ages and (when
    exported) the spreads, in years."""
    from agefair.inference.estimator import OnnxEstimator

    est = OnnxEstimator(onnx_path)
    with torch.no_grad():
        ages, spread = (t.numpy() for t in model.cpu().float().eval().predict_with_spread(images))
    outs = est.session.run(None, {est.input_name: images.numpy()})
    diff = float(np.abs(np.asarray(outs[0]) - ages).max())
    if len(outs) > 1:
        diff = max(diff, float(np.abs(np.asarray(outs[1]) - spread).max()))
    return diff


def export_metadata(cfg: TrainConfig, checkpoint: str | Path) -> dict[str, str]:
    """The ONNX model's metadata: architecture, input and output contract, the checkpoint's SHA-256."""
    return {"agefair.backbone": cfg.model.backbone, "agefair.head": cfg.model.head,
            "agefair.image_size": str(cfg.model.image_size), "agefair.checkpoint_sha256": file_sha256(checkpoint),
            "agefair.input": "float32 NCHW RGB in [0, 1] (uint8 / 255), UTKFace-framed face crops; "
                             "normalisation is inside the model",
            "agefair.output": "age in years, shape [batch]" + (
                "; spread: the standard deviation of the predicted age distribution in years, shape [batch]"
                if cfg.model.head == "expectation" else "")}


def export_checked(model: AgeModel, cfg: TrainConfig, checkpoint: str | Path, out: str | Path,
                   opset: int | None = None) -> float:
    """Export ``model`` (loaded from ``checkpoint``) to ``out`` with its metadata, then compare onnxruntime
    with torch on PARITY_BATCH seeded random images; returns the largest difference in years. An export
    that differs by more than PARITY_TOLERANCE is removed and refused (AgefairError)."""
    size = cfg.model.image_size
    out = Path(out)
    try:
        export_onnx(model, size, out, export_metadata(cfg, checkpoint), opset)
    except OSError as exc:
        raise AgefairError(f"{out}: cannot write: {exc.strerror or exc}") from None
    images = torch.rand(PARITY_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
    diff = parity(model, out, images)
    if diff > PARITY_TOLERANCE:
        out.unlink()
        raise AgefairError(f"{out}: onnxruntime's ages differ from torch's by up to {diff:.3f} years "
                           f"(> {PARITY_TOLERANCE}); the export was removed")
    return diff


def copy_calibration(checkpoint: str | Path, onnx_path: str | Path) -> str:
    """Copy the checkpoint's calibration.json beside ``onnx_path`` (atomically); a sentence saying what happened.
    A stale copy of an earlier export is removed when the checkpoint has none."""
    from agefair.inference.estimator import find_calibration, onnx_calibration_file

    target = onnx_calibration_file(onnx_path)
    cal, note = find_calibration(calibration_file(Path(checkpoint)), file_sha256(checkpoint))
    if cal is None:
        target.unlink(missing_ok=True)
        return f"agefair: {note} (the ONNX model gets none)"
    save_run_calibration(cal, target)
    return f"agefair: wrote {target} ({cal.coverage:.0%} intervals; predict and video read it beside the model)"
