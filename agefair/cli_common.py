"""Arguments shared by every command that reads the data."""

from __future__ import annotations

import argparse

from agefair.config import DataConfig, load_data_config
from agefair.data.prepare import PreparedData, prepare
from agefair.paths import resolve_data_dir


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", help="image folder (default: $AGEFAIR_DATA, else data/UTKFace)")
    g.add_argument("--data-config", metavar="FILE", help="data config (default: configs/data.yaml)")
    g.add_argument("--split-seed", type=int, metavar="S", help="seed of the train/val/test split (default: from the data config)")
    g.add_argument("--resplit", action="store_true", help="make a new split even if a saved one exists for other data")
    g.add_argument("--work", metavar="DIR", help="folder for derived files (default: $AGEFAIR_WORK, else .agefair)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def prepare_from_args(args: argparse.Namespace) -> tuple[PreparedData, DataConfig]:
    cfg = load_data_config(args.data_config)
    data_dir = resolve_data_dir(args.data)
    prepared = prepare(data_dir, cfg, seed=args.split_seed, resplit=args.resplit, work_root=args.work,
                       progress=not args.quiet)
    return prepared, cfg
