"""Context of the report's "Age intervals" section: each model's conformal intervals (summary.json's
``intervals``), marginal against Mondrian, overall and per group, and the sentences that read them."""

from __future__ import annotations

from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.conformal_eval import CoverageGroup, CoverageReport
from agefair.reporting.format import fmt, fmt_ci, fmt_int, fmt_pct, fmt_text, grouping_title

MARGINAL = "marginal"
COVERED = {"exact": "the true age lies inside the interval",  # what "covered" means, per label kind
           "overlap": "the interval overlaps the labelled age group (some age of the group is inside it)"}


def _method_title(method: str) -> str:
    return "marginal" if method == MARGINAL else f"Mondrian by {grouping_title(method)}"


def _pct_ci(ci) -> str:
    return fmt_ci(ci, 1, pct=True)


def _cov(g: CoverageGroup, definition: str) -> dict:
    c = g.coverage[definition]
    return {"coverage": fmt_pct(c.value), "coverage_ci": _pct_ci(c.ci), "width": fmt(g.mean_width.value, 1),
            "width_ci": fmt_ci(g.mean_width.ci, 1), "median": fmt(g.median_width.value, 1)}


def _overview_row(v: str, method: str, rep: CoverageReport, grouping: str | None) -> dict:
    d = rep.definitions[0]
    row = {"variant": fmt_text(v), "method": fmt_text(_method_title(method)), **_cov(rep.overall, d),
           "gap": "–", "gap_ci": "", "ratio": "–", "ratio_ci": ""}
    disp = rep.groupings[grouping].disparity if grouping in rep.groupings else None
    if disp is not None and d in disp.coverage_gap:
        gap = disp.coverage_gap[d]
        row.update(gap=f"{fmt_pct(gap.value)} ({fmt_text(gap.high_group)} − {fmt_text(gap.low_group)})",
                   gap_ci=_pct_ci(gap.ci))
    if disp is not None and disp.width_ratio is not None:
        r = disp.width_ratio
        row.update(ratio=f"{fmt(r.value)} ({fmt_text(r.high_group)} / {fmt_text(r.low_group)})", ratio_ci=fmt_ci(r.ci))
    return row


def _group_rows(v: str, methods: dict[str, CoverageReport], grouping: str) -> list[dict]:
    """One row per group: n, then coverage and width under each calibrator."""
    marginal = methods.get(MARGINAL)
    if marginal is None or grouping not in marginal.groupings:
        return []
    d = marginal.definitions[0]
    rows = []
    for g in marginal.groupings[grouping].groups:
        cells = []
        for rep in methods.values():
            same = [x for x in rep.groupings[grouping].groups if x.group == g.group] if grouping in rep.groupings else []
            cells.append(_cov(same[0], d) if same else None)
        rows.append({"variant": fmt_text(v), "group": fmt_text(g.group), "n": fmt_int(g.n), "small": g.small,
                     "cells": cells})
    return rows


def _over_confident(v: str, rep: CoverageReport, target: float) -> list[str]:
    """Groups whose marginal coverage is credibly under the target (the interval's upper end below it)."""
    d = rep.definitions[0]
    out = []
    for name, grouping in rep.groupings.items():
        for g in grouping.groups:
            hi = g.coverage[d].ci[1]
            if not g.small and hi is not None and hi < target:
                out.append((g.coverage[d].value, f"{grouping_title(name)} {g.group}: {fmt_pct(g.coverage[d].value)} "
                                                  f"{_pct_ci(g.coverage[d].ci)} (n {g.n})"))
    return [fmt_text(f"{v}: " + "; ".join(t for _, t in sorted(out)[:6]))] if out else []


def intervals_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The section's tables and sentences (empty when no model has intervals)."""
    overview, groups, notes, calibration, low = [], {}, [], [], []
    target = definition = None
    for v in variants:
        iv = getattr(summary.audit(v), "intervals", None)
        if iv is None:
            continue
        notes += [fmt_text(f"{v}: {n}") for n in iv.notes]
        if not iv.methods:
            continue
        target = iv.calibration.coverage
        definition = definition or next(iter(iv.methods.values())).definitions[0]
        calibration.append({"variant": fmt_text(v), "source": fmt_text(iv.calibration.source),
                            "score": fmt_text(iv.calibration.score), "sha": fmt_text((iv.calibration.sha256 or "")[:12]),
                            "n": fmt_int(iv.calibration.calibrators[0].n if iv.calibration.calibrators else None)})
        mondrian = [m for m in iv.methods if m != MARGINAL]
        focus = mondrian[0] if mondrian else "ethnicity"
        overview += [_overview_row(v, m, rep, focus) for m, rep in iv.methods.items()]
        for grouping in iv.methods[MARGINAL].groupings if MARGINAL in iv.methods else []:
            groups.setdefault(grouping, {"title": grouping_title(grouping), "methods": [
                fmt_text(_method_title(m)) for m in iv.methods], "rows": []})["rows"] += _group_rows(v, iv.methods, grouping)
        if MARGINAL in iv.methods:
            low += _over_confident(v, iv.methods[MARGINAL], iv.methods[MARGINAL].target)
    return {"overview": overview, "groups": list(groups.values()), "notes": notes, "calibration": calibration,
            "target": fmt_pct(target, 0) if target is not None else None, "over_confident": low,
            "definition": COVERED.get(definition, "")}
