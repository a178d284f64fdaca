"""Judge an audit summary against the fairness thresholds of configs/fairness.yaml."""

from __future__ import annotations

import math

from agefair.config import ThresholdRule


def _measure(rule: ThresholdRule, audit: dict) -> tuple[str, float, list[float]]:
    """(group, value, interval) that ``rule`` looks at in one variant's audit."""
    nan2 = [math.nan, math.nan]
    if rule.metric == "age_bin_spread":
        return "age bins", float(audit.get("age_bin_spread", math.nan)), nan2
    if rule.grouping == "overall":
        m = audit["overall"][rule.metric]
        return "all", m["value"], m["ci"]
    grouping = audit["groupings"].get(rule.grouping)
    d = grouping["disparity"].get(rule.metric) if grouping else None
    if d is None:
        return "(fewer than 2 groups of adequate size)", math.nan, nan2
    if rule.statistic == "worst_group":
        return d["worst_group"], d["worst"], d["worst_ci"]
    if rule.statistic == "difference":
        return f"{d['worst_group']} vs {d['best_group']}", d["difference"], d["difference_ci"]
    return f"{d['worst_group']} vs {d['best_group']}", d["ratio"], d["ratio_ci"]


def judge(rules: list[ThresholdRule], audits: dict[str, dict]) -> list[dict]:
    """One row per (variant, rule): the value, its interval, the judged number and pass/fail.

    A rule whose number cannot be computed (NaN) fails: a gate that cannot be checked is not passed.
    """
    rows = []
    for variant, audit in audits.items():
        for rule in rules:
            group, value, ci = _measure(rule, audit)
            judged = {"point": value, "ci_lower": ci[0], "ci_upper": ci[1]}[rule.judge]
            if rule.max is not None:
                op, limit, ok = "<=", rule.max, judged <= rule.max
            else:
                op, limit, ok = ">=", rule.min, judged >= rule.min
            rows.append({
                "variant": variant, "rule": rule.label, "metric": rule.metric, "grouping": rule.grouping,
                "statistic": rule.statistic, "group": group, "value": value, "ci": list(ci), "judge": rule.judge,
                "judged_value": judged, "op": op, "threshold": limit, "passed": bool(ok and not math.isnan(judged)),
            })
    return rows


def table_text(rows: list[dict], only_failed: bool = False) -> str:
    """Plain-text table: variant, rule, group, value, 95% interval, threshold, verdict."""
    shown = [r for r in rows if not (only_failed and r["passed"])]
    head = f"{'variant':<12} {'rule':<34} {'group':<28} {'value':>8} {'interval':>17} {'threshold':>14}  verdict"
    lines = [head, "-" * len(head)]
    for r in shown:
        ci = "" if any(x is None or math.isnan(x) for x in r["ci"]) else f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        value = "n/a" if r["value"] is None or math.isnan(r["value"]) else f"{r['value']:.3f}"
        judged = "" if r["judge"] == "point" else f" ({r['judge']})"
        lines.append(f"{r['variant']:<12} {r['rule'][:34]:<34} {r['group'][:28]:<28} {value:>8} {ci:>17} "
                     f"{r['op'] + ' ' + format(r['threshold'], 'g') + judged:>14}  {'pass' if r['passed'] else 'FAIL'}")
    return "\n".join(lines)
