"""Post-hoc group calibration of a trained model's ages (the ``calibrated`` variant): per group of the
attributes a deployer may use at prediction time, a linear correction fitted on the validation split.

Per group g, the validation predictions are regressed on the true ages, ŷ = a_g + b_g·y (ordinary least
squares: the model's calibration curve in that group), and a new prediction is mapped back through it,
ŷ' = (ŷ - a_g) / b_g. A model without systematic bias (ŷ = y + noise) gives a_g ≈ 0, b_g ≈ 1: the
correction is then the identity up to sampling noise, unlike a regression of y on ŷ, which would pull every
prediction towards the mean. A group over-estimated by 5 years gets a_g ≈ 5 and is moved back; an
age-dependent bias (the old under-estimated, children over-estimated) is a slope b_g < 1 and is undone.
Groups with fewer than ``min_group_size`` validation rows use the fit over every row (``pooled``); the
slope is kept within ``slope_range`` so that a flat group curve cannot blow predictions up. Corrected ages
are clipped to [0, max_age].
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agefair.core.errors import AgefairError

SEPARATOR = " / "  # group keys: the attributes' values joined, as the audit names intersections


class GroupFit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    n: int = Field(ge=0)
    intercept: float  # a_g
    slope: float  # b_g, within slope_range
    pooled: bool  # too few rows: the pooled fit is used


class GroupCorrection(BaseModel):
    """What ``calibrated``'s checkpoint stores (key ``posthoc``) and how it maps a prediction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "group_linear"
    attributes: list[str]  # what each person's group is made of: needed at prediction time
    base: str  # the variant it corrects
    max_age: int
    pooled: GroupFit
    groups: list[GroupFit]

    def group_keys(self, attributes: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [a for a in self.attributes if a not in attributes]
        if missing:
            raise AgefairError(f"the {self.base} correction needs each person's {', '.join(missing)}")
        cols = [np.asarray(attributes[a], dtype=object).astype(str) for a in self.attributes]
        keys = cols[0]
        for c in cols[1:]:
            keys = np.char.add(np.char.add(keys.astype(str), SEPARATOR), c.astype(str))
        return np.asarray(keys, dtype=object)

    def apply(self, pred, attributes: Mapping[str, np.ndarray]) -> np.ndarray:
        """Corrected ages of ``pred`` for people with these attribute values (an unseen group: the pooled fit)."""
        p = np.asarray(pred, dtype=float)
        keys = self.group_keys(attributes)
        a = np.full(len(p), self.pooled.intercept)
        b = np.full(len(p), self.pooled.slope)
        for g in self.groups:
            rows = keys == g.group
            a[rows], b[rows] = g.intercept, g.slope
        return np.clip((p - a) / b, 0, self.max_age)


def _fit(y: np.ndarray, pred: np.ndarray, slope_range: tuple[float, float]) -> tuple[float, float]:
    """OLS of pred on y: (intercept, slope), the slope clipped to slope_range (intercept refitted)."""
    if len(y) < 2 or np.ptp(y) == 0:
        return float(np.mean(pred - y)) if len(y) else 0.0, 1.0
    slope = float(np.clip(np.polyfit(y, pred, 1)[0], *slope_range))
    return float(np.mean(pred) - slope * np.mean(y)), slope


def fit_group_correction(*, y, pred, attributes: Mapping[str, np.ndarray], names: list[str], base: str,
                         max_age: int, min_group_size: int = 50,
                         slope_range: tuple[float, float] = (0.5, 2.0)) -> GroupCorrection:
    """Fit on validation rows only: true ages ``y``, the base model's predictions ``pred``, and the
    ``names`` attributes' values per row."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if len(y) != len(pred) or len(y) == 0:
        raise AgefairError(f"post-hoc calibration: {len(y)} ages and {len(pred)} predictions")
    a, b = _fit(y, pred, slope_range)
    pooled = GroupFit(group="(all)", n=len(y), intercept=a, slope=b, pooled=False)
    stub = GroupCorrection(attributes=names, base=base, max_age=max_age, pooled=pooled, groups=[])
    keys = stub.group_keys(attributes)
    fits = []
    for g in sorted(set(keys)):
        rows = keys == g
        small = rows.sum() < min_group_size
        a, b = (pooled.intercept, pooled.slope) if small else _fit(y[rows], pred[rows], slope_range)
        fits.append(GroupFit(group=g, n=int(rows.sum()), intercept=a, slope=b, pooled=bool(small)))
    return stub.model_copy(update={"groups": fits})


def correction_of(ckpt: dict, source: str = "checkpoint") -> GroupCorrection | None:
    """A checkpoint's post-hoc correction (the calibrated variant, key ``posthoc``), or None."""
    if "posthoc" not in ckpt:
        return None
    try:
        return GroupCorrection.model_validate(ckpt["posthoc"])
    except ValueError:
        raise AgefairError(f"{source}: its post-hoc correction (posthoc) is malformed") from None
