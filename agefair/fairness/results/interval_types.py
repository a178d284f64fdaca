"""The ``intervals`` part of one model's audit in summary.json: where its conformal calibration came
from, and the coverage report of each calibrator (agefair.fairness.stats.conformal_eval.CoverageReport).
Plain pydantic: no torch, no numpy (the report imports it)."""

from __future__ import annotations

from agefair.fairness.results.record import Num, Record
from agefair.fairness.stats.conformal_eval import CoverageReport


class CalibratorInfo(Record):
    method: str  # "marginal", or the Mondrian grouping's name
    n: int  # validation rows
    quantile: Num = None  # the marginal q (years for abs, multiples of σ̂ for scaled); None: infinite
    groups: list[dict] = []  # Mondrian: group, n, quantile, fallback (n < min_calibration_size)


class CalibrationInfo(Record):
    file: str | None = None  # the run's calibration.json (None: fitted in memory only)
    sha256: str | None = None
    source: str = ""  # a sentence: read from the run, written by this audit, or fitted in memory (and why)
    score: str = ""  # abs | scaled
    coverage: float = 0.9
    calibrators: list[CalibratorInfo] = []


class IntervalsAudit(Record):
    """One model's conformal intervals on the audited split: per calibrator (marginal first), coverage and
    widths overall and per group, with bootstrap intervals and the coverage gap / width ratio."""

    calibration: CalibrationInfo = CalibrationInfo()
    methods: dict[str, CoverageReport] = {}
    notes: list[str] = []
