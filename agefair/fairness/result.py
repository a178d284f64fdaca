"""The audit's results as typed objects: summary.json (``AuditSummary``) and robustness.json
(``RobustnessResult``), pydantic v2 models with exactly the files' field names.

An exact-age audit and an age-group ("interval") audit are two types sharing a base
(``ExactAudit`` / ``IntervalAudit``, told apart by ``labels``; likewise their leaderboard rows),
so readers ask the type, not ``if labels == "interval"``. Every field has a default: the report
renders partial summaries (a missing part reads as empty). ``to_json()`` writes only the fields
that were set, so summary.json keeps exactly its keys; NaN is written as null. Fields the models
do not name are kept (``extra="allow"``) and listed by the report. Loading a malformed file is a
one-line ``AgefairError`` naming it. Plain pydantic: no torch, no numpy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

from agefair.core.errors import AgefairError

Num = int | float | None  # ints stay ints; None: not computed (written as null; NaN in memory reads the same)
CI = list[int | float | None] | None  # [lower, upper]; None where there is no interval


def nan_to_none(obj):
    """``obj`` with every float NaN replaced by None (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj


class Record(BaseModel):
    """Base of every result model: unknown fields are kept, dumps hold only the fields that were set."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_json(self) -> dict:
        """The JSON-ready dict (as written to disk): set fields only, NaN as null."""
        return nan_to_none(self.model_dump(mode="json", exclude_unset=True))


# --------------------------------------------------------------------------- metrics and groups

class Metric(Record):
    value: Num = None
    ci: CI = [None, None]


class DisparityStat(Record):
    worst_group: str | None = None
    worst: Num = None
    worst_ci: CI = [None, None]
    best_group: str | None = None
    best: Num = None
    difference: Num = None
    difference_ci: CI = [None, None]
    ratio: Num = None
    ratio_ci: CI = [None, None]


class DisparityBase(Record):
    eligible_groups: int | None = None
    flagged_small_groups: int | None = None

    def stat(self, metric: str) -> DisparityStat | None:
        """The disparity of ``metric`` (None: fewer than two groups of adequate size, or not this kind's)."""
        x = getattr(self, metric, None) if metric in type(self).model_fields else None
        return x if isinstance(x, DisparityStat) else None


class ExactDisparity(DisparityBase):
    mae: DisparityStat | None = None
    rmse: DisparityStat | None = None
    bias: DisparityStat | None = None
    cs5: DisparityStat | None = None


class IntervalDisparity(DisparityBase):
    in_group: DisparityStat | None = None
    dist: DisparityStat | None = None
    signed: DisparityStat | None = None
    too_old: DisparityStat | None = None
    too_young: DisparityStat | None = None


class GroupBase(Record):
    group: str | None = None
    n: int | None = None
    small: bool = False

    def metric(self, name: str) -> Metric:
        x = getattr(self, name, None) if name in type(self).model_fields else None
        return x if isinstance(x, Metric) else Metric()


class ExactGroup(GroupBase):
    mae: Metric | None = None
    rmse: Metric | None = None
    bias: Metric | None = None
    cs5: Metric | None = None


class IntervalGroup(GroupBase):
    in_group: Metric | None = None
    dist: Metric | None = None
    signed: Metric | None = None
    too_old: Metric | None = None
    too_young: Metric | None = None


class ExactOverall(Record):
    """Overall metrics (one group, all images); ``n`` as {value, ci} like the metrics."""

    mae: Metric | None = None
    rmse: Metric | None = None
    bias: Metric | None = None
    cs5: Metric | None = None
    n: Metric | None = None

    metric = GroupBase.metric


class IntervalOverall(Record):
    in_group: Metric | None = None
    dist: Metric | None = None
    signed: Metric | None = None
    too_old: Metric | None = None
    too_young: Metric | None = None
    n: Metric | None = None

    metric = GroupBase.metric


class ExactGrouping(Record):
    columns: list[str] = []
    groups: list[ExactGroup] = []
    disparity: ExactDisparity = ExactDisparity()


class IntervalGrouping(Record):
    columns: list[str] = []
    groups: list[IntervalGroup] = []
    disparity: IntervalDisparity = IntervalDisparity()


class AgePoint(Record):
    age: Num = None
    n: int | None = None
    mae: Num = None
    bias: Num = None


# --------------------------------------------------------------------------- one model's audit

class AuditBase(Record):
    """What both kinds of audit have: ``overall``, ``groupings`` by name and ``attributes`` (the groupings
    of one sensitive attribute); fields are declared by each kind, in summary.json's order."""

    def grouping(self, name: str) -> ExactGrouping | IntervalGrouping | None:
        return self.groupings.get(name)  # type: ignore[attr-defined]


class ExactAudit(AuditBase):
    """The audit of predictions of exact ages: MAE, RMSE, bias, CS@5 per group."""

    overall: ExactOverall = ExactOverall()
    groupings: dict[str, ExactGrouping] = {}
    age_bin_spread: Num = None
    labels: Literal["exact"] = "exact"
    attributes: list[str] = []
    by_age: list[AgePoint] = []


class IntervalAudit(AuditBase):
    """The audit of predictions against age-group labels: in_group, dist, signed, too_old, too_young."""

    overall: IntervalOverall = IntervalOverall()
    groupings: dict[str, IntervalGrouping] = {}
    labels: Literal["interval"] = "interval"
    attributes: list[str] = []


def _kind(v: Any) -> str:
    labels = v.get("labels") if isinstance(v, dict) else getattr(v, "labels", None)
    return "interval" if labels == "interval" else "exact"


Audit = Annotated[Union[Annotated[ExactAudit, Tag("exact")], Annotated[IntervalAudit, Tag("interval")]],
                  Discriminator(_kind)]


# --------------------------------------------------------------------------- leaderboard and checks

class RowBase(Record):
    """A leaderboard row (fields declared by each kind, in summary.json's order)."""

    pass


class ExactRow(RowBase):
    variant: str | None = None
    mae: Num = None
    mae_ci: CI = [None, None]
    cs5: Num = None
    bias: Num = None
    worst_group: str | None = None
    worst_group_mae: Num = None
    worst_group_ci: CI = [None, None]
    ethnicity_gap: Num = None
    ethnicity_gap_ci: CI = [None, None]
    age_bin_spread: Num = None
    gap_grouping: str | None = None
    gap: Num = None
    gap_ci: CI = [None, None]
    rules_passed: int | None = None
    rules: int | None = None


class IntervalRow(RowBase):
    variant: str | None = None
    labels: Literal["interval"] = "interval"
    n: Num = None
    in_group: Num = None
    in_group_ci: CI = [None, None]
    dist: Num = None
    dist_ci: CI = [None, None]
    signed: Num = None
    too_old: Num = None
    too_young: Num = None
    worst_group: str | None = None
    worst_group_dist: Num = None
    worst_group_ci: CI = [None, None]
    gap_grouping: str | None = None
    gap: Num = None
    gap_ci: CI = [None, None]
    rules_passed: int | None = None
    rules: int | None = None


LeaderboardRow = Annotated[Union[Annotated[ExactRow, Tag("exact")], Annotated[IntervalRow, Tag("interval")]],
                           Discriminator(_kind)]


class Check(Record):
    """One threshold check: a rule judged on one variant."""

    variant: str | None = None
    rule: str | None = None
    metric: str | None = None
    grouping: str | None = None
    statistic: str | None = None
    group: str | None = None
    value: Num = None
    ci: CI = [None, None]
    judge: str = "point"
    judged_value: Num = None
    op: str = ""
    threshold: Num = None
    passed: bool = False


class NotApplicable(Record):
    rule: str | None = None
    metric: str | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- the summary

class Dataset(Record):
    name: str | None = None
    kind: str | None = None
    path: str | None = None
    labels: Literal["exact", "interval"] | None = None
    attributes: list[str] = []
    groupings: list[str] = []
    manifest_hash: str | None = None
    split: str | None = None
    images_in_split: int | None = None
    aligned: str | None = None
    detector: str | None = None


class Training(Record):
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    epoch: int | None = None
    val_mae: Num = None
    config: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    history: list[dict[str, Any]] = []


class Coverage(Record):
    images_in_split: int | None = None
    predicted: int | None = None
    faces: dict[str, int] = {}


class VariantEntry(Record):
    """One audited model: how it was trained (agefair variants), where its numbers come from, its audit."""

    training: Training | None = None
    source: Literal["agefair", "external"] | None = None
    evaluated_on: str | None = None
    trained_on: str | None = None
    predictions: dict[str, Any] = {}  # external predictions: the file and how its rows matched
    matching_text: str | None = None
    coverage: Coverage = Coverage()
    audit: Audit = ExactAudit()
    timings: dict[str, float] = {}

    @property
    def external(self) -> bool:
        return self.source == "external"


class DataInfo(Record):
    quality: dict[str, Any] = {}
    split: dict[str, Any] = {}
    split_text: str = ""


class Provenance(Record):
    data_dir: str | None = None
    manifest_hash: str | None = None
    split_seed: int | None = None
    split: str | None = None
    thresholds_file: str | None = None
    audit_settings: dict[str, Any] = {}
    git_commit: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, Any] = {}
    command: str | None = None
    reproduce: str | None = None
    device: str | None = None
    precision: str | None = None
    torch_threads: int | None = None
    platform: str | None = None
    data_config: dict[str, Any] = {}


class AuditSummary(Record):
    """summary.json: every number in the audit report."""

    generated: str | None = None
    split: str | None = None
    passed: bool | None = None
    verdict: dict[str, str | None] = {}
    leaderboard: list[LeaderboardRow] = []
    thresholds: list[Check] = []
    thresholds_not_applicable: list[NotApplicable] = []
    dataset: Dataset = Dataset()
    variants: dict[str, VariantEntry] = {}
    data: DataInfo = DataInfo()
    provenance: Provenance = Provenance()
    gallery_note: str | None = None
    seconds: Num = None

    @property
    def labels(self) -> Literal["exact", "interval"]:
        """'interval' when the audited data has age-group labels (the dataset's, else the audits'), else 'exact'."""
        if self.dataset.labels is not None:
            return self.dataset.labels
        audits = [e.audit for e in self.variants.values()]
        return "interval" if audits and all(isinstance(a, IntervalAudit) for a in audits) else "exact"

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Top-level fields this version does not know (listed at the end of the report)."""
        return dict(self.model_extra or {})


# --------------------------------------------------------------------------- robustness.json

class GroupGap(Record):
    groups: dict[str, dict[str, Any]] = {}
    gap: Num = None
    gap_ci: CI = [None, None]
    worst_group: str | None = None
    worst: Num = None
    best_group: str | None = None
    best: Num = None


class Condition(Record):
    corruption: str | None = None
    severity: int | None = None
    param: Any = None
    mae: Num = None
    bias: Num = None
    pred_sd: Num = None
    groupings: dict[str, GroupGap] = {}


class VariantRobustness(Record):
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    image_size: int | None = None
    clean: Condition = Condition()
    conditions: list[Condition] = []


class Corruption(Record):
    title: str | None = None
    unit: str | None = None
    params: list[Any] = []
    version: int | None = None


class RobustnessCheck(Record):
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
    largest_gaps: list[dict[str, Any]] = []
    thresholds: list[RobustnessCheck] = []
    passed: bool | None = None
    timings: dict[str, Any] = {}
    provenance: dict[str, Any] = {}


# --------------------------------------------------------------------------- reading

M = TypeVar("M", bound=Record)


def _one_line(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-")) or "top level"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {e['msg']}{more}"


def parse(model: type[M], data: Any, source: str) -> M:
    """``data`` as ``model``; an AgefairError naming ``source`` and the first bad field when it is not one."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise AgefairError(f"{source}: not a {model.__name__} (a JSON object expected, got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AgefairError(f"{source}: not a valid {model.__name__}: {_one_line(exc)}") from None


def load(model: type[M], path: str | Path) -> M:
    """Read ``path`` (JSON) as ``model``: an AgefairError naming the file when it cannot be read or is malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgefairError(f"{path}: cannot be read as JSON ({type(exc).__name__})") from None
    return parse(model, data, str(path))


def load_summary(path: str | Path) -> AuditSummary:
    return load(AuditSummary, path)


def load_robustness(path: str | Path) -> RobustnessResult:
    return load(RobustnessResult, path)
