"""Per-person age intervals by split conformal prediction, marginal or group-conditional (Mondrian).

Fitted on validation predictions only (``calibrate`` takes no test data), applied to new rows
(``predict_intervals``), saved as JSON (``Calibration.to_json`` / ``save_calibration`` /
``load_calibration``); coverage on a test split is measured by agefair.fairness.stats.conformal_eval.

Scores (``score=``), each with the interval it gives for a new row:

- ``abs``: s = |y - ŷ|; interval ŷ ± q. One width for everybody (of a group, under Mondrian).
- ``scaled``: s = |y - ŷ| / max(σ̂, sigma_floor); interval ŷ ± q·max(σ̂, sigma_floor), where σ̂ is a
  per-row spread: given directly (``sigma=``), or the standard deviation of the expectation head's
  softmax over ages 0..max_age (``probs=``, see ``predictive_spread``). Intervals widen where the
  model is unsure. The floor (default 1 year) keeps a near one-hot softmax from giving a zero width.
- ``cdf``: conformalised quantiles of the softmax (CQR, Romano, Patterson & Candès 2019, on the
  predicted distribution): l̂, û = the α/2 and 1 - α/2 quantiles of the predicted CDF (integer ages);
  s = max(l̂ - y, y - û); interval [l̂ - q, û + q]. Asymmetric (e.g. near age 0); needs ``probs``.

Quantile rule: with n calibration scores, q = the ceil((n + 1)(1 - α))-th smallest; when that rank
exceeds n (n < 1/α - 1) q is infinite and the interval is the whole range. Under exchangeability
the coverage is at least 1 - α (and below 1 - α + 1/(n + 1) for continuous scores).

Mondrian (Vovk 2003; Romano, Barber, Sabatti & Candès 2020, "With malice toward none"): one q per
group of one grouping (e.g. ethnicity), so coverage holds within each group. A group with fewer than
``min_calibration_size`` calibration rows uses the marginal q instead and is recorded with
``fallback: true``; a group unseen at calibration gets the marginal q, flagged ``unseen`` per row.
Every interval is clipped to [0, max_age].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agefair.core.errors import AgefairError

ScoreKind = Literal["abs", "scaled", "cdf"]
CALIBRATION_VERSION = 1
M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- the predicted distribution

def _probs(probs, max_age: int | None = None) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise AgefairError(f"probabilities: expected an (n, max_age + 1) array, got shape {p.shape}")
    if max_age is not None and p.shape[1] != max_age + 1:
        raise AgefairError(f"probabilities: {p.shape[1]} columns, expected max_age + 1 = {max_age + 1}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise AgefairError("probabilities: negative or non-finite values")
    total = p.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise AgefairError("probabilities: a row sums to zero")
    return p / total


def expected_age(probs) -> np.ndarray:
    """The expectation head's prediction: Σ_k k·p_k over ages k = 0..max_age."""
    p = _probs(probs)
    return p @ np.arange(p.shape[1], dtype=float)


def predictive_spread(probs) -> np.ndarray:
    """σ̂ per row: the standard deviation of the predicted distribution over ages 0..max_age, in years."""
    p = _probs(probs)
    ages = np.arange(p.shape[1], dtype=float)
    mu = p @ ages
    return np.sqrt(np.maximum(p @ ages**2 - mu**2, 0.0))


def distribution_quantiles(probs, *, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The α/2 and 1 - α/2 quantiles of each row's predicted distribution (smallest age k with CDF(k) >= level)."""
    cdf = np.cumsum(_probs(probs), axis=1)
    top = cdf.shape[1] - 1
    lo = np.minimum((cdf < alpha / 2 - 1e-12).sum(axis=1), top)
    hi = np.minimum((cdf < 1 - alpha / 2 - 1e-12).sum(axis=1), top)
    return lo.astype(float), hi.astype(float)


# --------------------------------------------------------------------------- scores and the quantile

def _vector(x, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float).reshape(-1)
    if n is not None and len(a) != n:
        raise AgefairError(f"{name}: {len(a)} rows, expected {n}")
    if not np.all(np.isfinite(a)):
        raise AgefairError(f"{name}: missing or non-finite values")
    return a


def _spread(sigma, probs, n: int, floor: float) -> np.ndarray:
    if sigma is None and probs is None:
        raise AgefairError("score 'scaled' needs sigma (a per-row spread) or probs (the expectation head's softmax)")
    s = _vector(sigma, "sigma", n) if sigma is not None else predictive_spread(probs)
    if len(s) != n:
        raise AgefairError(f"probs: {len(s)} rows, expected {n}")
    if np.any(s < 0):
        raise AgefairError("sigma: negative values")
    return np.maximum(s, floor)


def _bounds(kind: str, pred, sigma, probs, alpha: float, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base low, base high, scale) per row: the interval is [low - q·scale, high + q·scale]."""
    if kind == "cdf":
        if probs is None:
            raise AgefairError("score 'cdf' needs probs (the expectation head's softmax over ages)")
        lo, hi = distribution_quantiles(probs, alpha=alpha)
        return lo, hi, np.ones_like(lo)
    p = _vector(pred, "pred")
    scale = _spread(sigma, probs, len(p), floor) if kind == "scaled" else np.ones_like(p)
    return p, p, scale


def conformity_scores(*, y, pred=None, score: ScoreKind = "abs", sigma=None, probs=None, alpha: float = 0.1,
                      sigma_floor: float = 1.0) -> np.ndarray:
    """Nonconformity scores of calibration rows (see the module docstring); larger means worse."""
    lo, hi, scale = _bounds(score, pred, sigma, probs, alpha, sigma_floor)
    yv = _vector(y, "y", len(lo))
    return np.maximum(lo - yv, yv - hi) / scale


def conformal_quantile(scores, *, alpha: float) -> float:
    """The ceil((n + 1)(1 - α))-th smallest score; infinite when that rank exceeds n."""
    s = np.sort(np.asarray(scores, dtype=float).reshape(-1))
    k = math.ceil((len(s) + 1) * (1 - alpha) - 1e-9)
    return float(s[k - 1]) if 1 <= k <= len(s) else math.inf


# --------------------------------------------------------------------------- the calibration (calibration.json)

class GroupQuantile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    n: int = Field(ge=0)  # calibration rows of this group
    quantile: float | None  # the q applied to this group; null: infinite (too few rows)
    fallback: bool  # n < min_calibration_size: quantile is the marginal one


class Calibration(BaseModel):
    """A fitted conformal calibrator; ``to_json`` / ``from_json`` round-trip it through plain JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = CALIBRATION_VERSION
    method: Literal["marginal", "mondrian"]
    score: ScoreKind
    alpha: float = Field(gt=0, lt=1)
    max_age: int = Field(ge=1, le=150)
    sigma_floor: float = Field(ge=0)
    min_calibration_size: int = Field(ge=1)
    n: int = Field(ge=0)  # calibration rows
    quantile: float | None  # the marginal q; null: infinite
    grouping: str | None = None  # Mondrian: the grouping's name (e.g. "ethnicity")
    groups: list[GroupQuantile] = []

    @model_validator(mode="after")
    def _consistent(self) -> Calibration:
        if self.method == "mondrian" and (not self.grouping or not self.groups):
            raise ValueError("a mondrian calibration needs a grouping and at least one group")
        if self.method == "marginal" and (self.grouping is not None or self.groups):
            raise ValueError("a marginal calibration has no grouping or groups")
        names = [g.group for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("group names repeat")
        if self.score != "cdf":  # abs and scaled scores are never negative
            qs = [self.quantile] + [g.quantile for g in self.groups]
            if any(q is not None and (q < 0 or not math.isfinite(q)) for q in qs):
                raise ValueError(f"quantiles of score '{self.score}' are finite and >= 0 (null: infinite)")
        return self

    @property
    def target(self) -> float:
        return 1 - self.alpha

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data, source: str = "calibration") -> Calibration:
        """``data`` (a dict) as a Calibration; a one-line AgefairError naming ``source`` when malformed."""
        return validated(cls, data, source)


def validated(model: type[M], data, source: str) -> M:
    """``data`` as ``model`` (a calibration); a one-line AgefairError naming ``source`` when it is not one."""
    if not isinstance(data, dict):
        raise AgefairError(f"{source}: not a calibration (a JSON object expected, got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "top level"
        raise AgefairError(f"{source}: not a valid calibration: {where}: {' '.join(str(e['msg']).split())}") from None


def save_calibration(calibration: Calibration, path: str | Path) -> None:
    Path(path).write_text(json.dumps(calibration.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def load_calibration(path: str | Path) -> Calibration:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgefairError(f"{path}: cannot be read as JSON ({type(exc).__name__})") from None
    return Calibration.from_json(data, str(path))


# --------------------------------------------------------------------------- fitting and applying

def _none_if_inf(q: float) -> float | None:
    return None if math.isinf(q) else q


def _inf_if_none(q: float | None) -> float:
    return math.inf if q is None else q


def group_labels(groups, n: int, name: str = "groups") -> np.ndarray:
    """Group labels as strings (a DataFrame's columns are joined with ' / ', as in the audit); missing stays None."""
    if isinstance(groups, pd.DataFrame):
        missing = groups.isna().any(axis=1).to_numpy()
        keys = groups.astype(str).agg(" / ".join, axis=1).to_numpy(dtype=object)
    else:
        s = pd.Series(np.asarray(groups, dtype=object).reshape(-1))
        missing = s.isna().to_numpy()
        keys = s.astype(str).to_numpy(dtype=object)
    if len(keys) != n:
        raise AgefairError(f"{name}: {len(keys)} rows, expected {n}")
    keys[missing] = None
    return keys


def calibrate(*, y, pred=None, score: ScoreKind = "abs", sigma=None, probs=None, groups=None,
              grouping: str | None = None, alpha: float = 0.1, min_calibration_size: int = 50, max_age: int = 116,
              sigma_floor: float = 1.0) -> Calibration:
    """Fit on validation rows (true ages ``y``, predictions ``pred`` and, per ``score``, ``sigma`` or ``probs``).

    With ``groups`` (one label per row, or a DataFrame of columns) the calibration is Mondrian over the
    grouping named ``grouping``; without, marginal.
    """
    if not 0 < alpha < 1:
        raise AgefairError(f"alpha must be between 0 and 1, got {alpha}")
    if probs is not None:
        probs = _probs(probs, max_age)
    scores = conformity_scores(y=y, pred=pred, score=score, sigma=sigma, probs=probs, alpha=alpha,
                               sigma_floor=sigma_floor)
    n = len(scores)
    if n == 0:
        raise AgefairError("calibration: no rows")
    q_all = conformal_quantile(scores, alpha=alpha)
    common = {"score": score, "alpha": alpha, "max_age": max_age, "sigma_floor": sigma_floor,
              "min_calibration_size": min_calibration_size, "n": n, "quantile": _none_if_inf(q_all)}
    if groups is None:
        return Calibration(method="marginal", **common)
    keys = group_labels(groups, n)
    if any(k is None for k in keys):
        raise AgefairError(f"groups: {sum(k is None for k in keys)} calibration rows have no group label")
    rows = []
    for g in sorted(set(keys)):
        s = scores[keys == g]
        small = len(s) < min_calibration_size
        q = q_all if small else conformal_quantile(s, alpha=alpha)
        rows.append(GroupQuantile(group=g, n=len(s), quantile=_none_if_inf(q), fallback=small))
    return Calibration(method="mondrian", grouping=grouping or "groups", groups=rows, **common)


@dataclass(frozen=True)
class Intervals:
    """Intervals for new rows: [lo, hi] per row, the q used, and whether it was the marginal q standing in
    for a group's own (``fallback``: a small calibration group, or ``unseen``: a group absent from calibration)."""

    lo: np.ndarray
    hi: np.ndarray
    quantile: np.ndarray  # inf where q was infinite (the interval is [0, max_age])
    fallback: np.ndarray  # bool
    unseen: np.ndarray  # bool
    alpha: float
    max_age: int

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"lo": self.lo, "hi": self.hi, "width": self.width, "fallback": self.fallback,
                             "unseen": self.unseen})

    def to_json(self) -> dict:
        q = [None if math.isinf(x) else float(x) for x in self.quantile]
        return {"alpha": self.alpha, "max_age": self.max_age, "lo": self.lo.tolist(), "hi": self.hi.tolist(),
                "quantile": q, "fallback": self.fallback.tolist(), "unseen": self.unseen.tolist()}


def predict_intervals(calibration: Calibration, *, pred=None, sigma=None, probs=None, groups=None) -> Intervals:
    """Intervals for new rows from their predictions (and σ̂ / probabilities, and groups under Mondrian); no labels."""
    c = calibration
    if probs is not None:
        probs = _probs(probs, c.max_age)
        if pred is None:
            pred = expected_age(probs)
    base_lo, base_hi, scale = _bounds(c.score, pred, sigma, probs, c.alpha, c.sigma_floor)
    n = len(base_lo)
    q = np.full(n, _inf_if_none(c.quantile))
    fallback = np.zeros(n, dtype=bool)
    unseen = np.zeros(n, dtype=bool)
    if c.method == "mondrian":
        if groups is None:
            raise AgefairError(f"a mondrian calibration needs each row's group ({c.grouping})")
        keys = group_labels(groups, n)
        known = {g.group: g for g in c.groups}
        unseen = np.array([k not in known for k in keys], dtype=bool)
        fallback = unseen.copy()
        for g in c.groups:
            rows = keys == g.group
            q[rows] = _inf_if_none(g.quantile)
            fallback[rows] = g.fallback
    with np.errstate(invalid="ignore"):  # q infinite: inf·scale, then clipped
        lo = base_lo - q * scale
        hi = base_hi + q * scale
    crossed = lo > hi  # a negative cdf q can cross the ends (never with q infinite): collapse to the midpoint
    if crossed.any():
        mid = (lo + hi) / 2
        lo, hi = np.where(crossed, mid, lo), np.where(crossed, mid, hi)
    lo, hi = np.clip(lo, 0, c.max_age), np.clip(hi, 0, c.max_age)
    return Intervals(lo=lo, hi=hi, quantile=q, fallback=fallback, unseen=unseen, alpha=c.alpha,
                     max_age=c.max_age)
