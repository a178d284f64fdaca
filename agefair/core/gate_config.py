"""The age gates a config names (the ``gates:`` section of configs/fairness.yaml): ``ThresholdGate``,
``RangeGate`` and their union ``Gate`` (pydantic, unknown keys refused), the shipped ``DEFAULT_GATES``
and the rule metrics of each kind of gate. What the gates mean, and how they are audited:
agefair.fairness.stats.gates (which re-exports these types). Here, below fairness, because the config is
validated before any fairness code is imported.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agefair.core.base_model import StrictModel


def tenths(x: float) -> int:
    """``x`` years in whole tenths of a year (ValueError when it is not a multiple of 0.1)."""
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
            tenths(x)
        if self.challenge_age < self.legal_age:
            raise ValueError("challenge_age must be at least legal_age")
        if self.band_lo >= self.legal_age:
            raise ValueError("band_lo must be under legal_age")
        return self

    def in_tenths(self) -> tuple[int, int, int, tuple[int, ...]]:
        """(L, C, band_lo, the curve's challenge ages) in tenths of a year."""
        L, step = tenths(self.legal_age), tenths(self.curve_step)
        grid = tuple(range(L, L + tenths(self.curve_span) + 1, step))
        return L, tenths(self.challenge_age), tenths(self.band_lo), grid

    @property
    def buffer_metrics(self) -> tuple[str, ...]:
        """The rule metric of each target's buffer (``buffer_0.01``, ...)."""
        return tuple(buffer_metric(t) for t in self.targets)


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

# The rates of each kind of gate a threshold rule may name (their titles and directions:
# agefair.fairness.stats.specs); a threshold gate's buffers are named buffer_<target>, e.g. buffer_0.01.
THRESHOLD_GATE_METRICS = ("false_pass", "false_pass_band", "false_challenge", "false_challenge_over",
                          "false_challenge_between")
RANGE_GATE_METRICS = ("tpr", "fpr", "fpr_below", "fpr_above")
GATE_METRICS = (*THRESHOLD_GATE_METRICS, "buffer", *RANGE_GATE_METRICS)


def buffer_metric(target: float) -> str:
    return f"buffer_{target:g}"


def is_buffer_metric(metric: str) -> bool:
    if not metric.startswith("buffer_"):
        return False
    try:
        return 0 < float(metric[len("buffer_"):]) < 1
    except ValueError:
        return False


def gate_metrics(gate: ThresholdGate | RangeGate) -> tuple[str, ...]:
    """The rule metrics ``gate`` has."""
    if isinstance(gate, RangeGate):
        return RANGE_GATE_METRICS
    return (*THRESHOLD_GATE_METRICS, *gate.buffer_metrics)
