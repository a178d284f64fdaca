"""``python -m agefair.tune``: learning-rate sweep, then an lr x weight-decay grid, as short runs.

Step 1 trains the baseline variant briefly at each learning rate and records the final training
loss and the best validation MAE. Step 2 trains each (lr, weight decay) pair of a grid centred on
the sweep's best learning rate. Writes reports/tune_lr_sweep.csv, reports/tune_grid.csv and
reports/tune.html. Keep runs small with --limit and --epochs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agefair.cli.args import ArgumentParser, add_data_args, data_request_from_args, positive_int
from agefair.cli.outputs import check_output_dir
from agefair.core.config import PRESETS, TrainConfig, load_train_config
from agefair.core.errors import run_cli
from agefair.training.tune import tune, write_tune_report


def floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m agefair.tune", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu", choices=PRESETS)
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--variant", default="baseline")
    p.add_argument("--lrs", type=floats, default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2], help="learning rates of the sweep")
    p.add_argument("--weight-decays", type=floats, default=[0.0, 1e-4, 1e-2], help="weight decays of the grid")
    p.add_argument("--grid-lrs", type=positive_int, default=3,
                   help="learning rates in the grid: the sweep's best and its neighbours")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--limit", type=positive_int, default=2000)
    p.add_argument("--out", default="reports", metavar="DIR")
    p.add_argument("--device", default="auto")
    add_data_args(p)
    args = p.parse_args(argv)
    check_output_dir(args.out)

    def trial_config(lr: float, wd: float) -> TrainConfig:
        return load_train_config(args.preset, args.config,
                                 {"train": {"epochs": args.epochs}, "optim": {"lr": lr, "weight_decay": wd}})

    base = load_train_config(args.preset, args.config, {"train": {"epochs": args.epochs}})
    request = data_request_from_args(args)
    out = Path(args.out)
    result = tune(base=base, trial_config=trial_config, variant=args.variant, data_request=request, lrs=args.lrs,
                  weight_decays=args.weight_decays, grid_lrs=args.grid_lrs, limit=args.limit, device=args.device,
                  progress=not args.quiet)
    page = write_tune_report(result, out, f"agefair tuning ({args.preset} preset, {args.variant}, {args.limit} "
                                          f"images, {args.epochs} epochs)", args.epochs)
    best_row = result.best()
    print(result.sweep.to_string(index=False))
    print(result.grid.to_string(index=False))
    print(f"best: lr {best_row['lr']:g}, weight decay {best_row['weight_decay']:g} "
          f"(val MAE {best_row['best_val_mae']:.3f}); wrote {page}")
    return 0


if __name__ == "__main__":
    run_cli(main)
