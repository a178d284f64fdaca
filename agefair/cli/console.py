"""What the commands print: fixed-width text tables of the leaderboard, threshold checks and the
robustness result (plain strings; the HTML report is agefair.reporting.report)."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import TypeAdapter

from agefair.core.formatting import format_seconds
from agefair.fairness.results.result import (
    AuditSummary,
    Check,
    ExactRow,
    GapRow,
    IntervalRow,
    LeaderboardRow,
    RobustnessCheck,
    RobustnessResult,
)
from agefair.fairness.stats.gate_types import ThresholdGateSummary
from agefair.reporting.decisions import DIFFERENCES_SHOWN
from agefair.reporting.eda import PAGE, QUALITY_JSON, QUALITY_TXT


def _ci(ci: list) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci[:2] else ""


def _print_interval_board(board: list[IntervalRow], w: int) -> None:
    print(f"{'model':<{w}} {'in group':>8} {'dist':>6} {'95% CI':>15} {'signed':>7} {'worst group (dist)':>38} "
          f"{'attr. gap':>9}  rules")
    for r in board:
        wg = f"{r.worst_group} ({r.worst_group_dist:.2f})" if r.worst_group else "-"
        gap = f"{r.gap:.2f}" if r.gap is not None else "-"
        print(f"{r.variant:<{w}} {100 * r.in_group:>7.1f}% {r.dist:>6.2f} {_ci(r.dist_ci):>15} {r.signed:>+7.2f} "
              f"{wg[:38]:>38} {gap:>9}  {r.rules_passed}/{r.rules}")


def print_leaderboard(board: list[ExactRow | IntervalRow] | list[dict]) -> None:
    """The leaderboard as a text table (rows of the typed summary, or summary.json's dicts)."""
    board = [TypeAdapter(LeaderboardRow).validate_python(r) if isinstance(r, dict) else r for r in board]
    w = max([12, *(len(str(r.variant)) for r in board)])
    if board and isinstance(board[0], IntervalRow):
        _print_interval_board(board, w)
        return
    eth = any(r.ethnicity_gap is not None for r in board)
    print(f"{'variant':<{w}} {'MAE':>6} {'95% CI':>15} {'worst group (MAE)':>38} "
          f"{'eth. gap' if eth else 'attr. gap':>9} {'bin spread':>10}  rules")
    for r in board:
        wg = f"{r.worst_group} ({r.worst_group_mae:.2f})" if r.worst_group else "-"
        g = r.ethnicity_gap if eth else r.gap
        gap = f"{g:.2f}" if g is not None else "-"
        spread = f"{r.age_bin_spread:.2f}" if r.age_bin_spread is not None else "-"
        print(f"{r.variant:<{w}} {r.mae:>6.2f} {_ci(r.mae_ci):>15} {wg[:38]:>38} {gap:>9} {spread:>10}  "
              f"{r.rules_passed}/{r.rules}")


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def gates_text(summary: AuditSummary) -> str:
    """Per model and threshold gate: the group most often let through (its false pass, interval and n) and the
    largest difference between groups' buffers (the challenge age each needs), over the attribute groupings."""
    lines = []
    for v, entry in summary.variants.items():
        results = [r for r in entry.audit.gates if isinstance(r, ThresholdGateSummary)]
        for gate in dict.fromkeys(r.gate.name for r in results):
            by = [r for r in results if r.gate.name == gate and r.grouping != "overall"]
            fp = [(r, r.disparities["false_pass"]) for r in by if r.disparities["false_pass"].worst_group is not None]
            worst = "worst false pass n/a (fewer than 2 groups of adequate size)"
            if fp:
                r, d = max(fp, key=lambda x: x[1].worst)
                n = next(g.false_pass.n for g in r.groups if g.group == d.worst_group)
                worst = (f"worst false pass {_pct(d.worst)} [{_pct(d.worst_ci[0])}, {_pct(d.worst_ci[1])}] "
                         f"({d.worst_group}, n {n} minors)")
            gaps = [(r, k, d) for r in by for k, d in r.disparities.items()
                    if k.startswith("buffer_") and not math.isnan(d.difference)]
            gap = "buffer gap n/a"
            if gaps:
                r, k, d = max(gaps, key=lambda x: x[2].difference)
                gap = (f"largest buffer gap {d.difference:.1f} y for {100 * float(k[7:]):g}% "
                       f"({d.worst_group} needs {d.worst:.1f}, by {r.grouping})")
            lines.append(f"{v:<12} {gate:<14} {worst}; {gap}")
    return "\n".join(lines)


def verdict_text(summary: AuditSummary) -> str:
    """The verdict in words: per criterion the credibly best model or that none is, then the differences against
    the reference that matter (beyond the margin, significant after BH adjustment) and how many do not."""
    v = summary.verdict
    if v.legacy:  # a summary written before verdicts were decided with evidence
        return "; ".join(f"{k.replace('_', ' ')}: {x}" for k, x in v.legacy.items())
    lines = [f"verdict (paired comparisons against {v.reference}):" if v.reference else "verdict:"]
    lines += [f"  {s}" for s in v.statements]
    if v.note:
        lines.append(f"  {v.note}")
    if v.differences:
        shown = v.differences[:DIFFERENCES_SHOWN]
        lines.append(f"differences beyond the margin (Benjamini-Hochberg adjusted), {len(v.differences)}:")
        lines += [f"  {s}" for s in shown]
        if len(v.differences) > len(shown):
            lines.append(f"  ... {len(v.differences) - len(shown)} more in the report's Paired comparisons section")
    elif v.best:
        lines.append("  no difference against the reference is larger than the margin")
    if v.counts:
        c = v.counts
        lines.append(f"  of {sum(c.values())} comparisons: {c.get('worse', 0)} worse and {c.get('better', 0)} better by "
                     f"more than the margin, {c.get('equivalent', 0)} practically equivalent, {c.get('unclear', 0)} "
                     "can't tell")
    return "\n".join(lines).replace("`", "")


def _missing(x: float | None) -> bool:
    return x is None or math.isnan(x)


def thresholds_text(rows: list[Check], only_failed: bool = False) -> str:
    """Plain-text table of summary.json's threshold checks: variant, rule, group, value, 95% interval,
    threshold, verdict."""
    shown = [r for r in rows if not (only_failed and r.passed)]
    head = f"{'variant':<12} {'rule':<34} {'group':<28} {'value':>8} {'interval':>17} {'threshold':>14}  verdict"
    lines = [head, "-" * len(head)]
    for r in shown:
        ci = "" if not r.ci or any(_missing(x) for x in r.ci) else f"[{r.ci[0]:.2f}, {r.ci[1]:.2f}]"
        value = "n/a" if _missing(r.value) else f"{r.value:.3f}"
        judged = "" if r.judge == "point" else f" ({r.judge})"
        lines.append(f"{r.variant:<12} {r.rule[:34]:<34} {r.group[:28]:<28} {value:>8} {ci:>17} "
                     f"{r.op + ' ' + format(r.threshold, 'g') + judged:>14}  {'pass' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def finding_text(r: Check) -> str:
    """One failed threshold check on one line (the closing summary of python -m agefair.run), e.g.
    ``bmse: mae value 8.32 > 8`` or ``baseline: mae difference by gender (female vs male) 1.71 > 1.5 (interval's
    lower end)``."""
    group, _, weak = (r.group or "").partition("; underpowered: ")
    where = "" if group in ("", "all", "overall") else f" ({group})"
    judged = r.value if r.judge == "point" else r.judged_value
    if _missing(judged) or _missing(r.threshold):
        return f"{r.variant}: {r.rule}{where} could not be computed"
    by = "" if r.judge == "point" else f" (interval's {'lower' if r.judge == 'ci_lower' else 'upper'} end)"
    holds = judged <= r.threshold if r.op == "<=" else judged >= r.threshold
    sign = r.op if holds else {"<=": ">", ">=": "<"}.get(r.op, f"not {r.op}")
    text = f"{r.variant}: {r.rule}{where} {judged:.2f} {sign} {r.threshold:g}{by}"
    return f"{text}; underpowered: {weak}" if weak else text


def fmt_condition(r: GapRow | RobustnessCheck) -> str:
    return f"{r.corruption} {r.severity}"


def _f(x: float | None) -> float:
    return math.nan if x is None else x


def robustness_table_text(result: RobustnessResult) -> str:
    """Per variant: clean MAE, then MAE per corruption (columns: severities)."""
    sev = result.severities
    lines = []
    for v, res in result.variants.items():
        lines.append(f"{v}: clean MAE {_f(res.clean.mae):.2f}")
        lines.append(f"  {'corruption':<16}" + "".join(f"{'sev ' + str(s):>8}" for s in sev))
        by = {(c.corruption, c.severity): _f(c.mae) for c in res.conditions}
        for name in result.corruptions:
            lines.append(f"  {name:<16}" + "".join(f"{by.get((name, s), math.nan):>8.2f}" for s in sev))
    return "\n".join(lines)


def gaps_text(rows: list[GapRow]) -> str:
    head = (f"{'variant':<12} {'corruption':<18} {'grouping':<10} {'worst group (MAE)':<24} {'best group (MAE)':<24} "
            f"{'gap':>6} {'clean':>6} {'change':>7}")
    lines = [head]
    for r in rows:
        lines.append(f"{r.variant:<12} {fmt_condition(r):<18} {r.grouping:<10} "
                     f"{str(r.worst_group) + ' (' + format(_f(r.worst), '.2f') + ')':<24} "
                     f"{str(r.best_group) + ' (' + format(_f(r.best), '.2f') + ')':<24} "
                     f"{_f(r.gap):>6.2f} {_f(r.clean_gap):>6.2f} {_f(r.gap_increase):>+7.2f}")
    return "\n".join(lines)


def verdicts_text(rows: list[RobustnessCheck]) -> str:
    lines = []
    for r in rows:
        val = "n/a" if r.value is None else f"{r.value:.2f}"
        where = fmt_condition(r) if r.corruption else "-"
        lines.append(f"{r.variant:<12} {r.rule[:48]:<48} {where:<18} {str(r.group)[:28]:<28} {val:>7} "
                     f"<= {r.threshold:g}  {'pass' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def print_result(result: RobustnessResult, json_path: Path, csv_path: Path) -> int:
    print(robustness_table_text(result))
    print("\nlargest increases of the worst-minus-best group MAE gap under a corruption:")
    print(gaps_text(result.largest_gaps[:5]))
    t = result.timings
    print(f"wrote {json_path}, {csv_path} in {t['seconds']:.0f} s ({result.n_images} images, "
          f"{t['images_predicted']:,} predictions, {t['cached_conditions']} conditions from cache)")
    if result.thresholds:
        if not result.passed:
            print("\nrobustness thresholds FAILED:")
            print(verdicts_text([r for r in result.thresholds if not r.passed]))
            return 1
        print(f"all {len(result.thresholds)} robustness checks passed")
    return 0


def training_table_text(summaries: list[dict]) -> str:
    """One line per trained variant: best validation MAE, its epoch, epochs run, training time."""
    lines = ["variant      best val MAE  epoch  epochs  time"]
    for s in summaries:
        lines.append(f"{s['variant']:<12} {s['best_val_mae']:>12.3f}  {s['best_epoch']:>5}  {s['epochs_run']:>6}  "
                     f"{format_seconds(s['seconds'])}")
    return "\n".join(lines)


def eda_text(eda, out: Path) -> str:
    """What python -m agefair.eda prints: the data-quality summary, the split counts, the files written."""
    pngs = (f", {', '.join(str(out / p) for p in eda.pngs)}" if eda.pngs else " (no PNGs: no Chromium for kaleido)")
    return f"{eda.summary}\n\n{eda.split_text}\n\nwrote {out / PAGE}, {out / QUALITY_JSON}, {out / QUALITY_TXT}{pngs}"
