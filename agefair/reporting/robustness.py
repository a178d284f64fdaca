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

from agefair.reporting.charts import apply_layout, chart_markup, new_figure, toggle_menu
from agefair.reporting.format import (
    GROUPING_TITLES,
    JUDGE_TITLES,
    MISSING,
    as_dict,
    as_list,
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


def with_section(sections: list[tuple[str, str, str]], robustness: Any) -> list[tuple[str, str, str]]:
    """The report's sections, with the robustness one after the disparities when there is a result."""
    if not as_dict(robustness).get("variants"):
        return sections
    out = list(sections)
    at = next((i + 1 for i, s in enumerate(out) if s[0] == "disparity"), len(out))
    return out[:at] + [SECTION] + out[at:]


def _conditions(res: dict) -> dict[tuple[str, int], dict]:
    return {(str(c.get("corruption")), int(num(c.get("severity")) or 0)): c
            for c in as_list(res.get("conditions")) if isinstance(c, dict)}


def _gap(c: dict, grouping: str) -> float | None:
    return num(as_dict(as_dict(c.get("groupings")).get(grouping)).get("gap"))


def heatmap(rob: dict, variants: list[str], chart_id: str) -> Any:
    """Corruption (rows) x severity (columns) per variant; buttons: MAE, MAE increase, group gaps."""
    corruptions = list(as_dict(rob.get("corruptions")))
    titles = [fmt_text(as_dict(as_dict(rob.get("corruptions")).get(c)).get("title", c)) for c in corruptions]
    severities = [int(s) for s in as_list(rob.get("severities")) if num(s) is not None]
    groupings = [g for g in as_list(rob.get("groupings")) if isinstance(g, str)]
    if not corruptions or not severities or not variants:
        return None
    states = [("MAE", "mae"), ("MAE increase", "increase")] + [(f"{GROUPING_TITLES.get(g, g)} gap", g)
                                                               for g in groupings]
    ncols = 1 if len(variants) == 1 else 2
    nrows = math.ceil(len(variants) / ncols)
    res_of = {v: as_dict(as_dict(rob.get("variants")).get(v)) for v in variants}
    sub = [f"{plot_text(v)} (clean MAE {fmt(as_dict(res_of[v].get('clean')).get('mae'))})" for v in variants]
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=sub, horizontal_spacing=0.14,
                        vertical_spacing=0.22 / nrows if nrows > 1 else 0.1, figure=new_figure())

    def value(v: str, c: dict | None, key: str) -> float | None:
        if c is None:
            return None
        clean = as_dict(res_of[v].get("clean"))
        if key == "mae":
            return num(c.get("mae"))
        if key == "increase":
            a, b = num(c.get("mae")), num(clean.get("mae"))
            return None if a is None or b is None else a - b
        return _gap(c, key)

    for label, key in states:
        grid = {v: [[value(v, _conditions(res_of[v]).get((c, s)), key) for s in severities] for c in corruptions]
                for v in variants}
        vals = [x for g in grid.values() for row in g for x in row if x is not None]
        if key == "increase":
            hi = max((abs(x) for x in vals), default=1.0) or 1.0
            scale = dict(colorscale="RdBu_r", zmin=-hi, zmax=hi)
        else:
            scale = dict(colorscale="YlOrRd", zmin=min(vals, default=0.0), zmax=max(vals, default=1.0))
        for i, v in enumerate(variants):
            z = grid[v]
            clean_gap = {g: _gap(as_dict(res_of[v].get("clean")), g) for g in groupings}
            extra = "" if key in ("mae", "increase") else f"<br>clean gap {fmt(clean_gap.get(key))}"
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


def _gap_row(r: dict, titles: dict) -> dict:
    return {
        "variant": fmt_text(r.get("variant")),
        "grouping": GROUPING_TITLES.get(r.get("grouping"), fmt_text(r.get("grouping"))),
        "condition": f"{titles.get(r.get('corruption'), fmt_text(r.get('corruption')))}, severity "
                     f"{fmt_int(r.get('severity'))}",
        "worst": f"{fmt_text(r.get('worst_group'))} ({fmt(r.get('worst'))})",
        "best": f"{fmt_text(r.get('best_group'))} ({fmt(r.get('best'))})",
        "gap": fmt(r.get("gap")), "gap_ci": fmt_ci(r.get("gap_ci")), "clean_gap": fmt(r.get("clean_gap")),
        "change": fmt_signed(r.get("gap_increase")), "mae": fmt(r.get("mae")),
    }


def largest_gap_rows(rob: dict, variants: list[str], titles: dict) -> list[dict]:
    """Per variant and grouping: the corruption x severity with the largest worst-minus-best group MAE."""
    out = []
    for v in variants:
        res = as_dict(as_dict(rob.get("variants")).get(v))
        clean = as_dict(res.get("clean"))
        for g in [g for g in as_list(rob.get("groupings")) if isinstance(g, str)]:
            best_c, best_gap = None, None
            for c in _conditions(res).values():
                gap = _gap(c, g)
                if gap is not None and (best_gap is None or gap > best_gap):
                    best_c, best_gap = c, gap
            if best_c is None:
                continue
            gs = as_dict(as_dict(best_c.get("groupings")).get(g))
            clean_gap = _gap(clean, g)
            out.append(_gap_row({"variant": v, "grouping": g, "corruption": best_c.get("corruption"),
                                 "severity": best_c.get("severity"), "worst_group": gs.get("worst_group"),
                                 "worst": gs.get("worst"), "best_group": gs.get("best_group"), "best": gs.get("best"),
                                 "gap": best_gap, "gap_ci": gs.get("gap_ci"), "clean_gap": clean_gap,
                                 "gap_increase": None if clean_gap is None else best_gap - clean_gap,
                                 "mae": best_c.get("mae")}, titles))
    return out


def threshold_rows(rob: dict) -> list[dict]:
    rows = sorted((r for r in as_list(rob.get("thresholds")) if isinstance(r, dict)), key=lambda r: bool(r.get("passed")))
    return [{"variant": fmt_text(r.get("variant")), "rule": fmt_text(r.get("rule")),
             "where": (f"{fmt_text(r.get('corruption'))} {fmt_int(r.get('severity'))}"
                       if r.get("corruption") else MISSING),
             "group": fmt_text(r.get("group")), "value": fmt(r.get("value")), "ci": fmt_ci(r.get("ci")),
             "judge": JUDGE_TITLES.get(str(r.get("judge", "point")), fmt_text(r.get("judge"))),
             "judged": fmt(r.get("judged_value")), "threshold": f"<= {fmt_text(r.get('threshold'))}",
             "passed": bool(r.get("passed"))} for r in rows]


def context(robustness: Any, summary: dict | None = None) -> dict | None:
    """What the template's robustness section shows, or None when there is no result."""
    rob = as_dict(robustness)
    if not as_dict(rob.get("variants")):
        return None
    variants = list(as_dict(rob.get("variants")))
    corr = as_dict(rob.get("corruptions"))
    titles = {c: fmt_text(as_dict(x).get("title", c)) for c, x in corr.items()}
    # a variant whose checkpoint changed since the robustness run is flagged (its numbers are stale)
    audited = {v: as_dict(as_dict(x).get("training")).get("checkpoint_sha256")
               for v, x in as_dict(as_dict(summary).get("variants")).items()}
    stale = [v for v in variants if audited.get(v) and audited[v] != as_dict(rob["variants"][v]).get("checkpoint_sha256")]
    prov = as_dict(rob.get("provenance"))
    timings = as_dict(rob.get("timings"))
    checks = threshold_rows(rob)
    return {
        "n_images": fmt_int(rob.get("n_images")), "split": fmt_text(rob.get("split")),
        "limit": rob.get("limit"), "generated": fmt_text(rob.get("generated")),
        "severities": ", ".join(str(s) for s in as_list(rob.get("severities"))),
        "seed": fmt_text(prov.get("corruption_seed")), "seconds": fmt_seconds(timings.get("seconds")),
        "min_group_size": fmt_text(as_dict(prov.get("settings")).get("min_group_size")),
        "command": fmt_text(prov.get("command")),
        "corruptions": [{"name": c, "title": titles[c], "unit": fmt_text(as_dict(x).get("unit")),
                         "params": ", ".join(f"{p:g}" if isinstance(p, (int, float)) else str(p)
                                             for p in as_list(as_dict(x).get("params")))} for c, x in corr.items()],
        "heatmap": heatmap(rob, variants, "chart-robustness"),
        "largest": largest_gap_rows(rob, variants, titles),
        "increases": [_gap_row(r, titles) for r in as_list(rob.get("largest_gaps"))[:10] if isinstance(r, dict)],
        "thresholds": checks, "n_failed": sum(not r["passed"] for r in checks),
        "stale": stale, "missing": [v for v in audited if v not in variants],
    }
