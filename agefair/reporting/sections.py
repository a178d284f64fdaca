"""Context builders of the report's result sections: table rows for the leaderboard, the verdict
sentence, threshold checks, shot table, disparity tables, the audited dataset and the models.

Each builder returns plain, already formatted values (strings, flags) for the templates; the
closing sections (galleries, training, data, provenance) are in agefair.reporting.details.
"""

from __future__ import annotations

import math
from typing import Any

from agefair.fairness.specs import DISPARITY_METRICS, METRIC_TITLES, SHARE_METRICS
from agefair.reporting.format import (
    JUDGE_TITLES,
    MISSING,
    as_dict,
    as_list,
    fmt,
    fmt_ci,
    fmt_int,
    fmt_pct,
    fmt_signed,
    fmt_text,
    grouping_title,
    num,
)
from agefair.reporting.view import audit_of, grouping_of, groups_by_name, label_kind, metric_of, ordered_groups

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


def gap_key(board: list[dict]) -> str:
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
    board = [r for r in as_list(summary.get("leaderboard")) if isinstance(r, dict)]
    if label_kind(summary) == "interval":
        return interval_leaderboard_rows(board)
    gk = gap_key(board)
    cols = {
        "mae": (lambda r: r.get("mae"), "min"),
        "cs5": (lambda r: r.get("cs5"), "max"),
        "bias": (lambda r: r.get("bias"), "absmin"),
        "worst": (lambda r: r.get("worst_group_mae"), "min"),
        "gap": (lambda r: r.get(gk), "min"),
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
            "gap": fmt(r.get(gk)), "gap_ci": fmt_ci(r.get(gk + "_ci")),
            "gap_grouping": fmt_text("ethnicity" if gk == "ethnicity_gap" else r.get("gap_grouping")),
            "spread": fmt(r.get("age_bin_spread")),
            "rules": f"{fmt_int(passed)}/{fmt_int(total)}" if total else MISSING, "status": status,
            "best": {k: bool(flags.get(k, [False] * len(board))[i]) for k in cols},
        })
    return out


def _leader(summary: dict, variant: Any) -> dict:
    return next((r for r in as_list(summary.get("leaderboard")) if isinstance(r, dict) and r.get("variant") == variant), {})


def verdict_parts(summary: dict) -> list[dict]:
    """The verdict sentence's clauses: label, variant and the number behind it (escaped by the template)."""
    v = as_dict(summary.get("verdict"))
    parts = []
    spec = [("most_accurate", "Most accurate", "mae", "mae_ci", "MAE"),
            ("smallest_worst_group_mae", "Smallest worst-group MAE", "worst_group_mae", "worst_group_ci", "MAE"),
            ("smallest_ethnicity_gap", "Smallest ethnicity gap", "ethnicity_gap", "ethnicity_gap_ci", "MAE gap"),
            ("smallest_attribute_gap", "Smallest attribute gap", "gap", "gap_ci", "MAE gap"),
            ("smallest_age_bin_spread", "Smallest age-bin spread", "age_bin_spread", None, "SD of bin MAE")]
    if label_kind(summary) == "interval":
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
    rows = [r for r in as_list(summary.get("thresholds")) if isinstance(r, dict)]
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
    names, small = ordered_groups(summary, variants, "shot")
    rows = []
    for v in variants:
        groups = groups_by_name(summary, v, "shot")
        cells = []
        for n in names:
            g = groups.get(n, {})
            y, lo, hi = metric_of(g, "mae")
            b = metric_of(g, "bias")[0]
            cells.append({"n": fmt_int(g.get("n")), "mae": fmt(y), "ci": fmt_ci([lo, hi]), "bias": fmt_signed(b)})
        rows.append({"variant": v, "cells": cells})
    return {"groups": [{"name": n, "small": n in small} for n in names], "rows": rows}


def disparity_tables(summary: dict, variants: list[str]) -> list[dict]:
    """Per grouping: one row per variant and metric with worst/best group, difference and ratio."""
    groupings: list[str] = []
    for v in variants:
        for g in as_dict(audit_of(summary, v).get("groupings")):
            if g not in groupings:
                groupings.append(g)
    out = []
    metrics = DISPARITY_METRICS[label_kind(summary)]
    for grouping in groupings:
        rows = {"mae": [], "other": []}
        for v in variants:
            disp = as_dict(grouping_of(summary, v, grouping).get("disparity"))
            for metric in metrics:
                d = as_dict(disp.get(metric))
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
        out.append({"grouping": grouping, "title": grouping_title(grouping), **rows,
                    "primary": METRIC_TITLES[metrics[0]], "others": ", ".join(METRIC_TITLES[m] for m in metrics[1:])})
    return out


# --------------------------------------------------------------------------- page


def dataset_context(summary: dict) -> dict:
    """The audited dataset, as the report states it: every number comes from it."""
    d = as_dict(summary.get("dataset"))
    labels = label_kind(summary)
    return {"name": fmt_text(d.get("name")) if d.get("name") else None, "kind": fmt_text(d.get("kind")),
            "labels": labels,
            "labels_text": "age-group labels, interval metrics" if labels == "interval" else "exact ages",
            "attributes": ", ".join(map(str, as_list(d.get("attributes")))) or MISSING,
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
        e = as_dict(as_dict(summary.get("variants")).get(v))
        cov = as_dict(e.get("coverage"))
        external = e.get("source") == "external"
        notes = fmt_text(e.get("matching_text")) if external else _faces_text(as_dict(cov.get("faces")))
        rows.append({"variant": v,
                     "source": "predictions file" if external else "agefair variant" if e.get("source") else MISSING,
                     "file": fmt_text(as_dict(e.get("predictions")).get("file")) if external else
                     fmt_text(as_dict(e.get("training")).get("checkpoint")),
                     "trained_on": fmt_text(e.get("trained_on")), "evaluated_on": fmt_text(e.get("evaluated_on")),
                     "predicted": fmt_int(cov.get("predicted")), "images": fmt_int(cov.get("images_in_split")),
                     "notes": notes or MISSING})
    return rows

