"""``python -m agefair.tune``: learning-rate sweep, then an lr x weight-decay grid, as short runs.

Step 1 trains the baseline variant briefly at each learning rate and records the final training
loss and the best validation MAE. Step 2 trains each (lr, weight decay) pair of a grid centred on
the sweep's best learning rate. Writes reports/tune_lr_sweep.csv, reports/tune_grid.csv and
reports/tune.html. Keep runs small with --limit and --epochs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from agefair.cli.args import add_data_args, prepare_from_args
from agefair.core.config import PRESETS, load_train_config
from agefair.core.errors import run_cli
from agefair.core.figures import write_page
from agefair.core.io import atomic_path
from agefair.training.trainer import load_train_data, train_variant


def floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agefair.tune", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu", choices=PRESETS)
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--variant", default="baseline")
    p.add_argument("--lrs", type=floats, default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2], help="learning rates of the sweep")
    p.add_argument("--weight-decays", type=floats, default=[0.0, 1e-4, 1e-2], help="weight decays of the grid")
    p.add_argument("--grid-lrs", type=int, default=3, help="learning rates in the grid: the sweep's best and its neighbours")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--out", default="reports", metavar="DIR")
    p.add_argument("--device", default="auto")
    add_data_args(p)
    args = p.parse_args(argv)

    base = load_train_config(args.preset, args.config, {"train": {"epochs": args.epochs}})
    prepared, data_cfg = prepare_from_args(args)
    data = load_train_data(prepared, data_cfg, base, args.limit, not args.quiet)
    runs = Path(tempfile.mkdtemp(prefix="agefair-tune-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def trial(lr: float, wd: float) -> dict:
        cfg = load_train_config(args.preset, args.config,
                                {"train": {"epochs": args.epochs}, "optim": {"lr": lr, "weight_decay": wd}})
        s = train_variant(args.variant, cfg, data_cfg, prepared, runs / f"lr{lr:g}-wd{wd:g}", args.limit,
                          args.device, resume=False, overwrite=True, progress=not args.quiet, data=data)
        hist = pd.read_csv(runs / f"lr{lr:g}-wd{wd:g}" / args.variant / "history.csv")
        return {"lr": lr, "weight_decay": wd, "final_train_loss": float(hist["train_loss"].iloc[-1]),
                "best_val_mae": s["best_val_mae"], "seconds": s["seconds"]}

    try:
        sweep = pd.DataFrame([trial(lr, base.optim.weight_decay) for lr in args.lrs])
        order = sorted(args.lrs)
        best = float(sweep.sort_values("final_train_loss")["lr"].iloc[0])
        i = order.index(best)
        half = args.grid_lrs // 2
        grid_lrs = order[max(0, i - half): max(0, i - half) + args.grid_lrs]
        grid = pd.DataFrame([trial(lr, wd) for lr in grid_lrs for wd in args.weight_decays])
    finally:
        shutil.rmtree(runs, ignore_errors=True)

    for frame, name in ((sweep, "tune_lr_sweep.csv"), (grid, "tune_grid.csv")):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    sweep_fig = go.Figure(go.Scatter(x=sweep["lr"], y=sweep["final_train_loss"], mode="lines+markers"))
    sweep_fig.update_xaxes(type="log", title="learning rate")
    sweep_fig.update_yaxes(title=f"training loss after {args.epochs} epochs")
    pivot = grid.pivot(index="weight_decay", columns="lr", values="best_val_mae")
    grid_fig = go.Figure(go.Heatmap(z=pivot.values, x=[f"{c:g}" for c in pivot.columns],
                                    y=[f"{r:g}" for r in pivot.index], colorscale="Viridis_r",
                                    text=pivot.round(2).values, texttemplate="%{text}"))
    grid_fig.update_layout(xaxis_title="learning rate", yaxis_title="weight decay")
    write_page(out / "tune.html", f"agefair tuning ({args.preset} preset, {args.variant}, {args.limit} images, "
                                  f"{args.epochs} epochs)",
               [("Learning-rate sweep", sweep_fig), ("lr x weight decay: best validation MAE", grid_fig)],
               f"<h2>Sweep</h2>{sweep.to_html(index=False)}<h2>Grid</h2>{grid.to_html(index=False)}")
    best_row = grid.sort_values("best_val_mae").iloc[0]
    print(sweep.to_string(index=False))
    print(grid.to_string(index=False))
    print(f"best: lr {best_row['lr']:g}, weight decay {best_row['weight_decay']:g} "
          f"(val MAE {best_row['best_val_mae']:.3f}); wrote {out / 'tune.html'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
