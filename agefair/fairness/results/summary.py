"""summary.json as typed objects: ``AuditSummary`` and its parts (pydantic v2, the file's field names).

An exact-age audit and an age-group ("interval") audit are two types sharing a base
(``ExactAudit`` / ``IntervalAudit``, told apart by ``labels``; likewise their leaderboard rows
``ExactRow`` / ``IntervalRow``), so readers ask the type, not ``if labels == "interval"``. Every
field has a default: the report renders partial summaries (a missing part reads as empty).
``to_json()`` writes only the fields that were set, so summary.json keeps exactly its keys; NaN is
read as None and written as null. Fields the models do not name are kept (``extra="allow"``) and
listed by the report. An audit's ``gates`` are agefair.fairness.stats.gate_types' results (strict, frozen;
NaN as null). Plain pydantic: no torch, no numpy.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Tag

from agefair.fairness.results.adjusted_types import AARResult, LabelNoiseResult, SlopeResult, StandardisedGrouping
from agefair.fairness.results.decision_types import CompareTo, Comparisons, GroupPower, Verdict
from agefair.fairness.results.interval_types import IntervalsAudit
from agefair.fairness.results.record import CI, Num, Record
from agefair.fairness.results.scorecard_types import Scorecard
from agefair.fairness.results.summary_parts import Coverage, DataInfo, Dataset, Provenance, Training  # noqa: F401
from agefair.fairness.stats.gate_types import GateSummary, RangeGateResult, ThresholdGateSummary
from agefair.fairness.stats.specs import DISPARITY_METRICS, LABEL_METRICS

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

    def gate_results(self, gate: str) -> list[ThresholdGateSummary | RangeGateResult]:
        """The age gate ``gate``'s results, one per grouping (overall first)."""
        return [r for r in self.gates if r.gate.name == gate]  # type: ignore[attr-defined]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The grouped metrics of this kind of audit, in the order the audit computes them."""
        return LABEL_METRICS[self.labels]  # type: ignore[attr-defined]

    @property
    def disparity_metrics(self) -> tuple[str, ...]:
        """The disparity table's metrics: the primary one (MAE, or the distance to the age group) first."""
        return DISPARITY_METRICS[self.labels]  # type: ignore[attr-defined]


class ExactAudit(AuditBase):
    """The audit of predictions of exact ages: MAE, RMSE, bias, CS@5 per group."""

    overall: ExactOverall = ExactOverall()
    groupings: dict[str, ExactGrouping] = {}
    age_bin_spread: Num = None
    labels: Literal["exact"] = "exact"
    attributes: list[str] = []
    by_age: list[AgePoint] = []
    gates: list[GateSummary] = []  # the age gates (agefair.fairness.stats.gates), one per (gate, grouping)
    standardised: dict[str, StandardisedGrouping] = {}  # age-standardised MAE per single-attribute grouping
    aar: AARResult | None = None
    error_slopes: list[SlopeResult] = []
    intervals: IntervalsAudit | None = None  # conformal age intervals (agefair.fairness.auditing.intervals)


class IntervalAudit(AuditBase):
    """The audit of predictions against age-group labels: in_group, dist, signed, too_old, too_young."""

    overall: IntervalOverall = IntervalOverall()
    groupings: dict[str, IntervalGrouping] = {}
    labels: Literal["interval"] = "interval"
    attributes: list[str] = []
    gates: list[GateSummary] = []  # the age gates on the rows they can judge (n_excluded: the others)
    intervals: IntervalsAudit | None = None

    @property
    def by_age(self) -> list[AgePoint]:
        """No error by true age: the labels are age groups."""
        return []


def _kind(v: Any) -> str:
    labels = v.get("labels") if isinstance(v, dict) else getattr(v, "labels", None)
    return "interval" if labels == "interval" else "exact"


Audit = Annotated[Annotated[ExactAudit, Tag("exact")] | Annotated[IntervalAudit, Tag("interval")],
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


LeaderboardRow = Annotated[Annotated[ExactRow, Tag("exact")] | Annotated[IntervalRow, Tag("interval")],
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
    standardised: bool | None = None  # judged on the age-standardised MAE
    underpowered: list[str] | None = None  # min_power rules: the eligible groups that cannot detect the gap


class NotApplicable(Record):
    rule: str | None = None
    metric: str | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- the summary

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
    uses_attributes: list[str] = []  # sensitive attributes the model reads at prediction time (calibrated)

    @property
    def external(self) -> bool:
        return self.source == "external"


class AuditSummary(Record):
    """summary.json: every number in the audit report."""

    generated: str | None = None
    split: str | None = None
    passed: bool | None = None
    verdict: Verdict = Verdict()  # the statements the evidence supports (agefair.fairness.auditing.decisions)
    scorecard: Scorecard | None = None  # the report's first screen (agefair.fairness.auditing.scorecard)
    leaderboard: list[LeaderboardRow] = []
    thresholds: list[Check] = []
    thresholds_not_applicable: list[NotApplicable] = []
    comparisons: Comparisons | None = None  # every model against the reference, paired
    power: list[GroupPower] = []  # what each group can detect (agefair.fairness.stats.power)
    compare_to: CompareTo | None = None  # --compare-to: new - old against a previous audit
    label_noise: LabelNoiseResult | None = None  # suspected wrong labels, with and without them
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

    def entry(self, variant: str) -> VariantEntry:
        """The audited model ``variant`` (an empty entry for a variant only the leaderboard names)."""
        return self.variants.get(variant) or VariantEntry()

    def audit(self, variant: str) -> ExactAudit | IntervalAudit:
        return self.entry(variant).audit

    def row(self, variant: Any) -> ExactRow | IntervalRow | None:
        """The leaderboard row of ``variant`` (None: not on the leaderboard)."""
        return next((r for r in self.leaderboard if r.variant == variant), None)

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Top-level fields this version does not know (listed at the end of the report)."""
        return dict(self.model_extra or {})
