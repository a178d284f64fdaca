"""Validation during training: the mean loss and MAE of a model over some rows, the same under torchrun."""

from __future__ import annotations

import numpy as np

from agefair.core.config import TrainConfig
from agefair.models.runtime import Runtime, predict_loader
from agefair.training.batches import TrainData, eval_loader
from agefair.training.distributed import DistContext, shard_rows


def evaluate(model, data: TrainData, rows: np.ndarray, cfg: TrainConfig, rt: Runtime, ctx: DistContext,
             desc: str, progress: bool) -> dict[str, float]:
    """Mean loss and MAE over ``rows``; each process predicts its shard and the sums are reduced, so the
    figure equals a single-process evaluation of the same weights."""
    ctx.broadcast_buffers(model)  # BatchNorm running statistics: rank 0's, as saved in the checkpoint
    shard = shard_rows(rows, ctx.rank, ctx.world_size)
    va = predict_loader(model, eval_loader(data, shard, cfg, rt), rt, cfg.train.loss, desc=desc, progress=progress)
    n = len(va["pred"])
    loss_sum, abs_sum, n = ctx.sum([va["loss"] * n, float(np.abs(va["pred"] - va["age"]).sum()), n])
    return {"loss": loss_sum / max(n, 1), "mae": abs_sum / n if n else float("nan")}
