"""The report's plotly charts: grouped bars and heat maps per grouping, error by true age, training curves.

Each chart is a ``<div class="chart" id=...>`` holding one plotly figure without plotly's JavaScript
(the page embeds it once). The helpers (``new_figure``, ``apply_layout``, ``chart_markup``,
``toggle_menu``) are shared with the robustness section.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.specs import METRIC_TITLES
from agefair.reporting.format import fmt_ci, fmt_int, grouping_title, natural_key, num, plot_text
from agefair.reporting.view import groups_by_name, metric_of, ordered_groups, underpowered_groups

# The metrics of the bar charts (toggled), for exact ages and for age-group labels: (metric, axis title).
CHART_METRICS = {"exact": [("mae", "MAE (years)"), ("bias", "signed error (years; + = too old)")],
                 "interval": [("dist", "distance to the age group (years)"),
                              ("signed", "signed distance (years; + = too old)"),
                              ("in_group", "share of predictions inside the age group")]}
BUTTONS = {"mae": "MAE", "bias": "Signed error", "dist": "Distance", "signed": "Signed", "in_group": "In group"}
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


def new_figure() -> go.Figure:
    """An empty figure with the report's template (set first: setting it later restyles every trace, slowly)."""
    return go.Figure(layout=dict(template=TEMPLATE))


def apply_layout(fig: go.Figure, height: int, **kwargs) -> go.Figure:
    settings = dict(height=height, font=dict(family=FONT, size=12),
                    margin=dict(l=60, r=20, t=72, b=50),
                    legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"), hoverlabel=dict(font_size=12))
    fig.update_layout(**(settings | kwargs))
    return fig


def chart_markup(fig: go.Figure, chart_id: str) -> Markup:
    """One chart container: a stable class and id, an empty plot div and the figure as JSON, drawn by the page's
    loader after plotly's bundle (at the end of the page, so the first screen paints before any chart). The
    JSON cannot close its script element: every ``<`` is written ``\\u003c`` (the same string to a JSON reader)."""
    data = fig.to_json().replace("<", "\\u003c")
    cid = html.escape(chart_id)
    return Markup(f'<div class="chart" id="{cid}"><div class="plot" id="{cid}-plot"></div>'
                  f'<script type="application/json" class="chart-data" data-target="{cid}-plot">{data}</script></div>')


def toggle_menu(n_traces_per_state: int, states: list[tuple[str, dict]], beside: bool = True,
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


def grouped_bar_chart(summary: AuditSummary, variants: list[str], grouping: str, chart_id: str,
                      height: int = 360) -> Markup | None:
    """Grouped bars of per-group MAE (toggle: signed error), 95% intervals, small groups hatched and †.

    Age-group labels: distance to the group (toggles: signed distance, share inside the group)."""
    names, small = ordered_groups(summary, variants, grouping)
    if not names:
        return None
    weak = underpowered_groups(summary, grouping)
    labels = [plot_text(n) + (" †" if n in small else "") + (" ‡" if n in weak else "") for n in names]
    fig = new_figure()
    metrics = CHART_METRICS[summary.labels]
    for metric, _ in metrics:
        for i, v in enumerate(variants):
            groups = groups_by_name(summary, v, grouping)
            ys, plus, minus, custom = [], [], [], []
            for n in names:
                g = groups.get(n)
                y, lo, hi = metric_of(g, metric)
                ys.append(y)
                plus.append(hi - y if None not in (y, hi) else None)
                minus.append(y - lo if None not in (y, lo) else None)
                custom.append([fmt_int(g.n if g else None), fmt_ci([lo, hi]),
                               (" (small group)" if n in small else "") + (" (underpowered)" if n in weak else "")])
            fig.add_trace(go.Bar(
                x=labels, y=ys, name=plot_text(v), legendgroup=plot_text(v), visible=metric == metrics[0][0],
                marker=dict(color=PALETTE[i % len(PALETTE)],
                            opacity=[0.45 if n in small else 1.0 for n in names],
                            pattern=dict(shape=["/" if n in small else "" for n in names], solidity=0.35)),
                error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, thickness=1.2, width=3,
                             color="#333"),
                customdata=custom,
                hovertemplate=(f"<b>{plot_text(v)}</b><br>%{{x}}<br>{METRIC_TITLES[metric]} %{{y:.2f}} %{{customdata[1]}}"
                               "<br>n = %{customdata[0]}%{customdata[2]}<extra></extra>"),
            ))
    fig.update_xaxes(categoryorder="array", categoryarray=labels, tickangle=-30 if len(names) > 6 else 0)

    menu = toggle_menu(len(variants), [(BUTTONS[m], {"yaxis.title.text": title}) for m, title in metrics])
    apply_layout(fig, height, barmode="group", bargap=0.18, bargroupgap=0.04, updatemenus=menu,
            margin=dict(l=60, r=110, t=60, b=50),
            yaxis_title=metrics[0][1], xaxis_title=plot_text(grouping_title(grouping)))
    return chart_markup(fig, chart_id)


# The heat maps' two metrics per kind of labels: (metric, colour bar title, button), error first, then signed.
HEAT_METRICS = {"exact": [("mae", "MAE", "MAE"), ("bias", "bias", "Signed error")],
                "interval": [("dist", "distance", "Distance"), ("signed", "signed", "Signed")]}


def _heat_scales(summary: AuditSummary, variants: list[str], grouping: str) -> dict[str, dict]:
    """The colour scale of each heat map metric, shared by the variants: error 0..max, signed symmetric."""
    (err_m, err_title, _), (signed_m, signed_title, _) = HEAT_METRICS[summary.labels]
    values: dict[str, list[float]] = {err_m: [], signed_m: []}
    for v in variants:
        groups = groups_by_name(summary, v, grouping)
        for m in values:
            values[m] += [x for x in (metric_of(g, m)[0] for g in groups.values()) if x is not None]
    err_max = max(values[err_m], default=1.0) or 1.0
    signed_abs = max((abs(x) for x in values[signed_m]), default=1.0) or 1.0
    return {err_m: dict(colorscale="YlOrRd", zmin=0, zmax=err_max, title=err_title),
            signed_m: dict(colorscale="RdBu_r", zmin=-signed_abs, zmax=signed_abs, title=signed_title)}


def _heat_cells(groups: dict, small: set[str], metric: str, cols: list[str], rows: list[str],
                weak: frozenset[str] | set[str] = frozenset()) -> tuple:
    """(values, cell texts, hover data) of one variant's heat map: rows x columns of groups 'col / row'."""
    z, text, custom = [], [], []
    for r in rows:
        zr, tr, cr = [], [], []
        for c in cols:
            key = f"{c} / {r}"
            g = groups.get(key)
            y, lo, hi = metric_of(g, metric)
            zr.append(y)
            tr.append("" if y is None else f"{y:.1f}" + ("†" if key in small else "") + ("‡" if key in weak else ""))
            cr.append([fmt_int(g.n if g else None), fmt_ci([lo, hi]),
                       (" (small group)" if key in small else "") + (" (underpowered)" if key in weak else "")])
        z.append(zr)
        text.append(tr)
        custom.append(cr)
    return z, text, custom


def heatmap_chart(summary: AuditSummary, variants: list[str], grouping: str, chart_id: str) -> Markup | None:
    """One heat map per variant (columns: first grouping column, rows: second); toggle MAE / signed error."""
    names, small = ordered_groups(summary, variants, grouping)
    split = [n.split(" / ") for n in names]
    if not names or any(len(p) != 2 for p in split):
        return grouped_bar_chart(summary, variants, grouping, chart_id)
    cols = sorted({p[0] for p in split}, key=natural_key)
    rows = sorted({p[1] for p in split}, key=natural_key)
    ncols = 1 if len(variants) == 1 else 2
    nrows = math.ceil(len(variants) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[plot_text(v) for v in variants],
                        horizontal_spacing=0.08, vertical_spacing=0.16 if nrows > 1 else 0.1, figure=new_figure())
    metrics = HEAT_METRICS[summary.labels]
    scales = _heat_scales(summary, variants, grouping)
    for metric, _, _ in metrics:
        sc = scales[metric]
        for i, v in enumerate(variants):
            z, text, custom = _heat_cells(groups_by_name(summary, v, grouping), small, metric, cols, rows,
                                         underpowered_groups(summary, grouping))
            fig.add_trace(go.Heatmap(
                z=z, x=[plot_text(c) for c in cols], y=[plot_text(r) for r in rows], text=text, texttemplate="%{text}",
                textfont=dict(size=10), customdata=custom, colorscale=sc["colorscale"], zmin=sc["zmin"],
                zmax=sc["zmax"], showscale=i == 0, xgap=1, ygap=1, visible=metric == metrics[0][0], name=plot_text(v),
                colorbar=dict(title=dict(text=sc["title"]), thickness=12, len=0.8),
                hovertemplate=(f"<b>{plot_text(v)}</b><br>%{{x}} / %{{y}}<br>{METRIC_TITLES[metric]} %{{z:.2f}} "
                               "%{customdata[1]}<br>n = %{customdata[0]}%{customdata[2]}<extra></extra>"),
            ), row=i // ncols + 1, col=i % ncols + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0, tickfont=dict(size=10))
    menu = toggle_menu(len(variants), [(button, {}) for _, _, button in metrics], beside=False,
                       y=1 + 44 / (230 * nrows))
    apply_layout(fig, 160 + 230 * nrows, updatemenus=menu, margin=dict(l=70, r=20, t=90, b=40))
    return chart_markup(fig, chart_id)


def by_age_chart(summary: AuditSummary, variants: list[str], key: str, title: str, chart_id: str) -> Markup | None:
    """Error (``key``: 'mae' or 'bias') by true age, a line per variant (none for age-group labels)."""
    fig = new_figure()
    for i, v in enumerate(variants):
        pts = [p for p in summary.audit(v).by_age if num(p.age) is not None]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[num(p.age) for p in pts], y=[num(getattr(p, key)) for p in pts], mode="lines", name=plot_text(v),
            line=dict(color=PALETTE[i % len(PALETTE)], width=1.6), customdata=[fmt_int(p.n) for p in pts],
            hovertemplate=f"<b>{plot_text(v)}</b><br>age %{{x}}: {title} %{{y:.2f}}<br>n = %{{customdata}}<extra></extra>"))
    if not fig.data:
        return None
    if key == "bias":
        fig.add_hline(y=0, line=dict(color="#666", width=1, dash="dot"))
    apply_layout(fig, 330, xaxis_title="true age (years)", yaxis_title=title + " (years)", hovermode="x unified")
    return chart_markup(fig, chart_id)


def training_chart(summary: AuditSummary, variants: list[str], chart_id: str) -> Markup | None:
    fig = new_figure()
    for i, v in enumerate(variants):
        training = summary.entry(v).training
        hist = training.history if training else []
        if not hist:
            continue
        color = PALETTE[i % len(PALETTE)]
        x = [num(h.get("epoch")) for h in hist]
        fig.add_trace(go.Scatter(x=x, y=[num(h.get("val_mae")) for h in hist], mode="lines+markers",
                                 name=f"{plot_text(v)} val", legendgroup=plot_text(v), line=dict(color=color, width=2)))
        fig.add_trace(go.Scatter(x=x, y=[num(h.get("train_mae")) for h in hist], mode="lines+markers",
                                 name=f"{plot_text(v)} train", legendgroup=plot_text(v),
                                 line=dict(color=color, width=1, dash="dot"), marker=dict(size=4), opacity=0.7))
    if not fig.data:
        return None
    apply_layout(fig, 330, xaxis_title="epoch", yaxis_title="MAE (years)", hovermode="x unified")
    fig.update_xaxes(tickformat="d", dtick=1 if max((len(t.x) for t in fig.data), default=0) <= 20 else None)
    return chart_markup(fig, chart_id)

