"""Training history: the per-epoch CSV and its loss / MAE curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from agefair.core.figures import write_page, write_png
from agefair.core.io import write_csv_atomic
from agefair.models.runs import CURVES

COLUMNS = ["epoch", "train_loss", "train_mae", "val_loss", "val_mae", "lr", "seconds", "train_img_per_s"]


def write_history(rows: list[dict], path: Path) -> None:
    write_csv_atomic(path, pd.DataFrame(rows, columns=COLUMNS), float_format="%.6g")


def curves_figure(rows: list[dict], title: str) -> go.Figure:
    h = pd.DataFrame(rows, columns=COLUMNS)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "MAE (years)"))
    for col, name, color, c in (("train_loss", "train", "#4c78a8", 1), ("val_loss", "validation", "#f58518", 1),
                                ("train_mae", "train", "#4c78a8", 2), ("val_mae", "validation", "#f58518", 2)):
        fig.add_trace(go.Scatter(x=h["epoch"], y=h[col], name=name, mode="lines+markers",
                                 line=dict(color=color), showlegend=(c == 1)), row=1, col=c)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=400, margin=dict(l=50, r=20, t=60, b=40))
    return fig


def write_curves(rows: list[dict], out_dir: Path, title: str, png: bool = False) -> None:
    fig = curves_figure(rows, title)
    write_page(out_dir / f"{CURVES}.html", title, [("Training curves", fig)])
    if png:
        write_png(fig, out_dir / f"{CURVES}.png", width=1000, height=400)
