"""Context of the report's verdict statements (summary section) and its "Paired comparisons" section:
every model against the reference, three tables (each one Benjamini-Hochberg family)."""

from __future__ import annotations

from agefair.fairness.auditing.decisions import matters
from agefair.fairness.results.decision_types import ComparisonRow
from agefair.fairness.results.result import AuditSummary
from agefair.reporting.format import MISSING, fmt, fmt_ci, fmt_int, fmt_text
from agefair.reporting.scorecard import SYMBOLS

DIFFERENCES_SHOWN = 12  # significant differences listed in the summary (the console too); the rest are folded
TABLES = (("overall", "Overall and disparities"), ("groups", "Each group"),
          ("gates", "Age gates: false pass and false challenge"))
PRACTICAL_TEXT = {k: f"{SYMBOLS[k]} {word}" for k, word in (("better", "better"), ("worse", "worse"),
                                                               ("equivalent", "equivalent"), ("unclear", "can't tell"))}


def segments(sentence: str | None) -> list[dict]:
    """A sentence as text and `code` segments (model names), each escaped by the template."""
    parts = (sentence or "").split("`")
    return [{"text": p, "code": i % 2 == 1} for i, p in enumerate(parts) if p]


def _p(x) -> str:
    return "< 0.001" if x is not None and x < 0.001 else fmt(x, 3)


def _what(r: ComparisonRow) -> str:
    metric = (r.metric or "").upper() if r.metric == "mae" else (r.metric or "")
    if r.criterion == "overall":
        return f"{r.gate} {metric} overall" if r.gate else f"overall {metric}"
    if r.criterion == "group":
        head = f"{r.gate} {metric}: " if r.gate else ""
        return f"{head}{r.grouping}: {r.group}"
    if r.criterion == "worst_any":
        return f"{r.gate} {metric}: worst group" if r.gate else f"worst group in {metric}"
    word = {"gap": "gap", "worst": "worst group", "spread": "spread (SD of bins)"}.get(r.criterion or "", "")
    return f"{r.grouping} {word} in {metric}"


def comparison_rows(rows: list[ComparisonRow]) -> list[dict]:
    digits = 3
    return [{"model": fmt_text(r.model_b), "what": fmt_text(_what(r)), "n": fmt_int(r.n),
             "a": fmt(r.value_a, digits), "b": fmt(r.value_b, digits), "diff": fmt(r.difference, digits),
             "ci": fmt_ci(r.ci, digits), "p": _p(r.p_value), "q": _p(r.p_adjusted), "mde": fmt(r.mde, digits),
             "significant": bool(r.significant), "notes": fmt_text("; ".join(r.notes)),
             "margin": fmt(r.margin, 3), "practical": PRACTICAL_TEXT.get(r.practical or "", MISSING),
             "class": r.practical or "none"} for r in rows]


def power_rows(summary: AuditSummary) -> list[dict]:
    """The groups a gap rule judges, with their MDE; underpowered ones first."""
    rows = [p for p in summary.power if p.threshold is not None]
    rows.sort(key=lambda p: (not p.underpowered, p.variant or "", p.grouping or "", p.group or ""))
    return [{"variant": fmt_text(p.variant), "grouping": fmt_text(p.grouping), "group": fmt_text(p.group),
             "n": fmt_int(p.n), "mde": fmt(p.mde), "threshold": fmt(p.threshold), "rule": fmt_text(p.rule),
             "underpowered": bool(p.underpowered), "eligible": p.eligible} for p in rows]


def decisions_context(summary: AuditSummary) -> dict:
    """The verdict statements and the comparison tables."""
    v, c, pc = summary.verdict, summary.comparisons, summary.compare_to
    return {
        "compare_to": None if pc is None else {
            "path": fmt_text(pc.path), "generated": fmt_text(pc.generated), "only_new": ", ".join(pc.only_new),
            "only_previous": ", ".join(pc.only_previous),
            "tables": [{"id": k, "rows": comparison_rows(rows)} for k, rows in (("overall", pc.overall),
                                                                                 ("groups", pc.groups)) if rows]},
        "statements": [segments(s) for s in v.statements] + ([segments(v.note)] if v.note else []),
        "differences": [segments(s) for s in v.differences[:DIFFERENCES_SHOWN]],
        "more_differences": [segments(s) for s in v.differences[DIFFERENCES_SHOWN:]],
        "n_differences": len(v.differences),
        "counts": v.counts or None,
        "n_rows": sum(len(t) for t in c.tables.values()) if c else 0,
        "n_beyond_not_significant": sum(r.practical in ("better", "worse") and not matters(r)
                                        for t in (c.tables.values() if c else ()) for r in t),
        "reference": fmt_text(v.reference or (c.reference if c else None)),
        "power": power_rows(summary),
        "comparisons": None if c is None else {
            "reference": fmt_text(c.reference), "rows": fmt_int(c.rows), "level": c.level,
            "n_perm": c.n_perm, "subject": fmt_text(c.subject) if c.subject else None,
            "tables": [{"id": k, "title": t, "rows": comparison_rows(c.tables[k])}
                       for k, t in TABLES if c.tables[k]]},
    }
