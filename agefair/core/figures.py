"""Plotly helpers: one self-contained HTML page of figures, and static PNGs where a browser is available."""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import plotly.graph_objects as go

from agefair.core.io import write_text_atomic


def figures_html(figures: list[tuple[str, go.Figure]]) -> list[str]:
    """HTML fragments for ``figures``; plotly's JavaScript is embedded once, in the first."""
    out = []
    for i, (_, fig) in enumerate(figures):
        out.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    return out


def write_page(path: Path, title: str, figures: list[tuple[str, go.Figure]], extra_html: str = "") -> None:
    """A standalone page (works offline) with every figure and optional extra HTML below them."""
    parts = [f"<section><h2>{html.escape(name)}</h2>{frag}</section>"
             for (name, _), frag in zip(figures, figures_html(figures))]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(parts)}{extra_html}</body></html>"
    )
    write_text_atomic(path, page)


def find_browser() -> str | None:
    """A Chromium/Chrome binary kaleido can drive, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_png(fig: go.Figure, path: Path, width: int = 900, height: int = 500) -> bool:
    """Write ``fig`` as PNG through kaleido; False (nothing written) when no browser is available."""
    browser = find_browser()
    if browser is None:
        return False
    os.environ.setdefault("BROWSER_PATH", browser)
    try:
        fig.write_image(str(path), width=width, height=height, scale=1)
    except Exception:  # kaleido/choreographer failures vary by version; the HTML page is the main output
        return False
    return True
