"""``python -m agefair.train``: train an age model in one of the variants.

A run writes RUNS_DIR/<variant>/: model.pt (best by validation MAE), last.pt (for --resume),
history.csv, curves.html (and curves.png where a browser is available), config.yaml and split.json.
"""

from __future__ import annotations

import argparse

from agefair.cli.args import ArgumentParser, add_data_args, data_request_from_args, positive_int
from agefair.cli.console import training_table_text
from agefair.cli.outputs import check_output_dir
from agefair.core.config import PRESETS, TrainConfig, load_fairness_config, load_train_config
from agefair.core.errors import run_cli
from agefair.models.network import create_model
from agefair.training.distributed import (
    init_distributed,
    shutdown_distributed,
)
from agefair.training.trainer import train_all
from agefair.training.variants import VARIANTS


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m agefair.train", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", required=True, nargs="+", choices=[*VARIANTS, "all"],
                        help="training variant(s), trained in turn; all: every variant")
    parser.add_argument("--preset", default="reference", choices=PRESETS, help="training preset (default: reference)")
    parser.add_argument("--config", metavar="FILE", help="YAML file overriding keys of the preset")
    parser.add_argument("--out", default="runs", metavar="RUNS_DIR", help="runs folder (default: runs/)")
    parser.add_argument("--epochs", type=positive_int, help="override the preset's epoch count")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="train on a stratified subset of N training images")
    parser.add_argument("--seed", type=int, help="training seed (default: the preset's)")
    parser.add_argument("--head", choices=["regression", "expectation"], help="override the model head")
    parser.add_argument("--pretrained", choices=["none", "imagenet"], help="ImageNet-pretrained backbone (needs internet)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from RUNS_DIR/<variant>/last.pt")
    again.add_argument("--overwrite", action="store_true", help="start over even if the run folder holds a run "
                       "(not with --resume)")
    add_data_args(parser)
    return parser


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The preset, --config and the options that override its keys."""
    overrides: dict = {}
    if args.epochs is not None:
        overrides.setdefault("train", {})["epochs"] = args.epochs
    if args.seed is not None:
        overrides.setdefault("train", {})["seed"] = args.seed
    if args.head is not None:
        overrides.setdefault("model", {})["head"] = args.head
    if args.pretrained is not None:
        overrides.setdefault("model", {})["pretrained"] = args.pretrained
    return load_train_config(args.preset, args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_dir(args.out)
    cfg = train_config(args)
    conformal = load_fairness_config().conformal  # calibration.json's settings (configs/fairness.yaml)
    if cfg.model.pretrained == "imagenet":
        create_model(cfg.model)  # fetch (or fail to fetch) the weights before the long data preparation
    ctx, device = init_distributed(args.device)
    try:
        variants = list(VARIANTS) if "all" in args.variant else list(dict.fromkeys(args.variant))
        summaries = train_all(variants=variants, cfg=cfg,
                              data_request=data_request_from_args(args), out_dir=args.out, limit=args.limit,
                              device=device, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                              ctx=ctx, conformal=conformal)
    finally:
        shutdown_distributed()
    if len(summaries) > 1 and ctx.is_main:
        print("\n" + training_table_text(summaries))
    return 0


if __name__ == "__main__":
    run_cli(main)
