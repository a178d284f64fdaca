"""The ``comparisons:`` section of configs/fairness.yaml: how the audit compares every model with the
reference (agefair.fairness.decisions). The interval level is the audit's ``ci_level``, the resamples
its ``n_boot``; ``n_perm`` permutations give each p-value; ``power`` is the power at which each group's
minimum detectable difference is computed."""

from __future__ import annotations

from pydantic import Field

from agefair.core.base_model import StrictModel


class ComparisonSettings(StrictModel):
    enabled: bool = True
    n_perm: int = Field(1000, ge=0, le=100_000)  # 0: no p-values (the intervals still decide credibly-best)
    power: float = Field(0.8, gt=0, lt=1)
