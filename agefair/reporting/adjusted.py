"""Context of the report's age-adjusted parts: the age-standardised MAE and gaps (disparity section), and
the AAR, error slopes and label-noise suspects (section "Age accuracy and label noise")."""

from __future__ import annotations

from agefair.fairness.results.result import AuditSummary, ExactAudit
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


def age_accuracy_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The AAR and error slopes per model, and the label-noise suspects with the sensitivity table."""
    aar, slopes = [], []
    for v in variants:
        audit = summary.audit(v)
        if not isinstance(audit, ExactAudit):
            continue
        if audit.aar is not None:
            a = audit.aar
            aar.append({"variant": fmt_text(v), "aar": fmt(a.aar), "aar_ci": fmt_ci(a.aar_ci), "mae": fmt(a.mae),
                        "sigma": fmt(a.sigma), "sigma_ci": fmt_ci(a.sigma_ci),
                        "missing": ", ".join(a.missing_groups)})
        slopes += [{"variant": fmt_text(v), "grouping": fmt_text(s.grouping or "overall"), "group": fmt_text(s.group or "all"),
                    "n": fmt_int(s.n), "mean_age": fmt(s.mean_age, 1), "slope": fmt(s.slope, 3),
                    "ci": fmt_ci(s.ci, 3)} for s in audit.error_slopes]
    noise = summary.label_noise
    return {"aar": aar, "slopes": slopes, "noise": None if noise is None else {
        "rule": noise.rule, "n_flagged": noise.n_flagged if noise.n_flagged is not None else len(noise.suspects),
        "n_listed": len(noise.suspects),
        "suspects": [{"file": fmt_text(s.file), "label": fmt(s.age, 0), "mean": fmt(s.mean_pred, 1),
                      "spread": fmt(s.spread, 1), "thumbnail": s.thumbnail,
                      "predictions": ", ".join(f"{m} {fmt(p, 1)}" for m, p in s.predictions.items())}
                     for s in noise.suspects],
        "sensitivity": [{"model": fmt_text(r.model), "grouping": fmt_text(r.grouping or "overall"),
                         "group": fmt_text(r.group or ("gap" if r.statistic == "gap" else "all")),
                         "n": fmt_int(r.n), "flagged": fmt_int(r.n_flagged), "with": fmt(r.with_flagged),
                         "without": fmt(r.without_flagged), "change": fmt(r.change)} for r in noise.sensitivity]}}
