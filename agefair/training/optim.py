"""Optimiser, learning-rate schedule and the lr scaling of a multi-process job."""

from __future__ import annotations

import torch

from agefair.core.config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, extra_groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """``extra_groups``: parameter groups of the objective's own parameters (agefair.training.objectives);
    one marked ``own_lr`` keeps its learning rate under the one-cycle schedule."""
    o = cfg.optim
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # biases and BatchNorm
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0},
              *(extra_groups or [])]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    return torch.optim.AdamW(groups, lr=o.lr)


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """(scheduler or None, whether it steps per batch)."""
    o = cfg.optim
    if o.schedule == "onecycle" and cfg.train.epochs * steps_per_epoch * o.warmup_fraction < 2:
        return None, False  # too few steps for a warm-up and a decay (smoke tests): constant lr
    if o.schedule == "onecycle":
        own = [g.get("own_lr", False) for g in optimizer.param_groups]
        max_lr = [g["lr"] if mine else o.lr for g, mine in zip(optimizer.param_groups, own)] if any(own) else o.lr
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch,
            pct_start=o.warmup_fraction), True
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs), False
    return None, False


def scaled_config(cfg: TrainConfig, world_size: int) -> TrainConfig:
    """The configuration a job of ``world_size`` processes trains with: ``optim.lr_scaling: linear``
    multiplies the learning rate by the process count (Goyal et al. 2017), since the effective batch
    is ``batch_size x world_size``."""
    if cfg.optim.lr_scaling != "linear" or world_size == 1:
        return cfg
    return cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"lr": cfg.optim.lr * world_size})})
