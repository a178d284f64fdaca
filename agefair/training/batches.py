"""What one training run reads: the cached images and split rows (TrainData), each epoch's batches
(the variant's draw, sharded across processes) and the variant's per-row loss weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from agefair.core.config import DataConfig, TrainConfig
from agefair.core.errors import AgefairError
from agefair.data.dataset import FaceDataset
from agefair.data.image_cache import build_image_cache
from agefair.data.prepare import PreparedData
from agefair.data.split import stratified_limit
from agefair.models.runtime import Runtime
from agefair.training.distributed import DistContext, ShardedEpochSampler
from agefair.training.variants import VARIANTS


@dataclass
class TrainData:
    images: np.ndarray  # image cache, row i = manifest row i
    manifest: pd.DataFrame
    train_rows: np.ndarray
    val_rows: np.ndarray


def load_train_data(prepared: PreparedData, data_cfg: DataConfig, cfg: TrainConfig, limit: int | None,
                    progress: bool) -> TrainData:
    manifest = prepared.manifest
    images = build_image_cache(prepared.data_dir, manifest, prepared.data_hash, cfg.model.image_size,
                               prepared.work_dir, progress=progress)
    split = manifest["split"].to_numpy()
    train_rows = np.flatnonzero(split == "train")
    val_rows = np.flatnonzero(split == "val")
    if limit is not None:
        train_rows = stratified_limit(manifest, train_rows, limit, data_cfg, cfg.train.seed)
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise AgefairError(f"{prepared.data_dir}: the split has {len(train_rows)} training and {len(val_rows)} "
                           f"validation images; need at least one of each")
    return TrainData(images, manifest, train_rows, val_rows)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's shuffling and augmentation: a resumed run replays the same epochs."""
    return seed * 100_003 + epoch


def train_loader(data: TrainData, cfg: TrainConfig, variant_name: str, data_cfg: DataConfig, epoch: int,
                 rt: Runtime, ctx: DistContext = DistContext()) -> DataLoader:
    """This process's batches of one epoch: the variant's draw (shuffle or oversampling) for the whole
    job, seeded by the epoch, sharded across processes (see agefair.training.distributed.ShardedEpochSampler)."""
    variant = VARIANTS[variant_name]
    ages = data.manifest["age"].to_numpy(dtype=np.float32)
    ds = FaceDataset(data.images, data.train_rows, ages[data.train_rows])  # augmented per batch: BatchAugment
    weights = None
    if variant.sampling_weights is not None:
        weights = variant.sampling_weights(ages[data.train_rows], data_cfg.age_bins, cfg.imbalance)
    sampler = ShardedEpochSampler(len(ds), weights, epoch_seed(cfg.train.seed, epoch), ctx.rank, ctx.world_size)
    gen = torch.Generator().manual_seed(epoch_seed(cfg.train.seed, epoch) + ctx.rank)  # worker seeds
    return DataLoader(ds, batch_size=cfg.train.batch_size, sampler=sampler, generator=gen,
                      num_workers=cfg.train.num_workers, drop_last=len(sampler) > cfg.train.batch_size,
                      pin_memory=rt.device.type == "cuda", persistent_workers=False)


def eval_loader(data: TrainData, rows: np.ndarray, cfg: TrainConfig, rt: Runtime) -> DataLoader:
    ages = data.manifest["age"].to_numpy(dtype=np.float32)
    ds = FaceDataset(data.images, rows, ages[rows])
    return DataLoader(ds, batch_size=cfg.train.eval_batch_size, shuffle=False,
                      num_workers=cfg.train.num_workers, pin_memory=rt.device.type == "cuda")


def loss_weight_table(data: TrainData, cfg: TrainConfig, variant_name: str, data_cfg: DataConfig) -> torch.Tensor | None:
    """Loss weight of every manifest row (only training rows matter), or None for unweighted variants."""
    variant = VARIANTS[variant_name]
    if variant.loss_weights is None:
        return None
    ages = data.manifest["age"].to_numpy(dtype=np.float32)
    table = np.ones(len(ages), dtype=np.float32)
    table[data.train_rows] = variant.loss_weights(ages[data.train_rows], data_cfg.age_bins, cfg.imbalance)
    return torch.from_numpy(table)
