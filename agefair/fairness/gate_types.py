"""The types of the age-gate audit (agefair.fairness.gates, where the definitions are): the gates a
config names (``ThresholdGate``, ``RangeGate``: pydantic, unknown keys refused) and the results, one per
(gate, grouping), frozen pydantic models with NaN where a number is undefined (``to_json``: NaN as null).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agefair.core.config import StrictModel
from agefair.fairness import gate_bootstrap as gb

NAN = float("nan")
NAN2 = (NAN, NAN)


def _tenths(x: float) -> int:
    v = round(x * 10)
    if abs(x * 10 - v) > 1e-6:
        raise ValueError(f"{x:g} is not a multiple of 0.1 year")
    return int(v)


class ThresholdGate(StrictModel):
    """A threshold gate: legal age L, challenge age C >= L (default L), minors band [band_lo, L)
    (default L - 5, at least 0); ages in years, multiples of 0.1. ``targets``: false-pass rates for the
    buffer; the curve runs from L to L + curve_span in steps of curve_step."""

    kind: Literal["threshold"] = "threshold"
    name: str = Field(min_length=1)
    legal_age: float = Field(gt=0, le=150)
    challenge_age: float = Field(gt=0, le=150)
    band_lo: float = Field(ge=0)
    targets: tuple[float, ...] = Field((0.01, 0.05), min_length=1)
    curve_span: float = Field(20.0, ge=0, le=100)
    curve_step: float = Field(0.5, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data):
        if isinstance(data, dict) and isinstance(data.get("legal_age"), (int, float)):
            data = {"challenge_age": data["legal_age"], "band_lo": max(0.0, data["legal_age"] - 5), **data}
        return data

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < t < 1 for t in v) or len(set(v)) != len(v):
            raise ValueError("targets must be distinct rates between 0 and 1")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdGate:
        for x in (self.legal_age, self.challenge_age, self.band_lo, self.curve_span, self.curve_step):
            _tenths(x)
        if self.challenge_age < self.legal_age:
            raise ValueError("challenge_age must be at least legal_age")
        if self.band_lo >= self.legal_age:
            raise ValueError("band_lo must be under legal_age")
        return self

    def spec(self) -> gb.ThresholdSpec:
        L, step = _tenths(self.legal_age), _tenths(self.curve_step)
        grid = tuple(range(L, L + _tenths(self.curve_span) + 1, step))
        return gb.ThresholdSpec(L, _tenths(self.challenge_age), _tenths(self.band_lo), self.targets, grid)


class RangeGate(StrictModel):
    """A range gate: the whole years first..last, both included (ages in [first, last + 1))."""

    kind: Literal["range"] = "range"
    name: str = Field(min_length=1)
    first: int = Field(ge=0, le=150)
    last: int = Field(ge=0, le=150)

    @model_validator(mode="after")
    def _ordered(self) -> RangeGate:
        if self.last < self.first:
            raise ValueError("last must be at least first")
        return self


Gate = Annotated[ThresholdGate | RangeGate, Field(discriminator="kind")]

DEFAULT_GATES: tuple[ThresholdGate | RangeGate, ...] = (
    ThresholdGate(name="challenge-25", legal_age=18, challenge_age=25, band_lo=13),
    ThresholdGate(name="age-18", legal_age=18, challenge_age=18, band_lo=13),
    ThresholdGate(name="age-13", legal_age=13, challenge_age=13, band_lo=8),
    RangeGate(name="range-13-16", first=13, last=16),
)


# --- results ----------------------------------------------------------------------------------

def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj


class Frozen(BaseModel):
    """Base of the result models: immutable; NaN where a number is undefined (``to_json``: null)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> dict:
        return _nan_to_none(self.model_dump(mode="json"))


class Rate(Frozen):
    value: float
    ci: tuple[float, float]
    n: int  # the denominator's size
    small: bool  # n < min_group_size: reported, never in a disparity


class Buffer(Rate):
    target: float  # the false-pass rate of minors the challenge age must bring the group down to


class Disparity(Frozen):
    eligible_groups: int
    flagged_small_groups: int
    worst_group: str | None = None
    worst: float = NAN
    worst_ci: tuple[float, float] = NAN2
    best_group: str | None = None
    best: float = NAN
    difference: float = NAN
    difference_ci: tuple[float, float] = NAN2
    ratio: float = NAN
    ratio_ci: tuple[float, float] = NAN2


class GroupBase(Frozen):
    group: str
    n_rows: int
    n_kept: int  # rows the gate can place (minors and adults; inside, below or above the range)
    n_excluded: int  # age-group labels straddling a boundary, missing age or estimate


class ThresholdGroup(GroupBase):
    false_pass: Rate
    false_pass_band: Rate
    false_challenge: Rate
    false_challenge_over: Rate
    false_challenge_between: Rate
    buffers: tuple[Buffer, ...]


class RangeGroup(GroupBase):
    tpr: Rate
    fpr: Rate
    fpr_below: Rate
    fpr_above: Rate


class CurvePoint(Frozen):
    group: str
    challenge_age: float
    false_pass: float
    false_pass_ci: tuple[float, float]
    false_pass_band: float
    false_pass_band_ci: tuple[float, float]
    false_challenge: float
    false_challenge_ci: tuple[float, float]
    n_minors: int
    n_band: int
    n_adults: int


class ResultBase(Frozen):
    grouping: str
    columns: tuple[str, ...]
    labels: Literal["exact", "interval"]
    n_boot: int
    ci_level: float
    min_group_size: int
    disparities: dict[str, Disparity]  # by rate name; buffers as buffer_<target>, e.g. buffer_0.01


class ThresholdGateResult(ResultBase):
    kind: Literal["threshold"] = "threshold"
    gate: ThresholdGate
    groups: tuple[ThresholdGroup, ...]
    curve: tuple[CurvePoint, ...]


class RangeGateResult(ResultBase):
    kind: Literal["range"] = "range"
    gate: RangeGate
    groups: tuple[RangeGroup, ...]


GateResult = Annotated[ThresholdGateResult | RangeGateResult, Field(discriminator="kind")]
