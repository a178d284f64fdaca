"""Grouped error metrics with bootstrap intervals, through fairlearn's MetricFrame.

For each grouping (age bin, gender, ethnicity, intersections, many/medium/few-shot ages) one
MetricFrame computes MAE, RMSE, mean signed error (bias: + means too old), CS@5 and n per group,
and the differences and ratios between groups. 95% percentile-bootstrap intervals come either from
MetricFrame's own ``n_boot`` / ``ci_quantiles`` (``bootstrap: fairlearn``; about 0.1 s per
resample and grouping on 2 cores, so 1,000 resamples of four variants take over an hour) or, by
default, from the same resampling scheme vectorised with numpy (``bootstrap: vectorized``;
1,000 resamples in milliseconds; tests check both give the same intervals).
Disparities (worst and best group, difference and ratio between groups) are computed over the
groups with at least ``min_group_size`` samples: smaller groups are reported and flagged, but
never decide a verdict.

Datasets labelled with age groups only (``20-29``, ``70+``: columns ``age_lo`` / ``age_hi``, see
agefair.data.age_groups) get interval metrics instead, through the same MetricFrame (``y_true`` is
the (n, 2) array of interval ends), bootstrap and disparities: ``in_group`` (share of predictions
inside the labelled group), ``dist`` (mean distance in years from the prediction to the group, 0
inside), ``signed`` (mean signed distance: + too old), ``too_old`` and ``too_young`` (shares above
and below the group).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count

from agefair.data.age_groups import interval_error
from agefair.fairness.engine.cell_state import CellState
from agefair.fairness.engine.keyed_draws import unit_keys
from agefair.fairness.engine.resampling import scheme_of, units_of
from agefair.fairness.stats.specs import (  # noqa: F401  (METRIC_NAMES, INTERVAL_METRIC_NAMES: re-exported)
    AGE_GROUPINGS,
    INTERVAL_METRIC_NAMES,
    LABEL_METRICS,
    LOWER_IS_BETTER,
    METRIC_NAMES,
    SIGNED,
)

GROUPINGS: dict[str, list[str]] = {
    "age_bin": ["age_bin"],
    "gender": ["gender"],
    "ethnicity": ["ethnicity"],
    "gender x ethnicity": ["gender", "ethnicity"],
    "age_bin x ethnicity": ["age_bin", "ethnicity"],
    "shot": ["shot"],
}


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred) - np.asarray(y_true))))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_pred) - np.asarray(y_true)) ** 2)))


def bias(y_true, y_pred) -> float:
    """Mean signed error: positive when the model over-estimates age."""
    return float(np.mean(np.asarray(y_pred) - np.asarray(y_true)))


def cs5(y_true, y_pred) -> float:
    """Cumulative score at 5 years: share of predictions within 5 years of the truth."""
    return float(np.mean(np.abs(np.asarray(y_pred) - np.asarray(y_true)) <= 5))


METRICS = {"mae": mae, "rmse": rmse, "bias": bias, "cs5": cs5, "n": count}


def _interval_err(y_true, y_pred) -> np.ndarray:
    lohi = np.asarray(y_true, dtype=float).reshape(-1, 2)
    return interval_error(lohi[:, 0], lohi[:, 1], np.asarray(y_pred, dtype=float).reshape(-1))


def in_group(y_true, y_pred) -> float:
    """Share of predictions inside the labelled age group (``y_true``: (n, 2) interval ends)."""
    return float(np.mean(_interval_err(y_true, y_pred) == 0))


def dist(y_true, y_pred) -> float:
    """Mean distance in years from the prediction to the labelled age group (0 inside)."""
    return float(np.mean(np.abs(_interval_err(y_true, y_pred))))


def signed(y_true, y_pred) -> float:
    """Mean signed distance to the age group: positive when predictions fall above it (too old)."""
    return float(np.mean(_interval_err(y_true, y_pred)))


def too_old(y_true, y_pred) -> float:
    return float(np.mean(_interval_err(y_true, y_pred) > 0))


def too_young(y_true, y_pred) -> float:
    return float(np.mean(_interval_err(y_true, y_pred) < 0))


INTERVAL_METRICS = {"in_group": in_group, "dist": dist, "signed": signed, "too_old": too_old,
                    "too_young": too_young, "n": count}

# Each metric is the group mean of a per-row value of the error e (rmse: the root of that mean);
# the vectorised bootstrap resamples these values.
_ROW_VALUES = {
    "mae": np.abs, "rmse": np.square, "bias": lambda e: e, "cs5": lambda e: (np.abs(e) <= 5).astype(float),
    "in_group": lambda e: (e == 0).astype(float), "dist": np.abs, "signed": lambda e: e,
    "too_old": lambda e: (e > 0).astype(float), "too_young": lambda e: (e < 0).astype(float),
}


def label_kind(pred: pd.DataFrame) -> str:
    """'interval' for predictions labelled with age groups only (age_lo / age_hi, no age), else 'exact'."""
    return "interval" if "age" not in pred.columns and {"age_lo", "age_hi"} <= set(pred.columns) else "exact"


def errors(pred: pd.DataFrame) -> np.ndarray:
    """Prediction minus true age, or the signed distance to the labelled age group."""
    if label_kind(pred) == "interval":
        return interval_error(pred["age_lo"], pred["age_hi"], pred["pred"])
    return (pred["pred"] - pred["age"]).to_numpy(float)


def shot_labels(true_ages: np.ndarray, train_ages: np.ndarray, many: int = 100, few: int = 20) -> np.ndarray:
    """'many' (> many training images of that integer age), 'few' (< few) or 'medium'."""
    counts = np.bincount(np.asarray(train_ages, dtype=int), minlength=200)
    c = counts[np.clip(np.rint(true_ages).astype(int), 0, len(counts) - 1)]
    return np.where(c > many, "many", np.where(c < few, "few", "medium"))


@dataclass(frozen=True)
class AuditSettings:
    n_boot: int = 1000
    ci_level: float = 0.95
    seed: int = 0
    min_group_size: int = 30
    bootstrap: str = "auto"  # multinomial ("vectorized") up to 100,000 units, Poisson above; "fairlearn": MetricFrame's

    @property
    def quantiles(self) -> list[float]:
        a = (1 - self.ci_level) / 2
        return [a, 1 - a]


def group_key(idx) -> str:
    return " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)


def _metric_frame(pred: pd.DataFrame, features: pd.DataFrame, s: AuditSettings, boot: bool) -> MetricFrame:
    kwargs = {"n_boot": s.n_boot, "ci_quantiles": s.quantiles, "random_state": s.seed} if boot else {}
    if label_kind(pred) == "interval":
        return MetricFrame(metrics=INTERVAL_METRICS, y_true=pred[["age_lo", "age_hi"]].to_numpy(float),
                           y_pred=pred["pred"].to_numpy(float), sensitive_features=features, **kwargs)
    return MetricFrame(metrics=METRICS, y_true=pred["age"].to_numpy(float), y_pred=pred["pred"].to_numpy(float),
                       sensitive_features=features, **kwargs)


def bootstrap_group_metrics(err: np.ndarray, codes: np.ndarray, n_groups: int, n_boot: int, seed: int,
                            metrics: tuple[str, ...] = METRIC_NAMES, scheme: str = "vectorized") -> dict:
    """Bootstrap replicates of each group's metrics, (n_boot, n_groups) per metric.

    Same scheme as MetricFrame's bootstrap (resample all rows with replacement, recompute every
    group's metric; ``scheme="poisson"``: Poisson(1) row weights), drawn in chunks of replicates
    (agefair.fairness.engine.resampling.weight_chunks) and summed per group with a sparse product, so memory
    stays bounded whatever n_boot x n. Rows with a code outside [0, n_groups) are in no group.
    """
    codes = np.asarray(codes, np.int64)
    state = CellState.of_rows(pd.DataFrame({"g": codes}), {m: _ROW_VALUES[m](err) for m in metrics},
                              n_boot=n_boot, seed=seed, scheme=scheme)
    of_cell = state.labels["g"].to_numpy(np.int64)
    ok = (of_cell >= 0) & (of_cell < n_groups)
    onehot = np.zeros((len(of_cell), n_groups))
    onehot[np.flatnonzero(ok), of_cell[ok]] = 1
    return _means(np.einsum("bfk,fg->bgk", state.boot, onehot), state.values)


def _means(sums: np.ndarray, metrics: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each metric from (..., 1 + len(metrics)) sums: the value's sum over the row count (rmse: its root)."""
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, m in enumerate(metrics):
            out[m] = sums[..., 1 + i] / sums[..., 0]
        if "rmse" in out:
            out["rmse"] = np.sqrt(out["rmse"])
    return out


def metric_state(pred: pd.DataFrame, columns: list[str], s: AuditSettings) -> CellState:
    """The frame's grouped-metric state: per finest cell of ``columns``, the row count and each metric's
    per-row value summed, at the point and in each of ``s.n_boot`` replicates (rows keyed by their ids under
    ``bootstrap: poisson``, so that states of other rows merge with it)."""
    scheme = scheme_of(s.bootstrap, len(pred))
    keys = unit_keys(units_of(pred).ids) if scheme == "poisson" else None
    err = errors(pred)
    labels = pred[list(columns)].reset_index(drop=True)
    values = {m: _ROW_VALUES[m](err) for m in LABEL_METRICS[label_kind(pred)]}
    return CellState.of_rows(labels, values, n_boot=s.n_boot, seed=s.seed, scheme=scheme, keys=keys)


def groups_from_state(state: CellState, columns: list[str], s: AuditSettings) -> dict:
    """Per-group metrics with intervals and the disparity summary of ``columns``, from a state alone."""
    sums = state.grouped(columns)
    names = [group_key(i) for i in sums.index]
    point = _means(sums.point, state.values)
    boot = _means(sums.boot, state.values) if sums.boot is not None else None
    groups = []
    for j, name in enumerate(names):
        n = int(round(float(sums.point[j, 0])))
        g = {"group": name, "n": n, "small": bool(n < s.min_group_size)}
        for m in state.values:
            lo, hi = _quantiles(boot[m][:, j], s.quantiles) if boot is not None else (float("nan"),) * 2
            g[m] = {"value": float(point[m][j]), "ci": [float(lo), float(hi)]}
        groups.append(g)
    return {"columns": list(columns), "groups": groups,
            "disparity": _disparity(None, columns, s, groups, None, None, boot, state.values)}


def group_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's group name: its values of ``columns`` joined with ' / ' (vectorised string concat)."""
    keys = frame[columns[0]].astype(str)
    for c in columns[1:]:
        keys = keys + " / " + frame[c].astype(str)
    return keys.to_numpy(dtype=object)


def _quantiles(samples: np.ndarray, q: list[float]) -> np.ndarray:
    """Quantiles over axis 0, ignoring resamples in which a group was absent."""
    with warnings.catch_warnings():  # an all-NaN column (group never drawn) warns, and yields NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(samples, q, axis=0)


def _between(values: np.ndarray) -> tuple[float, float]:
    """MetricFrame's difference and ratio between groups: max - min and min / max (NaN ignored)."""
    with np.errstate(all="ignore"):
        return float(np.nanmax(values) - np.nanmin(values)), float(np.nanmin(values) / np.nanmax(values))


def grouped_metrics(pred: pd.DataFrame, columns: list[str], s: AuditSettings, shared: CellState | None = None) -> dict:
    """Per-group metrics with intervals, plus the disparity summary over groups of adequate size
    (``shared``: the frame's ``metric_state`` over these columns and others, drawn once for every grouping).

    ``bootstrap: fairlearn`` computes everything through MetricFrame (its own n_boot); the other
    schemes compute the same point values from the state's per-cell sums (MetricFrame builds per-row lists:
    about 2 s per grouping at 100,000 rows) and the intervals from its replicate sums."""
    if s.bootstrap != "fairlearn":
        return groups_from_state(shared if shared is not None else metric_state(pred, columns, s), columns, s)
    use_fairlearn_boot = s.n_boot > 0
    metric_names = LABEL_METRICS[label_kind(pred)]
    mf = _metric_frame(pred, pred[columns], s, use_fairlearn_boot)
    by = mf.by_group.dropna(subset=["n"])
    by = by[by["n"] > 0]
    names = [group_key(i) for i in by.index]
    codes = pd.Categorical(group_keys(pred, columns), categories=names).codes.astype(np.int64)
    groups = []
    for j, (idx, row) in enumerate(by.iterrows()):
        g = {"group": names[j], "n": int(row["n"]), "small": bool(row["n"] < s.min_group_size)}
        for m in metric_names:
            lo, hi = ((float(f.loc[idx, m]) for f in mf.by_group_ci) if use_fairlearn_boot
                      else (float("nan"), float("nan")))
            g[m] = {"value": float(row[m]), "ci": [float(lo), float(hi)]}
        groups.append(g)
    disparity = _disparity(pred, columns, s, groups, codes, mf, None, metric_names)
    return {"columns": columns, "groups": groups, "disparity": disparity}


def _disparity(pred, columns, s: AuditSettings, groups: list[dict], codes: np.ndarray, mf: MetricFrame | None,
               boot: dict | None, metric_names) -> dict:
    """Worst and best group, difference and ratio with intervals, over the groups of adequate size."""
    eligible = [j for j, g in enumerate(groups) if not g["small"]]
    disparity: dict = {"eligible_groups": len(eligible), "flagged_small_groups": len(groups) - len(eligible)}
    if len(eligible) < 2:
        return disparity
    mf_e = None
    if mf is not None:
        rows = np.isin(codes, eligible)
        mf_e = mf if len(eligible) == len(groups) else _metric_frame(pred[rows], pred[columns][rows], s,
                                                                       s.n_boot > 0)
        diff, ratio = mf_e.difference(method="between_groups"), mf_e.ratio(method="between_groups")
    for m in metric_names:
        values = {groups[j]["group"]: groups[j][m]["value"] for j in eligible}
        score = {k: abs(v) for k, v in values.items()} if m in SIGNED else values
        worst = (max if LOWER_IS_BETTER[m] else min)(score, key=score.get)
        best = (min if LOWER_IS_BETTER[m] else max)(score, key=score.get)
        d, r = (float(diff[m]), float(ratio[m])) if mf_e is not None else _between(np.array(list(values.values())))
        if boot is not None:
            sub = boot[m][:, eligible]
            with np.errstate(all="ignore"):
                d_samples = np.nanmax(sub, axis=1) - np.nanmin(sub, axis=1)
                r_samples = np.nanmin(sub, axis=1) / np.nanmax(sub, axis=1)
            d_ci = [float(x) for x in _quantiles(d_samples, s.quantiles)]
            r_ci = [float(x) for x in _quantiles(r_samples, s.quantiles)]
        elif mf_e is not None and s.n_boot > 0:
            d_ci = [float(f[m]) for f in mf_e.difference_ci(method="between_groups")]
            r_ci = [float(f[m]) for f in mf_e.ratio_ci(method="between_groups")]
        else:
            d_ci = r_ci = [float("nan")] * 2
        disparity[m] = {
            "worst_group": worst, "worst": values[worst],
            "worst_ci": next(g[m]["ci"] for g in groups if g["group"] == worst),
            "best_group": best, "best": values[best],
            "difference": d, "difference_ci": d_ci, "ratio": r, "ratio_ci": r_ci,
        }
    return disparity


def overall_metrics(pred: pd.DataFrame, s: AuditSettings, shared: CellState | None = None) -> dict:
    """Overall metrics with intervals: the grouped computation over a single group."""
    if s.bootstrap != "fairlearn":
        return _overall(shared if shared is not None else metric_state(pred, [], s), s)
    one = grouped_metrics(pred.assign(_all="all"), ["_all"], s, shared)["groups"][0]
    return {m: one[m] for m in LABEL_METRICS[label_kind(pred)]} | {"n": {"value": one["n"], "ci": [float("nan")] * 2}}


def _overall(state: CellState, s: AuditSettings) -> dict:
    one = groups_from_state(state, [], s)["groups"][0]
    return {m: one[m] for m in state.values} | {"n": {"value": one["n"], "ci": [float("nan")] * 2}}


def age_bin_spread(groups: list[dict], min_group_size: int) -> float:
    """Standard deviation of per-age-bin MAE (Guess-The-Age 2021), over bins of adequate size."""
    values = [g["mae"]["value"] for g in groups if g["n"] >= min_group_size]
    return float(np.std(values)) if len(values) >= 2 else float("nan")


def attribute_groupings(groupings: dict[str, list[str]]) -> list[str]:
    """The groupings of one sensitive attribute (not the age grouping, not shot, not intersections)."""
    return [name for name, cols in groupings.items() if len(cols) == 1 and cols[0] not in (*AGE_GROUPINGS, "shot")]


def audit_variant(pred: pd.DataFrame, s: AuditSettings, groupings: dict[str, list[str]] = GROUPINGS) -> dict:
    """Every number of one variant's audit: overall, each grouping, the age-bin spread (exact ages).

    ``labels`` says which metrics were computed (exact ages or age-group intervals);
    ``attributes`` lists the groupings of one sensitive attribute (for ``grouping: every attribute``).
    """
    present = {name: cols for name, cols in groupings.items() if all(c in pred.columns for c in cols)}
    if s.bootstrap != "fairlearn":  # one state (one draw) for overall and every grouping
        return audit_from_state(variant_state(pred, s, groupings), s, groupings)
    out = {"overall": overall_metrics(pred, s), "groupings": {}}
    for name, cols in present.items():
        out["groupings"][name] = grouped_metrics(pred, cols, s)
    return _closing(out, label_kind(pred), s, groupings)


def variant_state(pred: pd.DataFrame, s: AuditSettings, groupings: dict[str, list[str]] = GROUPINGS) -> CellState:
    """``metric_state`` over every column of the groupings the frame has: what ``audit_from_state`` needs."""
    present = [cols for cols in groupings.values() if all(c in pred.columns for c in cols)]
    return metric_state(pred, list(dict.fromkeys(c for cols in present for c in cols)), s)


def audit_from_state(state: CellState, s: AuditSettings, groupings: dict[str, list[str]] = GROUPINGS) -> dict:
    """``audit_variant``'s numbers from a state alone (a model's ``variant_state``, or several merged)."""
    kind = next(k for k, names in LABEL_METRICS.items() if names == state.values)
    out = {"overall": _overall(state, s), "groupings": {}}
    for name, cols in groupings.items():
        if all(c in state.labels.columns for c in cols):
            out["groupings"][name] = groups_from_state(state, cols, s)
    return _closing(out, kind, s, groupings)


def _closing(out: dict, kind: str, s: AuditSettings, groupings: dict[str, list[str]]) -> dict:
    if kind == "exact" and "age_bin" in out["groupings"]:
        out["age_bin_spread"] = age_bin_spread(out["groupings"]["age_bin"]["groups"], s.min_group_size)
    out["labels"] = kind
    out["attributes"] = [g for g in attribute_groupings(groupings) if g in out["groupings"]]
    return out
