"""Turning per-variant audits into the report's summary: leaderboard, verdict, error by age.

Plain data in, plain data out (no torch), so the report and its tests need only this and metrics.
"""

from __future__ import annotations

import math

import pandas as pd


def by_age(pred: pd.DataFrame) -> list[dict]:
    """MAE and mean signed error per true age (for the 'error by age' chart)."""
    g = pred.assign(err=pred["pred"] - pred["age"]).groupby("age")["err"]
    return [{"age": int(a), "n": int(len(e)), "mae": float(e.abs().mean()), "bias": float(e.mean())} for a, e in g]


def nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj


def leaderboard(audits: dict[str, dict], verdicts: list[dict]) -> list[dict]:
    rows = []
    for v, a in audits.items():
        eth = a["groupings"].get("ethnicity", {}).get("disparity", {}).get("mae", {})
        worst = {}
        for name, g in a["groupings"].items():  # the worst eligible group over all groupings
            d = g["disparity"].get("mae")
            if d and (not worst or d["worst"] > worst["value"]):
                worst = {"value": d["worst"], "ci": d["worst_ci"], "group": f"{name}: {d['worst_group']}"}
        mine = [r for r in verdicts if r["variant"] == v]
        rows.append({
            "variant": v, "mae": a["overall"]["mae"]["value"], "mae_ci": a["overall"]["mae"]["ci"],
            "cs5": a["overall"]["cs5"]["value"], "bias": a["overall"]["bias"]["value"],
            "worst_group": worst.get("group"), "worst_group_mae": worst.get("value"), "worst_group_ci": worst.get("ci"),
            "ethnicity_gap": eth.get("difference"), "ethnicity_gap_ci": eth.get("difference_ci"),
            "age_bin_spread": a.get("age_bin_spread"),
            "rules_passed": sum(r["passed"] for r in mine), "rules": len(mine),
        })
    return rows


def verdict(board: list[dict]) -> dict:
    """Which variant is most accurate and which is fairest, by the leaderboard's point estimates."""
    def best(key):
        vals = [(r[key], r["variant"]) for r in board if r.get(key) is not None and not math.isnan(r[key])]
        return min(vals)[1] if vals else None
    return {"most_accurate": best("mae"), "smallest_worst_group_mae": best("worst_group_mae"),
            "smallest_ethnicity_gap": best("ethnicity_gap"), "smallest_age_bin_spread": best("age_bin_spread")}
