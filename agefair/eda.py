"""``python -m agefair.eda``: data-quality report and exploratory plots of the data folder.

Writes into --out (default reports/): data_quality.json, data_quality.txt, eda.html, eda_counts.json,
split.json and, where a Chromium is installed for kaleido, age_histogram.png and age_bin_by_ethnicity.png.
"""

from __future__ import annotations

from pathlib import Path

from agefair.cli.args import ArgumentParser, add_data_args, prepare_from_args
from agefair.cli.console import eda_text
from agefair.cli.outputs import check_output_dir
from agefair.core.errors import run_cli
from agefair.reporting.eda import write_eda


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m agefair.eda", description=__doc__.split("\n")[0])
    add_data_args(parser)
    parser.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports/)")
    parser.add_argument("--no-png", action="store_true", help="skip the static PNG charts")
    args = parser.parse_args(argv)
    check_output_dir(args.out)

    prepared, cfg = prepare_from_args(args)
    out = Path(args.out)
    eda = write_eda(prepared, cfg, out, png=not args.no_png)
    print(eda_text(eda, out))
    return 0


if __name__ == "__main__":
    run_cli(main)
