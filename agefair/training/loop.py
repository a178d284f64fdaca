"""One epoch of training, torchvision-reference style: forward, the batch's loss (the run's objective:
agefair.training.objectives), backward, step; running sums stay on the device and are read every few batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from agefair.models.network import AgeModel
from agefair.models.runtime import Runtime
from agefair.training.ema import WeightEMA
from agefair.training.objectives import MeanLoss, Objective

SYNC_EVERY = 20  # batches between progress-bar updates (each one waits for the device)


@dataclass(frozen=True)
class LoopSettings:
    """What every training epoch of one run shares."""

    rt: Runtime
    loss_name: str = "l1"
    loss_weights: torch.Tensor | None = None  # per manifest row (agefair.training.trainer.loss_weight_table)
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    step_per_batch: bool = False  # the scheduler steps after every batch (one-cycle), else once per epoch
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None  # agefair.training.augment.BatchAugment
    progress: bool = True
    objective: Objective | None = None  # None: MeanLoss(loss_name, loss_weights)
    ema: WeightEMA | None = None  # stepped after every optimiser step
    mixup: float = 0.0  # mixup's Beta(a, a) parameter; 0: off

    def batch_objective(self) -> Objective:
        return self.objective or MeanLoss(self.loss_name, self.loss_weights)


def train_one_epoch(model: AgeModel, loader: DataLoader, optimizer: torch.optim.Optimizer, *, scheduler,
                    settings: LoopSettings, epoch: int, epochs: int,
                    net: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """Returns the epoch's mean training loss and MAE, image count and throughput (images/second).

    ``settings.augment`` is applied to each float batch on the device. ``net`` is what the forward pass
    runs (a DistributedDataParallel or torch.compile wrapper of ``model``); ``model`` itself answers
    head questions (loss, expected age).
    Running sums stay on the device and are read back every ``SYNC_EVERY`` batches, so a GPU is not
    stalled by a host synchronisation after every step.
    """
    rt, scaler, augment, progress = settings.rt, settings.scaler, settings.augment, settings.progress
    objective = settings.batch_objective()
    net = net or model
    net.train()
    total_loss = torch.zeros((), dtype=torch.float64, device=rt.device)
    total_abs = torch.zeros((), dtype=torch.float64, device=rt.device)
    n = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}/{epochs} train", unit="batch", leave=False, disable=not progress)
    for i, (images, ages, rows) in enumerate(bar):
        x = rt.to_device(images)
        if augment is not None:
            x = augment(x)
            if rt.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        y = ages.to(rt.device, non_blocking=True)
        lam, perm = mixup_draw(len(y), settings.mixup)
        if perm is not None:
            x = lam * x + (1 - lam) * x[perm.to(x.device)]
        with rt.autocast():
            out = net(x)
        loss = mixed_loss(objective, model, out, y, rows, lam, perm)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            objective.after_backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            objective.after_backward()
            optimizer.step()
        if settings.ema is not None:
            settings.ema.step()
        if scheduler is not None and settings.step_per_batch:
            scheduler.step()
        with torch.no_grad():
            total_abs += (model.expected_age(out.detach()).float() - y).abs().sum()
            total_loss += loss.detach() * len(y)
        n += len(y)
        if progress and i % SYNC_EVERY == 0:
            bar.set_postfix(loss=f"{total_loss.item() / n:.3f}", mae=f"{total_abs.item() / n:.2f}",
                            img_s=f"{n / (time.perf_counter() - start):.0f}")
    total_loss, total_abs = total_loss.item(), total_abs.item()
    seconds = time.perf_counter() - start
    return {"loss": total_loss / max(n, 1), "mae": total_abs / max(n, 1), "n": n, "seconds": seconds,
            "img_per_s": n / seconds if seconds > 0 else 0.0}


def mixup_draw(n: int, alpha: float) -> tuple[float, torch.Tensor | None]:
    """Mixup (Zhang et al., ICLR 2018) for one batch: the weight lambda ~ Beta(alpha, alpha) of each image and
    the permutation that pairs it with another; (1.0, None) when alpha is 0. Drawn from torch's global
    generator, which the trainer seeds per epoch."""
    if alpha <= 0 or n < 2:
        return 1.0, None
    g = torch.distributions.Gamma(torch.tensor([alpha, alpha]), torch.tensor([1.0, 1.0])).sample()
    return float(g[0] / g.sum()), torch.randperm(n)


def mixed_loss(objective: Objective, model: AgeModel, out: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
               lam: float, perm: torch.Tensor | None) -> torch.Tensor:
    """The batch's loss; under mixup, the two blended images' losses in the images' proportion."""
    loss = objective(model, out, y, rows)
    if perm is None:
        return loss
    return lam * loss + (1 - lam) * objective(model, out, y[perm.to(y.device)], rows[perm])
