"""``python -m agefair.eda``: data-quality report and exploratory plots of the data folder.

Writes into --out (default reports/): data_quality.json, data_quality.txt, eda.html, eda_counts.json,
split.json and, where a Chromium is installed for kaleido, age_histogram.png and age_bin_by_ethnicity.png.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from agefair.core.config import DataConfig
from agefair.data.labels import age_bin, age_bin_labels


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
