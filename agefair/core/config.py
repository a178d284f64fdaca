"""YAML configuration files, validated at load.

Every problem (unknown key, wrong type, value out of range) becomes one line that names the
file and the key, e.g. ``configs/data.yaml: split.train: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import agefair.configs
from agefair.core.base_model import StrictModel
from agefair.core.conformal_config import ConformalSettings
from agefair.core.decision_config import ComparisonSettings
from agefair.core.errors import AgefairError
from agefair.core.fair_config import BalancedMSESettings, CalibratedSettings, GroupDROSettings
from agefair.core.gate_config import (
    DEFAULT_GATES,
    Gate,
    RangeGate,
    ThresholdGate,
    gate_metrics,
)
from agefair.core.io import read_text
from agefair.core.label_noise_config import LabelNoiseSettings
from agefair.core.robustness_config import (  # noqa: F401  (the robustness: section, re-exported)
    CORRUPTION_NAMES,
    ROBUSTNESS_GROUPINGS,
    RobustnessConfig,
    RobustnessRule,
)
from agefair.core.rule_config import (  # noqa: F401  (the threshold rules, re-exported)
    AUDIT_GROUPINGS,
    AUDIT_METRICS,
    EVERY_ATTRIBUTE,
    AuditMetric,
    ThresholdRule,
    is_gate_metric,
)

CONFIG_DIR = Path(agefair.configs.__file__).resolve().parent  # the repo's configs/, shipped in the wheel
M = TypeVar("M", bound="StrictModel")


class SplitConfig(StrictModel):
    train: float = Field(0.70, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class DataConfig(StrictModel):
    """How the UTKFace folder is read, cleaned and split (configs/data.yaml)."""

    age_bins: list[int] = Field(default_factory=lambda: [0, 10, 20, 30, 40, 50, 60, 70], min_length=2)
    max_age: int = Field(116, ge=1, le=150)
    expected_size: tuple[int, int] = (200, 200)
    duplicates: Literal["keep_agreeing", "drop_all", "keep_first"] = "keep_agreeing"
    split: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _bins_increase(self) -> DataConfig:
        if self.age_bins[0] != 0 or any(b <= a for a, b in zip(self.age_bins, self.age_bins[1:])):
            raise ValueError("age_bins must start at 0 and increase strictly")
        return self


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {msg}{more}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a config file, read with agefair.core.io.read_text's checks (UTF-8 text, not
    empty, not binary, not a folder or a FIFO); any problem is a one-line AgefairError."""
    path = Path(path)
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AgefairError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgefairError(f"{path}: top level must be a mapping of keys to values")
    return data


def validate(model: type[M], data: dict[str, Any], source: str | Path) -> M:
    """Validate a mapping against ``model``, turning the first problem into a one-line AgefairError."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise AgefairError(_format_error(Path(source), err)) from None


def load_config(model: type[M], path: str | Path) -> M:
    return validate(model, read_yaml(path), path)


def load_data_config(path: str | Path | None = None) -> DataConfig:
    return load_config(DataConfig, path or CONFIG_DIR / "data.yaml")


# --- CSV-manifest datasets --------------------------------------------------------------------

class DatasetColumns(StrictModel):
    """Which CSV column holds what. With neither ``age`` nor ``age_group`` set, a column named
    ``age`` is read as age groups when the age-group values (``20-29``) outnumber the numbers, else as
    exact ages (a stray non-number is a dropped, counted row, not a switch to age groups); a column named
    ``age_group`` as age groups. ``attributes``: the sensitive attributes (default: every other
    column not in ``ignore``)."""

    image: str = Field("file", min_length=1)
    age: str | None = None
    age_group: str | None = None
    attributes: list[str] | None = None
    subject: str | None = None  # who each image shows: the audit's resamples draw subjects, not images

    @model_validator(mode="after")
    def _one_age(self) -> DatasetColumns:
        if self.age is not None and self.age_group is not None:
            raise ValueError("give age (exact ages) or age_group (intervals), not both")
        return self


class DatasetConfig(StrictModel):
    """How a CSV manifest is read (configs/datasets/*.yaml, passed with --dataset-config)."""

    name: str | None = None  # shown in the report (default: the CSV's file name)
    columns: DatasetColumns = DatasetColumns()
    ignore: list[str] = Field(default_factory=list)  # columns that are neither labels nor attributes
    # other age-group spellings mapped to a recognised one (agefair.data.age_groups), e.g. {senior: 65+}
    age_group_labels: dict[str, str] = Field(default_factory=dict)
    # groupings of two or more columns (attributes, or age_bin / age_group); default: every pair of
    # attributes, and the age grouping with each attribute
    intersections: list[list[str]] | None = None
    # yes: every image is an aligned face crop, used whole; no: faces are detected and cropped with
    # UTKFace's framing (agefair.data.faces); auto: decided per image, as python -m agefair.predict does
    aligned: Literal["auto", "yes", "no"] = "auto"
    detector: Literal["hog", "cnn"] = "hog"
    # image paths that are absolute or climb above the CSV's folder (../x) are dropped and counted
    # (outside_folder) unless this says yes: the CSV then may read any file the user can
    allow_paths_outside: bool = False

    @field_validator("intersections")
    @classmethod
    def _intersections(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for group in value or []:
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError("each intersection lists two or more different columns")
        return value


def load_dataset_config(path: str | Path | None = None) -> DatasetConfig:
    """``path``, or a name of configs/datasets/ (``fairface``); None gives the defaults."""
    if path is None:
        return DatasetConfig()
    p = Path(path)
    named = CONFIG_DIR / "datasets" / f"{path}.yaml"
    if not p.exists() and p.suffix == "" and named.exists():
        p = named
    return load_config(DatasetConfig, p)


# --- training ---------------------------------------------------------------------------------

class ModelConfig(StrictModel):
    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet50"
    head: Literal["regression", "expectation"] = "expectation"
    pretrained: Literal["none", "imagenet"] = "none"
    image_size: int = Field(128, ge=32, le=512)
    max_age: int = Field(116, ge=1, le=150)  # the expectation head has one class per age 0..max_age
    # in eval mode, each image's output is averaged with its mirror image's (the expectation head's age
    # distributions; the regression head's ages): every prediction, validation included, costs two passes
    flip_tta: bool = False


class OptimConfig(StrictModel):
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.003, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"
    warmup_fraction: float = Field(0.3, gt=0, lt=1)  # onecycle: share of steps spent warming up
    # under torchrun: "linear" multiplies lr by the process count (the effective batch grows with it)
    lr_scaling: Literal["none", "linear"] = "none"


class LoopConfig(StrictModel):
    epochs: int = Field(100, ge=1, le=10000)
    patience: int = Field(5, ge=1)  # epochs without validation-MAE improvement before stopping
    batch_size: int = Field(32, ge=1, le=4096)
    eval_batch_size: int = Field(128, ge=1, le=8192)
    # l1 / smooth_l1: regression head only (the expectation head uses cross-entropy); bmse: Balanced MSE on
    # the expected age, for either head (section bmse:, agefair.core.fair_config)
    loss: Literal["l1", "smooth_l1", "bmse"] = "l1"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    channels_last: bool = True
    compile: bool = False
    num_workers: int = Field(0, ge=0, le=64)
    seed: int = Field(0, ge=0)
    # exponential moving average of the weights, this decay per optimiser step (applied every 8th step as
    # decay**8); validation, model.pt and every prediction use the average (agefair.training.ema). 0: off
    ema_decay: float = Field(0.0, ge=0, lt=1)
    # expectation head: cross-entropy against a Gaussian over ages of this width in years (label-distribution
    # learning) instead of the one-hot integer age. 0: one-hot
    label_sigma: float = Field(0.0, ge=0, le=20)


class AugmentSection(StrictModel):
    hflip: bool = True
    rotation: float = Field(15.0, ge=0, le=180)
    brightness: float = Field(0.2, ge=0, le=1)
    contrast: float = Field(0.2, ge=0, le=1)
    saturation: float = Field(0.2, ge=0, le=1)
    hue: float = Field(0.0, ge=0, le=0.5)
    scale: float = Field(0.0, ge=0, lt=1)  # zoom by a factor in [1 - scale, 1 + scale] (the crop's framing)
    translate: float = Field(0.0, ge=0, le=0.5)  # shift by up to this share of the image, in x and y
    mixup: float = Field(0.0, ge=0, le=10)  # mixup's Beta(a, a) parameter a (a batch's images and losses mixed); 0: off


class ImbalanceConfig(StrictModel):
    """Knobs of the imbalance-aware variants (oversample, weighted, lds)."""

    weighting: Literal["inverse", "sqrt_inverse"] = "inverse"  # weighted variant
    lds_kernel_sigma: float = Field(2.0, gt=0, le=20)  # years
    lds_kernel_size: int = Field(5, ge=1, le=51)  # ages in the Gaussian window (odd)


class TrainConfig(StrictModel):
    """A training preset (configs/presets/*.yaml), optionally overridden by --config FILE."""

    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    augment: AugmentSection = AugmentSection()
    imbalance: ImbalanceConfig = ImbalanceConfig()
    # the variants `python -m agefair.run` trains (`python -m agefair.train --variant all` trains every one)
    variants: list[str] = Field(default_factory=lambda: ["baseline", "oversample", "weighted", "lds"], min_length=1)
    group_dro: GroupDROSettings = GroupDROSettings()  # the groupdro variant (agefair.core.fair_config)
    bmse: BalancedMSESettings = BalancedMSESettings()  # train.loss: bmse (the bmse variant sets it)
    calibrated: CalibratedSettings = CalibratedSettings()  # the calibrated variant (post hoc, no training)


PRESETS = ("reference", "cpu")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_train_config(preset: str = "reference", override_file: str | Path | None = None,
                      overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset, then --config FILE on top, then command-line overrides; validated once merged."""
    if preset not in PRESETS:
        raise AgefairError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    preset_path = CONFIG_DIR / "presets" / f"{preset}.yaml"
    data = read_yaml(preset_path)
    source: str | Path = preset_path
    if override_file is not None:
        data = deep_merge(data, read_yaml(override_file))
        source = override_file
    cfg = validate(TrainConfig, data, source)  # a bad file is blamed on the file...
    if overrides:  # ...and a bad command-line value on the command line
        cfg = validate(TrainConfig, deep_merge(data, overrides), "command line")
    return cfg


# --- audit ------------------------------------------------------------------------------------

class FairnessConfig(StrictModel):
    """configs/fairness.yaml: audit settings and the thresholds CI enforces."""

    n_boot: int = Field(1000, ge=0, le=100_000)
    ci_level: float = Field(0.95, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    min_group_size: int = Field(30, ge=1)
    bootstrap: Literal["auto", "vectorized", "poisson", "fairlearn"] = "auto"  # docs/audit.md, "Bootstrap"
    many_shot: int = Field(100, ge=1)  # ages with more training images than this are many-shot
    few_shot: int = Field(20, ge=1)  # ages with fewer training images than this are few-shot
    gallery_k: int = Field(6, ge=0, le=100)
    # the age gates audited for every model (agefair.fairness.stats.gates); before rules, which may name them
    gates: list[Gate] = Field(default_factory=lambda: list(DEFAULT_GATES))
    rules: list[ThresholdRule] = Field(default_factory=list)
    reference: str | None = None  # the model the others are compared with (default: baseline, else the first)
    comparisons: ComparisonSettings = ComparisonSettings()
    label_noise: LabelNoiseSettings = LabelNoiseSettings()
    conformal: ConformalSettings = ConformalSettings()
    robustness: RobustnessConfig = RobustnessConfig()

    @field_validator("gates")
    @classmethod
    def _unique_gates(cls, gates: list[ThresholdGate | RangeGate]) -> list[ThresholdGate | RangeGate]:
        names = [g.name for g in gates]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"gate names must be unique: {', '.join(dup)} repeated")
        return gates

    @field_validator("rules")
    @classmethod
    def _rule_gates(cls, rules: list[ThresholdRule], info: ValidationInfo) -> list[ThresholdRule]:
        gates = {g.name: g for g in info.data.get("gates") or []}
        for i, r in enumerate(rules):
            if r.gate is None:
                continue
            if r.gate not in gates:
                raise ValueError(f"rule {i} ({r.label}): unknown gate {r.gate!r}; the gates are "
                                 f"{', '.join(gates) or 'none'}")
            if r.metric not in gate_metrics(gates[r.gate]):
                raise ValueError(f"rule {i} ({r.label}): gate {r.gate!r} has no {r.metric}; its metrics are "
                                 f"{', '.join(gate_metrics(gates[r.gate]))}")
        return rules


def load_fairness_config(path: str | Path | None = None) -> FairnessConfig:
    return load_config(FairnessConfig, path or CONFIG_DIR / "fairness.yaml")
