"""Training objectives: what turns one batch's model output into the scalar loss a step minimises.

An ``Objective`` is called with (model, output, ages, manifest rows) and may keep state across batches
and epochs (saved in last.pt, so ``--resume`` continues it). ``MeanLoss`` is the per-sample loss,
weighted by the variant's loss weights, averaged over the batch (every age variant);
``agefair.training.group_dro.GroupDRO`` minimises the worst group's loss. The per-sample loss is the
head's (cross-entropy over integer ages, or L1 / smooth-L1) or, with ``train.loss: bmse``, Balanced
MSE on the expected age (``BalancedMSE``), which needs the whole batch's targets.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from agefair.core.fair_config import BalancedMSESettings
from agefair.models.network import AgeModel
from agefair.models.runtime import per_sample_loss


class Objective:
    """The scalar loss of a batch; the hooks do nothing unless an objective has state."""

    def __call__(self, model: AgeModel, out: torch.Tensor, ages: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups of the objective's own trainable parameters."""
        return []

    def after_backward(self) -> None:
        """After loss.backward(), before the optimiser's step (e.g. averaging gradients across processes)."""

    def end_epoch(self, epoch: int) -> None:
        """At the end of each training epoch, before last.pt is saved."""

    def describe(self) -> str:
        """Appended to the epoch's log line ('' for nothing)."""
        return ""

    def summary(self) -> dict:
        """Merged into the run's summary.json."""
        return {}

    def write_files(self, out: Path) -> None:
        """The objective's files in the run folder (rank 0, every epoch)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s state (from last.pt)."""


class BalancedMSE:
    """Balanced MSE, batch-based Monte-Carlo form (Ren, Zhang, Yu & Liu, CVPR 2022): for predictions p_i
    and the batch's targets y_j, loss_i = cross-entropy of softmax_j(-(p_i - y_j)^2 / (2 sigma^2)) with
    the true index i, times 2 sigma^2 (detached, restoring the loss scale, as the paper's code does).

    ``sigma`` is a fixed noise scale or a learnable parameter (its own optimiser group). Under DDP each
    process uses its own shard's targets and the noise scale's gradient is averaged across processes."""

    def __init__(self, settings: BalancedMSESettings, device: torch.device | str = "cpu"):
        self.settings = settings
        self.sigma = torch.nn.Parameter(torch.tensor(float(settings.noise_sigma), device=device),
                                        requires_grad=settings.learnable)

    def per_sample(self, pred: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
        dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32  # at least fp32 under autocast
        var = self.sigma.to(dtype) ** 2
        logits = -(pred.to(dtype)[:, None] - ages.to(dtype)[None, :]) ** 2 / (2 * var)
        target = torch.arange(len(pred), device=pred.device)
        return F.cross_entropy(logits, target, reduction="none") * (2 * var).detach()

    def param_groups(self) -> list[dict]:
        if not self.settings.learnable:
            return []
        return [{"params": [self.sigma], "lr": self.settings.sigma_lr, "weight_decay": 0.0, "own_lr": True}]

    def after_backward(self) -> None:
        if self.sigma.grad is not None and dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.sigma.grad, op=dist.ReduceOp.SUM)
            self.sigma.grad /= dist.get_world_size()


class MeanLoss(Objective):
    """The weighted mean of the per-sample losses: baseline, oversample, weighted, lds and bmse.

    ``loss_weights``: per manifest row (agefair.training.batches.loss_weight_table) or None."""

    def __init__(self, loss_name: str = "l1", loss_weights: torch.Tensor | None = None,
                 bmse: BalancedMSE | None = None, label_sigma: float = 0.0):
        self.loss_name, self.loss_weights, self.bmse, self.label_sigma = loss_name, loss_weights, bmse, label_sigma

    def sample_losses(self, model: AgeModel, out: torch.Tensor, ages: torch.Tensor,
                      rows: torch.Tensor) -> torch.Tensor:
        """Each sample's loss times its loss weight."""
        if self.bmse is not None:  # either head: Balanced MSE on the expected age
            losses = self.bmse.per_sample(model.expected_age(out), ages)
        else:
            losses = per_sample_loss(model, out, ages, self.loss_name, label_sigma=self.label_sigma)
        if self.loss_weights is not None:
            losses = losses * self.loss_weights[rows].to(ages.device)
        return losses

    def __call__(self, model, out, ages, rows):
        return self.sample_losses(model, out, ages, rows).mean()

    def param_groups(self) -> list[dict]:
        return self.bmse.param_groups() if self.bmse is not None else []

    def after_backward(self) -> None:
        if self.bmse is not None:
            self.bmse.after_backward()

    def describe(self) -> str:
        if self.bmse is None or not self.bmse.settings.learnable:
            return ""
        return f" | bmse sigma {float(self.bmse.sigma.detach()):.2f}"

    def summary(self) -> dict:
        return {} if self.bmse is None else {"bmse_noise_sigma": float(self.bmse.sigma.detach())}

    def state_dict(self) -> dict:
        return {} if self.bmse is None else {"bmse_sigma": self.bmse.sigma.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if self.bmse is not None and "bmse_sigma" in state:
            with torch.no_grad():
                self.bmse.sigma.copy_(state["bmse_sigma"])
