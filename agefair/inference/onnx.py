"""``python -m agefair.export --model CKPT --onnx model.onnx``: export an age model to ONNX.

The exported graph is the whole predictor, normalisation and head included:

- input ``image``: float32, shape [batch, 3, S, S] (NCHW, RGB), values in [0, 1] (uint8 / 255,
  what agefair.models.network.to_input gives); S is the checkpoint's image size; the batch axis is dynamic.
  Faces should be cropped like UTKFace's chips (agefair.data.faces.utk_crop) and resized to S x S.
- output ``age``: float32, shape [batch]: the predicted age in years (the expectation head's
  softmax expected value, or the regression head's output).

The model is exported with torch's ``torch.export``-based exporter (it needs onnxscript), written
atomically as one file, checked with onnxruntime against torch on a random batch (the export is
refused when they differ by more than 0.05 years) and tagged with metadata (backbone, head, image
size, the checkpoint's SHA-256). ``python -m agefair.predict --model model.onnx`` and
``python -m agefair.video --model model.onnx`` run it with onnxruntime.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agefair.core.errors import AgefairError
from agefair.core.io import atomic_path
from agefair.models.network import AgeModel

INPUT_NAME, OUTPUT_NAME = "image", "age"


PARITY_TOLERANCE = 0.05  # years: the largest torch-vs-onnxruntime difference an export may have


PARITY_BATCH = 8


class AgePredictor(nn.Module):
    """AgeModel.predict as a module: float [0, 1] NCHW in, ages (N,) out."""

    def __init__(self, model: AgeModel):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.predict(image)


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
                wrapper, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
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
    """Largest |torch age - onnxruntime age| over ``images`` (float [0, 1] NCHW)."""
    from agefair.inference.estimator import OnnxEstimator

    est = OnnxEstimator(onnx_path)
    with torch.no_grad():
        expected = model.cpu().float().eval().predict(images).numpy()
    (got,) = est.session.run(None, {est.input_name: images.numpy()})
    return float(np.abs(np.asarray(got) - expected).max())
