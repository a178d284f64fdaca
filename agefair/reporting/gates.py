"""The report's "Age gates" section (agefair.fairness.stats.gates' results in summary.json): per threshold gate,
who is most often let through and how much each group's challenge age must rise (the buffer), side by side
for the models; per range gate, TPR and FPR per group; one chart per model and threshold gate (false pass
and false challenge against the challenge age, with interval bands, and the DET-style trade-off).

Groups under min_group_size are flagged † as elsewhere, never a worst group; every rate shows its n.
"""

from __future__ import annotations

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.gate_types import Curves, Disparity, Rate, ThresholdGateSummary
from agefair.fairness.stats.specs import GATE_RATES, metric_title
from agefair.reporting.charts import PALETTE, TEMPLATE, apply_layout, chart_markup
from agefair.reporting.format import (
    MISSING,
    fmt,
    fmt_ci,
    fmt_int,
    fmt_pct,
    fmt_text,
    grouping_title,
    natural_key,
    num,
    plot_text,
    slug,
)


def _rate(r: Rate | None, pct: bool = True) -> dict:
    """A rate's cell: value, interval, n and the small-group flag."""
    if r is None:
        return {"value": MISSING, "ci": "", "n": MISSING, "small": False}
    f = fmt_pct if pct else fmt
    ci = fmt_ci(r.ci, 1, pct)
    return {"value": f(num(r.value)), "ci": "" if ci == MISSING else ci, "n": fmt_int(r.n), "small": r.small}


def _gates(summary: AuditSummary, variants: list[str], kind: str) -> list[str]:
    names = [r.gate.name for v in variants for r in summary.audit(v).gates if r.kind == kind]
    return list(dict.fromkeys(names))


def _results(summary: AuditSummary, variant: str, gate: str) -> dict:
    return {r.grouping: r for r in summary.audit(variant).gate_results(gate)}


def _gate_text(g) -> str:
    if g.kind == "range":
        return f"is this person {g.first}–{g.last} years old? (ages in [{g.first}, {g.last + 1}))"
    c = "" if g.challenge_age == g.legal_age else f", challenge age C = {g.challenge_age:g}"
    return f"legal age L = {g.legal_age:g}{c}; minors band {g.band_lo:g}–{g.legal_age:g}"


def _worst(results: dict, metric: str) -> tuple[str, Disparity] | None:
    """The grouping (not overall) whose worst group is worst for ``metric`` (highest value)."""
    found = [(k, r.disparities[metric]) for k, r in results.items()
             if k != "overall" and metric in r.disparities and r.disparities[metric].worst_group is not None]
    return max(found, key=lambda x: x[1].worst, default=None)


def _largest_gap(results: dict, metric: str) -> tuple[str, Disparity] | None:
    found = [(k, r.disparities[metric]) for k, r in results.items()
             if k != "overall" and metric in r.disparities and num(r.disparities[metric].difference) is not None]
    return max(found, key=lambda x: x[1].difference, default=None)


def _headline(summary: AuditSummary, variants: list[str], gate: str) -> list[dict]:
    """Per model: the group most often let through, and each target's largest buffer difference."""
    rows = []
    for v in variants:
        res = _results(summary, v, gate)
        if not res:
            continue
        any_result = next(iter(res.values()))
        overall = res.get("overall")
        worst = _worst(res, "false_pass")
        group = next((g for g in res[worst[0]].groups if g.group == worst[1].worst_group), None) if worst else None
        buffers = []
        for t in any_result.gate.targets:
            gap = _largest_gap(res, f"buffer_{t:g}")
            buffers.append({"target": f"{t:.0%}", "grouping": grouping_title(gap[0]) if gap else MISSING,
                            "worst_group": fmt_text(gap[1].worst_group) if gap else MISSING,
                            "worst": fmt(gap[1].worst, 1) if gap else MISSING,
                            "difference": fmt(gap[1].difference, 1) if gap else MISSING,
                            "ci": fmt_ci(gap[1].difference_ci, 1) if gap else ""})
        rows.append({"variant": v, "overall": _rate(overall.groups[0].false_pass if overall else None),
                     "grouping": grouping_title(worst[0]) if worst else MISSING,
                     "worst_group": fmt_text(worst[1].worst_group) if worst else MISSING,
                     "worst": _rate(group.false_pass if group else None), "buffers": buffers,
                     "excluded": fmt_int(overall.groups[0].n_excluded) if overall else MISSING})
    return rows


def _side_by_side(summary: AuditSummary, variants: list[str], gate: str, kind: str) -> list[dict]:
    """Per grouping: a row per group, the models' rates side by side (threshold: false pass, buffers, false
    challenge; range: TPR, FPR), with n and the excluded rows."""
    groupings = list(dict.fromkeys(g for v in variants for g in _results(summary, v, gate)))
    tables = []
    for grouping in groupings:
        names: list[str] = []
        cells: dict[tuple[str, str], object] = {}
        for v in variants:
            r = _results(summary, v, gate).get(grouping)
            for g in r.groups if r else ():
                names.append(g.group)
                cells[v, g.group] = g
        rows = []
        for name in sorted(set(names), key=natural_key):
            per = []
            for v in variants:
                g = cells.get((v, name))
                if kind == "threshold":
                    per.append({"rates": [_rate(g.false_pass if g else None)]
                                + [_rate(b, pct=False) for b in (g.buffers if g else ())]
                                + [_rate(g.false_challenge if g else None)],
                                "excluded": fmt_int(g.n_excluded) if g else MISSING})
                else:
                    per.append({"rates": [_rate(getattr(g, m) if g else None) for m in GATE_RATES["range"][:2]],
                                "excluded": fmt_int(g.n_excluded) if g else MISSING})
            rows.append({"group": fmt_text(name), "small": any(c["rates"][0]["small"] for c in per), "cells": per})
        tables.append({"grouping": grouping, "title": grouping_title(grouping), "rows": rows})
    return tables


def _columns(summary: AuditSummary, variants: list[str], gate: str, kind: str) -> list[str]:
    if kind == "range":
        return ["TPR", "FPR"]
    results = [r for v in variants for r in summary.audit(v).gate_results(gate)]
    targets = results[0].gate.targets if results else ()
    return ["false pass", *[f"buffer {t:.0%}" for t in targets], "false challenge"]


def chart_grouping(results: dict) -> str | None:
    """The grouping a model's gate chart shows: ethnicity when audited, else the first one-attribute
    grouping with curves, else overall."""
    with_curves = [k for k, r in results.items() if isinstance(r, ThresholdGateSummary) and r.curves is not None]
    singles = [k for k in with_curves if k != "overall"]
    return "ethnicity" if "ethnicity" in singles else (singles[0] if singles else
                                                       "overall" if "overall" in with_curves else None)


def _band(fig, x, lo, hi, color, name, col, legend) -> None:
    fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False,
                             legendgroup=legend), row=1, col=col)
    fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=color,
                             opacity=0.2, hoverinfo="skip", showlegend=False, legendgroup=legend, name=name),
                  row=1, col=col)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def gate_chart(curves: Curves, title: str, chart_id: str, min_group_size: int | None) -> Markup:
    """False pass (solid) and false challenge (dashed) against the challenge age per group, with interval
    bands; right, the DET-style trade-off (false challenge against false pass), a line per group."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=["rates against the challenge age", "trade-off (DET-style)"],
                        figure=go.Figure(layout=dict(template=TEMPLATE)))
    x = list(curves.challenge_ages)
    for i, g in enumerate(curves.groups):
        color = PALETTE[i % len(PALETTE)]
        small = min_group_size is not None and min(g.n_minors, g.n_adults) < min_group_size
        name = plot_text(g.group) + (" †" if small else "")
        legend = f"g{i}"
        fp, fc = [num(v) for v in g.false_pass], [num(v) for v in g.false_challenge]
        _band(fig, x, [num(v) for v in g.false_pass_lo], [num(v) for v in g.false_pass_hi], _rgba(color, 0.18),
              name, 1, legend)
        fig.add_trace(go.Scatter(x=x, y=fp, mode="lines", name=name, legendgroup=legend, line=dict(color=color, width=2),
                                 hovertemplate=f"{name}: false pass %{{y:.1%}} at C = %{{x}} (n minors {g.n_minors})"
                                 "<extra></extra>"), row=1, col=1)
        _band(fig, x, [num(v) for v in g.false_challenge_lo], [num(v) for v in g.false_challenge_hi],
              _rgba(color, 0.10), name, 1, legend)
        fig.add_trace(go.Scatter(x=x, y=fc, mode="lines", name=name, legendgroup=legend, showlegend=False,
                                 line=dict(color=color, width=1.5, dash="dash"),
                                 hovertemplate=f"{name}: false challenge %{{y:.1%}} at C = %{{x}} (n adults "
                                 f"{g.n_adults})<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=fp, y=fc, mode="lines+markers", marker=dict(size=3), name=name, legendgroup=legend,
                                 showlegend=False, line=dict(color=color, width=1.5), customdata=x,
                                 hovertemplate=f"{name}: C = %{{customdata}}: false pass %{{x:.1%}}, false challenge "
                                 "%{y:.1%}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="challenge age C (years)", row=1, col=1)
    fig.update_xaxes(title_text="false pass (minors let through)", tickformat=".0%", row=1, col=2)
    fig.update_yaxes(title_text="rate (solid: false pass; dashed: false challenge)", row=1, col=1)
    fig.update_yaxes(title_text="false challenge (adults asked)", row=1, col=2)
    apply_layout(fig, 400, title=dict(text=title, x=0, font=dict(size=13)), margin=dict(l=60, r=20, t=96, b=50),
                 legend=dict(orientation="h", x=0, y=1.1, yanchor="bottom"))
    return chart_markup(fig, chart_id)


def gates_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The section's tables and charts ({} parts when no audit has gates)."""
    blocks = []
    for kind in ("threshold", "range"):
        for gate in _gates(summary, variants, kind):
            first = next(r for v in variants for r in summary.audit(v).gate_results(gate))
            charts = []
            for i, v in enumerate(variants if kind == "threshold" else ()):
                res = _results(summary, v, gate)
                grouping = chart_grouping(res)
                if grouping is not None:
                    r = res[grouping]
                    charts.append(gate_chart(r.curves, plot_text(f"{v}: {gate} by {grouping_title(grouping)}"),
                                             f"chart-gate-{slug(gate)}-{i}", r.min_group_size))
            blocks.append({"name": gate, "kind": kind, "text": _gate_text(first.gate), "id": slug(gate),
                           "headline": _headline(summary, variants, gate) if kind == "threshold" else [],
                           "columns": _columns(summary, variants, gate, kind),
                           "tables": _side_by_side(summary, variants, gate, kind), "charts": charts})
    labels = {r.labels for v in variants for r in summary.audit(v).gates}
    return {"gates": blocks, "gates_interval": "interval" in labels,
            "buffer_title": metric_title("buffer_0.01").replace("1%", "a target")}
