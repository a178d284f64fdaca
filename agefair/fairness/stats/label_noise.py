"""Label-noise suspects: rows where every model is far from the label and the models agree.

A wrong age label shows up as a large error for *every* model, with the models agreeing on another
age. A row is flagged when, for all models,

    |pred - age| > max(k_years, k_rel * age)

(default 15 years, or 30% of the labelled age when that is larger: errors grow with age, so a
70-year-old needs 21 years), and the spread of the models' predictions (max - min) is below
``max_spread`` years (default 5). With age-group labels (``age_lo``/``age_hi``) the error is the
distance to the labelled interval and the relative threshold uses ``age_lo``.

Flagged rows are never dropped silently: ``label_noise_suspects`` returns them with a sensitivity
table, each model's MAE per group and each grouping's gap (worst - best over groups with ``n >=
min_group_size`` on all rows) with and without the flagged rows. A flag is a suspicion to check by
eye, not a verdict: with one model, or models trained alike, agreement is weak evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from agefair.fairness.engine.resampling import as_labels, to_json_value
from agefair.fairness.stats.compare import row_errors


@dataclass(frozen=True)
class Suspect:
    row: int  # position in the input arrays
    age: float  # the label (age_lo for interval labels)
    mean_pred: float
    spread: float  # max - min of the models' predictions
    min_abs_error: float  # the smallest |error| over models


@dataclass(frozen=True)
class SensitivityRow:
    model: str
    grouping: str | None  # None: overall
    group: str | None  # None: the gap of the grouping (or overall)
    statistic: str  # 'mae' (or 'dist') | 'gap'
    n: int
    n_flagged: int
    with_flagged: float
    without_flagged: float

    @property
    def change(self) -> float:
        return self.without_flagged - self.with_flagged


@dataclass(frozen=True)
class LabelNoise:
    rule: dict  # k_years, k_rel, max_spread, models
    suspects: tuple[Suspect, ...]
    sensitivity: tuple[SensitivityRow, ...]

    @property
    def rows(self) -> np.ndarray:
        return np.array([s.row for s in self.suspects], dtype=int)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame([asdict(r) for r in self.sensitivity])
        return df.assign(change=df["without_flagged"] - df["with_flagged"]) if len(df) else df

    def to_json(self) -> dict:
        return to_json_value({"rule": self.rule, "suspects": [asdict(s) for s in self.suspects],
                              "sensitivity": [asdict(r) | {"change": r.change} for r in self.sensitivity]})


def flag_suspects(*, preds: Mapping[str, object], age=None, age_lo=None, age_hi=None, k_years: float = 15.0,
                  k_rel: float = 0.3, max_spread: float = 5.0) -> np.ndarray:
    """Boolean mask of the rows every model misses by more than max(k_years, k_rel * age) while
    the models' predictions lie within ``max_spread`` years of each other."""
    if not preds:
        raise ValueError("give at least one model's predictions")
    p = np.vstack([np.asarray(v, float) for v in preds.values()])
    err = np.vstack([row_errors(pred=v, age=age, age_lo=age_lo, age_hi=age_hi)[0] for v in p])
    label = np.asarray(age if age is not None else age_lo, float)
    far = np.abs(err) > np.maximum(k_years, k_rel * label)
    return far.all(axis=0) & (p.max(axis=0) - p.min(axis=0) < max_spread)


def _mae_rows(model, grouping, labels, abs_err, flagged, min_group_size, metric) -> list[SensitivityRow]:
    out, with_, without, ns = [], {}, {}, {}
    for g in sorted({x for x in labels if x is not None}):
        inside = labels == g
        keep = inside & ~flagged
        ns[g] = int(inside.sum())
        with_[g] = float(abs_err[inside].mean())
        without[g] = float(abs_err[keep].mean()) if keep.any() else float("nan")
        out.append(SensitivityRow(model, grouping, g, metric, ns[g], int((inside & flagged).sum()), with_[g],
                                  without[g]))
    eligible = [g for g in ns if ns[g] >= min_group_size]
    if grouping is not None and len(eligible) >= 2:
        def gap(d):
            v = np.array([d[g] for g in eligible])
            v = v[np.isfinite(v)]
            return float(v.max() - v.min()) if len(v) >= 2 else float("nan")
        n_e = sum(ns[g] for g in eligible)
        n_f = int(sum((labels == g).astype(bool)[flagged].sum() for g in eligible))
        out.append(SensitivityRow(model, grouping, None, "gap", n_e, n_f, gap(with_), gap(without)))
    return out


def label_noise_suspects(*, preds: Mapping[str, object], age=None, age_lo=None, age_hi=None,
                         groupings: Mapping[str, object] | None = None, k_years: float = 15.0, k_rel: float = 0.3,
                         max_spread: float = 5.0, min_group_size: int = 30) -> LabelNoise:
    """The flagged rows and, per model, overall and per-group MAE and per-grouping gap with and
    without them (``preds``: model name -> predictions on the same rows)."""
    flagged = flag_suspects(preds=preds, age=age, age_lo=age_lo, age_hi=age_hi, k_years=k_years, k_rel=k_rel,
                            max_spread=max_spread)
    p = np.vstack([np.asarray(v, float) for v in preds.values()])
    errs = {k: row_errors(pred=v, age=age, age_lo=age_lo, age_hi=age_hi) for k, v in preds.items()}
    label = np.asarray(age if age is not None else age_lo, float)
    suspects = tuple(Suspect(int(i), float(label[i]), float(p[:, i].mean()), float(np.ptp(p[:, i])),
                             float(min(abs(e[0][i]) for e in errs.values())))
                     for i in np.flatnonzero(flagged))
    n = p.shape[1]
    blocks = {None: np.full(n, "all", dtype=object)} | {k: as_labels(v) for k, v in (groupings or {}).items()}
    rows = []
    for model, (err, metric) in errs.items():
        for name, labels in blocks.items():
            part = _mae_rows(model, name, labels, np.abs(err), flagged, min_group_size, metric)
            rows += [replace_group(r) for r in part] if name is None else part
    rule = {"k_years": k_years, "k_rel": k_rel, "max_spread": max_spread, "models": list(preds),
            "n_rows": n, "n_flagged": int(flagged.sum())}
    return LabelNoise(rule, suspects, tuple(rows))


def replace_group(r: SensitivityRow) -> SensitivityRow:
    """The overall row: no grouping, no group."""
    return SensitivityRow(r.model, None, None, r.statistic, r.n, r.n_flagged, r.with_flagged, r.without_flagged)
