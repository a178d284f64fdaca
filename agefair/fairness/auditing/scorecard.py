"""The scorecard (summary.scorecard): one row per model, one column per criterion a reader decides on.

Columns: overall accuracy (MAE, or the distance to the age group); per sensitive attribute the worst group,
the gap (worst minus best) and, for exact ages, the age-standardised gap; the age-bin spread; per threshold
gate the worst group's false pass and false challenge over every attribute; the conformal intervals'
coverage. Each cell is the model's value with its interval (from the audit) and a mark: the practical class
of the paired comparison against the reference on that criterion (agefair.fairness.stats.decide.practical: better
or worse by more than the margin, equivalent, can't tell), or, for coverage, of the coverage against its
target. A criterion with no paired comparison (the age-standardised gap) is shown unmarked. Built from the
summary alone: every number of a cell is also in summary.json's audits and comparisons.
"""

from __future__ import annotations

from agefair.core.decision_config import DEFAULT_MARGINS
from agefair.fairness.results.decision_types import ComparisonRow
from agefair.fairness.results.scorecard_types import Scorecard, ScoreCell, ScoreColumn, ScoreRow, written_whole
from agefair.fairness.results.summary import AuditSummary, ExactAudit
from agefair.fairness.stats.decide import practical
from agefair.fairness.stats.gate_types import ThresholdGateSummary


def _margin(summary: AuditSummary, metric: str) -> float | None:
    c = summary.comparisons
    return c.margins.get(metric) if c is not None and c.margins else None


def _columns(summary: AuditSummary, variants: list[str]) -> list[ScoreColumn]:
    exact = summary.labels == "exact"
    metric, name = ("mae", "MAE") if exact else ("dist", "distance")
    m = _margin(summary, metric)
    attrs = list(dict.fromkeys(a for v in variants for a in summary.audit(v).attributes))
    cols = [ScoreColumn(key="overall", title=f"overall {name}", family="accuracy", margin=m,
                        help=f"mean absolute error in years{'' if exact else ' to the labelled age group'}")]
    for a in attrs:
        cols += [ScoreColumn(key=f"worst:{a}", title=f"worst group {name}", family=a, margin=m,
                             help=f"the {a} group with the highest {name}"),
                 ScoreColumn(key=f"gap:{a}", title=f"gap in {name}", family=a, margin=m,
                             help=f"worst minus best {a} group")]
        if exact:
            cols.append(ScoreColumn(key=f"std_gap:{a}", title="gap, age-standardised", family=a, margin=m,
                                    against="none",
                                    help="the gap with every group given the split's age mix (no paired test)"))
    if exact:
        cols.append(ScoreColumn(key="spread", title="age-bin spread", family="age", margin=m,
                                help="standard deviation of the MAE over the age bins"))
    for gate in _threshold_gates(summary, variants):
        cols += [ScoreColumn(key=f"fp:{gate}", title="false pass, worst group", family=gate, unit="share",
                             margin=_margin(summary, "false_pass"),
                             help="share of the worst group's minors estimated at or over the challenge age"),
                 ScoreColumn(key=f"fc:{gate}", title="false challenge, worst group", family=gate, unit="share",
                             margin=_margin(summary, "false_challenge"),
                             help="share of the worst group's adults estimated under the challenge age")]
    target = _coverage_target(summary, variants)
    if target is not None:
        cols.append(ScoreColumn(key="coverage", title=f"coverage (target {target:.0%})", family="intervals",
                                unit="share", margin=_margin(summary, "coverage") or DEFAULT_MARGINS["coverage"],
                                against="target", target=target,
                                help="share of true ages inside the model's conformal interval"))
    return cols


def _threshold_gates(summary: AuditSummary, variants: list[str]) -> list[str]:
    return list(dict.fromkeys(r.gate.name for v in variants for r in summary.audit(v).gates
                              if isinstance(r, ThresholdGateSummary)))


def _coverage_target(summary: AuditSummary, variants: list[str]) -> float | None:
    for v in variants:
        iv = summary.audit(v).intervals
        if iv is not None and "marginal" in iv.methods:
            return iv.methods["marginal"].target
    return None


def _comparison(summary: AuditSummary, model: str, *, table: str, criterion: str, metric: str,
                grouping: str | None = None, gate: str | None = None) -> ComparisonRow | None:
    c = summary.comparisons
    if c is None:
        return None
    rows = getattr(c, table)
    return next((r for r in rows if r.model_b == model and r.criterion == criterion and r.metric == metric
                 and (grouping is None or r.grouping == grouping) and r.gate == gate), None)


def _marked(cell: ScoreCell, row: ComparisonRow | None) -> ScoreCell:
    if row is None:
        return cell
    return cell.model_copy(update=dict(mark=row.practical or "unclear", difference=row.difference,
                                       difference_ci=row.ci, significant=row.significant))


def _accuracy_cells(summary: AuditSummary, v: str, metric: str, attrs: list[str]) -> dict[str, ScoreCell]:
    audit = summary.audit(v)
    m = audit.overall.metric(metric)
    cells = {"overall": _marked(ScoreCell(value=m.value, ci=m.ci, n=summary.comparisons.rows if summary.comparisons
                                          else None),
                                _comparison(summary, v, table="overall", criterion="overall", metric=metric))}
    for a in attrs:
        g = audit.grouping(a)
        d = g.disparity.stat(metric) if g is not None else None
        if d is None:
            continue
        cells[f"worst:{a}"] = _marked(ScoreCell(value=d.worst, ci=d.worst_ci, group=d.worst_group),
                                      _comparison(summary, v, table="overall", criterion="worst", metric=metric,
                                                  grouping=a))
        cells[f"gap:{a}"] = _marked(ScoreCell(value=d.difference, ci=d.difference_ci, group=d.worst_group),
                                    _comparison(summary, v, table="overall", criterion="gap", metric=metric,
                                                grouping=a))
        std = audit.standardised.get(a) if isinstance(audit, ExactAudit) else None
        if std is not None and std.gap is not None:
            cells[f"std_gap:{a}"] = ScoreCell(value=std.gap, ci=std.gap_ci, group=std.worst_group)
    if isinstance(audit, ExactAudit) and audit.age_bin_spread is not None:
        cells["spread"] = _marked(ScoreCell(value=audit.age_bin_spread),
                                  _comparison(summary, v, table="overall", criterion="spread", metric=metric))
    return cells


def _gate_cells(summary: AuditSummary, v: str, gates: list[str]) -> dict[str, ScoreCell]:
    cells = {}
    audit = summary.audit(v)
    for gate in gates:
        results = [r for r in audit.gates if isinstance(r, ThresholdGateSummary) and r.gate.name == gate
                   and r.grouping in audit.attributes]
        for key, rate in (("fp", "false_pass"), ("fc", "false_challenge")):
            worst = [(r, r.disparities[rate]) for r in results
                     if rate in r.disparities and r.disparities[rate].worst_group is not None]
            if not worst:
                continue
            r, d = max(worst, key=lambda x: x[1].worst)
            n = next((getattr(g, rate).n for g in r.groups if g.group == d.worst_group), None)
            cell = ScoreCell(value=d.worst, ci=list(d.worst_ci), group=f"{r.grouping}: {d.worst_group}", n=n)
            cells[f"{key}:{gate}"] = _marked(cell, _comparison(summary, v, table="gates", criterion="worst_any",
                                                               metric=rate, gate=gate))
    return cells


def _coverage_cell(summary: AuditSummary, v: str, column: ScoreColumn) -> ScoreCell | None:
    iv = summary.audit(v).intervals
    rep = iv.methods.get("marginal") if iv is not None else None
    if rep is None or not rep.definitions:
        return None
    stat = rep.overall.coverage[rep.definitions[0]]
    if stat.value is None:
        return None
    lo, hi = stat.ci if stat.ci and len(stat.ci) == 2 else (None, None)
    t = column.target
    diff_ci = [None if lo is None else lo - t, None if hi is None else hi - t]
    off = practical(stat.value - t, diff_ci, column.margin)  # 'better' here: under the target by more
    mark = {"better": "worse"}.get(off, off)  # under- or over-covering by more than the margin is off target
    return ScoreCell(value=stat.value, ci=[lo, hi], n=rep.overall.n, mark=mark, difference=stat.value - t,
                     difference_ci=diff_ci)


def scorecard(summary: AuditSummary) -> Scorecard:
    """The scorecard of ``summary``'s models (the reference first)."""
    variants = list(summary.variants)
    ref = summary.comparisons.reference if summary.comparisons is not None else summary.verdict.reference
    if ref in variants:
        variants = [ref, *(v for v in variants if v != ref)]
    columns = _columns(summary, variants)
    metric = "mae" if summary.labels == "exact" else "dist"
    attrs = [c.family for c in columns if c.key.startswith("worst:")]
    gates = [c.family for c in columns if c.key.startswith("fp:")]
    cov = next((c for c in columns if c.key == "coverage"), None)
    rows = []
    for v in variants:
        cells = _accuracy_cells(summary, v, metric, attrs) | _gate_cells(summary, v, gates)
        if cov is not None and (cell := _coverage_cell(summary, v, cov)) is not None:
            cells["coverage"] = cell
        if v == ref and summary.comparisons is not None:
            cells = {k: c.model_copy(update={"mark": "reference"}) if k != "coverage" and c.mark == "none"
                     and not k.startswith("std_gap:") else c for k, c in cells.items()}
        board = summary.row(v)
        rows.append(ScoreRow(model=v, reference=v == ref, cells=cells,
                             rules_passed=board.rules_passed if board else None, rules=board.rules if board else None))
    level = summary.comparisons.level if summary.comparisons is not None else None
    return written_whole(Scorecard(reference=ref if summary.comparisons is not None else None, level=level,
                                   columns=columns, rows=rows))
