"""``python -m agefair.eda``: data-quality report and exploratory plots of the data folder.

Writes into --out (default reports/): data_quality.json, data_quality.txt, eda.html, eda_counts.json,
split.json and, where a Chromium is installed for kaleido, age_histogram.png and age_bin_by_ethnicity.png.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from agefair.cli_common import add_data_args, prepare_from_args
from agefair.config import DataConfig
from agefair.data.labels import age_bin, age_bin_labels
from agefair.data.quality import summary_text
from agefair.data.split import counts_text
from agefair.errors import run_cli
from agefair.io_utils import write_json_atomic, write_text_atomic
from agefair.plots import write_page, write_png


def eda_counts(manifest: pd.DataFrame, cfg: DataConfig) -> dict:
    """The numbers behind every EDA chart, straight from the manifest."""
    bins = age_bin(manifest["age"], cfg.age_bins)
    heat = pd.crosstab(pd.Categorical(bins, categories=age_bin_labels(cfg.age_bins)), manifest["ethnicity"],
                       dropna=False)
    return {
        "n": int(len(manifest)),
        "age": {int(k): int(v) for k, v in manifest["age"].value_counts().sort_index().items()},
        "gender": {str(k): int(v) for k, v in manifest["gender"].value_counts().sort_index().items()},
        "ethnicity": {str(k): int(v) for k, v in manifest["ethnicity"].value_counts().sort_index().items()},
        "age_bin_by_ethnicity": {str(b): {str(e): int(v) for e, v in row.items()} for b, row in heat.iterrows()},
    }


def eda_figures(counts: dict) -> list[tuple[str, go.Figure]]:
    ages = counts["age"]
    age_fig = go.Figure(go.Bar(x=list(ages), y=list(ages.values()), marker_color="#4c78a8"))
    age_fig.update_layout(xaxis_title="age (years)", yaxis_title="images", bargap=0.05)
    gender_fig = go.Figure(go.Bar(x=list(counts["gender"]), y=list(counts["gender"].values()), marker_color="#f58518"))
    gender_fig.update_layout(yaxis_title="images")
    eth_fig = go.Figure(go.Bar(x=list(counts["ethnicity"]), y=list(counts["ethnicity"].values()), marker_color="#54a24b"))
    eth_fig.update_layout(yaxis_title="images")
    heat = pd.DataFrame(counts["age_bin_by_ethnicity"]).T  # rows: age bins, columns: ethnicities
    heat_fig = go.Figure(go.Heatmap(z=heat.values, x=list(heat.columns), y=list(heat.index), colorscale="Blues",
                                    text=heat.values, texttemplate="%{text}", hovertemplate="%{y} / %{x}: %{z}<extra></extra>"))
    heat_fig.update_layout(xaxis_title="ethnicity", yaxis_title="age bin")
    for fig in (age_fig, gender_fig, eth_fig, heat_fig):
        fig.update_layout(height=380, margin=dict(l=60, r=20, t=20, b=50))
    return [("Age", age_fig), ("Gender", gender_fig), ("Ethnicity", eth_fig), ("Age bin x ethnicity", heat_fig)]


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
