"""The ``group_dro:`` and ``bmse:`` sections of a training preset: the choices of the variants that
target the demographic gaps rather than age imbalance alone (agefair.training.objectives).

``group_dro``: Group DRO (Sagawa, Koh, Hashimoto & Liang, "Distributionally Robust Neural Networks for
Group Shifts", ICLR 2020), online algorithm: per batch, each group's mean loss; q_g <- q_g *
exp(eta * (loss_g + C / sqrt(n_g))), normalised; the loss is sum_g q_g * loss_g. ``groups``: the
attributes whose combinations are the groups (manifest columns such as ``ethnicity`` or ``gender``,
or ``age_bin``: the data config's age bins). The paper needs strong regularisation for the worst
group's *test* loss to follow its training loss: ``weight_decay`` overrides ``optim.weight_decay``
for this variant (null: the preset's), and early stopping on validation MAE (``train.patience``)
applies as in every run.

``bmse``: Balanced MSE (Ren, Zhang, Yu & Liu, "Balanced MSE for Imbalanced Visual Regression",
CVPR 2022), batch-based Monte-Carlo form, used wherever ``train.loss: bmse``: ``noise_sigma`` (years)
is the initial (or, with ``learnable: false``, fixed) noise scale; a learnable one is trained with
its own learning rate ``sigma_lr`` and no weight decay, as in the paper's code.

``calibrated``: post-hoc group calibration of the ``base`` variant's ages, no retraining
(agefair.models.posthoc): per group of ``attributes`` (only what a deployer may use at prediction time),
a linear correction fitted on the validation split; groups under ``min_group_size`` validation rows use
the pooled fit; slopes are kept within ``slope_range``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from agefair.core.base_model import StrictModel


class GroupDROSettings(StrictModel):
    groups: list[str] = Field(default_factory=lambda: ["ethnicity", "age_bin"], min_length=1)
    eta: float = Field(0.01, gt=0, le=10)  # step size of the group weights (the paper's eta_q)
    adjustment: float = Field(0.0, ge=0, le=100)  # the paper's group adjustment C
    weight_decay: float | None = Field(None, ge=0, le=1)  # this variant's weight decay; null: optim.weight_decay

    @field_validator("groups")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("groups repeat an attribute")
        return v


class BalancedMSESettings(StrictModel):
    noise_sigma: float = Field(1.0, gt=0, le=100)  # years
    learnable: bool = True
    sigma_lr: float = Field(0.01, gt=0, le=10)  # the noise scale's learning rate (learnable only)


class CalibratedSettings(StrictModel):
    base: str = "baseline"  # the trained variant whose ages are corrected
    attributes: list[str] = Field(default_factory=lambda: ["ethnicity"], min_length=1)
    min_group_size: int = Field(50, ge=2)
    slope_range: tuple[float, float] = (0.5, 2.0)

    @field_validator("slope_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= 1 <= v[1]:
            raise ValueError("slope_range must hold 1 and be positive, e.g. [0.5, 2.0]")
        return v
