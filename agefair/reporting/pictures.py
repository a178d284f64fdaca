"""The report's pictures of the decision: a forest plot of every model's paired difference against the
reference per group (with the margin shaded), a model x group heat map of the same differences shaded by
their practical class, and each threshold gate's curves as small multiples (one panel per model).

Everything is read from summary.comparisons (the differences, their intervals, margins and classes) and
the gates' curves; nothing is recomputed.
"""

from __future__ import annotations

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from agefair.fairness.results.decision_types import ComparisonRow
from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.gate_types import ThresholdGateSummary
from agefair.reporting.charts import PALETTE, TEMPLATE, apply_layout, chart_markup, new_figure
from agefair.reporting.format import grouping_title, natural_key, num, plot_text, slug
from agefair.reporting.gates import chart_grouping
from agefair.reporting.scorecard import SYMBOLS

# Okabe-Ito, safe for the common colour-vision deficiencies: blue better, vermillion worse (scorecard.css's too).
CLASS_COLOURS = {"better": "#0072B2", "worse": "#D55E00"}


def _label(r: ComparisonRow) -> str:
    return "overall" if r.criterion == "overall" else f"{grouping_title(r.grouping or '')}: {r.group}"


def _rows(summary: AuditSummary) -> list[ComparisonRow]:
    """The overall row and each group of the sensitive attributes and the age grouping, per model."""
    c = summary.comparisons
    if c is None:
        return []
    attrs = {a for e in summary.variants.values() for a in e.audit.attributes} | {"age_bin", "age_group"}
    overall = [r for r in c.overall if r.criterion == "overall"]
    groups = [r for r in c.groups if r.grouping in attrs]
    return overall + groups


def _order(rows: list[ComparisonRow]) -> list[str]:
    labels = list(dict.fromkeys(_label(r) for r in rows))
    head = [x for x in labels if x == "overall"]
    rest = sorted((x for x in labels if x != "overall"), key=lambda x: (x.split(":")[0], natural_key(x.split(": ")[-1])))
    return head + rest


def _unit(summary: AuditSummary) -> tuple[str, float | None]:
    c = summary.comparisons
    metric = "mae" if summary.labels == "exact" else "dist"
    return ("MAE" if metric == "mae" else "distance"), (c.margins.get(metric) if c and c.margins else None)


def forest_chart(summary: AuditSummary, chart_id: str = "chart-forest") -> Markup | None:
    """Per group (rows) every model's difference against the reference with its paired interval; the band is
    the margin. Filled markers: beyond the margin (better or worse); open: equivalent or can't tell."""
    rows = _rows(summary)
    if not rows:
        return None
    what, margin = _unit(summary)
    order = _order(rows)
    models = list(dict.fromkeys(r.model_b for r in rows))
    fig = new_figure()
    for i, m in enumerate(models):
        mine = {_label(r): r for r in rows if r.model_b == m}
        ys = [y for y in order if y in mine]
        rs = [mine[y] for y in ys]
        x = [num(r.difference) for r in rs]
        hi = [(num(r.ci[1]) - num(r.difference)) if num(r.ci[1]) is not None and num(r.difference) is not None
              else None for r in rs]
        lo = [(num(r.difference) - num(r.ci[0])) if num(r.ci[0]) is not None and num(r.difference) is not None
              else None for r in rs]
        colour = PALETTE[(i + 1) % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=x, y=ys, mode="markers", name=plot_text(m), offsetgroup=str(i), orientation="h",
            error_x=dict(type="data", array=hi, arrayminus=lo, thickness=1.2, width=0, color=colour),
            marker=dict(color=colour, size=8, line=dict(color=colour, width=1.5),
                        symbol=["circle" if r.practical in ("better", "worse") else "circle-open" for r in rs]),
            customdata=[[r.n, r.practical or "unclear", num(r.ci[0]), num(r.ci[1])] for r in rs],
            hovertemplate=(f"{plot_text(m)} − {plot_text(summary.comparisons.reference)}, %{{y}}: %{{x:+.2f}} "
                           "[%{customdata[2]:.2f}, %{customdata[3]:.2f}] years, n %{customdata[0]}: "
                           "%{customdata[1]}<extra></extra>")))
    if margin is not None:
        fig.add_vrect(x0=-margin, x1=margin, fillcolor="#999999", opacity=0.18, line_width=0, layer="below")
    fig.add_vline(x=0, line=dict(color="#555", width=1))
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=order, type="category")
    fig.update_xaxes(title_text=f"{what} difference against {plot_text(summary.comparisons.reference)} "
                                f"(years; negative: better)")
    fig.update_layout(scattermode="group", scattergap=0.4)
    band = f" Grey band: the ±{margin:g}-year margin." if margin is not None else ""
    apply_layout(fig, 160 + 26 * len(order),
                 title=dict(text=f"Paired differences per group, with {plot_text(_level(summary))} intervals.{band}",
                            x=0, font=dict(size=13)))
    return chart_markup(fig, chart_id)


def _level(summary: AuditSummary) -> str:
    lv = num(summary.comparisons.level) if summary.comparisons else None
    return f"{100 * (lv or 0.95):g}%"


def heatmap_differences(summary: AuditSummary, chart_id: str = "chart-diff-heatmap") -> Markup | None:
    """Groups (rows, in the forest plot's order) x models (columns): the difference against the reference,
    coloured by its sign and size, faded unless it is beyond the margin; the text says the difference and its
    mark."""
    rows = _rows(summary)
    if not rows:
        return None
    order = _order(rows)
    models = list(dict.fromkeys(r.model_b for r in rows))
    cell = {(r.model_b, _label(r)): r for r in rows}
    z, text, custom = [], [], []
    for g in order:
        zr, tr, cr = [], [], []
        for m in models:
            r = cell.get((m, g))
            d = num(r.difference) if r is not None else None
            credible = r is not None and r.practical in ("better", "worse")
            zr.append(None if d is None else d if credible else 0.3 * d)
            tr.append("" if d is None else f"{d:+.2f} {SYMBOLS.get(r.practical or 'unclear', '')}")
            cr.append([d, r.practical if r is not None else "", num(r.ci[0]) if r else None,
                       num(r.ci[1]) if r else None])
        z.append(zr), text.append(tr), custom.append(cr)
    finite = [abs(v) for zr in z for v in zr if v is not None]
    top = max(finite + [0.5])
    fig = new_figure()
    fig.add_trace(go.Heatmap(
        z=z, x=[plot_text(m) for m in models], y=order, text=text, texttemplate="%{text}", customdata=custom,
        zmin=-top, zmax=top, showscale=False, xgap=2, ygap=2, textfont=dict(size=11),
        colorscale=[[0, CLASS_COLOURS["better"]], [0.5, "#f7f7f7"], [1, CLASS_COLOURS["worse"]]],
        hovertemplate="%{x}, %{y}: %{customdata[0]:+.2f} [%{customdata[2]:.2f}, %{customdata[3]:.2f}]: "
                      "%{customdata[1]}<extra></extra>"))
    fig.update_xaxes(side="top", type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    apply_layout(fig, 160 + 26 * len(order), margin=dict(l=110, r=20, t=96, b=20),
                 title=dict(text="The same differences: ▲ better, ▼ worse by more than the margin (full colour);<br>"
                                 "= equivalent, ? can't tell (faded)", x=0, font=dict(size=13)))
    return chart_markup(fig, chart_id)


def gate_multiples(summary: AuditSummary, variants: list[str]) -> list[dict]:
    """Per threshold gate, one figure: a panel per model, false pass (solid) and false challenge (dashed)
    against the challenge age, a line per group of the gate's chart grouping (ethnicity when audited)."""
    out = []
    gates = list(dict.fromkeys(r.gate.name for v in variants for r in summary.audit(v).gates
                               if isinstance(r, ThresholdGateSummary)))
    for gate in gates:
        panels = []
        for v in variants:
            res = {r.grouping: r for r in summary.audit(v).gate_results(gate)}
            grouping = chart_grouping(res)
            if grouping is not None:
                panels.append((v, grouping, res[grouping]))
        if not panels:
            continue
        out.append({"gate": gate, "chart": _multiples(gate, panels, f"chart-gates-{slug(gate)}")})
    return out


def _multiples(gate: str, panels: list, chart_id: str) -> Markup:
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.02 if n > 3 else 0.05,
                        subplot_titles=[plot_text(v) for v, _, _ in panels],
                        figure=go.Figure(layout=dict(template=TEMPLATE)))
    seen: set[str] = set()
    groups = list(dict.fromkeys(g.group for _, _, r in panels for g in r.curves.groups))
    for col, (_, _, r) in enumerate(panels, start=1):
        x = list(r.curves.challenge_ages)
        for g in r.curves.groups:
            colour = PALETTE[groups.index(g.group) % len(PALETTE)]
            name = plot_text(g.group)
            show = g.group not in seen
            seen.add(g.group)
            fig.add_trace(go.Scatter(x=x, y=[num(v) for v in g.false_pass], mode="lines", name=name,
                                     legendgroup=name, showlegend=show, line=dict(color=colour, width=2),
                                     hovertemplate=f"{name}: false pass %{{y:.1%}} at C = %{{x}} (n minors "
                                     f"{g.n_minors})<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=[num(v) for v in g.false_challenge], mode="lines", name=name,
                                     legendgroup=name, showlegend=False,
                                     line=dict(color=colour, width=1.2, dash="dash"),
                                     hovertemplate=f"{name}: false challenge %{{y:.1%}} at C = %{{x}} (n adults "
                                     f"{g.n_adults})<extra></extra>"), row=1, col=col)
        fig.add_vline(x=r.gate.challenge_age, line=dict(color="#555", width=1, dash="dot"), row=1, col=col)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(title_text="rate", row=1, col=1)
    fig.update_xaxes(title_text="challenge age", title_font=dict(size=11))
    grouping = grouping_title(panels[0][1])
    apply_layout(fig, 340, margin=dict(l=60, r=20, t=64, b=96),
                 title=dict(text=f"{plot_text(gate)} by {grouping}: solid false pass, dashed false challenge, at every "
                                 "challenge age (dotted: the gate's own)", x=0, font=dict(size=13)),
                 legend=dict(orientation="h", x=0, y=-0.32, yanchor="top"))
    return chart_markup(fig, chart_id)
