"""The ``conformal:`` section of configs/fairness.yaml: per-person age intervals by split conformal
prediction (agefair.models.conformal), calibrated on each run's validation split and audited for
coverage per group (agefair.fairness.auditing.intervals)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from agefair.core.base_model import StrictModel


class ConformalSettings(StrictModel):
    """``coverage``: the target share of true ages inside the interval; ``score``: abs (ŷ ± q), scaled
    (ŷ ± q·σ̂, σ̂ the spread of the expectation head's distribution) or auto (scaled for the expectation
    head, abs for regression); ``mondrian``: the groupings calibrated per group besides the marginal
    calibration (needs each person's group at prediction time: the audit has it, ``predict`` does not
    and uses the marginal one); groups with fewer than ``min_calibration_size`` validation rows use the
    marginal quantile (stated); ``sigma_floor``: the smallest σ̂ in years."""

    enabled: bool = True
    coverage: float = Field(0.9, gt=0, lt=1)
    score: Literal["auto", "abs", "scaled"] = "auto"
    mondrian: list[str] = Field(default_factory=lambda: ["ethnicity"])
    min_calibration_size: int = Field(50, ge=1)
    sigma_floor: float = Field(1.0, ge=0)

    @field_validator("mondrian")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("mondrian groupings repeat")
        if "marginal" in v:
            raise ValueError("'marginal' is always calibrated; list groupings (e.g. ethnicity) under mondrian")
        return v

    @property
    def alpha(self) -> float:
        return round(1 - self.coverage, 10)

    def score_for(self, head: str) -> str:
        """The score a model with ``head`` (expectation | regression) is calibrated with."""
        if self.score == "auto":
            return "scaled" if head == "expectation" else "abs"
        if self.score == "scaled" and head != "expectation":
            return "abs"  # a regression head has no predicted distribution to scale by
        return self.score
