"""One report card per model (NIST-style: one printable page): headline accuracy, the model's scorecard row,
a group table, its age-gate rates, its intervals' coverage and its worst errors' thumbnails. Every number is
read from the summary (and the Grad-CAM tiles from the galleries); the page's print stylesheet prints one
card on its own page."""

from __future__ import annotations

from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.gate_types import ThresholdGateSummary
from agefair.reporting.format import MISSING, fmt, fmt_ci, fmt_int, fmt_pct, fmt_signed, fmt_text, grouping_title, num
from agefair.reporting.scorecard import card_id, scorecard_context
from agefair.reporting.view import groups_by_name, metric_of

CARD_TILES = 6  # worst errors shown on a card


def _headline(summary: AuditSummary, v: str) -> list[dict]:
    a = summary.audit(v)
    n = num(a.overall.metric("n").value)
    if summary.labels == "exact":
        mae, bias, cs5 = (a.overall.metric(k) for k in ("mae", "bias", "cs5"))
        items = [("MAE", f"{fmt(mae.value)} years", fmt_ci(mae.ci)), ("bias (+: too old)", fmt_signed(bias.value),
                                                                      fmt_ci(bias.ci)),
                 ("within 5 years", fmt_pct(cs5.value), fmt_ci(cs5.ci, 1, True))]
    else:
        dist, inside = a.overall.metric("dist"), a.overall.metric("in_group")
        items = [("distance to the age group", f"{fmt(dist.value)} years", fmt_ci(dist.ci)),
                 ("inside the age group", fmt_pct(inside.value), fmt_ci(inside.ci, 1, True))]
    items.append(("images", fmt_int(n), ""))
    return [{"label": k, "value": x, "ci": "" if c == MISSING else c} for k, x, c in items]


def _group_rows(summary: AuditSummary, v: str) -> list[dict]:
    metric = "mae" if summary.labels == "exact" else "dist"
    audit = summary.audit(v)
    groupings = [*audit.attributes, *(g for g in ("age_bin", "age_group") if audit.grouping(g) is not None)]
    out = []
    for grouping in groupings:
        for name, g in groups_by_name(summary, v, grouping).items():
            y, lo, hi = metric_of(g, metric)
            bias = metric_of(g, "bias" if metric == "mae" else "signed")[0]
            out.append({"grouping": grouping_title(grouping), "group": fmt_text(name), "n": fmt_int(g.n),
                        "value": fmt(y), "ci": fmt_ci([lo, hi]), "bias": fmt_signed(bias), "small": g.small})
    return out


def _gate_rows(summary: AuditSummary, v: str) -> list[dict]:
    audit = summary.audit(v)
    out = []
    for r in audit.gates:
        if not isinstance(r, ThresholdGateSummary) or r.grouping != "overall" or not r.groups:
            continue
        g = r.groups[0]
        worst = {}
        for rate in ("false_pass", "false_challenge"):
            ds = [(x.grouping, x.disparities[rate]) for x in audit.gate_results(r.gate.name)
                  if isinstance(x, ThresholdGateSummary) and x.grouping in audit.attributes and rate in x.disparities
                  and x.disparities[rate].worst_group is not None]
            grouping, d = max(ds, key=lambda t: t[1].worst) if ds else (None, None)
            worst[rate] = f"{fmt_pct(d.worst)} ({d.worst_group})" if d is not None else MISSING
        out.append({"gate": fmt_text(r.gate.name),
                    "fp": fmt_pct(g.false_pass.value), "fp_ci": fmt_ci(g.false_pass.ci, 1, True),
                    "fp_n": fmt_int(g.false_pass.n), "fp_worst": fmt_text(worst["false_pass"]),
                    "fc": fmt_pct(g.false_challenge.value), "fc_ci": fmt_ci(g.false_challenge.ci, 1, True),
                    "fc_n": fmt_int(g.false_challenge.n), "fc_worst": fmt_text(worst["false_challenge"])})
    return out


def _intervals(summary: AuditSummary, v: str) -> dict | None:
    iv = summary.audit(v).intervals
    rep = iv.methods.get("marginal") if iv is not None else None
    if rep is None or not rep.definitions:
        return None
    cov = rep.overall.coverage[rep.definitions[0]]
    return {"target": fmt_pct(rep.target, 0), "coverage": fmt_pct(cov.value), "ci": fmt_ci(cov.ci, 1, True),
            "width": fmt(rep.overall.mean_width.value, 1)}


def cards_context(summary: AuditSummary, variants: list[str], galleries: list[dict], sc: dict | None = None
                  ) -> list[dict]:
    """A card per model, in the scorecard's order (``sc``: scorecard_context's, when already built)."""
    sc = sc or scorecard_context(summary)
    by_model = {r["name"]: r for r in sc["rows"]}
    tiles = {g["variant"]: g["overall"][:CARD_TILES] for g in galleries if not g.get("missing")}
    cards = []
    for v in [r["name"] for r in sc["rows"]] or variants:
        row = by_model.get(v)
        marks = [{"title": c["title"], "family": c.get("family_title", ""), **cell}
                 for c, cell in zip(sc["columns"], row["cells"])] if row else []
        entry = summary.entry(v)
        cards.append({
            "model": fmt_text(v), "id": card_id(v), "reference": bool(row and row["reference"]),
            "source": fmt_text(entry.predictions.get("file") if entry.external else
                               entry.training.checkpoint if entry.training else None),
            "headline": _headline(summary, v), "rules": row["rules"] if row else MISSING,
            "rules_status": row["status"] if row else "none", "marks": marks,
            "groups": _group_rows(summary, v), "gates": _gate_rows(summary, v),
            "intervals": _intervals(summary, v), "tiles": tiles.get(v, []),
        })
    return cards
