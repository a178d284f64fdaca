"""The audit report: one self-contained HTML file (opens offline) from ``run_audit``'s summary.

``render_report(summary, galleries, path)`` writes it. plotly's JavaScript is embedded once in the
page head and every chart is a ``<div class="chart" id=...>`` holding one plotly figure; images are
data URIs, so the page makes no network request. Missing numbers (None or NaN) read as '–'.
Unknown summary keys are ignored (listed, as raw JSON, at the end of the provenance section).

No torch here: the report only reads the summary dict.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from agefair.core.io import write_text_atomic

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MISSING = "–"

# (anchor id, heading, navigation label): the report's sections, in order.
SECTIONS: list[tuple[str, str, str]] = [
    ("summary", "Summary", "Summary"),
    ("thresholds", "Threshold checks", "Thresholds"),
    ("groups", "Error by group", "By group"),
    ("by-age", "Error by true age", "By age"),
    ("shot", "Many-, medium- and few-shot ages", "Shot"),
    ("disparity", "Disparities between groups", "Disparities"),
    ("gallery", "Grad-CAM galleries of the worst errors", "Grad-CAM"),
    ("training", "Training", "Training"),
    ("data", "Data quality and split", "Data"),
    ("provenance", "Provenance", "Provenance"),
]
GROUPING_TITLES = {
    "overall": "overall", "age_bin": "age bin", "gender": "gender", "ethnicity": "ethnicity",
    "gender x ethnicity": "gender × ethnicity", "age_bin x ethnicity": "age bin × ethnicity",
    "shot": "many/medium/few-shot",
}
SHOT_ORDER = ["many", "medium", "few"]
METRIC_TITLES = {"mae": "MAE", "rmse": "RMSE", "bias": "signed error (bias)", "cs5": "CS@5",
                 "in_group": "share in age group", "dist": "distance to age group", "signed": "signed distance",
                 "too_old": "share too old", "too_young": "share too young"}
# The metrics of the bar charts (toggled) and of the disparity tables, for exact ages and for age-group labels.
CHART_METRICS = {"exact": [("mae", "MAE (years)"), ("bias", "signed error (years; + = too old)")],
                 "interval": [("dist", "distance to the age group (years)"),
                              ("signed", "signed distance (years; + = too old)"),
                              ("in_group", "share of predictions inside the age group")]}
DISPARITY_METRICS = {"exact": ("mae", "rmse", "bias", "cs5"),
                     "interval": ("dist", "in_group", "signed", "too_old", "too_young")}
SHARE_METRICS = {"cs5", "in_group", "too_old", "too_young"}
AGE_GROUPING_COLUMNS = ("age_bin", "age_group")
JUDGE_TITLES = {"point": "estimate", "ci_lower": "lower bound", "ci_upper": "upper bound"}
KNOWN_KEYS = {"generated", "split", "passed", "verdict", "leaderboard", "thresholds", "variants", "data",
              "provenance", "seconds", "dataset", "thresholds_not_applicable", "gallery_note"}
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_AXIS = dict(gridcolor="#e9ecef", linecolor="#c4c9cf", zerolinecolor="#adb3ba", zerolinewidth=1, automargin=True,
             ticks="", title=dict(standoff=12))
# A small plotly template (like plotly_white): much quicker to build and serialise than a named one.
TEMPLATE = dict(layout=dict(paper_bgcolor="white", plot_bgcolor="white", colorway=PALETTE, hovermode="closest",
                            font=dict(color="#2a3f5f"), xaxis=_AXIS, yaxis=_AXIS,
                            hoverlabel=dict(align="left")))


# --------------------------------------------------------------------------- number formatting

def num(x: Any) -> float | None:
    """``x`` as a finite float, or None for None, NaN, infinities and anything non-numeric."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x: Any, digits: int = 2) -> str:
    v = num(x)
    return MISSING if v is None else f"{v:.{digits}f}"


def fmt_signed(x: Any, digits: int = 2) -> str:
    v = num(x)
    return MISSING if v is None else f"{v:+.{digits}f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    v = num(x)
    return MISSING if v is None else f"{100 * v:.{digits}f}%"


def _pair(ci: Any) -> tuple[float | None, float | None]:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return num(ci[0]), num(ci[1])
    return None, None


def fmt_ci(ci: Any, digits: int = 2, pct: bool = False) -> str:
    lo, hi = _pair(ci)
    if lo is None or hi is None:
        return MISSING
    if pct:
        return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]%"
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_int(x: Any) -> str:
    v = num(x)
    return MISSING if v is None else f"{int(round(v)):,}"


def fmt_seconds(x: Any) -> str:
    v = num(x)
    if v is None:
        return MISSING
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def fmt_text(x: Any) -> str:
    return MISSING if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" else str(x)


def as_yaml(obj: Any) -> str:
    """Readable YAML for configs and settings (JSON if PyYAML is missing or refuses the object)."""
    try:
        import yaml

        return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    except Exception:  # noqa: BLE001 - any object PyYAML cannot represent falls back to JSON
        return json.dumps(obj, indent=2, default=str)


def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list:
    return x if isinstance(x, list) else []


def _pt(text: Any) -> str:
    """Text for plotly labels: plotly reads a small HTML subset, so escape it (entities display as-is)."""
    return html.escape(str(text), quote=False)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _natural_key(label: str) -> tuple:
    """Order groups naturally: numeric prefixes as numbers ('5-9' before '10-19'), shot labels many→few."""
    key = []
    for part in str(label).split(" / "):
        if part in SHOT_ORDER:
            key.append((0, SHOT_ORDER.index(part), ""))
            continue
        m = re.match(r"\s*(\d+(?:\.\d+)?)", part)
        key.append((1, float(m.group(1)), part) if m else (2, 0.0, part))
    return tuple(key)


# --------------------------------------------------------------------------- summary accessors

def _variants(summary: dict) -> list[str]:
    names = list(_d(summary.get("variants")))
    for row in _l(summary.get("leaderboard")):
        if isinstance(row, dict) and row.get("variant") is not None and str(row["variant"]) not in names:
            names.append(str(row["variant"]))
    return names


def _audit(summary: dict, variant: str) -> dict:
    return _d(_d(_d(summary.get("variants")).get(variant)).get("audit"))


def _grouping(summary: dict, variant: str, grouping: str) -> dict:
    return _d(_d(_audit(summary, variant).get("groupings")).get(grouping))


def _groups_by_name(summary: dict, variant: str, grouping: str) -> dict[str, dict]:
    return {str(g.get("group")): g for g in _l(_grouping(summary, variant, grouping).get("groups"))
            if isinstance(g, dict)}


def _ordered_groups(summary: dict, variants: list[str], grouping: str) -> tuple[list[str], set[str]]:
    """Every group of ``grouping`` over the variants (natural order) and the set flagged small."""
    names: list[str] = []
    small: set[str] = set()
    for v in variants:
        for name, g in _groups_by_name(summary, v, grouping).items():
            if name not in names:
                names.append(name)
            if g.get("small"):
                small.add(name)
    return sorted(names, key=_natural_key), small


def _labels(summary: dict) -> str:
    """'interval' when the audited data has age-group labels (summary's dataset, else the audits), else 'exact'."""
    kind = _d(summary.get("dataset")).get("labels")
    if kind in CHART_METRICS:
        return kind
    audits = [_audit(summary, v) for v in _variants(summary)]
    return "interval" if audits and all(a.get("labels") == "interval" for a in audits) else "exact"


def _grouping_title(grouping: str) -> str:
    return GROUPING_TITLES.get(grouping, str(grouping).replace(" x ", " × ").replace("_", " "))


def _chart_groupings(summary: dict, variants: list[str]) -> list[tuple[str, bool, bool]]:
    """(grouping, heat map?, half width?) for each grouping of the audits but shot, in the audits' order:
    age, the attributes, then intersections (an age x attribute intersection as a heat map)."""
    out: list[tuple[str, bool, bool]] = []
    for v in variants:
        for name, g in _d(_audit(summary, v).get("groupings")).items():
            if name == "shot" or name in [o[0] for o in out]:
                continue
            cols = [str(c) for c in _l(_d(g).get("columns"))] or str(name).split(" x ")
            heat = len(cols) == 2 and cols[0] in AGE_GROUPING_COLUMNS
            half = len(cols) == 1 and cols[0] not in AGE_GROUPING_COLUMNS
            out.append((str(name), heat, half))
    return out


def _min_group_size(summary: dict) -> int | None:
    v = num(_d(_d(summary.get("provenance")).get("audit_settings")).get("min_group_size"))
    return int(v) if v is not None else None


def _ci_label(summary: dict) -> str:
    level = num(_d(_d(summary.get("provenance")).get("audit_settings")).get("ci_level"))
    return f"{100 * (level if level is not None else 0.95):g}%"


def _metric(g: dict, metric: str) -> tuple[float | None, float | None, float | None]:
    m = _d(g.get(metric))
    lo, hi = _pair(m.get("ci"))
    return num(m.get("value")), lo, hi


# --------------------------------------------------------------------------- charts

def _figure() -> go.Figure:
    """An empty figure with the report's template (set first: setting it later restyles every trace, slowly)."""
    return go.Figure(layout=dict(template=TEMPLATE))


def _layout(fig: go.Figure, height: int, **kwargs) -> go.Figure:
    settings = dict(height=height, font=dict(family=FONT, size=12),
                    margin=dict(l=60, r=20, t=72, b=50),
                    legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"), hoverlabel=dict(font_size=12))
    fig.update_layout(**(settings | kwargs))
    return fig


def _chart(fig: go.Figure, chart_id: str) -> Markup:
    """One chart container: a stable class and id, plotly's figure without its JavaScript bundle."""
    frag = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"{chart_id}-plot", config=PLOT_CONFIG)
    return Markup(f'<div class="chart" id="{html.escape(chart_id)}">{frag}</div>')


def _toggle_menu(n_traces_per_state: int, states: list[tuple[str, dict]], beside: bool = True,
                 y: float = 1.02) -> list[dict]:
    """Plotly buttons that show one block of ``n_traces_per_state`` traces at a time.

    ``beside``: stacked right of the plot area (clear of the legend above it); else in a row above it."""
    buttons = []
    for i, (label, layout) in enumerate(states):
        visible = [j // n_traces_per_state == i for j in range(n_traces_per_state * len(states))]
        buttons.append(dict(label=label, method="update", args=[{"visible": visible}, layout]))
    place = (dict(direction="down", x=1.01, xanchor="left", y=1, yanchor="top") if beside else
             dict(direction="right", x=1, xanchor="right", y=y, yanchor="bottom"))
    return [dict(type="buttons", buttons=buttons, pad=dict(r=0, t=0, l=0, b=0), showactive=True,
                 font=dict(size=11), bgcolor="#f4f4f4", bordercolor="#bbb", **place)]


def grouped_bar_chart(summary: dict, variants: list[str], grouping: str, chart_id: str,
                      height: int = 360) -> Markup | None:
    """Grouped bars of per-group MAE (toggle: signed error), 95% intervals, small groups hatched and †.

    Age-group labels: distance to the group (toggles: signed distance, share inside the group)."""
    names, small = _ordered_groups(summary, variants, grouping)
    if not names:
        return None
    labels = [_pt(n) + (" †" if n in small else "") for n in names]
    fig = _figure()
    metrics = CHART_METRICS[_labels(summary)]
    for metric, _ in metrics:
        for i, v in enumerate(variants):
            groups = _groups_by_name(summary, v, grouping)
            ys, plus, minus, custom = [], [], [], []
            for n in names:
                y, lo, hi = _metric(groups.get(n, {}), metric)
                ys.append(y)
                plus.append(hi - y if None not in (y, hi) else None)
                minus.append(y - lo if None not in (y, lo) else None)
                count = groups.get(n, {}).get("n")
                custom.append([fmt_int(count), fmt_ci([lo, hi]), " (small group)" if n in small else ""])
            fig.add_trace(go.Bar(
                x=labels, y=ys, name=_pt(v), legendgroup=_pt(v), visible=metric == metrics[0][0],
                marker=dict(color=PALETTE[i % len(PALETTE)],
                            opacity=[0.45 if n in small else 1.0 for n in names],
                            pattern=dict(shape=["/" if n in small else "" for n in names], solidity=0.35)),
                error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, thickness=1.2, width=3,
                             color="#333"),
                customdata=custom,
                hovertemplate=(f"<b>{_pt(v)}</b><br>%{{x}}<br>{METRIC_TITLES[metric]} %{{y:.2f}} %{{customdata[1]}}"
                               "<br>n = %{customdata[0]}%{customdata[2]}<extra></extra>"),
            ))
    fig.update_xaxes(categoryorder="array", categoryarray=labels, tickangle=-30 if len(names) > 6 else 0)
    buttons = {"mae": "MAE", "bias": "Signed error", "dist": "Distance", "signed": "Signed", "in_group": "In group"}
    menu = _toggle_menu(len(variants), [(buttons[m], {"yaxis.title.text": title}) for m, title in metrics])
    _layout(fig, height, barmode="group", bargap=0.18, bargroupgap=0.04, updatemenus=menu,
            margin=dict(l=60, r=110, t=60, b=50),
            yaxis_title=metrics[0][1], xaxis_title=_pt(_grouping_title(grouping)))
    return _chart(fig, chart_id)


def heatmap_chart(summary: dict, variants: list[str], grouping: str, chart_id: str) -> Markup | None:
    """One heat map per variant (columns: first grouping column, rows: second); toggle MAE / signed error."""
    names, small = _ordered_groups(summary, variants, grouping)
    split = [n.split(" / ") for n in names]
    if not names or any(len(p) != 2 for p in split):
        return grouped_bar_chart(summary, variants, grouping, chart_id)
    cols = sorted({p[0] for p in split}, key=_natural_key)
    rows = sorted({p[1] for p in split}, key=_natural_key)
    ncols = 1 if len(variants) == 1 else 2
    nrows = math.ceil(len(variants) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[_pt(v) for v in variants],
                        horizontal_spacing=0.08, vertical_spacing=0.16 if nrows > 1 else 0.1, figure=_figure())
    err_m, signed_m = ("dist", "signed") if _labels(summary) == "interval" else ("mae", "bias")
    values = {m: [] for m in (err_m, signed_m)}
    for v in variants:
        groups = _groups_by_name(summary, v, grouping)
        for m in values:
            values[m] += [x for x in (_metric(g, m)[0] for g in groups.values()) if x is not None]
    mae_max = max(values[err_m], default=1.0) or 1.0
    bias_abs = max((abs(x) for x in values[signed_m]), default=1.0) or 1.0
    scales = {err_m: dict(colorscale="YlOrRd", zmin=0, zmax=mae_max, title="MAE" if err_m == "mae" else "distance"),
              signed_m: dict(colorscale="RdBu_r", zmin=-bias_abs, zmax=bias_abs,
                             title="bias" if signed_m == "bias" else "signed")}
    for metric in (err_m, signed_m):
        for i, v in enumerate(variants):
            groups = _groups_by_name(summary, v, grouping)
            z, text, custom = [], [], []
            for r in rows:
                zr, tr, cr = [], [], []
                for c in cols:
                    key = f"{c} / {r}"
                    g = groups.get(key)
                    y, lo, hi = _metric(g or {}, metric)
                    zr.append(y)
                    tr.append("" if y is None else f"{y:.1f}" + ("†" if key in small else ""))
                    cr.append([fmt_int((g or {}).get("n")), fmt_ci([lo, hi]), " (small group)" if key in small else ""])
                z.append(zr)
                text.append(tr)
                custom.append(cr)
            sc = scales[metric]
            fig.add_trace(go.Heatmap(
                z=z, x=[_pt(c) for c in cols], y=[_pt(r) for r in rows], text=text, texttemplate="%{text}",
                textfont=dict(size=10), customdata=custom, colorscale=sc["colorscale"], zmin=sc["zmin"],
                zmax=sc["zmax"], showscale=i == 0, xgap=1, ygap=1, visible=metric == err_m, name=_pt(v),
                colorbar=dict(title=dict(text=sc["title"]), thickness=12, len=0.8),
                hovertemplate=(f"<b>{_pt(v)}</b><br>%{{x}} / %{{y}}<br>{METRIC_TITLES[metric]} %{{z:.2f}} "
                               "%{customdata[1]}<br>n = %{customdata[0]}%{customdata[2]}<extra></extra>"),
            ), row=i // ncols + 1, col=i % ncols + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0, tickfont=dict(size=10))
    menu = _toggle_menu(len(variants), [("MAE" if err_m == "mae" else "Distance", {}),
                                        ("Signed error" if err_m == "mae" else "Signed", {})], beside=False,
                        y=1 + 44 / (230 * nrows))
    _layout(fig, 160 + 230 * nrows, updatemenus=menu, margin=dict(l=70, r=20, t=90, b=40))
    return _chart(fig, chart_id)


def by_age_chart(summary: dict, variants: list[str], key: str, title: str, chart_id: str) -> Markup | None:
    fig = _figure()
    for i, v in enumerate(variants):
        pts = [p for p in _l(_audit(summary, v).get("by_age")) if isinstance(p, dict) and num(p.get("age")) is not None]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[num(p["age"]) for p in pts], y=[num(p.get(key)) for p in pts], mode="lines", name=_pt(v),
            line=dict(color=PALETTE[i % len(PALETTE)], width=1.6), customdata=[fmt_int(p.get("n")) for p in pts],
            hovertemplate=f"<b>{_pt(v)}</b><br>age %{{x}}: {title} %{{y:.2f}}<br>n = %{{customdata}}<extra></extra>"))
    if not fig.data:
        return None
    if key == "bias":
        fig.add_hline(y=0, line=dict(color="#666", width=1, dash="dot"))
    _layout(fig, 330, xaxis_title="true age (years)", yaxis_title=title + " (years)", hovermode="x unified")
    return _chart(fig, chart_id)


def training_chart(summary: dict, variants: list[str], chart_id: str) -> Markup | None:
    fig = _figure()
    for i, v in enumerate(variants):
        hist = [h for h in _l(_d(_d(_d(summary.get("variants")).get(v)).get("training")).get("history"))
                if isinstance(h, dict)]
        if not hist:
            continue
        color = PALETTE[i % len(PALETTE)]
        x = [num(h.get("epoch")) for h in hist]
        fig.add_trace(go.Scatter(x=x, y=[num(h.get("val_mae")) for h in hist], mode="lines+markers",
                                 name=f"{_pt(v)} val", legendgroup=_pt(v), line=dict(color=color, width=2)))
        fig.add_trace(go.Scatter(x=x, y=[num(h.get("train_mae")) for h in hist], mode="lines+markers",
                                 name=f"{_pt(v)} train", legendgroup=_pt(v),
                                 line=dict(color=color, width=1, dash="dot"), marker=dict(size=4), opacity=0.7))
    if not fig.data:
        return None
    _layout(fig, 330, xaxis_title="epoch", yaxis_title="MAE (years)", hovermode="x unified")
    fig.update_xaxes(tickformat="d", dtick=1 if max((len(t.x) for t in fig.data), default=0) <= 20 else None)
    return _chart(fig, chart_id)


# --------------------------------------------------------------------------- tables

def _best_flags(rows: list[dict], key, better: str) -> list[bool]:
    """Which rows hold the best value of ``key(row)`` (ties all flagged); 'min', 'max' or 'absmin'."""
    vals = [num(key(r)) for r in rows]
    scored = [(abs(x) if better == "absmin" else x) if x is not None else None for x in vals]
    present = [s for s in scored if s is not None]
    if not present:
        return [False] * len(rows)
    target = max(present) if better == "max" else min(present)
    return [s is not None and math.isclose(s, target, rel_tol=1e-12, abs_tol=1e-12) for s in scored]


def _gap_key(board: list[dict]) -> str:
    """The leaderboard's gap column: UTKFace's ethnicity gap, else the largest gap over the attributes."""
    return "ethnicity_gap" if any(num(r.get("ethnicity_gap")) is not None for r in board) else "gap"


def interval_leaderboard_rows(board: list[dict]) -> list[dict]:
    cols = {
        "in_group": (lambda r: r.get("in_group"), "max"),
        "dist": (lambda r: r.get("dist"), "min"),
        "signed": (lambda r: r.get("signed"), "absmin"),
        "worst": (lambda r: r.get("worst_group_dist"), "min"),
        "gap": (lambda r: r.get("gap"), "min"),
    }
    flags = {k: _best_flags(board, f, b) for k, (f, b) in cols.items()} if len(board) > 1 else {}
    out = []
    for i, r in enumerate(board):
        passed, total, status = rules_status(r)
        out.append({
            "variant": fmt_text(r.get("variant")), "n": fmt_int(r.get("n")),
            "in_group": fmt_pct(r.get("in_group")), "in_group_ci": fmt_ci(r.get("in_group_ci"), 1, pct=True),
            "dist": fmt(r.get("dist")), "dist_ci": fmt_ci(r.get("dist_ci")), "signed": fmt_signed(r.get("signed")),
            "too_old": fmt_pct(r.get("too_old")), "too_young": fmt_pct(r.get("too_young")),
            "worst_group": fmt_text(r.get("worst_group")), "worst": fmt(r.get("worst_group_dist")),
            "worst_ci": fmt_ci(r.get("worst_group_ci")),
            "gap": fmt(r.get("gap")), "gap_ci": fmt_ci(r.get("gap_ci")), "gap_grouping": fmt_text(r.get("gap_grouping")),
            "rules": f"{fmt_int(passed)}/{fmt_int(total)}" if total else MISSING, "status": status,
            "best": {k: bool(flags.get(k, [False] * len(board))[i]) for k in cols},
        })
    return out


def rules_status(row: dict) -> tuple:
    """(rules passed, rules checked, none | pass | partial | fail) of a leaderboard row."""
    passed, total = num(row.get("rules_passed")), num(row.get("rules"))
    status = "none" if not total else "pass" if passed == total else "fail" if not passed else "partial"
    return passed, total, status


def leaderboard_rows(summary: dict) -> list[dict]:
    board = [r for r in _l(summary.get("leaderboard")) if isinstance(r, dict)]
    if _labels(summary) == "interval":
        return interval_leaderboard_rows(board)
    gap_key = _gap_key(board)
    cols = {
        "mae": (lambda r: r.get("mae"), "min"),
        "cs5": (lambda r: r.get("cs5"), "max"),
        "bias": (lambda r: r.get("bias"), "absmin"),
        "worst": (lambda r: r.get("worst_group_mae"), "min"),
        "gap": (lambda r: r.get(gap_key), "min"),
        "spread": (lambda r: r.get("age_bin_spread"), "min"),
        "rules": (lambda r: (num(r.get("rules_passed")) or 0) / num(r.get("rules")) if num(r.get("rules")) else None,
                  "max"),
    }
    flags = {k: _best_flags(board, f, b) for k, (f, b) in cols.items()} if len(board) > 1 else {}
    out = []
    for i, r in enumerate(board):
        passed, total, status = rules_status(r)
        out.append({
            "variant": fmt_text(r.get("variant")),
            "mae": fmt(r.get("mae")), "mae_ci": fmt_ci(r.get("mae_ci")),
            "cs5": fmt_pct(r.get("cs5")), "bias": fmt_signed(r.get("bias")),
            "worst_group": fmt_text(r.get("worst_group")), "worst_mae": fmt(r.get("worst_group_mae")),
            "worst_ci": fmt_ci(r.get("worst_group_ci")),
            "gap": fmt(r.get(gap_key)), "gap_ci": fmt_ci(r.get(gap_key + "_ci")),
            "gap_grouping": fmt_text("ethnicity" if gap_key == "ethnicity_gap" else r.get("gap_grouping")),
            "spread": fmt(r.get("age_bin_spread")),
            "rules": f"{fmt_int(passed)}/{fmt_int(total)}" if total else MISSING, "status": status,
            "best": {k: bool(flags.get(k, [False] * len(board))[i]) for k in cols},
        })
    return out


def _leader(summary: dict, variant: Any) -> dict:
    return next((r for r in _l(summary.get("leaderboard")) if isinstance(r, dict) and r.get("variant") == variant), {})


def verdict_parts(summary: dict) -> list[dict]:
    """The verdict sentence's clauses: label, variant and the number behind it (escaped by the template)."""
    v = _d(summary.get("verdict"))
    parts = []
    spec = [("most_accurate", "Most accurate", "mae", "mae_ci", "MAE"),
            ("smallest_worst_group_mae", "Smallest worst-group MAE", "worst_group_mae", "worst_group_ci", "MAE"),
            ("smallest_ethnicity_gap", "Smallest ethnicity gap", "ethnicity_gap", "ethnicity_gap_ci", "MAE gap"),
            ("smallest_attribute_gap", "Smallest attribute gap", "gap", "gap_ci", "MAE gap"),
            ("smallest_age_bin_spread", "Smallest age-bin spread", "age_bin_spread", None, "SD of bin MAE")]
    if _labels(summary) == "interval":
        spec = [("most_accurate", "Closest to the age groups", "dist", "dist_ci", "mean distance"),
                ("most_in_group", "Most often inside the age group", "in_group", "in_group_ci", "share"),
                ("smallest_worst_group_dist", "Smallest worst-group distance", "worst_group_dist", "worst_group_ci",
                 "distance"),
                ("smallest_attribute_gap", "Smallest attribute gap", "gap", "gap_ci", "distance gap")]
    for key, label, value_key, ci_key, what in spec:
        if key not in v:
            continue
        name = v.get(key)
        row = _leader(summary, name)
        pct = value_key == "in_group"
        detail = f"{what} {fmt_pct(row.get(value_key)) if pct else fmt(row.get(value_key))}"
        if ci_key:
            ci = fmt_ci(row.get(ci_key), 1 if pct else 2, pct)
            detail += f" {ci}" if ci != MISSING else ""
        if key == "smallest_attribute_gap" and row.get("gap_grouping"):
            detail += f", by {row['gap_grouping']}"
        if key in ("smallest_worst_group_mae", "smallest_worst_group_dist") and row.get("worst_group"):
            detail += f", {row['worst_group']}"
        parts.append({"label": label, "variant": fmt_text(name) if name is not None else "n/a",
                      "detail": detail if name is not None else ""})
    return parts


def threshold_rows(summary: dict) -> list[dict]:
    rows = [r for r in _l(summary.get("thresholds")) if isinstance(r, dict)]
    rows = sorted(rows, key=lambda r: bool(r.get("passed")))  # stable: failures first, then config order
    out = []
    for r in rows:
        digits = 3 if r.get("metric") in SHARE_METRICS or r.get("statistic") == "ratio" else 2
        judge = str(r.get("judge", "point"))
        out.append({
            "variant": fmt_text(r.get("variant")), "rule": fmt_text(r.get("rule")),
            "group": fmt_text(r.get("group")), "value": fmt(r.get("value"), digits),
            "ci": fmt_ci(r.get("ci"), digits), "judge": JUDGE_TITLES.get(judge, judge),
            "judged": fmt(r.get("judged_value"), digits),
            "threshold": f"{r.get('op', '')} {fmt_text(r.get('threshold'))}".strip(),
            "passed": bool(r.get("passed")),
        })
    return out


def shot_table(summary: dict, variants: list[str]) -> dict:
    names, small = _ordered_groups(summary, variants, "shot")
    rows = []
    for v in variants:
        groups = _groups_by_name(summary, v, "shot")
        cells = []
        for n in names:
            g = groups.get(n, {})
            y, lo, hi = _metric(g, "mae")
            b = _metric(g, "bias")[0]
            cells.append({"n": fmt_int(g.get("n")), "mae": fmt(y), "ci": fmt_ci([lo, hi]), "bias": fmt_signed(b)})
        rows.append({"variant": v, "cells": cells})
    return {"groups": [{"name": n, "small": n in small} for n in names], "rows": rows}


def disparity_tables(summary: dict, variants: list[str]) -> list[dict]:
    """Per grouping: one row per variant and metric with worst/best group, difference and ratio."""
    groupings: list[str] = []
    for v in variants:
        for g in _d(_audit(summary, v).get("groupings")):
            if g not in groupings:
                groupings.append(g)
    out = []
    metrics = DISPARITY_METRICS[_labels(summary)]
    for grouping in groupings:
        rows = {"mae": [], "other": []}
        for v in variants:
            disp = _d(_grouping(summary, v, grouping).get("disparity"))
            for metric in metrics:
                d = _d(disp.get(metric))
                pct = metric in SHARE_METRICS
                f = fmt_pct if pct else fmt
                row = {
                    "variant": v, "metric": METRIC_TITLES[metric],
                    "eligible": fmt_int(disp.get("eligible_groups")),
                    "small": fmt_int(disp.get("flagged_small_groups")),
                    "worst_group": fmt_text(d.get("worst_group")), "worst": f(d.get("worst")),
                    "worst_ci": fmt_ci(d.get("worst_ci"), 1 if pct else 2, pct),
                    "best_group": fmt_text(d.get("best_group")), "best": f(d.get("best")),
                    "difference": f(d.get("difference")),
                    "difference_ci": fmt_ci(d.get("difference_ci"), 1 if pct else 2, pct),
                    "ratio": fmt(d.get("ratio"), 3), "ratio_ci": fmt_ci(d.get("ratio_ci"), 3),
                }
                rows["mae" if metric == metrics[0] else "other"].append(row)
        out.append({"grouping": grouping, "title": _grouping_title(grouping), **rows,
                    "primary": METRIC_TITLES[metrics[0]], "others": ", ".join(METRIC_TITLES[m] for m in metrics[1:])})
    return out


def _tile(t: Any) -> dict | None:
    if not isinstance(t, dict):
        return None
    img = t.get("img")
    src = img if isinstance(img, str) and img.startswith("data:image/") else None  # never a network fetch
    name = fmt_text(t.get("file"))
    true = num(t.get("true"))
    return {"src": src, "file": name, "short": name if len(name) <= 32 else name[:14] + "…" + name[-16:],
            "true": fmt(true, 0 if true is not None and true.is_integer() else 1),
            "pred": fmt(t.get("pred"), 1), "error": fmt_signed(t.get("error"), 1),
            "group": fmt_text(t.get("group"))}


def gallery_sections(galleries: Any, variants: list[str]) -> list[dict]:
    galleries = _d(galleries)
    names = variants + [v for v in galleries if v not in variants]
    out = []
    for v in names:
        by_grouping = _d(galleries.get(v))
        if not by_grouping:
            out.append({"variant": v, "overall": [], "groupings": [], "missing": True})
            continue
        overall = [t for grp in _d(by_grouping.get("overall")).values() for t in map(_tile, _l(grp)) if t]
        groupings = []
        for grouping, groups in by_grouping.items():
            if grouping == "overall":
                continue
            items = [{"group": str(g), "tiles": [t for t in map(_tile, _l(ts)) if t]} for g, ts in _d(groups).items()]
            groupings.append({"grouping": grouping, "title": GROUPING_TITLES.get(grouping, grouping),
                              "groups": items, "n": sum(len(i["tiles"]) for i in items)})
        out.append({"variant": v, "overall": overall, "groupings": groupings, "missing": False})
    return out


def training_rows(summary: dict, variants: list[str]) -> list[dict]:
    rows = []
    for v in variants:
        entry = _d(_d(summary.get("variants")).get(v))
        if entry.get("source") == "external":  # not trained by agefair
            continue
        tr = _d(entry.get("training"))
        hist = [h for h in _l(tr.get("history")) if isinstance(h, dict)]
        cfg_train = _d(_d(tr.get("config")).get("train"))
        secs = [x for x in (num(h.get("seconds")) for h in hist) if x is not None]
        speeds = [s for s in (num(h.get("train_img_per_s")) for h in hist) if s is not None]
        timings = _d(entry.get("timings"))
        rows.append({
            "variant": v, "epoch": fmt_int(tr.get("epoch")), "val_mae": fmt(tr.get("val_mae")),
            "epochs_run": str(len(hist)) if hist else MISSING, "epochs_max": fmt_int(cfg_train.get("epochs")),
            "train_time": fmt_seconds(sum(secs)) if secs else MISSING,
            "speed": f"{sum(speeds) / len(speeds):.0f}" if speeds else MISSING,
            "lr": fmt_text(_d(hist[-1]).get("lr")) if hist else MISSING,
            "timings": ", ".join(f"{k.removesuffix('_s')} {fmt_seconds(t)}" for k, t in timings.items()) or MISSING,
        })
    return rows


def data_context(summary: dict) -> dict:
    data = _d(summary.get("data"))
    q = _d(data.get("quality"))
    counts, actions = _d(q.get("counts")), _d(q.get("actions"))
    problems = list(counts) + [k for k in actions if k not in counts]
    split = _d(data.get("split"))
    totals = _d(_d(split.get("counts")).get("total"))
    fractions = _d(split.get("fractions"))
    return {
        "files": [(label, fmt_int(q.get(k))) for k, label in
                  (("files_scanned", "files scanned"), ("files_kept", "kept"), ("files_dropped", "dropped"))
                  if k in q],
        "data_dir": fmt_text(q.get("data_dir")), "manifest_hash": fmt_text(q.get("manifest_hash")),
        "problems": [{"problem": p.replace("_", " "), "count": fmt_int(counts.get(p)),
                      "nonzero": bool(num(counts.get(p))), "action": fmt_text(actions.get(p))} for p in problems],
        "duplicates": [(k.replace("_", " "), fmt_int(x)) for k, x in _d(q.get("duplicate_groups")).items()],
        "split_seed": fmt_text(split.get("seed")),
        "split_parts": [{"name": k, "fraction": fmt_pct(fractions.get(k), 0), "count": fmt_int(totals.get(k))}
                        for k in list(fractions) + [k for k in totals if k not in fractions]],
        "split_details": [(k.replace("_", " "), ", ".join(map(str, x)) if isinstance(x, list) else fmt_text(x))
                          for k, x in split.items() if k in ("stratified_by", "grouped_by", "age_bins")],
        "split_text": data.get("split_text") if isinstance(data.get("split_text"), str) else "",
    }


def _rule_label(rule: dict) -> str:
    """A rule's name, or the label the threshold table uses (as ``ThresholdRule.label``)."""
    if rule.get("name"):
        return str(rule["name"])
    metric, grouping = rule.get("metric"), rule.get("grouping", "overall")
    what = metric if metric == "age_bin_spread" else f"{metric} {rule.get('statistic', 'value')}"
    where = "" if grouping == "overall" or metric == "age_bin_spread" else f" by {grouping}"
    return f"{what}{where}"


def provenance_context(summary: dict, variants: list[str]) -> dict:
    p = _d(summary.get("provenance"))
    settings = _d(p.get("audit_settings"))
    rules = _l(settings.get("rules"))
    checkpoints = []
    for v in variants:
        entry = _d(_d(summary.get("variants")).get(v))
        if entry.get("source") == "external":
            ext = _d(entry.get("predictions"))
            checkpoints.append({"variant": v, "path": fmt_text(ext.get("file")), "sha256": fmt_text(ext.get("sha256")),
                                "config": "", "meta": ""})
            continue
        tr = _d(entry.get("training"))
        checkpoints.append({"variant": v, "path": fmt_text(tr.get("checkpoint")),
                            "sha256": fmt_text(tr.get("checkpoint_sha256")),
                            "config": as_yaml(tr.get("config")) if tr.get("config") else "",
                            "meta": as_yaml(tr.get("meta")) if tr.get("meta") else ""})
    extra = {k: summary[k] for k in summary if k not in KNOWN_KEYS}
    return {
        "fields": [(label, fmt_text(p.get(k))) for k, label in (
            ("data_dir", "data folder"), ("manifest_hash", "manifest hash"), ("split_seed", "split seed"),
            ("split", "audited split"), ("thresholds_file", "thresholds file"), ("git_commit", "git commit"),
            ("git_dirty", "uncommitted changes"), ("device", "device"), ("precision", "precision"),
            ("torch_threads", "torch threads"), ("platform", "platform"), ("command", "command"),
            ("reproduce", "to reproduce")) if k in p],
        "data_config": as_yaml(p["data_config"]) if isinstance(p.get("data_config"), dict) else "",
        "settings": [(k.replace("_", " "), fmt_text(x)) for k, x in settings.items() if k != "rules"],
        "rules": [{"metric": fmt_text(r.get("metric")), "grouping": fmt_text(r.get("grouping")),
                   "statistic": fmt_text(r.get("statistic")),
                   "limit": (f"<= {r['max']}" if r.get("max") is not None else f">= {fmt_text(r.get('min'))}"),
                   "judge": JUDGE_TITLES.get(str(r.get("judge")), fmt_text(r.get("judge"))),
                   "name": _rule_label(r)} for r in rules if isinstance(r, dict)],
        "settings_yaml": as_yaml(settings) if settings else "",
        "versions": [(k, fmt_text(x)) for k, x in _d(p.get("versions")).items()],
        "checkpoints": checkpoints,
        "extra": json.dumps(extra, indent=2, default=str, allow_nan=True)[:200_000] if extra else "",
        "extra_keys": list(extra),
    }


# --------------------------------------------------------------------------- page

def dataset_context(summary: dict) -> dict:
    """The audited dataset, as the report states it: every number comes from it."""
    d = _d(summary.get("dataset"))
    labels = _labels(summary)
    return {"name": fmt_text(d.get("name")) if d.get("name") else None, "kind": fmt_text(d.get("kind")),
            "labels": labels,
            "labels_text": "age-group labels, interval metrics" if labels == "interval" else "exact ages",
            "attributes": ", ".join(map(str, _l(d.get("attributes")))) or MISSING,
            "images": fmt_int(d.get("images_in_split")) if num(d.get("images_in_split")) is not None else None,
            "split": fmt_text(d.get("split") or summary.get("split"))}


def _faces_text(faces: dict) -> str:
    parts = [f"{fmt_int(faces.get('whole'))} used whole (aligned crops)" if num(faces.get("whole")) else "",
             f"{fmt_int(faces.get('face_crop'))} face crops" if num(faces.get("face_crop")) else "",
             f"{fmt_int(faces.get('several_faces'))} of them the largest of several faces"
             if num(faces.get("several_faces")) else "",
             f"{fmt_int(faces.get('no_face'))} without a face found (no prediction)" if num(faces.get("no_face")) else "",
             f"{fmt_int(faces.get('unreadable'))} unreadable" if num(faces.get("unreadable")) else ""]
    return "; ".join(p for p in parts if p)


def model_rows(summary: dict, variants: list[str]) -> list[dict]:
    """Where each model's numbers come from: its source, the data it was trained on, the data it was
    evaluated on, how many images it predicted and, for predictions files, which rows were not used."""
    rows = []
    for v in variants:
        e = _d(_d(summary.get("variants")).get(v))
        cov = _d(e.get("coverage"))
        external = e.get("source") == "external"
        notes = fmt_text(e.get("matching_text")) if external else _faces_text(_d(cov.get("faces")))
        rows.append({"variant": v,
                     "source": "predictions file" if external else "agefair variant" if e.get("source") else MISSING,
                     "file": fmt_text(_d(e.get("predictions")).get("file")) if external else
                     fmt_text(_d(e.get("training")).get("checkpoint")),
                     "trained_on": fmt_text(e.get("trained_on")), "evaluated_on": fmt_text(e.get("evaluated_on")),
                     "predicted": fmt_int(cov.get("predicted")), "images": fmt_int(cov.get("images_in_split")),
                     "notes": notes or MISSING})
    return rows


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt, signed=fmt_signed, pct=fmt_pct, ci=fmt_ci, int=fmt_int)
    return env


def build_context(summary: dict, galleries: Any, robustness: Any = None) -> dict:
    """Everything the template shows, from the summary (missing parts tolerated) and robustness.json's data."""
    import agefair.reporting.robustness as robustness_report

    summary = _d(summary)
    variants = _variants(summary)
    checks = [r for r in _l(summary.get("thresholds")) if isinstance(r, dict)]
    n_failed = sum(not r.get("passed") for r in checks)
    charts: dict[str, Markup | None] = {}
    group_charts = []
    for grouping, heat, half in _chart_groupings(summary, variants):
        chart_id = f"chart-group-{_slug(grouping)}"
        chart = (heatmap_chart(summary, variants, grouping, chart_id) if heat
                 else grouped_bar_chart(summary, variants, grouping, chart_id))
        if chart is not None:
            group_charts.append({"grouping": grouping, "title": _grouping_title(grouping), "chart": chart, "half": half})
    charts["shot"] = grouped_bar_chart(summary, variants, "shot", "chart-group-shot", 300)
    first = _audit(summary, variants[0]) if variants else {}
    n_test = num(_d(_d(first.get("overall")).get("n")).get("value"))
    provenance = _d(summary.get("provenance"))
    return {
        "sections": robustness_report.with_section(SECTIONS, robustness),
        "robustness": robustness_report.context(robustness, summary),
        "plotly_js": Markup(get_plotlyjs()),
        "generated": fmt_text(summary.get("generated")),
        "split": fmt_text(summary.get("split")),
        "n_test": fmt_int(n_test) if n_test is not None else None,
        "data_dir": fmt_text(provenance.get("data_dir", _d(_d(summary.get("data")).get("quality")).get("data_dir"))),
        "manifest_short": fmt_text(provenance.get("manifest_hash"))[:12],
        "seconds": fmt_seconds(summary["seconds"]) if num(summary.get("seconds")) is not None else None,
        "variants": variants,
        "colors": {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)},
        "verdict": verdict_parts(summary),
        "n_checks": len(checks), "n_failed": n_failed,
        "passed": bool(summary.get("passed", n_failed == 0)) and n_failed == 0,
        "leaderboard": leaderboard_rows(summary),
        "labels": _labels(summary),
        "gap_title": ("ethnicity MAE gap" if _gap_key([r for r in _l(summary.get("leaderboard")) if isinstance(r, dict)])
                      == "ethnicity_gap" else "largest attribute MAE gap"),
        "dataset": dataset_context(summary),
        "models": model_rows(summary, variants),
        "not_applicable": [r for r in _l(summary.get("thresholds_not_applicable")) if isinstance(r, dict)],
        "gallery_note": fmt_text(summary.get("gallery_note")) if summary.get("gallery_note") else None,
        "thresholds": threshold_rows(summary),
        "ci_label": _ci_label(summary),
        "min_group_size": _min_group_size(summary),
        "group_charts": group_charts,
        "age_charts": [c for c in (
            by_age_chart(summary, variants, "mae", "MAE", "chart-age-mae"),
            by_age_chart(summary, variants, "bias", "signed error", "chart-age-bias")) if c is not None],
        "shot": shot_table(summary, variants), "shot_chart": charts["shot"],
        "disparity": disparity_tables(summary, variants),
        "galleries": gallery_sections(galleries, variants) if _d(galleries) else [],
        "training": training_rows(summary, variants),
        "training_chart": training_chart(summary, variants, "chart-training"),
        "data": data_context(summary),
        "provenance": provenance_context(summary, variants),
    }


def render_html(summary: dict, galleries: dict | None = None, robustness: dict | None = None) -> str:
    """The report page as a string."""
    return _environment().get_template("report.html").render(**build_context(summary, galleries or {}, robustness))


def render_report(summary: dict, galleries: dict | None, path: str | Path, robustness: dict | None = None) -> None:
    """Write the self-contained HTML report of ``summary`` (and Grad-CAM ``galleries``, may be {}; the
    robustness section when ``robustness``, robustness.json's content, is given) to ``path``."""
    write_text_atomic(Path(path), render_html(summary, galleries, robustness))


def chart_ids(page: str) -> list[str]:
    """The ids of the chart containers in a rendered page (for tests and checks)."""
    return re.findall(r'<div class="chart" id="([^"]+)"', page)


def without_plotly_js(page: str) -> str:
    """The page with plotly's embedded bundle cut out (to check the rest makes no network reference)."""
    return page.replace(get_plotlyjs(), "")
