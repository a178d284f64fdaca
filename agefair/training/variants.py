"""Training variants: each is a named strategy for how samples are drawn, how losses are weighted and
what the batch's objective is.

Adding a variant is a few lines: write the weight function(s) and register a ``Variant``. The first
four rebalance age; ``groupdro`` and ``bmse`` target the demographic gaps (agefair.training.objectives).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agefair.core.config import ImbalanceConfig, TrainConfig
from agefair.data.labels import age_bin_index

WeightFn = Callable[[np.ndarray, Sequence[int], ImbalanceConfig], np.ndarray]


def bin_frequency_weights(ages: np.ndarray, edges: Sequence[int], power: float = 1.0) -> np.ndarray:
    """Per-sample weight (1 / frequency of the sample's age bin) ** power, normalised to mean 1."""
    bins = age_bin_index(ages, edges)
    counts = np.bincount(bins, minlength=len(edges)).astype(float)
    w = (1.0 / counts[bins]) ** power
    return w / w.mean()


def lds_weights(ages: np.ndarray, sigma: float, kernel_size: int, max_age: int = 116) -> np.ndarray:
    """Label-distribution smoothing (Yang et al., ICML 2021), per-sample weights normalised to mean 1.

    The empirical density of integer ages is convolved with a Gaussian kernel (``kernel_size``
    ages wide, std ``sigma`` years); each sample is weighted by 1 / sqrt(smoothed density).
    """
    ages_int = np.clip(np.rint(ages).astype(int), 0, max_age)
    density = np.bincount(ages_int, minlength=max_age + 1).astype(float)
    half = (kernel_size - 1) // 2
    x = np.arange(-half, half + 1)
    kernel = np.exp(-(x ** 2) / (2 * sigma ** 2))
    kernel /= kernel.max()
    smoothed = np.convolve(np.pad(density, half, mode="constant"), kernel, mode="valid")
    w = 1.0 / np.sqrt(np.maximum(smoothed[ages_int], 1e-12))
    return w / w.mean()


def _inverse_bin(ages, edges, cfg):
    return bin_frequency_weights(ages, edges, 1.0)


def _weighted_loss(ages, edges, cfg):
    return bin_frequency_weights(ages, edges, 1.0 if cfg.weighting == "inverse" else 0.5)


def _lds(ages, edges, cfg):
    return lds_weights(ages, cfg.lds_kernel_sigma, cfg.lds_kernel_size)


def _group_dro_config(cfg: TrainConfig) -> TrainConfig:
    """group_dro.weight_decay, when set, is this variant's weight decay (the paper regularises strongly)."""
    wd = cfg.group_dro.weight_decay
    if wd is None:
        return cfg
    return cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"weight_decay": wd})})


def _bmse_config(cfg: TrainConfig) -> TrainConfig:
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"loss": "bmse"})})


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    sampling_weights: WeightFn | None = None  # -> WeightedRandomSampler over the training set
    loss_weights: WeightFn | None = None  # -> per-sample loss weights (mean 1)
    objective: str = "mean"  # mean (weighted mean of the per-sample losses) | group_dro | posthoc (no training)
    configure: Callable[[TrainConfig], TrainConfig] | None = None  # the variant's changes to the config


def recorded_config(name: str, cfg: TrainConfig) -> dict:
    """The configuration a run of variant ``name`` records (config.yaml, checkpoints; --resume compares it):
    the group_dro: and bmse: sections only where they apply and not the run's variant list, so the other
    variants' runs record (and resume) exactly what they did before these sections existed."""
    recorded = cfg.model_dump(mode="json")
    recorded.pop("variants")
    if VARIANTS[name].objective != "group_dro":
        recorded.pop("group_dro")
    if cfg.train.loss != "bmse":
        recorded.pop("bmse")
    if VARIANTS[name].objective != "posthoc":
        recorded.pop("calibrated")
    return recorded


def variant_config(name: str, cfg: TrainConfig) -> TrainConfig:
    """The configuration variant ``name`` trains with (recorded in its config.yaml and checkpoints)."""
    configure = VARIANTS[name].configure
    return configure(cfg) if configure is not None else cfg


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("baseline", "uniform sampling, unweighted loss"),
    Variant("oversample", "age-bin oversampling: draws weighted by 1 / age-bin frequency",
            sampling_weights=_inverse_bin),
    Variant("weighted", "loss weighted by inverse (or square-root inverse) age-bin frequency",
            loss_weights=_weighted_loss),
    Variant("lds", "label-distribution smoothing: loss weighted by 1 / sqrt(Gaussian-smoothed age density)",
            loss_weights=_lds),
    Variant("groupdro", "Group DRO: minimises the worst group's loss (groups: group_dro.groups)",
            objective="group_dro", configure=_group_dro_config),
    Variant("bmse", "Balanced MSE (batch Monte-Carlo) on the expected age, uniform sampling",
            configure=_bmse_config),
    Variant("calibrated", "post-hoc group calibration of calibrated.base's ages (no training): a linear "
            "correction per group of calibrated.attributes, fitted on the validation split", objective="posthoc"),
]}
