"""The audit's decisions as summary.json holds them (pydantic, no numpy): the paired comparisons of every
model against the reference (``Comparisons``: three tables, each its own BH family), and the verdict in
words (``Verdict``: per criterion which model is credibly best, or that none is, and the sentences of
the significant differences). Built by agefair.fairness.auditing.decisions from agefair.fairness.stats.compare's rows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_serializer, model_validator

from agefair.fairness.results.record import CI, Num, Record


class ComparisonRow(Record):
    """One paired comparison model_b - model_a (model_a: the reference; lower is better)."""

    table: str | None = None  # overall | groups | gates (the BH family)
    criterion: str | None = None  # overall | group | gap | worst | spread | worst_any
    metric: str | None = None  # mae, dist, or a gate's rate (false_pass, false_challenge)
    gate: str | None = None
    grouping: str | None = None
    group: str | None = None
    model_a: str | None = None
    model_b: str | None = None
    n: int | None = None
    value_a: Num = None
    value_b: Num = None
    difference: Num = None
    ci: CI = [None, None]
    se: Num = None
    p_value: Num = None
    p_adjusted: Num = None  # Benjamini-Hochberg across the row's table
    significant: bool | None = None
    mde: Num = None  # minimum detectable difference at the power of comparisons.power
    level: Num = None
    clustered: bool = False
    worst_a: str | None = None
    worst_b: str | None = None
    best_a: str | None = None
    best_b: str | None = None
    notes: list[str] = []
    sentence: str | None = None  # agefair.fairness.stats.decide.describe
    margin: Num = None  # the smallest difference that matters (comparisons: margins:), in the metric's units
    practical: Literal["better", "worse", "equivalent", "unclear"] | None = None  # decide.practical


class Comparisons(Record):
    """Every model against the reference on the rows all models predicted."""

    reference: str | None = None
    level: Num = None
    n_boot: int | None = None
    n_perm: int | None = None
    subject: str | None = None  # the cluster column (all images of one subject resampled together)
    rows: int | None = None  # rows every model predicted (the compared rows)
    overall: list[ComparisonRow] = []  # overall metric and each grouping's gap / worst group / spread
    groups: list[ComparisonRow] = []  # each group's metric
    gates: list[ComparisonRow] = []  # each threshold gate's false pass and false challenge: overall, per group, worst
    margins: dict[str, float] = {}  # comparisons: margins: (metric -> the smallest difference that matters)

    @property
    def tables(self) -> dict[str, list[ComparisonRow]]:
        return {"overall": self.overall, "groups": self.groups, "gates": self.gates}


class CompareTo(Record):
    """summary.compare_to (--compare-to): every model in both audits, new - old on the same rows (model_a is
    '<model> (previous)'); each table one Benjamini-Hochberg family."""

    path: str | None = None  # as given
    resolved: str | None = None  # the summary.json it resolved to (through symlinks)
    generated: str | None = None  # when the previous audit was made
    models: list[str] = []
    only_new: list[str] = []
    only_previous: list[str] = []
    matched: dict[str, dict[str, int]] = {}  # model -> rows (matched), new_rows, old_rows
    level: Num = None
    n_boot: int | None = None
    n_perm: int | None = None
    overall: list[ComparisonRow] = []
    groups: list[ComparisonRow] = []


class BestStatement(Record):
    """Which model is credibly best on one criterion, or that none is."""

    key: str | None = None  # overall | worst:<grouping> | gap:<grouping> | spread
    criterion: str | None = None  # in words: 'overall MAE', 'ethnicity gap in MAE'
    leader: str | None = None  # lowest point estimate
    best: str | None = None  # the leader when every paired interval against it excludes 0
    values: dict[str, Num] = {}
    level: Num = None
    margin: Num = None  # the leader must beat every other candidate by more than this
    statement: str | None = None


class Verdict(Record):
    """summary.verdict: the statements the evidence supports. An older summary's verdict (variant names
    by point estimate, e.g. ``most_accurate``) is read into ``legacy``."""

    reference: str | None = None
    best: list[BestStatement] = []
    differences: list[str] = []  # describe() sentences of the differences that matter (beyond the margin)
    counts: dict[str, int] = {}  # comparison rows per practical class: better, worse, equivalent, unclear
    note: str | None = None  # why there is no statement (one model, no comparison)
    legacy: dict[str, str | None] = {}

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        keys = {"reference", "best", "differences", "counts", "note", "legacy"}
        if isinstance(data, dict) and data and not set(data) & keys:
            return {"legacy": data}
        return data

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """An older summary's verdict is written back as it was read."""
        out = handler(self)
        if self.legacy and isinstance(out, dict) and set(out) <= {"legacy"}:
            return out["legacy"]
        return out

    @property
    def statements(self) -> list[str]:
        return [b.statement for b in self.best if b.statement]


class GroupPower(Record):
    """What one group can detect (agefair.fairness.stats.power): the MDE of a gap involving it at ``power``."""

    variant: str | None = None
    grouping: str | None = None
    group: str | None = None
    n: int | None = None
    eligible: bool = False
    metric: str | None = None
    se: Num = None
    mde: Num = None
    power: Num = None
    level: Num = None
    rule: str | None = None  # the gap rule that judges the grouping
    threshold: Num = None
    underpowered: bool | None = None  # MDE > the rule's max (None: no rule judges the grouping)
