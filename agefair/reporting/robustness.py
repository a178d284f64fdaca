"""The report's robustness section, from robustness.json (python -m agefair.robustness).

A heat map per variant (corruption x severity; buttons switch between MAE, MAE increase over clean
and the worst-minus-best gap of each grouping), the largest group gap under corruption per variant
and grouping, the largest gap increases overall, and the robustness threshold checks. Plain data
in, markup out (no torch), like the rest of the report, whose chart helpers
(agefair.reporting.charts) it uses.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from agefair.fairness.results.result import (
    AuditSummary,
    Condition,
    Corruption,
    GapRow,
    RobustnessResult,
    VariantRobustness,
)
from agefair.reporting.charts import apply_layout, chart_markup, new_figure, toggle_menu
from agefair.reporting.format import (
    GROUPING_TITLES,
    JUDGE_TITLES,
    MISSING,
    fmt,
    fmt_ci,
    fmt_int,
    fmt_seconds,
    fmt_signed,
    fmt_text,
    num,
    plot_text,
)

SECTION = ("robustness", "Robustness under image corruptions", "Robustness")


def with_section(sections: list[tuple[str, str, str]],
                 robustness: RobustnessResult | None) -> list[tuple[str, str, str]]:
    """The report's sections, with the robustness one after the disparities when there is a result."""
    if robustness is None or not robustness.variants:
        return sections
    out = list(sections)
    at = next((i + 1 for i, s in enumerate(out) if s[0] == "disparity"), len(out))
    return out[:at] + [SECTION] + out[at:]


def _value(res: VariantRobustness, c: Condition | None, key: str) -> float | None:
    """A heat map cell: the MAE, its increase over clean, or the gap of grouping ``key``."""
    if c is None:
        return None
    if key == "mae":
        return num(c.mae)
    if key == "increase":
        a, b = num(c.mae), num(res.clean.mae)
        return None if a is None or b is None else a - b
    return num(c.gap(key))


def _scale(key: str, vals: list[float]) -> dict:
    if key == "increase":
        hi = max((abs(x) for x in vals), default=1.0) or 1.0
        return dict(colorscale="RdBu_r", zmin=-hi, zmax=hi)
    return dict(colorscale="YlOrRd", zmin=min(vals, default=0.0), zmax=max(vals, default=1.0))


def heatmap(rob: RobustnessResult, variants: list[str], chart_id: str) -> Any:
    """Corruption (rows) x severity (columns) per variant; buttons: MAE, MAE increase, group gaps."""
    corruptions = list(rob.corruptions)
    titles = [fmt_text(x.title if x.title is not None else c) for c, x in rob.corruptions.items()]
    severities, groupings = rob.severities, rob.groupings
    if not corruptions or not severities or not variants:
        return None
    states = [("MAE", "mae"), ("MAE increase", "increase")] + [(f"{GROUPING_TITLES.get(g, g)} gap", g)
                                                               for g in groupings]
    ncols = 1 if len(variants) == 1 else 2
    nrows = math.ceil(len(variants) / ncols)
    res_of = {v: rob.variants.get(v) or VariantRobustness() for v in variants}
    sub = [f"{plot_text(v)} (clean MAE {fmt(res_of[v].clean.mae)})" for v in variants]
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=sub, horizontal_spacing=0.14,
                        vertical_spacing=0.22 / nrows if nrows > 1 else 0.1, figure=new_figure())
    for label, key in states:
        grid = {v: [[_value(res_of[v], res_of[v].condition(c, s), key) for s in severities] for c in corruptions]
                for v in variants}
        scale = _scale(key, [x for g in grid.values() for row in g for x in row if x is not None])
        for i, v in enumerate(variants):
            z = grid[v]
            extra = "" if key in ("mae", "increase") else f"<br>clean gap {fmt(res_of[v].clean.gap(key))}"
            fig.add_trace(go.Heatmap(
                z=z, x=[f"severity {s}" for s in severities], y=[plot_text(t) for t in titles],
                text=[["" if x is None else f"{x:.1f}" for x in row] for row in z], texttemplate="%{text}",
                textfont=dict(size=10), xgap=1, ygap=1, showscale=i == 0, visible=key == "mae", name=plot_text(v),
                colorbar=dict(title=dict(text=plot_text(label)), thickness=12, len=0.8), **scale,
                hovertemplate=(f"<b>{plot_text(v)}</b><br>%{{y}}, %{{x}}<br>{plot_text(label)} %{{z:.2f}}{extra}"
                               "<extra></extra>"),
            ), row=i // ncols + 1, col=i % ncols + 1)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_xaxes(tickfont=dict(size=10))
    menu = toggle_menu(len(variants), [(label, {}) for label, _ in states], beside=False,
                       y=1 + 44 / (300 * nrows))
    apply_layout(fig, 170 + 300 * nrows, updatemenus=menu, margin=dict(l=150, r=20, t=100, b=40))
    return chart_markup(fig, chart_id)


def _gap_row(r: GapRow, titles: dict) -> dict:
    return {
        "variant": fmt_text(r.variant),
        "grouping": GROUPING_TITLES.get(r.grouping, fmt_text(r.grouping)),
        "condition": f"{titles.get(r.corruption, fmt_text(r.corruption))}, severity {fmt_int(r.severity)}",
        "worst": f"{fmt_text(r.worst_group)} ({fmt(r.worst)})",
        "best": f"{fmt_text(r.best_group)} ({fmt(r.best)})",
        "gap": fmt(r.gap), "gap_ci": fmt_ci(r.gap_ci), "clean_gap": fmt(r.clean_gap),
        "change": fmt_signed(r.gap_increase), "mae": fmt(r.mae),
    }


def _largest_gap(v: str, res: VariantRobustness, g: str) -> GapRow | None:
    """The condition under which grouping ``g``'s worst-minus-best gap of variant ``v`` is largest."""
    best_c, best_gap = None, None
    for c in res.conditions:
        gap = num(c.gap(g))
        if gap is not None and (best_gap is None or gap > best_gap):
            best_c, best_gap = c, gap
    if best_c is None:
        return None
    gs = best_c.groupings[g]
    clean_gap = num(res.clean.gap(g))
    return GapRow(variant=v, grouping=g, corruption=best_c.corruption, severity=best_c.severity,
                  worst_group=gs.worst_group, worst=gs.worst, best_group=gs.best_group, best=gs.best,
                  gap=best_gap, gap_ci=gs.gap_ci, clean_gap=clean_gap,
                  gap_increase=None if clean_gap is None else best_gap - clean_gap, mae=best_c.mae)


def largest_gap_rows(rob: RobustnessResult, variants: list[str], titles: dict) -> list[dict]:
    """Per variant and grouping: the corruption x severity with the largest worst-minus-best group MAE."""
    rows = [_largest_gap(v, rob.variants.get(v) or VariantRobustness(), g) for v in variants for g in rob.groupings]
    return [_gap_row(r, titles) for r in rows if r is not None]


def threshold_rows(rob: RobustnessResult) -> list[dict]:
    rows = sorted(rob.thresholds, key=lambda r: r.passed)
    return [{"variant": fmt_text(r.variant), "rule": fmt_text(r.rule),
             "where": f"{fmt_text(r.corruption)} {fmt_int(r.severity)}" if r.corruption else MISSING,
             "group": fmt_text(r.group), "value": fmt(r.value), "ci": fmt_ci(r.ci),
             "judge": JUDGE_TITLES.get(r.judge, fmt_text(r.judge)),
             "judged": fmt(r.judged_value), "threshold": f"<= {fmt_text(r.threshold)}",
             "passed": r.passed} for r in rows]


def _params(x: Corruption) -> str:
    return ", ".join(f"{p:g}" if isinstance(p, (int, float)) else str(p) for p in x.params)


def stale_variants(rob: RobustnessResult, summary: AuditSummary | None) -> list[str]:
    """The variants whose checkpoint changed since the robustness run (their numbers are stale)."""
    audited = {v: e.training.checkpoint_sha256 if e.training else None
               for v, e in (summary.variants if summary else {}).items()}
    return [v for v, r in rob.variants.items() if audited.get(v) and audited[v] != r.checkpoint_sha256]


def context(rob: RobustnessResult | None, summary: AuditSummary | None = None) -> dict | None:
    """What the template's robustness section shows, or None when there is no result."""
    if rob is None or not rob.variants:
        return None
    variants = list(rob.variants)
    titles = {c: fmt_text(x.title if x.title is not None else c) for c, x in rob.corruptions.items()}
    prov = rob.provenance
    checks = threshold_rows(rob)
    return {
        "n_images": fmt_int(rob.n_images), "split": fmt_text(rob.split),
        "limit": rob.limit, "generated": fmt_text(rob.generated),
        "severities": ", ".join(str(s) for s in rob.severities),
        "seed": fmt_text(prov.get("corruption_seed")), "seconds": fmt_seconds(rob.timings.get("seconds")),
        "min_group_size": fmt_text((prov.get("settings") or {}).get("min_group_size")),
        "command": fmt_text(prov.get("command")),
        "corruptions": [{"name": c, "title": titles[c], "unit": fmt_text(x.unit), "params": _params(x)}
                        for c, x in rob.corruptions.items()],
        "heatmap": heatmap(rob, variants, "chart-robustness"),
        "largest": largest_gap_rows(rob, variants, titles),
        "increases": [_gap_row(r, titles) for r in rob.largest_gaps[:10]],
        "thresholds": checks, "n_failed": sum(not r["passed"] for r in checks),
        "stale": stale_variants(rob, summary),
        "missing": [v for v in (summary.variants if summary else {}) if v not in variants],
    }
