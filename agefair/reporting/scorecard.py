"""The report's first screen: the scorecard (summary.scorecard, or built from an older summary), the verdict
in one line per criterion, the margins, and the links to each model's report card.

Marks are a symbol and a colour (a colour-blind-safe blue/orange pair; the symbol alone carries the meaning):
▲ better by more than the margin, ▼ worse by more than it, = practically equivalent, ? can't tell,
◆ the reference, blank where nothing is compared.
"""

from __future__ import annotations

from agefair.fairness.auditing.scorecard import scorecard
from agefair.fairness.results.result import AuditSummary
from agefair.fairness.results.scorecard_types import Scorecard, ScoreCell, ScoreColumn
from agefair.reporting.format import MISSING, fmt, fmt_ci, fmt_pct, fmt_signed, fmt_text, grouping_title, num, slug
from agefair.reporting.sections import rules_cell

MARKS = {"better": ("▲", "better by more than the margin"), "worse": ("▼", "worse by more than the margin"),
         "equivalent": ("=", "practically equivalent (the whole interval inside the margin)"),
         "unclear": ("?", "can't tell (the interval reaches across a margin)"),
         "reference": ("◆", "the reference"), "none": ("", "not compared")}
SYMBOLS = {k: s for k, (s, _) in MARKS.items()}  # the charts' and the comparison tables' marks too
TARGET_MARKS = {"worse": ("▼", "off target by more than the margin"),
                "equivalent": ("=", "on target (the whole interval inside the margin)"),
                "unclear": ("?", "can't tell")}


# The report's anchors a column's values come from (the section of full tables), by the column key's kind.
VALUE_ANCHORS = {"overall": "summary", "worst": "disparity", "gap": "disparity", "std_gap": "disparity",
                 "spread": "by-age", "coverage": "intervals"}


def card_id(model: str) -> str:
    return f"card-{slug(model)}"


def anchors(col: ScoreColumn) -> tuple[str, str]:
    """(the anchor of the column's values, the anchor of the table its marks come from)."""
    kind, _, name = col.key.partition(":")
    if kind in ("fp", "fc"):
        return f"gate-{slug(name)}", "comparisons-gates"
    return VALUE_ANCHORS.get(kind, "summary"), "intervals" if col.against == "target" else "comparisons-overall"


def the_scorecard(summary: AuditSummary) -> Scorecard:
    """summary.scorecard, or the same built from an older summary that has none."""
    return summary.scorecard if summary.scorecard is not None else scorecard(summary)


def _value(col: ScoreColumn, x) -> str:
    return fmt_pct(x) if col.unit == "share" else fmt(x)


def _diff(col: ScoreColumn, cell: ScoreCell) -> str:
    if num(cell.difference) is None:
        return ""
    if col.unit == "share":
        lo, hi = cell.difference_ci
        ci = (f" [{fmt_signed(100 * lo, 1)}, {fmt_signed(100 * hi, 1)}]" if num(lo) is not None and num(hi) is not None
              else "")
        return f"{fmt_signed(100 * cell.difference, 1)} pp{ci}"
    return f"{fmt_signed(cell.difference)} {fmt_ci(cell.difference_ci)}".strip()


def _cell(col: ScoreColumn, cell: ScoreCell | None, reference: str | None) -> dict:
    if cell is None:
        return {"value": MISSING, "ci": "", "mark": "none", "symbol": "", "tip": "not available", "group": ""}
    marks = TARGET_MARKS if col.against == "target" else MARKS
    symbol, word = marks.get(cell.mark, MARKS.get(cell.mark, ("", "")))
    ci = fmt_ci(cell.ci, 1, True) if col.unit == "share" else fmt_ci(cell.ci)
    against = f"the {col.target:.0%} target" if col.against == "target" else f"`{reference}`"
    diff = _diff(col, cell)
    title = (f"{cell.group}: " if cell.group else "") + word + (
        f": {diff} against {against}" if diff and cell.mark != "reference" else "")
    return {"value": _value(col, cell.value), "ci": "" if ci == MISSING else ci, "mark": cell.mark,
            "symbol": symbol, "tip": fmt_text(title.replace("`", "")),
            "group": fmt_text(cell.group.split(": ")[-1]) if cell.group and col.key.split(":")[0] in ("worst", "fp", "fc")
            else ""}


def _margin_text(col: ScoreColumn) -> str:
    if num(col.margin) is None:
        return ""
    return f"±{100 * col.margin:g} pp" if col.unit == "share" else f"±{col.margin:g} y"


def _family_title(c: ScoreColumn) -> str:
    return grouping_title(c.family) if c.key.split(":")[0] in ("worst", "gap", "std_gap") else c.family


def _families(columns: list[ScoreColumn]) -> list[dict]:
    out: list[dict] = []
    for c in columns:
        title = _family_title(c)
        if out and out[-1]["key"] == c.family:
            out[-1]["span"] += 1
        else:
            out.append({"key": c.family, "title": title, "span": 1})
    return out


def margins_text(columns: list[ScoreColumn]) -> str:
    """The margins the scorecard's marks use, once each: 'MAE ±0.25 years; rates ±1 percentage point; ...'."""
    parts: dict[str, str] = {}
    for c in columns:
        if num(c.margin) is None or c.against == "none":
            continue
        what = ("coverage" if c.against == "target" else "rates" if c.unit == "share"
                else c.title.split()[-1] if c.key == "overall" else "")
        if what and what not in parts:
            parts[what] = (f"±{100 * c.margin:g} percentage point{'' if 100 * c.margin == 1 else 's'}"
                           if c.unit == "share" else f"±{c.margin:g} years")
    return "; ".join(f"{k} {v}" for k, v in parts.items())


def scorecard_context(summary: AuditSummary) -> dict:
    """The scorecard table (families, columns, rows of formatted cells) and its legend."""
    sc = the_scorecard(summary)
    cols = sc.columns
    rows = [{"name": r.model, "model": fmt_text(r.model), "card": card_id(r.model), "reference": r.reference,
             **rules_cell(r),
             "cells": [_cell(c, r.cells.get(c.key), sc.reference) for c in cols]} for r in sc.rows]
    return {
        "reference": fmt_text(sc.reference) if sc.reference else None,
        "level": f"{100 * sc.level:g}%" if num(sc.level) is not None else None,
        "families": _families(cols),
        "columns": [{"key": c.key, "title": c.title, "help": fmt_text(c.help), "evidence": anchors(c)[0],
                     "marks_from": anchors(c)[1],
                     "family_title": fmt_text(_family_title(c)),
                     "margin": _margin_text(c), "against": c.against} for c in cols],
        "rows": rows,
        "margins": margins_text(cols),
        "legend": [{"mark": k, "symbol": s, "text": t} for k, (s, t) in MARKS.items() if k != "none"],
    }
