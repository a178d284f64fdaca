"""The ``robustness:`` section of configs/fairness.yaml (python -m agefair.robustness; the corruption
registry itself is agefair.fairness.stats.corruptions). agefair.core.config re-exports these names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from agefair.core.base_model import StrictModel

CORRUPTION_NAMES = ("darker", "brighter", "low_contrast", "gamma", "colour_cast", "gaussian_blur", "motion_blur",
                    "gaussian_noise", "jpeg", "low_resolution", "occlude_eyes", "occlude_mouth")
ROBUSTNESS_GROUPINGS = ("ethnicity", "gender", "age_bin")


class RobustnessRule(StrictModel):
    """A robustness gate, judged for each variant on every corruption x severity it covers; the worst
    covered condition decides. ``mae_increase``: MAE under the corruption minus clean MAE;
    ``group_gap``: worst-minus-best group MAE of ``grouping`` under the corruption; ``group_gap_increase``:
    that gap minus the clean gap."""

    name: str | None = None
    metric: Literal["mae", "mae_increase", "group_gap", "group_gap_increase"]
    grouping: Literal[ROBUSTNESS_GROUPINGS] | None = None
    corruptions: list[Literal[CORRUPTION_NAMES]] | None = None  # default: every corruption
    max_severity: int = Field(5, ge=1, le=5)  # judge severities 1..max_severity
    max: float
    judge: Literal["point", "ci_lower", "ci_upper"] = "point"

    @model_validator(mode="after")
    def _consistent(self) -> RobustnessRule:
        if self.metric.startswith("group_gap") and self.grouping is None:
            raise ValueError(f"metric {self.metric} needs a grouping ({', '.join(ROBUSTNESS_GROUPINGS)})")
        if self.metric.startswith("mae") and self.grouping is not None:
            raise ValueError(f"metric {self.metric} is overall: leave out grouping")
        if self.judge != "point" and self.metric != "group_gap":
            raise ValueError("only group_gap has an interval: use judge point")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        where = f" by {self.grouping}" if self.grouping else ""
        return f"{self.metric}{where} (severity <= {self.max_severity})"


class RobustnessConfig(StrictModel):
    """The ``robustness:`` section of configs/fairness.yaml."""

    seed: int = Field(0, ge=0)  # seeds the random corruptions (noise, motion-blur direction)
    n_boot: int = Field(200, ge=0, le=100_000)  # bootstrap resamples for the group-gap intervals
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=lambda: [1, 2, 3, 4, 5],
                                                                 min_length=1)
    corruptions: list[Literal[CORRUPTION_NAMES]] = Field(default_factory=lambda: list(CORRUPTION_NAMES),
                                                          min_length=1)
    batch_size: int = Field(256, ge=1, le=8192)
    rules: list[RobustnessRule] = Field(default_factory=list)
