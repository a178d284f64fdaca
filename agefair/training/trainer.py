"""``python -m agefair.train``: train an age model in one of the variants.

A run writes RUNS_DIR/<variant>/: model.pt (best by validation MAE), last.pt (for --resume),
history.csv, curves.html (and curves.png where a browser is available), config.yaml and split.json.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from agefair import __version__
from agefair.cli.args import prepare_from_args
from agefair.core.config import DataConfig, TrainConfig
from agefair.core.errors import AgefairError
from agefair.core.formatting import format_seconds
from agefair.core.io import write_json_atomic, write_text_atomic
from agefair.data.dataset import FaceDataset
from agefair.data.image_cache import build_image_cache
from agefair.data.prepare import PreparedData
from agefair.data.split import stratified_limit
from agefair.models.checkpoint import load_checkpoint, save_checkpoint
from agefair.models.network import create_model
from agefair.models.runtime import Runtime, make_runtime, predict
from agefair.training.augment import BatchAugment
from agefair.training.distributed import (
    DistContext,
    ShardedEpochSampler,
    shard_rows,
)
from agefair.training.history import write_curves, write_history
from agefair.training.loop import train_one_epoch
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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # biases and BatchNorm
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    return torch.optim.AdamW(groups, lr=o.lr)


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """(scheduler or None, whether it steps per batch)."""
    o = cfg.optim
    if o.schedule == "onecycle" and cfg.train.epochs * steps_per_epoch * o.warmup_fraction < 2:
        return None, False  # too few steps for a warm-up and a decay (smoke tests): constant lr
    if o.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=o.lr, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch,
            pct_start=o.warmup_fraction), True
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs), False
    return None, False


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




def scaled_config(cfg: TrainConfig, world_size: int) -> TrainConfig:
    """The configuration a job of ``world_size`` processes trains with: ``optim.lr_scaling: linear``
    multiplies the learning rate by the process count (Goyal et al. 2017), since the effective batch
    is ``batch_size x world_size``."""
    if cfg.optim.lr_scaling != "linear" or world_size == 1:
        return cfg
    return cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"lr": cfg.optim.lr * world_size})})


def evaluate(model, data: TrainData, rows: np.ndarray, cfg: TrainConfig, rt: Runtime, ctx: DistContext,
             desc: str, progress: bool) -> dict[str, float]:
    """Mean loss and MAE over ``rows``; each process predicts its shard and the sums are reduced, so the
    figure equals a single-process evaluation of the same weights."""
    ctx.broadcast_buffers(model)  # BatchNorm running statistics: rank 0's, as saved in the checkpoint
    shard = shard_rows(rows, ctx.rank, ctx.world_size)
    va = predict(model, eval_loader(data, shard, cfg, rt), rt, cfg.train.loss, desc=desc, progress=progress)
    n = len(va["pred"])
    loss_sum, abs_sum, n = ctx.sum([va["loss"] * n, float(np.abs(va["pred"] - va["age"]).sum()), n])
    return {"loss": loss_sum / max(n, 1), "mae": abs_sum / n if n else float("nan")}


def train_variant(variant: str, cfg: TrainConfig, data_cfg: DataConfig, prepared: PreparedData, out_root: Path,
                  limit: int | None, device: str, resume: bool, overwrite: bool, progress: bool,
                  data: TrainData | None = None, ctx: DistContext = DistContext()) -> dict:
    """Train one variant; returns a summary (best validation MAE, its epoch, epochs run, seconds).

    Under torchrun every process calls this; ``ctx`` says which one this is. Only rank 0 writes files
    and prints; every process takes the same decisions (early stopping, best epoch) from reduced metrics.
    """
    log = print if ctx.is_main else (lambda *a, **k: None)
    progress = progress and ctx.is_main
    out = out_root / variant
    last_path, best_path = out / "last.pt", out / "model.pt"
    if last_path.exists() and not (resume or overwrite):
        raise AgefairError(f"{out} already holds a run; pass --resume to continue it or --overwrite to start over")
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    cfg = scaled_config(cfg, ctx.world_size)
    rt = make_runtime(device, cfg.train.precision, cfg.train.channels_last)
    seed = cfg.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    data = data or load_train_data(prepared, data_cfg, cfg, limit, progress)

    model = create_model(cfg.model).to(rt.device)  # same seed, so the same initial weights in every process
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if ctx.active:
        net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    # torch.compile wraps the module for speed; checkpoints always hold the plain module's weights
    if cfg.train.compile:
        net = torch.compile(net)
    steps_per_epoch = max(1, len(data.train_rows) // (cfg.train.batch_size * ctx.world_size))
    optimizer = make_optimizer(model, cfg)
    scheduler, per_batch = make_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if rt.dtype == torch.float16 else None
    run_meta = {
        "variant": variant, "seed": seed, "split_seed": prepared.split_meta["seed"],
        "manifest_hash": prepared.data_hash, "limit": limit, "n_train": int(len(data.train_rows)),
        "n_val": int(len(data.val_rows)), "device": str(rt.device), "precision": rt.precision_name,
        "world_size": ctx.world_size, "effective_batch_size": cfg.train.batch_size * ctx.world_size,
        "lr": cfg.optim.lr, "agefair": __version__, "torch": str(torch.__version__),
    }
    config_dict = cfg.model_dump(mode="json")

    history: list[dict] = []
    start_epoch, best_mae, best_epoch, stale = 1, math.inf, 0, 0
    if resume and last_path.exists():
        state = load_checkpoint(last_path)
        if state["config"] != config_dict:
            raise AgefairError(f"{last_path}: was trained with another configuration; "
                               f"use the same preset/--config/--epochs/--seed (and process count), or --overwrite")
        if state["meta"]["manifest_hash"] != prepared.data_hash or state["meta"]["limit"] != limit:
            raise AgefairError(f"{last_path}: was trained on other data or another --limit; use --overwrite")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        best_mae, best_epoch, stale = state["best_mae"], state["best_epoch"], state["stale"]
        start_epoch = state["epoch"] + 1
        log(f"[{variant}] resuming after epoch {state['epoch']} (best val MAE {best_mae:.3f} at epoch {best_epoch})")
    elif resume:
        log(f"[{variant}] nothing to resume in {out}; starting fresh")

    if ctx.is_main:
        write_text_atomic(out / "config.yaml", yaml.safe_dump({**config_dict, "run": run_meta}, sort_keys=False))
        write_json_atomic(out / "split.json", {"manifest_hash": prepared.data_hash,
                                               "split_seed": prepared.split_meta["seed"],
                                               "fractions": prepared.split_meta["fractions"]})
    procs = (f", {ctx.world_size} processes: effective batch {cfg.train.batch_size * ctx.world_size}, "
             f"lr {cfg.optim.lr:g}" if ctx.world_size > 1 else "")
    log(f"[{variant}] {VARIANTS[variant].description}; {cfg.model.backbone}@{cfg.model.image_size} "
        f"{cfg.model.head} head, {len(data.train_rows)} train / {len(data.val_rows)} val images, "
        f"{rt.device} {rt.precision_name}{' channels_last' if rt.channels_last else ''}"
        f"{' torch.compile' if cfg.train.compile else ''}, batch {cfg.train.batch_size}{procs}")

    loss_weights = loss_weight_table(data, cfg, variant, data_cfg)
    augment = BatchAugment(cfg.augment)
    epochs = cfg.train.epochs
    run_start = time.perf_counter()
    epoch_times: list[float] = []
    stopped_early = False
    for epoch in range(start_epoch, epochs + 1):
        if stale >= cfg.train.patience:
            stopped_early = True
            break
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch) + ctx.rank)  # augmentation draws from torch's global generator
        lr = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(model, train_loader(data, cfg, variant, data_cfg, epoch, rt, ctx), optimizer, scheduler,
                             rt, cfg.train.loss, loss_weights, scaler, epoch, epochs, per_batch, progress, augment,
                             net=net)
        if scheduler is not None and not per_batch:
            scheduler.step()
        loss_sum, abs_sum, n_seen = ctx.sum([tr["loss"] * tr["n"], tr["mae"] * tr["n"], tr["n"]])
        tr = {**tr, "loss": loss_sum / max(n_seen, 1), "mae": abs_sum / max(n_seen, 1),
              "img_per_s": tr["img_per_s"] * ctx.world_size}
        va = evaluate(model, data, data.val_rows, cfg, rt, ctx, f"epoch {epoch}/{epochs} val", progress)
        seconds = time.perf_counter() - t0
        epoch_times.append(seconds)
        history.append({"epoch": epoch, "train_loss": tr["loss"], "train_mae": tr["mae"], "val_loss": va["loss"],
                        "val_mae": va["mae"], "lr": lr, "seconds": seconds, "train_img_per_s": tr["img_per_s"]})
        improved = va["mae"] < best_mae - 1e-6
        if improved:
            best_mae, best_epoch, stale = float(va["mae"]), epoch, 0
        else:
            stale += 1
        if ctx.is_main:
            common = {"config": config_dict, "meta": run_meta, "epoch": epoch, "best_mae": best_mae,
                      "best_epoch": best_epoch, "history": history}
            if improved:
                save_checkpoint({**common, "model": model.state_dict(), "val_mae": float(va["mae"])}, best_path)
            save_checkpoint({**common, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict() if scheduler is not None else None,
                             "stale": stale}, last_path)
            write_history(history, out / "history.csv")
            write_curves(history, out, f"agefair {variant}")
        ctx.barrier()  # no process starts the next epoch before rank 0 has saved this one
        remaining = min(epochs - epoch, cfg.train.patience - stale) * float(np.mean(epoch_times))
        log(f"[{variant}] epoch {epoch}/{epochs}  train loss {tr['loss']:.3f} MAE {tr['mae']:.2f} | "
            f"val loss {va['loss']:.3f} MAE {va['mae']:.2f}{' *' if improved else ''} | lr {lr:.2g} | "
            f"{format_seconds(seconds)} ({tr['img_per_s']:.0f} img/s) | best {best_mae:.2f} @ {best_epoch} | "
            f"ETA <= {format_seconds(remaining)}", flush=True)

    total = sum(h["seconds"] for h in history)
    summary = {"variant": variant, "best_val_mae": best_mae, "best_epoch": best_epoch, "epochs_run": len(history),
               "stopped_early": stopped_early, "seconds": total, "this_session_seconds": time.perf_counter() - run_start,
               "world_size": ctx.world_size}
    if ctx.is_main:
        write_curves(history, out, f"agefair {variant}", png=True)
        write_json_atomic(out / "summary.json", summary)
    log(f"[{variant}] done: best val MAE {best_mae:.3f} at epoch {best_epoch} of {len(history)}"
        f"{' (early stop)' if stopped_early else ''}; {format_seconds(total)} of training; {best_path}")
    return summary


def train_all(args: argparse.Namespace, cfg: TrainConfig, ctx: DistContext, device: str) -> list[dict]:
    """Every asked-for variant, one after another. Under torchrun, rank 0 scans, splits and caches the
    data while the other processes wait, then every process reads the same cache."""
    if not ctx.is_main:
        args.quiet = True
        ctx.barrier()
    prepared, data_cfg = prepare_from_args(args)
    data = load_train_data(prepared, data_cfg, cfg, args.limit, not args.quiet)
    if ctx.is_main:
        ctx.barrier()
    variants = list(VARIANTS) if args.variant == "all" else [args.variant]
    summaries = [train_variant(v, cfg, data_cfg, prepared, Path(args.out), args.limit, device, args.resume,
                               args.overwrite, not args.quiet, data, ctx) for v in variants]
    if ctx.world_size > 1:
        print(f"[rank {ctx.rank}/{ctx.world_size}] finished", flush=True)
    return summaries
