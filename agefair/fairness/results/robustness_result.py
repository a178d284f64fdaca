"""robustness.json as typed objects: ``RobustnessResult`` (pydantic v2, the file's field names, in its order).

Built by agefair.fairness.auditing.robustness, read by the report and the console. Like summary.json's
models (agefair.fairness.results.summary) every field has a default, ``to_json()`` writes only the fields
that were set, NaN is read as None; a null clean condition or groupings reads as empty (the report
shows '–'). Plain pydantic: no torch, no numpy.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo, field_validator

from agefair.fairness.results.record import CI, Num, Record, none_is_empty


class GroupStats(Record):
    """One group under one condition."""

    n: int | None = None
    mae: Num = None
    bias: Num = None
    small: bool = False


class GroupGap(Record):
    """A grouping under one condition: its groups and the worst-minus-best MAE gap (groups of adequate size)."""

    groups: dict[str, GroupStats] = {}
    gap: Num = None
    gap_ci: CI = [None, None]
    worst_group: str | None = None
    worst: Num = None
    best_group: str | None = None
    best: Num = None


class Condition(Record):
    """The metrics of one corruption x severity (the clean images: no corruption, severity or param)."""

    corruption: str | None = None
    severity: int | None = None
    param: Any = None
    mae: Num = None
    bias: Num = None
    pred_sd: Num = None
    groupings: dict[str, GroupGap] = {}

    @field_validator("groupings", mode="before")
    @classmethod
    def _null_groupings(cls, x: Any) -> Any:
        return none_is_empty(x, {})

    def gap(self, grouping: str) -> float | None:
        g = self.groupings.get(grouping)
        return g.gap if g else None


class VariantRobustness(Record):
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    image_size: int | None = None
    backbone: str | None = None
    head: str | None = None
    val_mae: Num = None
    clean: Condition = Condition()
    conditions: list[Condition] = []

    @field_validator("clean", "conditions", mode="before")
    @classmethod
    def _null_parts(cls, x: Any, info: ValidationInfo) -> Any:
        return none_is_empty(x, {} if info.field_name == "clean" else [])

    def condition(self, corruption: str, severity: int) -> Condition | None:
        return next((c for c in self.conditions if c.corruption == corruption and c.severity == severity), None)


class Corruption(Record):
    title: str | None = None
    unit: str | None = None
    params: list[Any] = []
    version: int | None = None


class GapRow(Record):
    """One variant x corruption x severity x grouping: its gap, the clean gap and the change."""

    variant: str | None = None
    corruption: str | None = None
    severity: int | None = None
    grouping: str | None = None
    worst_group: str | None = None
    worst: Num = None
    best_group: str | None = None
    best: Num = None
    gap: Num = None
    gap_ci: CI = [None, None]
    clean_gap: Num = None
    gap_increase: Num = None
    mae: Num = None
    clean_mae: Num = None


class RobustnessCheck(Record):
    """One robustness rule judged on one variant: the worst covered condition decides."""

    variant: str | None = None
    rule: str | None = None
    metric: str | None = None
    grouping: str | None = None
    corruption: str | None = None
    severity: int | None = None
    group: str | None = None
    value: Num = None
    ci: CI = [None, None]
    judged_value: Num = None
    judge: str = "point"
    op: str = "<="
    threshold: Num = None
    passed: bool = False


class RobustnessResult(Record):
    """robustness.json: MAE and group gaps of each variant under each corruption x severity."""

    generated: str | None = None
    split: str | None = None
    n_images: int | None = None
    limit: int | None = None
    severities: list[int] = []
    groupings: list[str] = []
    corruptions: dict[str, Corruption] = {}
    variants: dict[str, VariantRobustness] = {}
    largest_gaps: list[GapRow] = []
    thresholds: list[RobustnessCheck] = []
    passed: bool | None = None
    timings: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
