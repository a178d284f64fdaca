"""summary.scorecard: the report's first screen as data (pydantic, no numpy). Models as rows, criteria as
columns; each cell the model's value (with its interval) and a mark against the reference or target, with
the paired difference behind the mark. Built by agefair.fairness.auditing.scorecard from the rest of the summary, so
every number in it is also elsewhere in summary.json."""

from __future__ import annotations

from typing import Literal

from agefair.fairness.results.record import CI, Num, Record

# better / worse: by more than the margin; equivalent: the whole interval inside it; unclear: can't tell;
# reference: the row the others are compared with; none: no comparison behind the cell
Mark = Literal["better", "worse", "equivalent", "unclear", "reference", "none"]


class ScoreColumn(Record):
    key: str  # overall | worst:<grouping> | gap:<grouping> | std_gap:<grouping> | spread | fp:<gate> | fc:<gate> | coverage
    title: str  # the column's heading
    family: str  # the heading over related columns: accuracy, an attribute, age, a gate, intervals
    unit: Literal["years", "share"] = "years"
    margin: Num = None  # the smallest difference that matters (in the unit)
    against: Literal["reference", "target", "none"] = "reference"  # what the marks compare with
    target: Num = None  # the coverage column's target
    help: str = ""  # one sentence: what the number is


class ScoreCell(Record):
    value: Num = None
    ci: CI = [None, None]
    group: str | None = None  # the worst group, where the column names one
    n: int | None = None
    mark: Mark = "none"
    difference: Num = None  # model - reference (or value - target), lower is better except coverage
    difference_ci: CI = [None, None]
    significant: bool | None = None  # BH-adjusted, where the mark comes from a paired comparison


class ScoreRow(Record):
    model: str
    reference: bool = False
    cells: dict[str, ScoreCell] = {}
    rules_passed: int | None = None
    rules: int | None = None


def written_whole(record: Record) -> Record:
    """``record`` with every field marked set, so that summary.json (which writes only the fields that were set)
    holds each column's and cell's every field, defaults included: a reader needs no defaults of its own."""
    record.__pydantic_fields_set__.update(type(record).model_fields)
    for value in record.__dict__.values():
        for item in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]):
            if isinstance(item, Record):
                written_whole(item)
    return record


class Scorecard(Record):
    reference: str | None = None
    level: Num = None
    columns: list[ScoreColumn] = []
    rows: list[ScoreRow] = []
