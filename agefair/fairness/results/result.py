"""The audit's results as typed objects: summary.json (``AuditSummary``, agefair.fairness.results.summary) and
robustness.json (``RobustnessResult``, agefair.fairness.results.robustness_result), on the shared base of
agefair.fairness.results.record; this module re-exports them and reads the files.

Loading a malformed file is a one-line ``AgefairError`` naming it. Plain pydantic: no torch, no numpy.
"""

from __future__ import annotations

from pathlib import Path

from agefair.fairness.results.record import CI, Num, Record, load, nan_to_none, parse  # noqa: F401  (re-exported)
from agefair.fairness.results.robustness_result import (  # noqa: F401  (re-exported)
    Condition,
    Corruption,
    GapRow,
    GroupGap,
    GroupStats,
    RobustnessCheck,
    RobustnessResult,
    VariantRobustness,
)
from agefair.fairness.results.summary import (  # noqa: F401  (re-exported)
    AgePoint,
    Audit,
    AuditBase,
    AuditSummary,
    Check,
    Coverage,
    DataInfo,
    Dataset,
    DisparityBase,
    DisparityStat,
    ExactAudit,
    ExactDisparity,
    ExactGroup,
    ExactGrouping,
    ExactOverall,
    ExactRow,
    GroupBase,
    IntervalAudit,
    IntervalDisparity,
    IntervalGroup,
    IntervalGrouping,
    IntervalOverall,
    IntervalRow,
    LeaderboardRow,
    Metric,
    NotApplicable,
    Provenance,
    RowBase,
    Training,
    VariantEntry,
)


def load_summary(path: str | Path) -> AuditSummary:
    return load(AuditSummary, path)


def load_robustness(path: str | Path) -> RobustnessResult:
    return load(RobustnessResult, path)


NAMING_KEYS = frozenset({"generated", "seconds", "timings", "provenance", "evaluated_on", "path", "name", "data_dir",
                         "table", "file_sha256", "source"})  # what names an audit's input or its moment


def audit_numbers(summary):
    """A loaded summary.json without NAMING_KEYS at any depth: what two audits of the same rows share
    whatever files, folders or order the rows were read from (paths, file hashes, read counts, timings aside)."""
    if isinstance(summary, dict):
        return {k: audit_numbers(v) for k, v in summary.items() if k not in NAMING_KEYS}
    if isinstance(summary, list):
        return [audit_numbers(v) for v in summary]
    return summary
