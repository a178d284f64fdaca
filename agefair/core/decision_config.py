"""The ``comparisons:`` section of configs/fairness.yaml: how the audit compares every model with the
reference (agefair.fairness.auditing.decisions). The interval level is the audit's ``ci_level``, the resamples
its ``n_boot``; ``n_perm`` permutations give each p-value; ``power`` is the power at which each group's
minimum detectable difference is computed; ``margins`` are the smallest differences that matter
(practical significance), per compared metric, in the metric's own units."""

from __future__ import annotations

from pydantic import Field, field_validator

from agefair.core.base_model import StrictModel

# The metrics a paired comparison reports, and the units of their margins: years (mean absolute error,
# distance to an age group, and the gaps, worst groups and spreads made of them) or shares (gate rates as
# 0.01 = 1 percentage point; coverage of the conformal intervals).
MARGIN_UNITS: dict[str, str] = {"mae": "years", "dist": "years", "false_pass": "share",
                                "false_challenge": "share", "coverage": "share"}
DEFAULT_MARGINS: dict[str, float] = {"mae": 0.25, "dist": 0.25, "false_pass": 0.01, "false_challenge": 0.01,
                                     "coverage": 0.02}


class ComparisonSettings(StrictModel):
    enabled: bool = True
    n_perm: int = Field(1000, ge=0, le=100_000)  # 0: no p-values (the intervals still decide credibly-best)
    power: float = Field(0.8, gt=0, lt=1)
    margins: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MARGINS))

    @field_validator("margins")
    @classmethod
    def _known_margins(cls, value: dict[str, float]) -> dict[str, float]:
        for key, margin in value.items():
            if key not in MARGIN_UNITS:
                raise ValueError(f"unknown metric {key!r}; margins are for {', '.join(MARGIN_UNITS)}")
            if not margin > 0 or margin != margin:
                raise ValueError(f"{key}: a margin must be a number > 0, got {margin}")
            if MARGIN_UNITS[key] == "share" and margin >= 1:
                raise ValueError(f"{key}: a rate's margin is a share (0.01 = 1 percentage point), got {margin}")
        return DEFAULT_MARGINS | value  # a metric left out keeps its default

    def margin(self, metric: str | None) -> float | None:
        """The margin of ``metric`` (None: a metric without one)."""
        return self.margins.get(metric or "")
