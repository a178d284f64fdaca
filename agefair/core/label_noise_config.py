"""The ``label_noise:`` section of configs/fairness.yaml: which rows the audit flags as suspected wrong
labels (agefair.fairness.stats.label_noise): every model misses the label by more than max(k_years, k_rel x
age) while the models agree within max_spread years. Exact ages, at least two models."""

from __future__ import annotations

from pydantic import Field

from agefair.core.base_model import StrictModel


class LabelNoiseSettings(StrictModel):
    enabled: bool = True
    k_years: float = Field(15.0, gt=0)
    k_rel: float = Field(0.3, ge=0)
    max_spread: float = Field(5.0, gt=0)
