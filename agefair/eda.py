"""``python -m agefair.eda``: data-quality report and exploratory plots of the data folder.

Writes into --out (default reports/): data_quality.json, data_quality.txt, eda.html, eda_counts.json,
split.json and, where a Chromium is installed for kaleido, age_histogram.png and age_bin_by_ethnicity.png.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from agefair.cli.args import add_data_args, prepare_from_args
from agefair.core.errors import run_cli
from agefair.core.figures import write_page, write_png
from agefair.core.io import write_json_atomic, write_text_atomic
from agefair.data.quality import summary_text
from agefair.data.split import counts_text
from agefair.reporting.eda import eda_counts, eda_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agefair.eda", description=__doc__.split("\n")[0])
    add_data_args(parser)
    parser.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports/)")
    parser.add_argument("--no-png", action="store_true", help="skip the static PNG charts")
    args = parser.parse_args(argv)

    prepared, cfg = prepare_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    report = prepared.quality_report
    summary = summary_text(report)
    write_json_atomic(out / "data_quality.json", report)
    write_text_atomic(out / "data_quality.txt", summary + "\n")
    write_json_atomic(out / "split.json", prepared.split_meta)

    counts = eda_counts(prepared.manifest, cfg)
    write_json_atomic(out / "eda_counts.json", counts)
    figures = eda_figures(counts)
    split_text = counts_text(prepared.split_meta)
    extra = (f"<section><h2>Split</h2><pre>{html.escape(split_text)}</pre></section>"
             f"<section><h2>Data quality</h2><pre>{html.escape(summary)}</pre></section>")
    write_page(out / "eda.html", f"agefair EDA: {prepared.data_dir}", figures, extra)

    pngs = []
    if not args.no_png:
        for name, fig in (("age_histogram.png", figures[0][1]), ("age_bin_by_ethnicity.png", figures[3][1])):
            if write_png(fig, out / name):
                pngs.append(name)
    print(summary)
    print()
    print(split_text)
    print()
    print(f"wrote {out / 'eda.html'}, {out / 'data_quality.json'}, {out / 'data_quality.txt'}"
          + (f", {', '.join(str(out / p) for p in pngs)}" if pngs else " (no PNGs: no Chromium for kaleido)"))
    return 0


if __name__ == "__main__":
    run_cli(main)
