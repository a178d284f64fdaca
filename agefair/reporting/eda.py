"""Data-quality report and exploratory plots of a prepared data folder: the library behind ``python -m agefair.eda``.

write_eda writes data_quality.json, data_quality.txt, eda.html, eda_counts.json, split.json and, where a
Chromium is installed for kaleido, age_histogram.png and age_bin_by_ethnicity.png.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from agefair.core.config import DataConfig
from agefair.core.figures import write_page, write_png
from agefair.core.io import write_json_atomic, write_text_atomic
from agefair.data.labels import age_bin, age_bin_labels
from agefair.data.prepare import PreparedData
from agefair.data.quality import summary_text
from agefair.data.split import counts_text

QUALITY_JSON, QUALITY_TXT, PAGE, COUNTS, SPLIT = (
    "data_quality.json", "data_quality.txt", "eda.html", "eda_counts.json", "split.json")
PNGS = ("age_histogram.png", "age_bin_by_ethnicity.png")  # figures 0 and 3 of eda_figures


@dataclass
class EdaFiles:
    out: Path
    summary: str  # the data-quality summary (data_quality.txt)
    split_text: str  # the split's counts
    pngs: list[str] = field(default_factory=list)  # the PNGs written (none without a Chromium for kaleido)


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


def write_eda(prepared: PreparedData, cfg: DataConfig, out: Path, png: bool = True) -> EdaFiles:
    """Every EDA file of ``prepared`` in ``out`` (made if missing); the PNGs only where ``png``."""
    out.mkdir(parents=True, exist_ok=True)
    report = prepared.quality_report
    summary = summary_text(report)
    write_json_atomic(out / QUALITY_JSON, report)
    write_text_atomic(out / QUALITY_TXT, summary + "\n")
    write_json_atomic(out / SPLIT, prepared.split_meta)

    counts = eda_counts(prepared.manifest, cfg)
    write_json_atomic(out / COUNTS, counts)
    figures = eda_figures(counts)
    split_text = counts_text(prepared.split_meta)
    extra = (f"<section><h2>Split</h2><pre>{html.escape(split_text)}</pre></section>"
             f"<section><h2>Data quality</h2><pre>{html.escape(summary)}</pre></section>")
    write_page(out / PAGE, f"agefair EDA: {prepared.data_dir}", figures, extra)

    written = EdaFiles(out, summary, split_text)
    if png:
        for name, fig in zip(PNGS, (figures[0][1], figures[3][1])):
            if write_png(fig, out / name):
                written.pngs.append(name)
    return written
