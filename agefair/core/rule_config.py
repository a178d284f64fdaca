"""The threshold rules of configs/fairness.yaml (``rules:``): which metric, grouping and statistic a rule
judges, and how (agefair.fairness.auditing.thresholds judges them). Re-exported by agefair.core.config."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_serializer, model_validator

from agefair.core.base_model import StrictModel
from agefair.core.gate_config import GATE_METRICS, is_buffer_metric

# The metrics a threshold rule may name (their titles, label kinds and directions: agefair.fairness.stats.specs,
# which checks it agrees with this list; the list is here because the config is validated below fairness).
# The age gates' rates (agefair.core.gate_config) follow; a rule names a buffer as buffer_<target>.
AuditMetric = Literal["mae", "rmse", "bias", "cs5", "age_bin_spread", "in_group", "dist", "signed", "too_old",
                      "too_young", "aar", "error_slope", "coverage", "interval_width"]
INTERVAL_METRICS = ("coverage", "interval_width")  # of the conformal age intervals (both kinds of labels)
AUDIT_METRICS: tuple[str, ...] = (*get_args(AuditMetric), *GATE_METRICS)
AUDIT_GROUPINGS = ("overall", "age_bin", "gender", "ethnicity", "gender x ethnicity", "age_bin x ethnicity", "shot")
EVERY_ATTRIBUTE = "every attribute"  # a rule checked on each sensitive attribute's grouping


def is_gate_metric(metric: str) -> bool:
    """Whether ``metric`` is an age gate's rate (false_pass, ..., buffer_0.01, tpr, ...)."""
    return (metric in GATE_METRICS and metric != "buffer") or is_buffer_metric(metric)


class ThresholdRule(StrictModel):
    """One fairness gate. ``statistic``: the overall ``value``, the ``worst_group``'s value, or the
    ``difference`` / ``ratio`` between groups; ``judge``: the point estimate or a bound of its interval.
    ``grouping``: ``overall``, any grouping of the audited data (UTKFace: AUDIT_GROUPINGS; a CSV dataset:
    its attributes, ``age_bin`` or ``age_group``, intersections ``a x b``), or ``every attribute``.
    Metrics mae..age_bin_spread apply to exact ages, in_group..too_young to age-group labels; an age
    gate's rates (false_pass, ..., buffer_0.01, tpr, ...) name their ``gate`` and apply to both."""

    name: str | None = None
    metric: str
    gate: str | None = None
    grouping: str = Field("overall", min_length=1)
    statistic: Literal["value", "worst_group", "difference", "ratio", "change"] = "value"
    max: float | None = None
    min: float | None = None
    judge: Literal["point", "ci_lower", "ci_upper"] = "point"
    min_power: bool = False  # a gap rule fails when an eligible group cannot detect a gap of its max
    standardised: bool = False  # judge the age-standardised MAE (worst_group / difference; exact ages)
    intervals: str = "marginal"  # coverage / interval_width: the calibrator (marginal, or a Mondrian grouping)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in get_args(AuditMetric) and not is_gate_metric(v):
            names = ", ".join(m for m in AUDIT_METRICS if m != "buffer")
            raise ValueError(f"unknown metric {v!r}; choose one of {names}, buffer_<target> (e.g. buffer_0.01)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdRule:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        if is_gate_metric(self.metric) != (self.gate is not None):
            raise ValueError(f"metric {self.metric} is an age gate's rate: name its gate" if self.gate is None
                             else f"metric {self.metric} is not an age gate's rate: leave out gate")
        if self.min_power and (self.statistic != "difference" or self.max is None):
            raise ValueError("min_power applies to gap rules: statistic difference with a max")
        if self.standardised and (self.metric != "mae" or self.statistic not in ("worst_group", "difference")):
            raise ValueError("standardised: true is for metric mae with statistic worst_group or difference")
        if is_buffer_metric(self.metric) and self.statistic == "ratio":
            raise ValueError("buffers (ages) have no ratio: use statistic worst_group or difference")
        if self.statistic == "change" and self.metric not in ("mae", "dist"):
            raise ValueError("statistic change (new - old, --compare-to) is for metric mae or dist")
        if self.metric == "aar" and (self.grouping != "overall" or self.min is None):
            raise ValueError("aar is one number per model: grouping overall, statistic value, with a min")
        if self.metric == "error_slope" and self.statistic not in ("value", "worst_group"):
            raise ValueError("error_slope: statistic value (grouping overall) or worst_group (by absolute value)")
        if self.intervals != "marginal" and self.metric not in INTERVAL_METRICS:
            raise ValueError("intervals: applies to metrics coverage and interval_width")
        if self.metric == "coverage" and self.statistic == "ratio":
            raise ValueError("coverage: statistic value, worst_group (the lowest) or difference (the coverage gap)")
        if self.metric == "interval_width" and self.statistic == "difference":
            raise ValueError("interval_width: statistic value, worst_group (the widest) or ratio (widest / narrowest)")
        if self.metric == "age_bin_spread":
            if self.statistic != "value" or self.judge != "point":
                raise ValueError("age_bin_spread is one number per variant: statistic value, judge point")
        elif self.grouping == "overall" and self.statistic not in ("value", "change"):
            raise ValueError("the overall grouping has one group: use statistic value")
        elif self.grouping != "overall" and self.statistic == "value":
            raise ValueError(f"grouping {self.grouping!r} needs statistic worst_group, difference, ratio or change")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Without ``gate`` / ``standardised`` when unset (dumps of other rules read as before they existed)."""
        out = handler(self)
        drop = ({"gate": out.get("gate") is None, "standardised": not out.get("standardised"),
                 "intervals": self.metric not in INTERVAL_METRICS} if isinstance(out, dict) else {})
        return {k: v for k, v in out.items() if not drop.get(k)} if drop else out

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        what = self.metric if self.metric == "age_bin_spread" else f"{self.metric} {self.statistic}"
        where = "" if self.grouping == "overall" or self.metric == "age_bin_spread" else f" by {self.grouping}"
        adjusted = " (age-standardised)" if self.standardised else ""
        if self.metric in INTERVAL_METRICS and self.intervals != "marginal":
            adjusted = f" (Mondrian by {self.intervals})"
        return (f"{self.gate} " if self.gate else "") + f"{what}{where}{adjusted}"
