"""The argument parser of every command, and the arguments shared by every command that reads the data."""

from __future__ import annotations

import argparse
from typing import NoReturn

from agefair.core.config import (
    CONFIG_DIR,
    DataConfig,
    load_data_config,
    load_dataset_config,
)
from agefair.core.errors import AgefairError
from agefair.core.paths import resolve_data_dir
from agefair.data.csv_dataset import labels_csv
from agefair.data.prepare import DataRequest, PreparedData


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with bad usage reported as every other bad input is: one line
    ``agefair: error: MESSAGE`` on stderr (no usage block; ``--help`` prints it) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"agefair: error: {line} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--epochs 0`` is an error, not "use the preset")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", metavar="DIR|CSV", help="UTKFace image folder, or a labels CSV (or a folder holding "
                   "labels.csv) (default: $AGEFAIR_DATA, else data/UTKFace)")
    g.add_argument("--data-config", metavar="FILE", help="data config (default: configs/data.yaml)")
    g.add_argument("--dataset-config", metavar="FILE|NAME", help="how a labels CSV's columns are read: a YAML file "
                   f"or a name in {CONFIG_DIR / 'datasets'} (e.g. fairface)")
    g.add_argument("--split-seed", type=int, metavar="S", help="seed of the train/val/test split (default: from the data config)")
    g.add_argument("--resplit", action="store_true", help="make a new split even if a saved one exists for other data")
    g.add_argument("--work", metavar="DIR", help="folder for derived files (default: $AGEFAIR_WORK, else .agefair)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def data_request_from_args(args: argparse.Namespace, csv_ok: bool = False) -> DataRequest:
    """What --data and its companions ask to prepare; a labels CSV only where ``csv_ok`` (the audit reads
    them, training does not yet)."""
    cfg = load_data_config(args.data_config)
    data_dir = resolve_data_dir(args.data)
    ds_arg = getattr(args, "dataset_config", None)
    is_csv = labels_csv(data_dir) is not None
    if is_csv and not csv_ok:
        raise AgefairError(f"{data_dir}: a labels CSV; this command reads a UTKFace image folder "
                           f"(labels CSVs are audited with python -m agefair.audit --data CSV)")
    if ds_arg and not is_csv:
        raise AgefairError(f"--dataset-config {ds_arg}: {data_dir} is a UTKFace folder, not a labels CSV "
                           f"(the dataset config maps a CSV's columns)")
    return DataRequest(data_dir, cfg, split_seed=args.split_seed, resplit=args.resplit, work_root=args.work,
                       progress=not args.quiet, dataset_cfg=load_dataset_config(ds_arg), dataset_cfg_source=ds_arg)


def prepare_from_args(args: argparse.Namespace, csv_ok: bool = False) -> tuple[PreparedData, DataConfig]:
    """The prepared data of --data (see data_request_from_args), and its data config."""
    request = data_request_from_args(args, csv_ok)
    return request.prepare(), request.data_cfg
