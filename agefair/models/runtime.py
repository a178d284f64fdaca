"""Where tensors are computed (Runtime), the per-sample training loss, and one pass of prediction over a loader."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from agefair.core.errors import AgefairError
from agefair.models.network import AgeModel, to_input

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed.

    ``dtype`` is the autocast type of training steps (``autocast``); measurements (``predict``:
    validation MAE, audit, robustness, prediction) run in ``measure_dtype``, fp32 unless asked
    otherwise, so that the same checkpoint gives the same ages on every CPU and GPU.
    """

    device: torch.device
    dtype: torch.dtype | None  # training autocast dtype, None = fp32
    channels_last: bool
    measure_dtype: torch.dtype | None = None  # None = fp32

    def autocast(self):
        return _autocast(self.device, self.dtype)

    def measure_autocast(self):
        return _autocast(self.device, self.measure_dtype)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        x = to_input(images.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def precision_name(self) -> str:
        """The training precision."""
        return _name(self.dtype)

    @property
    def measure_precision_name(self) -> str:
        """The precision every prediction and evaluation is computed in."""
        return _name(self.measure_dtype)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def _name(dtype: torch.dtype | None) -> str:
    return next(name for name, d in PRECISIONS.items() if d == dtype)


def cpu_supports_bf16() -> bool:
    cap = torch.backends.cpu.get_cpu_capability().lower()
    return "avx512" in cap or "amx" in cap


def make_runtime(device: str = "auto", precision: str = "auto", channels_last: bool = True, *,
                 measure_precision: str = "fp32") -> Runtime:
    """``precision``: training autocast (auto: bf16 on a GPU or an AVX-512/AMX CPU, fp16 on GPUs
    without bf16, else fp32); ``measure_precision``: predictions and evaluation (fp32 by default)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise AgefairError("--device cuda asked for, but torch sees no CUDA GPU")
    dev = torch.device(device)
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_supports_bf16() else "fp32"
    return Runtime(dev, PRECISIONS[precision], channels_last, PRECISIONS[measure_precision])


def per_sample_loss(model: AgeModel, out: torch.Tensor, ages: torch.Tensor, loss: str, *,
                    label_sigma: float = 0.0) -> torch.Tensor:
    """Loss of each sample: cross-entropy over integer ages (expectation head) or L1 / smooth-L1.

    ``label_sigma`` > 0 (expectation head): the cross-entropy's target is a Gaussian over ages of that
    width in years, centred on the label, instead of the one-hot rounded age (label-distribution learning,
    Gao et al., IEEE TIP 2017). ``bmse`` (Balanced MSE, a batch-level training loss:
    agefair.training.objectives) is evaluated as the squared error of the expected age, the plain MSE it
    rebalances, for either head."""
    if loss == "bmse":
        return (model.expected_age(out) - ages.float()) ** 2
    if model.head_kind == "expectation":
        if label_sigma > 0:  # class probabilities
            target = torch.softmax(-(model.ages[None, :] - ages.float()[:, None]) ** 2 / (2 * label_sigma**2), dim=1)
        else:  # class indices
            target = ages.round().long().clamp_(0, model.max_age)
        return F.cross_entropy(out.float(), target, reduction="none")
    pred = out[:, 0].float()
    if loss == "smooth_l1":
        return F.smooth_l1_loss(pred, ages, reduction="none")
    return F.l1_loss(pred, ages, reduction="none")


@torch.no_grad()
def predict_loader(model: AgeModel, loader: DataLoader, rt: Runtime, loss_name: str = "l1",
                   desc: str = "evaluating", progress: bool = True) -> dict[str, np.ndarray | float]:
    """Predicted ages for every sample of ``loader`` (``pred``; ``sigma``: the spread of the predicted
    distribution, NaN for a regression head), with the rows they came from and the mean loss."""
    model.eval()
    rows_out, preds_out, ages_out, spread_out = [], [], [], []
    total_loss = 0.0
    n = 0
    for images, ages, rows in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        x = rt.to_device(images)
        y = ages.to(rt.device)
        with rt.measure_autocast():
            out = model(x)
        total_loss += per_sample_loss(model, out, y, loss_name).sum().item()
        n += len(y)
        preds_out.append(model.expected_age(out).cpu().numpy())
        spread_out.append(model.spread(out).cpu().numpy())
        ages_out.append(ages.numpy())
        rows_out.append(rows.numpy())
    preds = np.concatenate(preds_out) if preds_out else np.zeros(0)
    ages = np.concatenate(ages_out) if ages_out else np.zeros(0)
    sigma = np.concatenate(spread_out) if spread_out else np.zeros(0)
    return {"rows": np.concatenate(rows_out) if rows_out else np.zeros(0, dtype=int), "pred": preds, "sigma": sigma,
            "age": ages, "loss": total_loss / max(n, 1), "mae": float(np.abs(preds - ages).mean()) if n else float("nan")}
