"""Learning-rate sweep, then an lr x weight-decay grid, as short runs: the library behind
``python -m agefair.tune``.

The sweep trains a variant briefly at each learning rate and records the final training loss and the
best validation MAE; the grid trains each (lr, weight decay) pair around the sweep's best learning rate
(lowest final training loss). The runs go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from agefair.core.config import TrainConfig
from agefair.core.figures import write_page
from agefair.core.io import write_csv_atomic
from agefair.data.prepare import DataRequest
from agefair.models import runs
from agefair.training.batches import load_train_data
from agefair.training.trainer import RunOptions, train_variant

SWEEP_CSV, GRID_CSV, PAGE = "tune_lr_sweep.csv", "tune_grid.csv", "tune.html"


@dataclass
class TuneResult:
    sweep: pd.DataFrame  # lr, weight_decay, final_train_loss, best_val_mae, seconds
    grid: pd.DataFrame  # the same columns, one row per (lr, weight decay) pair

    def best(self) -> pd.Series:
        """The grid's row with the lowest validation MAE."""
        return self.grid.sort_values("best_val_mae").iloc[0]


def grid_learning_rates(sweep: pd.DataFrame, lrs: list[float], n: int) -> list[float]:
    """``n`` learning rates of ``lrs`` (sorted) centred on the sweep's lowest final training loss."""
    order = sorted(lrs)
    best = float(sweep.sort_values("final_train_loss")["lr"].iloc[0])
    i = order.index(best)
    half = n // 2
    return order[max(0, i - half): max(0, i - half) + n]


def tune(*, base: TrainConfig, trial_config: Callable[[float, float], TrainConfig], variant: str,
         data_request: DataRequest, lrs: list[float], weight_decays: list[float], grid_lrs: int, limit: int | None,
         device: str = "auto", progress: bool = True) -> TuneResult:
    """The sweep over ``lrs`` (at ``base``'s weight decay), then the grid of ``grid_lrs`` learning rates
    x ``weight_decays``. ``trial_config(lr, weight_decay)`` gives a trial's configuration."""
    prepared = data_request.prepare()
    data_cfg = data_request.data_cfg
    data = load_train_data(prepared, data_cfg, base, limit, data_request.progress)
    root = Path(tempfile.mkdtemp(prefix="agefair-tune-"))

    def trial(lr: float, wd: float) -> dict:
        out_root = root / f"lr{lr:g}-wd{wd:g}"
        options = RunOptions(out_root, limit, device, resume=False, overwrite=True, progress=progress)
        s = train_variant(variant, trial_config(lr, wd), data_cfg=data_cfg, prepared=prepared, options=options, data=data)
        hist = pd.read_csv(out_root / variant / runs.HISTORY)
        return {"lr": lr, "weight_decay": wd, "final_train_loss": float(hist["train_loss"].iloc[-1]),
                "best_val_mae": s["best_val_mae"], "seconds": s["seconds"]}

    try:
        sweep = pd.DataFrame([trial(lr, base.optim.weight_decay) for lr in lrs])
        grid = pd.DataFrame([trial(lr, wd) for lr in grid_learning_rates(sweep, lrs, grid_lrs)
                             for wd in weight_decays])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return TuneResult(sweep, grid)


def write_tune_report(result: TuneResult, out: Path, title: str, epochs: int) -> Path:
    """tune_lr_sweep.csv, tune_grid.csv and tune.html (the sweep's curve and the grid's heatmap) in ``out``;
    the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    sweep, grid = result.sweep, result.grid
    for frame, name in ((sweep, SWEEP_CSV), (grid, GRID_CSV)):
        write_csv_atomic(out / name, frame)
    sweep_fig = go.Figure(go.Scatter(x=sweep["lr"], y=sweep["final_train_loss"], mode="lines+markers"))
    sweep_fig.update_xaxes(type="log", title="learning rate")
    sweep_fig.update_yaxes(title=f"training loss after {epochs} epochs")
    pivot = grid.pivot(index="weight_decay", columns="lr", values="best_val_mae")
    grid_fig = go.Figure(go.Heatmap(z=pivot.values, x=[f"{c:g}" for c in pivot.columns],
                                    y=[f"{r:g}" for r in pivot.index], colorscale="Viridis_r",
                                    text=pivot.round(2).values, texttemplate="%{text}"))
    grid_fig.update_layout(xaxis_title="learning rate", yaxis_title="weight decay")
    page = out / PAGE
    write_page(page, title, [("Learning-rate sweep", sweep_fig), ("lr x weight decay: best validation MAE", grid_fig)],
               f"<h2>Sweep</h2>{sweep.to_html(index=False)}<h2>Grid</h2>{grid.to_html(index=False)}")
    return page
