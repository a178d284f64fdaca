"""Age estimators for inference: a torch checkpoint (``.pt``) or an exported ONNX model (``.onnx``).

Both take face crops as an (N, S, S, 3) uint8 RGB array (S = the model's image size, crops framed
like UTKFace's chips, see agefair.data.faces) and return (N,) float32 ages in years. The ONNX model's
input contract is agefair.models.network.to_input's output: float32 NCHW RGB in [0, 1]; ImageNet
normalisation is inside the model (see agefair.export).

Intervals: an estimator carries its model's conformal calibration when one is found (a checkpoint's
run folder holds calibration.json; an ONNX model has ``<name>.calibration.json`` beside it, written
by agefair.export), checked against the model's SHA-256. ``predict_with_intervals`` then gives each
age its marginal interval (a person's group is not known at prediction time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from agefair.core.errors import AgefairError
from agefair.models.calibration import RunCalibration, load_run_calibration
from agefair.models.checkpoint import file_sha256
from agefair.models.posthoc import correction_of
from agefair.models.runs import calibration_file

ONNX_SUFFIX = ".onnx"


class AgeEstimator(Protocol):
    size: int  # the square input side in pixels
    description: str  # e.g. "resnet18@48, torch fp32 on cpu"
    calibration: RunCalibration | None  # the model's conformal calibration, when found
    calibration_note: str  # where it came from, or why there is none

    def predict(self, faces: np.ndarray) -> np.ndarray: ...

    def predict_with_spread(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Estimates:
    """Ages and, with a calibration, their marginal conformal intervals (None without)."""

    ages: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    coverage: float | None = None


def predict_with_intervals(estimator: AgeEstimator, faces: np.ndarray) -> Estimates:
    ages, spread = estimator.predict_with_spread(faces)
    cal = estimator.calibration
    if cal is None or len(ages) == 0:
        return Estimates(ages)
    iv = cal.intervals(pred=ages.astype(float), sigma=spread.astype(float))
    return Estimates(ages, iv.lo, iv.hi, cal.coverage)


def refuse_posthoc(ckpt: dict, path: str | Path) -> None:
    """A post-hoc corrected model (the calibrated variant) needs each person's group, which a photo does not
    give: one line naming the model to use instead."""
    correction = correction_of(ckpt, str(path))
    if correction is not None:
        base = Path(path).parent.parent / correction.base / "model.pt"
        raise AgefairError(f"{path}: corrects {correction.base}'s ages by each person's "
                           f"{', '.join(correction.attributes)}, which a photo does not give; use {base}")


def find_calibration(path: Path, sha256: str | None) -> tuple[RunCalibration | None, str]:
    """(the calibration at ``path`` if it is this model's, else None; a sentence saying which)."""
    if not path.exists():
        return None, f"no {path.name} beside the model: ages without intervals"
    try:
        cal = load_run_calibration(path)
    except AgefairError as exc:
        return None, f"{exc}: ages without intervals"
    if sha256 is not None and cal.checkpoint_sha256 != sha256:
        return None, f"{path} is of another checkpoint: ages without intervals"
    return cal, f"{cal.coverage:.0%} intervals from {path}"


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

        model, cfg, ckpt = model_from_checkpoint(checkpoint)
        refuse_posthoc(ckpt, checkpoint)
        self.size = cfg.model.image_size
        self.rt = make_runtime("auto")
        model = model.to(self.rt.device)
        if self.rt.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.description = (f"{cfg.model.backbone}@{self.size}, torch {self.rt.measure_precision_name} "
                            f"on {self.rt.device}")
        self.calibration, self.calibration_note = find_calibration(calibration_file(Path(checkpoint)),
                                                                   file_sha256(checkpoint))

    def predict(self, faces: np.ndarray) -> np.ndarray:
        return self.predict_with_spread(faces)[0]

    @torch.no_grad()
    def predict_with_spread(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ages and the spread of each predicted age distribution (NaN for a regression head)."""
        faces = _check_faces(faces, self.size)
        if len(faces) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        x = self.rt.to_device(torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2))
        with self.rt.measure_autocast():
            ages, spread = self.model.predict_with_spread(x)
        return ages.float().cpu().numpy(), spread.float().cpu().numpy()


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
        if (shape is None or len(outputs) not in (1, 2) or len(shape) != 4 or shape[1] != 3
                or not isinstance(shape[2], int) or shape[2] != shape[3] or inputs[0].type != "tensor(float)"):
            got = ", ".join(f"{i.name} {i.shape} {i.type}" for i in inputs)
            raise AgefairError(f"{path}: not an agefair age model (expected one float input [N, 3, S, S] and an age "
                               f"output (and a spread); got inputs {got} and {len(outputs)} outputs)")
        self.size = int(shape[2])
        self.input_name = inputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        arch = f"{meta['agefair.backbone']}@{self.size}" if "agefair.backbone" in meta else f"{self.size} px"
        self.description = f"{arch}, onnxruntime ({self.session.get_providers()[0]})"
        self.calibration, self.calibration_note = find_calibration(onnx_calibration_file(path),
                                                                   meta.get("agefair.checkpoint_sha256"))
        if self.calibration is not None and self.calibration.marginal.score == "scaled" and len(outputs) == 1:
            self.calibration = None
            self.calibration_note = (f"{onnx_calibration_file(path)} needs the spread output, which {path.name} lacks "
                                     f"(export it again): ages without intervals")

    def predict(self, faces: np.ndarray) -> np.ndarray:
        return self.predict_with_spread(faces)[0]

    def predict_with_spread(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ages and spreads (the graph's second output; NaN for a model exported without one)."""
        faces = _check_faces(faces, self.size)
        if len(faces) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        x = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        outs = self.session.run(None, {self.input_name: x})
        ages = np.asarray(outs[0], dtype=np.float32).reshape(len(faces))
        spread = (np.asarray(outs[1], dtype=np.float32).reshape(len(faces)) if len(outs) > 1
                  else np.full(len(faces), np.nan, np.float32))
        return ages, spread


def onnx_calibration_file(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.calibration.json`` beside it (what agefair.export writes)."""
    p = Path(onnx_path)
    return p.with_name(p.stem + ".calibration.json")


def load_estimator(path: str | Path, threads: int | None = None) -> AgeEstimator:
    """An ONNX model for ``*.onnx``, else a torch checkpoint; ``threads``: CPU threads it may use."""
    path = Path(path)
    if path.suffix.lower() == ONNX_SUFFIX:
        return OnnxEstimator(path, threads)
    return TorchEstimator(path, threads)
