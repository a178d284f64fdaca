"""Context of the report's age-adjusted parts: the age-standardised MAE and gaps (disparity section), and
the AAR, error slopes and label-noise suspects (section "Age accuracy and label noise")."""

from __future__ import annotations

from agefair.fairness.result import AuditSummary, ExactAudit
from agefair.reporting.format import fmt, fmt_ci, fmt_int, fmt_pct, fmt_text


def standardised_tables(summary: AuditSummary, variants: list[str]) -> dict[str, dict]:
    """grouping -> {gaps: a row per model (raw and standardised gap), groups: a row per model and group}."""
    out: dict[str, dict] = {}
    for v in variants:
        audit = summary.audit(v)
        if not isinstance(audit, ExactAudit):
            continue
        for name, st in audit.standardised.items():
            t = out.setdefault(name, {"gaps": [], "groups": []})
            t["gaps"].append({"variant": fmt_text(v), "raw": fmt(st.raw_gap), "raw_ci": fmt_ci(st.raw_gap_ci),
                              "std": fmt(st.gap), "std_ci": fmt_ci(st.gap_ci),
                              "pair": fmt_text(f"{st.worst_group} vs {st.best_group}" if st.worst_group else None)})
            for g in st.groups:
                t["groups"].append({
                    "variant": fmt_text(v), "group": fmt_text(g.group), "n": fmt_int(g.n), "small": g.small,
                    "raw": fmt(g.raw), "raw_ci": fmt_ci(g.raw_ci), "std": fmt(g.standardised),
                    "std_ci": fmt_ci(g.standardised_ci),
                    "missing": (f"lacks {', '.join(g.missing_bins)} (covers {fmt_pct(g.coverage)} of the reference)"
                                if g.missing_bins else "")})
    return out
