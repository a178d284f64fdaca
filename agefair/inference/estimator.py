"""Age estimators for inference: a torch checkpoint (``.pt``) or an exported ONNX model (``.onnx``).

Both take face crops as an (N, S, S, 3) uint8 RGB array (S = the model's image size, crops framed
like UTKFace's chips, see agefair.data.faces) and return (N,) float32 ages in years. The ONNX model's
input contract is agefair.models.network.to_input's output: float32 NCHW RGB in [0, 1]; ImageNet
normalisation is inside the model (see agefair.export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from agefair.core.errors import AgefairError

ONNX_SUFFIX = ".onnx"


class AgeEstimator(Protocol):
    size: int  # the square input side in pixels
    description: str  # e.g. "resnet18@48, torch fp32 on cpu"

    def predict(self, faces: np.ndarray) -> np.ndarray: ...


def _check_faces(faces: np.ndarray, size: int) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
        raise ValueError(f"faces must be (N, {size}, {size}, 3) uint8, got {faces.shape} {faces.dtype}")
    return faces


class TorchEstimator:
    """A checkpoint's model on the best local device (agefair.models.runtime.make_runtime("auto")).

    ``threads`` sets torch's intra-op CPU threads, for the whole process (torch has no per-model setting).
    """

    def __init__(self, checkpoint: str | Path, threads: int | None = None):
        from agefair.models.checkpoint import model_from_checkpoint
        from agefair.models.runtime import make_runtime

        if threads:
            torch.set_num_threads(threads)

        model, cfg, _ = model_from_checkpoint(checkpoint)
        self.size = cfg.model.image_size
        self.rt = make_runtime("auto")
        model = model.to(self.rt.device)
        if self.rt.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.description = (f"{cfg.model.backbone}@{self.size}, torch {self.rt.measure_precision_name} "
                            f"on {self.rt.device}")

    @torch.no_grad()
    def predict(self, faces: np.ndarray) -> np.ndarray:
        faces = _check_faces(faces, self.size)
        if len(faces) == 0:
            return np.zeros(0, np.float32)
        x = self.rt.to_device(torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2))
        with self.rt.measure_autocast():
            return self.model.predict(x).float().cpu().numpy()


class OnnxEstimator:
    """An ONNX model written by ``python -m agefair.export``, run with onnxruntime (``threads``:
    its intra-op threads; default: one per physical core)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise AgefairError(f"{path}: ONNX model not found")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise AgefairError(f"running {path} needs onnxruntime (pip install onnxruntime): {exc}") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: no warnings on stderr
        if threads:
            opts.intra_op_num_threads = threads
        # CUDA where this onnxruntime build has it, else the CPU (not e.g. the Azure remote provider
        # that the PyPI wheel lists first)
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise AgefairError(f"{path}: not a loadable ONNX model ({first})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if (shape is None or len(outputs) != 1 or len(shape) != 4 or shape[1] != 3
                or not isinstance(shape[2], int) or shape[2] != shape[3] or inputs[0].type != "tensor(float)"):
            got = ", ".join(f"{i.name} {i.shape} {i.type}" for i in inputs)
            raise AgefairError(f"{path}: not an agefair age model (expected one float input [N, 3, S, S] and one "
                               f"output; got inputs {got} and {len(outputs)} outputs)")
        self.size = int(shape[2])
        self.input_name = inputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        arch = f"{meta['agefair.backbone']}@{self.size}" if "agefair.backbone" in meta else f"{self.size} px"
        self.description = f"{arch}, onnxruntime ({self.session.get_providers()[0]})"

    def predict(self, faces: np.ndarray) -> np.ndarray:
        faces = _check_faces(faces, self.size)
        if len(faces) == 0:
            return np.zeros(0, np.float32)
        x = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        (ages,) = self.session.run(None, {self.input_name: x})
        return np.asarray(ages, dtype=np.float32).reshape(len(faces))


def load_estimator(path: str | Path, threads: int | None = None) -> AgeEstimator:
    """An ONNX model for ``*.onnx``, else a torch checkpoint; ``threads``: CPU threads it may use."""
    path = Path(path)
    if path.suffix.lower() == ONNX_SUFFIX:
        return OnnxEstimator(path, threads)
    return TorchEstimator(path, threads)
