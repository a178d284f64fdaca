"""The types of the age-gate audit (agefair.fairness.stats.gates, where the definitions are): the gates a
config names (``ThresholdGate``, ``RangeGate``: pydantic, unknown keys refused; defined in
agefair.core.gate_config, where the config validates them, and re-exported here) and the results, one per
(gate, grouping), frozen pydantic models with NaN where a number is undefined (``to_json``: NaN as null,
and null reads back as NaN, so a written result parses again). ``GateSummary``: a result as summary.json
holds it, its curves in the compact ``Curves`` form. No numpy here: the report imports these types.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from agefair.core.gate_config import DEFAULT_GATES, Gate, RangeGate, ThresholdGate  # noqa: F401  (re-exported)

NAN = float("nan")
NAN2 = (NAN, NAN)


# --- results ----------------------------------------------------------------------------------

def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj


def _null_is_nan(x):
    return NAN if x is None else x


Float = Annotated[float, BeforeValidator(_null_is_nan)]  # NaN: undefined (null in JSON)
Pair = tuple[Float, Float]


class Frozen(BaseModel):
    """Base of the result models: immutable; NaN where a number is undefined (``to_json``: null)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> dict:
        return _nan_to_none(self.model_dump(mode="json"))


class Rate(Frozen):
    value: Float
    ci: Pair
    n: int  # the denominator's size
    small: bool  # n < min_group_size: reported, never in a disparity


class Buffer(Rate):
    target: Float  # the false-pass rate of minors the challenge age must bring the group down to


class Disparity(Frozen):
    eligible_groups: int
    flagged_small_groups: int
    worst_group: str | None = None
    worst: Float = NAN
    worst_ci: Pair = NAN2
    best_group: str | None = None
    best: Float = NAN
    difference: Float = NAN
    difference_ci: Pair = NAN2
    ratio: Float = NAN
    ratio_ci: Pair = NAN2


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
    challenge_age: Float
    false_pass: Float
    false_pass_ci: Pair
    false_pass_band: Float
    false_pass_band_ci: Pair
    false_challenge: Float
    false_challenge_ci: Pair
    n_minors: int
    n_band: int
    n_adults: int


class ResultBase(Frozen):
    grouping: str
    columns: tuple[str, ...]
    labels: Literal["exact", "interval"]
    n_boot: int
    ci_level: Float
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


# --- as summary.json holds a result ------------------------------------------------------------

class GroupCurve(Frozen):
    """One group's curves at ``Curves.challenge_ages``: each rate with its interval's ends (_lo, _hi)."""

    group: str
    n_minors: int
    n_band: int
    n_adults: int
    false_pass: tuple[Float, ...]
    false_pass_lo: tuple[Float, ...]
    false_pass_hi: tuple[Float, ...]
    false_pass_band: tuple[Float, ...]
    false_pass_band_lo: tuple[Float, ...]
    false_pass_band_hi: tuple[Float, ...]
    false_challenge: tuple[Float, ...]
    false_challenge_lo: tuple[Float, ...]
    false_challenge_hi: tuple[Float, ...]


class Curves(Frozen):
    """A threshold gate's curves, compact: the grid of challenge ages once, then a column per rate and group."""

    challenge_ages: tuple[Float, ...]
    groups: tuple[GroupCurve, ...]


class ThresholdGateSummary(ResultBase):
    """A ``ThresholdGateResult`` as summary.json holds it: ``curves`` compact (None: not kept)."""

    kind: Literal["threshold"] = "threshold"
    gate: ThresholdGate
    groups: tuple[ThresholdGroup, ...]
    curves: Curves | None = None


GateSummary = Annotated[ThresholdGateSummary | RangeGateResult, Field(discriminator="kind")]
