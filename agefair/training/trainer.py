"""Training one variant, or several in turn: the library behind ``python -m agefair.train``.

A run writes <runs folder>/<variant>/ (file names in agefair.models.runs): model.pt (best by validation MAE),
last.pt (for resuming), history.csv, curves.html (and curves.png where a browser is available),
config.yaml, split.json and summary.json.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from agefair import __version__
from agefair.core.config import DataConfig, TrainConfig
from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError
from agefair.core.formatting import format_seconds
from agefair.core.io import write_json_atomic, write_text_atomic
from agefair.core.publish import recover_swap, staging_path, swap_in
from agefair.data.prepare import DataRequest, PreparedData
from agefair.models import runs
from agefair.models.checkpoint import load_checkpoint, save_checkpoint
from agefair.models.network import create_model
from agefair.models.runtime import Runtime, make_runtime
from agefair.training.augment import BatchAugment
from agefair.training.batches import TrainData, epoch_seed, load_train_data, train_loader
from agefair.training.calibrate import describe, write_calibration
from agefair.training.distributed import DistContext
from agefair.training.ema import WeightEMA
from agefair.training.evaluate import evaluate
from agefair.training.history import write_curves, write_history
from agefair.training.loop import LoopSettings, train_one_epoch
from agefair.training.objective_setup import make_objective
from agefair.training.optim import make_optimizer, make_scheduler, scaled_config
from agefair.training.posthoc_run import fit_calibrated
from agefair.training.variants import VARIANTS, recorded_config, variant_config


@dataclass(frozen=True)
class RunOptions:
    """How runs are carried out: where they are written, on what, and what to do with an existing run."""

    out_root: Path  # runs folder: a run writes out_root/<variant>/
    limit: int | None = None  # train on a stratified subset of this many training images
    device: str = "auto"
    resume: bool = False  # continue from out_root/<variant>/last.pt
    overwrite: bool = False  # start over even if the run folder holds a run
    progress: bool = True
    conformal: ConformalSettings = ConformalSettings()  # calibration.json when the run ends


@dataclass(frozen=True)
class VariantRun:
    """What is fixed over one variant's run (the weights and the optimiser's state change; the objects do not)."""

    variant: str
    cfg: TrainConfig  # scaled for the process count (scaled_config)
    data_cfg: DataConfig
    data: TrainData
    out: Path  # where the run's files are written now: the run folder, or its staging folder (see final)
    rt: Runtime
    ctx: DistContext
    model: torch.nn.Module
    net: torch.nn.Module  # what the forward pass runs: the model, or its DDP / torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loop: LoopSettings
    run_meta: dict
    config_dict: dict
    progress: bool
    final: Path | None = None  # --overwrite of a run: the run folder ``out`` (staging) is swapped into

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is validated, saved as model.pt and calibrated: the weights' moving average, or the model."""
        return self.loop.ema.module if self.loop.ema is not None else self.model

    @property
    def best_path(self) -> Path:
        return self.out / runs.BEST

    @property
    def last_path(self) -> Path:
        return self.out / runs.LAST

    def log(self, *args, **kwargs) -> None:
        """print, on rank 0 only."""
        if self.ctx.is_main:
            print(*args, **kwargs)


@dataclass
class RunState:
    """What changes over a run: the history so far, the best epoch and the epochs since it improved."""

    history: list[dict] = field(default_factory=list)
    start_epoch: int = 1
    best_mae: float = math.inf
    best_epoch: int = 0
    stale: int = 0


def train_variant(variant: str, cfg: TrainConfig, *, data_cfg: DataConfig, prepared: PreparedData,
                  options: RunOptions, data: TrainData | None = None, ctx: DistContext = DistContext()) -> dict:
    """Train one variant; returns a summary (best validation MAE, its epoch, epochs run, seconds).

    Under torchrun every process calls this; ``ctx`` says which one this is. Only rank 0 writes files
    and prints; every process takes the same decisions (early stopping, best epoch) from reduced metrics.
    """
    run = set_up_run(variant, cfg, data_cfg, prepared, options, data, ctx)
    state = resume_state(run, prepared, options)
    write_run_files(run, prepared)
    log_start(run)
    run_start = time.perf_counter()
    epoch_times: list[float] = []
    stopped_early = False
    for epoch in range(state.start_epoch, run.cfg.train.epochs + 1):
        if state.stale >= run.cfg.train.patience:
            stopped_early = True
            break
        t0 = time.perf_counter()
        tr, va, lr = train_and_evaluate_epoch(run, epoch)
        seconds = time.perf_counter() - t0
        epoch_times.append(seconds)
        improved = record_epoch(state, epoch, tr, va, lr, seconds)
        if run.ctx.is_main:
            save_epoch(run, state, epoch, improved, va["mae"])
        run = publish_staged(run)  # --overwrite: the first saved epoch replaces the previous run
        run.ctx.barrier()  # no process starts the next epoch before rank 0 has saved this one
        log_epoch(run, state, epoch, tr, va, lr, seconds, improved, float(np.mean(epoch_times)))
    return finish_run(run, state, stopped_early, time.perf_counter() - run_start, options.conformal)


def set_up_run(variant: str, cfg: TrainConfig, data_cfg: DataConfig, prepared: PreparedData, options: RunOptions,
               data: TrainData | None, ctx: DistContext) -> VariantRun:
    """The run folder, the seeded model (wrapped for DDP / torch.compile), optimiser and schedule."""
    progress = options.progress and ctx.is_main
    out = options.out_root / variant
    if ctx.is_main:
        tidy_run_folder(out)
    ctx.barrier()
    if (out / runs.LAST).exists() and not (options.resume or options.overwrite):
        raise AgefairError(f"{out} already holds a run; pass --resume to continue it or --overwrite to start over")
    final = None
    if options.overwrite and not options.resume and out.is_dir() and any(out.iterdir()):
        out, final = staging_path(out), out  # the previous run stays whole until the new one has an epoch
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    cfg = scaled_config(variant_config(variant, cfg), ctx.world_size)
    rt = make_runtime(options.device, cfg.train.precision, cfg.train.channels_last)
    seed = cfg.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    data = data or load_train_data(prepared, data_cfg, cfg, options.limit, progress)

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
    objective = make_objective(variant, cfg, data, data_cfg, rt.device)
    optimizer = make_optimizer(model, cfg, objective.param_groups())
    scheduler, per_batch = make_scheduler(optimizer, cfg, steps_per_epoch)
    loop = LoopSettings(rt, cfg.train.loss, scaler=torch.amp.GradScaler("cuda") if rt.dtype == torch.float16 else None,
                        step_per_batch=per_batch, augment=BatchAugment(cfg.augment), progress=progress,
                        objective=objective, mixup=cfg.augment.mixup,
                        ema=WeightEMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None)
    return VariantRun(variant, cfg, data_cfg, data, out, rt, ctx, model, net, optimizer, scheduler, loop,
                      run_meta(variant, cfg, prepared, options.limit, data, rt, ctx), recorded_config(variant, cfg),
                      progress, final)


def tidy_run_folder(out: Path) -> None:
    """Before a run folder is used: finish a swap a kill cut short, and remove the staging folder of an
    interrupted --overwrite (it never holds a saved epoch: it is swapped in at the first; the previous
    run in ``out`` is intact and is what --resume continues)."""
    note = recover_swap(out)
    if note:
        print(f"agefair: note: {out}: {note}", file=sys.stderr)
    staged = staging_path(out)
    if staged.exists():
        shutil.rmtree(staged)
        print(f"agefair: note: removed {staged}, left by an interrupted --overwrite before its first epoch "
              f"(the run in {out} was kept)", file=sys.stderr)


def publish_staged(run: VariantRun) -> VariantRun:
    """With --overwrite of a run: swap the staging folder (now one consistent run) in for the previous
    run (rank 0); every process then writes to the run folder."""
    if run.final is None:
        return run
    if run.ctx.is_main:
        swap_in(run.out, run.final)
    return replace(run, out=run.final, final=None)


def run_meta(variant: str, cfg: TrainConfig, prepared: PreparedData, limit: int | None, data: TrainData,
             rt: Runtime, ctx: DistContext) -> dict:
    """The ``run`` section of config.yaml and the ``meta`` of every checkpoint."""
    return {
        "variant": variant, "seed": cfg.train.seed, "split_seed": prepared.split_meta["seed"],
        "manifest_hash": prepared.data_hash, "limit": limit, "n_train": int(len(data.train_rows)),
        "n_val": int(len(data.val_rows)), "device": str(rt.device), "precision": rt.precision_name,
        "world_size": ctx.world_size, "effective_batch_size": cfg.train.batch_size * ctx.world_size,
        "lr": cfg.optim.lr, "agefair": __version__, "torch": str(torch.__version__),
    }


def resume_state(run: VariantRun, prepared: PreparedData, options: RunOptions) -> RunState:
    """A fresh state, or with --resume the state of last.pt (whose weights and optimiser state are loaded)."""
    last_path = run.last_path
    if not options.resume:
        return RunState()
    if not last_path.exists():
        run.log(f"[{run.variant}] nothing to resume in {run.out}; starting fresh")
        return RunState()
    state = load_checkpoint(last_path)
    if state["config"] != run.config_dict:
        raise AgefairError(f"{last_path}: was trained with another configuration; "
                           f"use the same preset/--config/--epochs/--seed (and process count), or --overwrite")
    if state["meta"]["manifest_hash"] != prepared.data_hash or state["meta"]["limit"] != options.limit:
        raise AgefairError(f"{last_path}: was trained on other data or another --limit; use --overwrite")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("scheduler") is not None:
        run.scheduler.load_state_dict(state["scheduler"])
    run.loop.objective.load_state_dict(state.get("objective") or {})  # e.g. Group DRO's q, where it left it
    if run.loop.ema is not None:
        run.loop.ema.load_state_dict(state["ema"])
    resumed = RunState(list(state["history"]), state["epoch"] + 1, state["best_mae"], state["best_epoch"],
                       state["stale"])
    run.log(f"[{run.variant}] resuming after epoch {state['epoch']} (best val MAE {resumed.best_mae:.3f} "
            f"at epoch {resumed.best_epoch})")
    return resumed


def write_run_files(run: VariantRun, prepared: PreparedData) -> None:
    """config.yaml (the configuration and the run's facts) and split.json, on rank 0."""
    if not run.ctx.is_main:
        return
    write_text_atomic(run.out / runs.CONFIG, yaml.safe_dump({**run.config_dict, "run": run.run_meta}, sort_keys=False))
    write_json_atomic(run.out / runs.SPLIT, {"manifest_hash": prepared.data_hash,
                                             "split_seed": prepared.split_meta["seed"],
                                             "fractions": prepared.split_meta["fractions"]})


def log_start(run: VariantRun) -> None:
    cfg, rt, ctx, data = run.cfg, run.rt, run.ctx, run.data
    procs = (f", {ctx.world_size} processes: effective batch {cfg.train.batch_size * ctx.world_size}, "
             f"lr {cfg.optim.lr:g}" if ctx.world_size > 1 else "")
    run.log(f"[{run.variant}] {VARIANTS[run.variant].description}; {cfg.model.backbone}@{cfg.model.image_size} "
            f"{cfg.model.head} head, {len(data.train_rows)} train / {len(data.val_rows)} val images, "
            f"{rt.device} {rt.precision_name}{' channels_last' if rt.channels_last else ''}"
            f"{' torch.compile' if cfg.train.compile else ''}, batch {cfg.train.batch_size}{procs}")


def train_and_evaluate_epoch(run: VariantRun, epoch: int) -> tuple[dict, dict[str, float], float]:
    """One epoch's training (metrics reduced over processes) and validation, and the lr it started with."""
    cfg, ctx = run.cfg, run.ctx
    epochs = cfg.train.epochs
    torch.manual_seed(epoch_seed(cfg.train.seed, epoch) + ctx.rank)  # augmentation draws from torch's global generator
    lr = run.optimizer.param_groups[0]["lr"]
    loader = train_loader(run.data, cfg, run.variant, run.data_cfg, epoch, run.rt, ctx)
    tr = train_one_epoch(run.model, loader, run.optimizer, scheduler=run.scheduler, settings=run.loop,
                         epoch=epoch, epochs=epochs, net=run.net)
    if run.scheduler is not None and not run.loop.step_per_batch:
        run.scheduler.step()
    run.loop.objective.end_epoch(epoch)
    loss_sum, abs_sum, n_seen = ctx.sum([tr["loss"] * tr["n"], tr["mae"] * tr["n"], tr["n"]])
    tr = {**tr, "loss": loss_sum / max(n_seen, 1), "mae": abs_sum / max(n_seen, 1),
          "img_per_s": tr["img_per_s"] * ctx.world_size}
    va = evaluate(run.eval_model, run.data, run.data.val_rows, cfg, run.rt, ctx, f"epoch {epoch}/{epochs} val",
                  run.progress)
    return tr, va, lr


def record_epoch(state: RunState, epoch: int, tr: dict, va: dict[str, float], lr: float, seconds: float) -> bool:
    """Append the epoch to the history and update the best epoch; whether it improved."""
    state.history.append({"epoch": epoch, "train_loss": tr["loss"], "train_mae": tr["mae"], "val_loss": va["loss"],
                          "val_mae": va["mae"], "lr": lr, "seconds": seconds, "train_img_per_s": tr["img_per_s"]})
    improved = va["mae"] < state.best_mae - 1e-6
    if improved:
        state.best_mae, state.best_epoch, state.stale = float(va["mae"]), epoch, 0
    else:
        state.stale += 1
    return improved


def save_epoch(run: VariantRun, state: RunState, epoch: int, improved: bool, val_mae: float) -> None:
    """model.pt (when the epoch improved), last.pt, history.csv and the curves (rank 0 only)."""
    common = {"config": run.config_dict, "meta": run.run_meta, "epoch": epoch, "best_mae": state.best_mae,
              "best_epoch": state.best_epoch, "history": state.history}
    if improved:
        save_checkpoint({**common, "model": run.eval_model.state_dict(), "val_mae": float(val_mae)}, run.best_path)
    save_checkpoint({**common, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                     "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
                     "stale": state.stale, "objective": run.loop.objective.state_dict(),
                     "ema": run.loop.ema.state_dict() if run.loop.ema is not None else None}, run.last_path)
    run.loop.objective.write_files(run.out)  # e.g. group_weights.csv
    write_history(state.history, run.out / runs.HISTORY)
    write_curves(state.history, run.out, f"agefair {run.variant}")


def log_epoch(run: VariantRun, state: RunState, epoch: int, tr: dict, va: dict[str, float], lr: float,
              seconds: float, improved: bool, mean_epoch_seconds: float) -> None:
    epochs = run.cfg.train.epochs
    remaining = min(epochs - epoch, run.cfg.train.patience - state.stale) * mean_epoch_seconds
    run.log(f"[{run.variant}] epoch {epoch}/{epochs}  train loss {tr['loss']:.3f} MAE {tr['mae']:.2f} | "
            f"val loss {va['loss']:.3f} MAE {va['mae']:.2f}{' *' if improved else ''} | lr {lr:.2g} | "
            f"{format_seconds(seconds)} ({tr['img_per_s']:.0f} img/s) | best {state.best_mae:.2f} @ "
            f"{state.best_epoch} | ETA <= {format_seconds(remaining)}{run.loop.objective.describe()}", flush=True)


def finish_run(run: VariantRun, state: RunState, stopped_early: bool, session_seconds: float,
               conformal: ConformalSettings = ConformalSettings()) -> dict:
    """The run's summary: written to summary.json (with the curves' PNG) and logged."""
    history = state.history
    total = sum(h["seconds"] for h in history)
    summary = {"variant": run.variant, "best_val_mae": state.best_mae, "best_epoch": state.best_epoch,
               "epochs_run": len(history), "stopped_early": stopped_early, "seconds": total,
               "this_session_seconds": session_seconds, "world_size": run.ctx.world_size,
               **run.loop.objective.summary()}
    if run.ctx.is_main:
        write_curves(history, run.out, f"agefair {run.variant}", png=True)
        write_json_atomic(run.out / runs.SUMMARY, summary)
        cal = write_calibration(run.eval_model, out=run.out, data=run.data, cfg=run.cfg, rt=run.rt, settings=conformal,
                                manifest_hash=run.run_meta.get("manifest_hash"), progress=run.progress)
        if cal is not None:
            run.log(f"[{run.variant}] {describe(cal)}; {run.out / runs.CALIBRATION}")
    run = publish_staged(run)  # no epoch was run (nothing to train): the run is swapped in now
    run.log(f"[{run.variant}] done: best val MAE {state.best_mae:.3f} at epoch {state.best_epoch} of {len(history)}"
            f"{' (early stop)' if stopped_early else ''}; {format_seconds(total)} of training; {run.best_path}")
    return summary


def train_all(*, variants: list[str], cfg: TrainConfig, data_request: DataRequest, out_dir: str | Path,
              limit: int | None = None, device: str = "auto", resume: bool = False, overwrite: bool = False,
              progress: bool = True, ctx: DistContext = DistContext(),
              conformal: ConformalSettings = ConformalSettings()) -> list[dict]:
    """Train ``variants`` one after another on the data of ``data_request``; their summaries.

    Under torchrun, rank 0 scans, splits and caches the data while the other processes wait, then every
    process reads the same cache. Only rank 0 shows progress."""
    if not ctx.is_main:
        progress = False
        data_request = replace(data_request, progress=False)
        ctx.barrier()
    prepared = data_request.prepare()
    data_cfg = data_request.data_cfg
    data = load_train_data(prepared, data_cfg, cfg, limit, data_request.progress)
    if ctx.is_main:
        ctx.barrier()
    options = RunOptions(Path(out_dir), limit, device, resume, overwrite, progress, conformal)
    summaries = []
    for v in variants:
        if VARIANTS[v].objective != "posthoc":
            summaries.append(train_variant(v, cfg, data_cfg=data_cfg, prepared=prepared, options=options, data=data,
                                           ctx=ctx))
        elif ctx.is_main:  # no training: one process fits it
            summaries.append(fit_calibrated(cfg=cfg, data_cfg=data_cfg, prepared=prepared, data=data, out_root=Path(out_dir),
                                            device=device, resume=resume, overwrite=overwrite, progress=progress,
                                            conformal=conformal))
    if ctx.world_size > 1:
        print(f"[rank {ctx.rank}/{ctx.world_size}] finished", flush=True)
    return summaries
