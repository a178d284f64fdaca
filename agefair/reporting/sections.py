"""Context builders of the report's result sections: table rows for the leaderboard, the verdict
sentence, threshold checks, shot table, disparity tables, the audited dataset and the models.

Each builder returns plain, already formatted values (strings, flags) for the templates; the
closing sections (galleries, training, data, provenance) are in agefair.reporting.details.
"""

from __future__ import annotations

import math

from agefair.fairness.results.result import AuditSummary, DisparityBase, DisparityStat, ExactRow, IntervalRow
from agefair.fairness.stats.specs import DISPARITY_METRICS, METRIC_TITLES, SHARE_METRICS
from agefair.reporting.format import (
    JUDGE_TITLES,
    MISSING,
    fmt,
    fmt_ci,
    fmt_int,
    fmt_pct,
    fmt_signed,
    fmt_text,
    grouping_title,
    num,
)
from agefair.reporting.view import groups_by_name, metric_of, ordered_groups

# --------------------------------------------------------------------------- tables


def _best_flags(rows: list, key, better: str) -> list[bool]:
    """Which rows hold the best value of ``key(row)`` (ties all flagged); 'min', 'max' or 'absmin'."""
    vals = [num(key(r)) for r in rows]
    scored = [(abs(x) if better == "absmin" else x) if x is not None else None for x in vals]
    present = [s for s in scored if s is not None]
    if not present:
        return [False] * len(rows)
    target = max(present) if better == "max" else min(present)
    return [s is not None and math.isclose(s, target, rel_tol=1e-12, abs_tol=1e-12) for s in scored]


def gap_key(board: list[ExactRow]) -> str:
    """The leaderboard's gap column: UTKFace's ethnicity gap, else the largest gap over the attributes."""
    return "ethnicity_gap" if any(num(r.ethnicity_gap) is not None for r in board) else "gap"


def _flags(board: list, cols: dict) -> dict[str, list[bool]]:
    return {k: _best_flags(board, f, b) for k, (f, b) in cols.items()} if len(board) > 1 else {}


def rules_cell(r) -> dict:
    """A row's rules passed as 'p/t' and its status (a leaderboard row, or anything with rules_passed / rules)."""
    passed, total, status = rules_status(r)
    return {"rules": f"{fmt_int(passed)}/{fmt_int(total)}" if total else MISSING, "status": status}


def interval_leaderboard_rows(board: list[IntervalRow]) -> list[dict]:
    cols = {
        "in_group": (lambda r: r.in_group, "max"),
        "dist": (lambda r: r.dist, "min"),
        "signed": (lambda r: r.signed, "absmin"),
        "worst": (lambda r: r.worst_group_dist, "min"),
        "gap": (lambda r: r.gap, "min"),
    }
    flags = _flags(board, cols)
    return [{
        "variant": fmt_text(r.variant), "n": fmt_int(r.n),
        "in_group": fmt_pct(r.in_group), "in_group_ci": fmt_ci(r.in_group_ci, 1, pct=True),
        "dist": fmt(r.dist), "dist_ci": fmt_ci(r.dist_ci), "signed": fmt_signed(r.signed),
        "too_old": fmt_pct(r.too_old), "too_young": fmt_pct(r.too_young),
        "worst_group": fmt_text(r.worst_group), "worst": fmt(r.worst_group_dist), "worst_ci": fmt_ci(r.worst_group_ci),
        "gap": fmt(r.gap), "gap_ci": fmt_ci(r.gap_ci), "gap_grouping": fmt_text(r.gap_grouping),
        **rules_cell(r), "best": {k: bool(flags.get(k, [False] * len(board))[i]) for k in cols},
    } for i, r in enumerate(board)]


def rules_status(row) -> tuple:
    """(rules passed, rules checked, none | pass | partial | fail) of a leaderboard row."""
    passed, total = num(row.rules_passed), num(row.rules)
    status = "none" if not total else "pass" if passed == total else "fail" if not passed else "partial"
    return passed, total, status


def exact_leaderboard_rows(board: list[ExactRow]) -> list[dict]:
    gk = gap_key(board)
    cols = {
        "mae": (lambda r: r.mae, "min"),
        "cs5": (lambda r: r.cs5, "max"),
        "bias": (lambda r: r.bias, "absmin"),
        "worst": (lambda r: r.worst_group_mae, "min"),
        "gap": (lambda r: getattr(r, gk), "min"),
        "spread": (lambda r: r.age_bin_spread, "min"),
        "rules": (lambda r: (num(r.rules_passed) or 0) / num(r.rules) if num(r.rules) else None, "max"),
    }
    flags = _flags(board, cols)
    return [{
        "variant": fmt_text(r.variant),
        "mae": fmt(r.mae), "mae_ci": fmt_ci(r.mae_ci),
        "cs5": fmt_pct(r.cs5), "bias": fmt_signed(r.bias),
        "worst_group": fmt_text(r.worst_group), "worst_mae": fmt(r.worst_group_mae),
        "worst_ci": fmt_ci(r.worst_group_ci),
        "gap": fmt(getattr(r, gk)), "gap_ci": fmt_ci(getattr(r, gk + "_ci")),
        "gap_grouping": fmt_text("ethnicity" if gk == "ethnicity_gap" else r.gap_grouping),
        "spread": fmt(r.age_bin_spread),
        **rules_cell(r), "best": {k: bool(flags.get(k, [False] * len(board))[i]) for k in cols},
    } for i, r in enumerate(board)]


# The leaderboard of each kind of labels: its row type and table rows.
LEADERBOARDS = {"exact": (ExactRow, exact_leaderboard_rows), "interval": (IntervalRow, interval_leaderboard_rows)}


def leaderboard_rows(summary: AuditSummary) -> list[dict]:
    row_type, rows = LEADERBOARDS[summary.labels]
    return rows([r for r in summary.leaderboard if isinstance(r, row_type)])


# The verdict sentence's clauses per kind of labels: (verdict key, label, row field, its interval, what it is).
VERDICTS = {
    "exact": [("most_accurate", "Most accurate", "mae", "mae_ci", "MAE"),
              ("smallest_worst_group_mae", "Smallest worst-group MAE", "worst_group_mae", "worst_group_ci", "MAE"),
              ("smallest_ethnicity_gap", "Smallest ethnicity gap", "ethnicity_gap", "ethnicity_gap_ci", "MAE gap"),
              ("smallest_attribute_gap", "Smallest attribute gap", "gap", "gap_ci", "MAE gap"),
              ("smallest_age_bin_spread", "Smallest age-bin spread", "age_bin_spread", None, "SD of bin MAE")],
    "interval": [("most_accurate", "Closest to the age groups", "dist", "dist_ci", "mean distance"),
                 ("most_in_group", "Most often inside the age group", "in_group", "in_group_ci", "share"),
                 ("smallest_worst_group_dist", "Smallest worst-group distance", "worst_group_dist", "worst_group_ci",
                  "distance"),
                 ("smallest_attribute_gap", "Smallest attribute gap", "gap", "gap_ci", "distance gap")],
}


def _verdict_detail(row: ExactRow | IntervalRow | None, key: str, value_key: str, ci_key: str | None,
                    what: str) -> str:
    pct = value_key == "in_group"
    value = getattr(row, value_key, None)
    detail = f"{what} {fmt_pct(value) if pct else fmt(value)}"
    if ci_key:
        ci = fmt_ci(getattr(row, ci_key, None), 1 if pct else 2, pct)
        detail += f" {ci}" if ci != MISSING else ""
    if row is not None and key == "smallest_attribute_gap" and row.gap_grouping:
        detail += f", by {row.gap_grouping}"
    if row is not None and key in ("smallest_worst_group_mae", "smallest_worst_group_dist") and row.worst_group:
        detail += f", {row.worst_group}"
    return detail


def verdict_parts(summary: AuditSummary) -> list[dict]:
    """The clauses of an older summary's verdict (by point estimates): label, variant and the number behind
    it (escaped by the template). A verdict decided with evidence is agefair.reporting.decisions'."""
    parts = []
    legacy = summary.verdict.legacy
    for key, label, value_key, ci_key, what in VERDICTS[summary.labels]:
        if key not in legacy:
            continue
        name = legacy[key]
        detail = _verdict_detail(summary.row(name), key, value_key, ci_key, what)
        parts.append({"label": label, "variant": fmt_text(name) if name is not None else "n/a",
                      "detail": detail if name is not None else ""})
    return parts


def threshold_rows(summary: AuditSummary) -> list[dict]:
    rows = sorted(summary.thresholds, key=lambda r: r.passed)  # stable: failures first, then config order
    out = []
    for r in rows:
        digits = 3 if r.metric in SHARE_METRICS or r.statistic == "ratio" else 2
        out.append({
            "variant": fmt_text(r.variant), "rule": fmt_text(r.rule),
            "group": fmt_text(r.group), "value": fmt(r.value, digits),
            "ci": fmt_ci(r.ci, digits), "judge": JUDGE_TITLES.get(r.judge, r.judge),
            "judged": fmt(r.judged_value, digits),
            "threshold": f"{r.op} {fmt_text(r.threshold)}".strip(),
            "passed": r.passed,
        })
    return out


def shot_table(summary: AuditSummary, variants: list[str]) -> dict:
    names, small = ordered_groups(summary, variants, "shot")
    rows = []
    for v in variants:
        groups = groups_by_name(summary, v, "shot")
        cells = []
        for n in names:
            g = groups.get(n)
            y, lo, hi = metric_of(g, "mae")
            b = metric_of(g, "bias")[0]
            cells.append({"n": fmt_int(g.n if g else None), "mae": fmt(y), "ci": fmt_ci([lo, hi]),
                          "bias": fmt_signed(b)})
        rows.append({"variant": v, "cells": cells})
    return {"groups": [{"name": n, "small": n in small} for n in names], "rows": rows}


def _disparity_row(v: str, disp: DisparityBase, metric: str) -> dict:
    d = disp.stat(metric) or DisparityStat()
    pct = metric in SHARE_METRICS
    f = fmt_pct if pct else fmt
    return {
        "variant": v, "metric": METRIC_TITLES[metric],
        "eligible": fmt_int(disp.eligible_groups), "small": fmt_int(disp.flagged_small_groups),
        "worst_group": fmt_text(d.worst_group), "worst": f(d.worst),
        "worst_ci": fmt_ci(d.worst_ci, 1 if pct else 2, pct),
        "best_group": fmt_text(d.best_group), "best": f(d.best),
        "difference": f(d.difference), "difference_ci": fmt_ci(d.difference_ci, 1 if pct else 2, pct),
        "ratio": fmt(d.ratio, 3), "ratio_ci": fmt_ci(d.ratio_ci, 3),
    }


def disparity_tables(summary: AuditSummary, variants: list[str]) -> list[dict]:
    """Per grouping: one row per variant and metric with worst/best group, difference and ratio."""
    groupings: list[str] = []
    for v in variants:
        groupings += [g for g in summary.audit(v).groupings if g not in groupings]
    out = []
    metrics = DISPARITY_METRICS[summary.labels]
    for grouping in groupings:
        rows = {"mae": [], "other": []}
        for v in variants:
            g = summary.audit(v).grouping(grouping)
            disp = g.disparity if g is not None else DisparityBase()
            for metric in metrics:
                rows["mae" if metric == metrics[0] else "other"].append(_disparity_row(v, disp, metric))
        out.append({"grouping": grouping, "title": grouping_title(grouping), **rows,
                    "primary": METRIC_TITLES[metrics[0]], "others": ", ".join(METRIC_TITLES[m] for m in metrics[1:])})
    return out


# --------------------------------------------------------------------------- page

LABELS_TEXT = {"exact": "exact ages", "interval": "age-group labels, interval metrics"}


def dataset_context(summary: AuditSummary) -> dict:
    """The audited dataset, as the report states it: every number comes from it."""
    d = summary.dataset
    return {"name": fmt_text(d.name) if d.name else None, "kind": fmt_text(d.kind),
            "labels": summary.labels, "labels_text": LABELS_TEXT[summary.labels],
            "attributes": ", ".join(map(str, d.attributes)) or MISSING,
            "images": fmt_int(d.images_in_split) if num(d.images_in_split) is not None else None,
            "split": fmt_text(d.split or summary.split), "skipped": [fmt_text(x) for x in d.skipped]}


def _faces_text(faces: dict[str, int]) -> str:
    parts = [f"{fmt_int(faces.get('whole'))} used whole (aligned crops)" if num(faces.get("whole")) else "",
             f"{fmt_int(faces.get('face_crop'))} face crops" if num(faces.get("face_crop")) else "",
             f"{fmt_int(faces.get('several_faces'))} of them the largest of several faces"
             if num(faces.get("several_faces")) else "",
             f"{fmt_int(faces.get('no_face'))} without a face found (no prediction)"
             if num(faces.get("no_face")) else "",
             f"{fmt_int(faces.get('unreadable'))} unreadable" if num(faces.get("unreadable")) else ""]
    return "; ".join(p for p in parts if p)


def model_rows(summary: AuditSummary, variants: list[str]) -> list[dict]:
    """Where each model's numbers come from: its source, the data it was trained on, the data it was
    evaluated on, how many images it predicted and, for predictions files, which rows were not used."""
    rows = []
    for v in variants:
        e = summary.entry(v)
        notes = fmt_text(e.matching_text) if e.external else _faces_text(e.coverage.faces)
        if e.uses_attributes:  # a post-hoc correction by group: the deployer must know these about each person
            notes = "; ".join(x for x in (notes, f"uses each person's {', '.join(e.uses_attributes)} at prediction "
                                                  f"time (post-hoc correction)") if x)
        rows.append({"variant": v,
                     "source": "predictions file" if e.external else "agefair variant" if e.source else MISSING,
                     "file": fmt_text(e.predictions.get("file")) if e.external else
                     fmt_text(e.training.checkpoint if e.training else None),
                     "trained_on": fmt_text(e.trained_on), "evaluated_on": fmt_text(e.evaluated_on),
                     "predicted": fmt_int(e.coverage.predicted), "images": fmt_int(e.coverage.images_in_split),
                     "notes": notes or MISSING})
    return rows
