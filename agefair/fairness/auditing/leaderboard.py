"""Turning per-variant audits into the report's summary: leaderboard, verdict, error by age.

The audits' dicts in, typed leaderboard rows (agefair.fairness.results.summary) out; no torch, so the report's
tests need only this and metrics.
"""

from __future__ import annotations

import math

import pandas as pd

from agefair.fairness.results.result import ExactRow, IntervalRow, nan_to_none  # noqa: F401  (nan_to_none: it was defined here)


def by_age(pred: pd.DataFrame) -> list[dict]:
    """MAE and mean signed error per true age (for the 'error by age' chart)."""
    g = pred.assign(err=pred["pred"] - pred["age"]).groupby("age")["err"]
    return [{"age": int(a), "n": int(len(e)), "mae": float(e.abs().mean()), "bias": float(e.mean())} for a, e in g]


def _worst(a: dict, metric: str) -> dict:
    """The worst eligible group for ``metric`` over all groupings of one audit."""
    worst: dict = {}
    for name, g in a["groupings"].items():
        d = g["disparity"].get(metric)
        if d and (not worst or d["worst"] > worst["value"]):
            worst = {"value": d["worst"], "ci": d["worst_ci"], "group": f"{name}: {d['worst_group']}"}
    return worst


def _largest_gap(a: dict, metric: str) -> dict:
    """The sensitive attribute whose groups differ most in ``metric`` (difference worst - best)."""
    gap: dict = {}
    for name in a.get("attributes", []):
        d = a["groupings"].get(name, {}).get("disparity", {}).get(metric)
        if d and d["difference"] == d["difference"] and (not gap or d["difference"] > gap["value"]):
            gap = {"grouping": name, "value": d["difference"], "ci": d["difference_ci"]}
    return gap


def _interval_row(v: str, a: dict, mine: list[dict]) -> IntervalRow:
    o = a["overall"]
    worst, gap = _worst(a, "dist"), _largest_gap(a, "dist")
    return IntervalRow(
        variant=v, labels="interval", n=o["n"]["value"],
        in_group=o["in_group"]["value"], in_group_ci=o["in_group"]["ci"],
        dist=o["dist"]["value"], dist_ci=o["dist"]["ci"], signed=o["signed"]["value"],
        too_old=o["too_old"]["value"], too_young=o["too_young"]["value"],
        worst_group=worst.get("group"), worst_group_dist=worst.get("value"), worst_group_ci=worst.get("ci"),
        gap_grouping=gap.get("grouping"), gap=gap.get("value"), gap_ci=gap.get("ci"),
        rules_passed=sum(r["passed"] for r in mine), rules=len(mine),
    )


def _exact_row(v: str, a: dict, mine: list[dict]) -> ExactRow:
    o = a["overall"]
    eth = a["groupings"].get("ethnicity", {}).get("disparity", {}).get("mae", {})
    worst, gap = _worst(a, "mae"), _largest_gap(a, "mae")
    return ExactRow(
        variant=v, mae=o["mae"]["value"], mae_ci=o["mae"]["ci"], cs5=o["cs5"]["value"], bias=o["bias"]["value"],
        worst_group=worst.get("group"), worst_group_mae=worst.get("value"), worst_group_ci=worst.get("ci"),
        ethnicity_gap=eth.get("difference"), ethnicity_gap_ci=eth.get("difference_ci"),
        age_bin_spread=a.get("age_bin_spread"),
        gap_grouping=gap.get("grouping"), gap=gap.get("value"), gap_ci=gap.get("ci"),
        rules_passed=sum(r["passed"] for r in mine), rules=len(mine),
    )


_ROWS = {"exact": _exact_row, "interval": _interval_row}  # by the audit's labels


def leaderboard(audits: dict[str, dict], verdicts: list[dict]) -> list[ExactRow | IntervalRow]:
    """One typed row per audited variant (``audits``: metrics.audit_variant's dicts), with its rules passed."""
    return [_ROWS[a.get("labels", "exact")](v, a, [r for r in verdicts if r["variant"] == v])
            for v, a in audits.items()]


def verdict(board: list[ExactRow | IntervalRow]) -> dict:
    """Which variant is most accurate and which is fairest, by the leaderboard's point estimates: the verdict of
    summaries written before issue 14 (the audit now decides with evidence: agefair.fairness.auditing.decisions)."""
    def best(key, sign=1):
        vals = [(sign * x, r.variant) for r in board if (x := getattr(r, key)) is not None and not math.isnan(x)]
        return min(vals)[1] if vals else None
    if board and all(isinstance(r, IntervalRow) for r in board):
        return {"most_accurate": best("dist"), "most_in_group": best("in_group", -1),
                "smallest_worst_group_dist": best("worst_group_dist"), "smallest_attribute_gap": best("gap")}
    if board and all(r.ethnicity_gap is None for r in board):  # a dataset without UTKFace's ethnicity
        return {"most_accurate": best("mae"), "smallest_worst_group_mae": best("worst_group_mae"),
                "smallest_attribute_gap": best("gap"), "smallest_age_bin_spread": best("age_bin_spread")}
    return {"most_accurate": best("mae"), "smallest_worst_group_mae": best("worst_group_mae"),
            "smallest_ethnicity_gap": best("ethnicity_gap"), "smallest_age_bin_spread": best("age_bin_spread")}
