"""The objective a run of a variant trains with (agefair.training.objectives), built from its data and config."""

from __future__ import annotations

import torch

from agefair.core.config import DataConfig, TrainConfig
from agefair.training.batches import TrainData, loss_weight_table
from agefair.training.group_dro import GroupDRO, group_table
from agefair.training.objectives import BalancedMSE, MeanLoss, Objective
from agefair.training.variants import VARIANTS


def make_objective(variant: str, cfg: TrainConfig, data: TrainData, data_cfg: DataConfig,
                   device: torch.device | str = "cpu") -> Objective:
    """The variant's objective: the weighted mean of the per-sample losses (Balanced MSE with
    ``train.loss: bmse``), or Group DRO over them for a variant whose objective is ``group_dro``."""
    bmse = BalancedMSE(cfg.bmse, device) if cfg.train.loss == "bmse" else None
    base = MeanLoss(cfg.train.loss, loss_weight_table(data, cfg, variant, data_cfg), bmse, cfg.train.label_sigma)
    if VARIANTS[variant].objective != "group_dro":
        return base
    attributes = list(cfg.group_dro.groups)
    row_group, groups = group_table(data.manifest, data.train_rows, attributes, data_cfg.age_bins)
    return GroupDRO(base, row_group, groups, attributes, cfg.group_dro, device)
