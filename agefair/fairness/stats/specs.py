"""What agefair knows about each audit metric, in one table: its name, title, the labels it is
computed for (exact ages or age-group intervals), whether lower is better, whether it is signed
(judged by absolute value) and whether it is a share (shown as a percentage).

Every other list of metrics derives from ``SPECS``: the metric tuples of agefair.fairness.stats.metrics,
the rule metrics of agefair.fairness.auditing.thresholds, the report's titles, share metrics and disparity
tables. Only the plain tuple of names a threshold rule may use lives below, in
``agefair.core.config.AUDIT_METRICS`` (core is the bottom layer: the config validates fairness.yaml
before any fairness code is imported, and must not import this package); this module checks at
import that the two agree. No torch and no numpy here: the report imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agefair.core.config import AUDIT_METRICS

Labels = Literal["exact", "interval"]
LABEL_KINDS: tuple[Labels, ...] = ("exact", "interval")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    title: str  # as the report's tables and hover labels name it
    labels: Labels | None  # computed for exact ages or for age-group (interval) labels; None: both (age gates)
    lower_is_better: bool  # signed metrics: by absolute value
    signed: bool = False  # + means too old; the worst group is the one furthest from 0
    share: bool = False  # a share in [0, 1], shown as a percentage
    grouped: bool = True  # computed per group (False: age_bin_spread, one number per audit)
    primary: bool = False  # the first column of its label kind's disparity table and leaderboard
    gate: Literal["threshold", "range"] | None = None  # an age gate's rate (agefair.fairness.stats.gates)
    unit: str = ""  # years, for the buffers


SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("mae", "MAE", "exact", True, primary=True),
    MetricSpec("rmse", "RMSE", "exact", True),
    MetricSpec("bias", "signed error (bias)", "exact", True, signed=True),
    MetricSpec("cs5", "CS@5", "exact", False, share=True),
    MetricSpec("age_bin_spread", "age-bin spread (SD of bin MAE)", "exact", True, grouped=False),
    MetricSpec("in_group", "share in age group", "interval", False, share=True),
    MetricSpec("dist", "distance to age group", "interval", True, primary=True),
    MetricSpec("signed", "signed distance", "interval", True, signed=True),
    MetricSpec("too_old", "share too old", "interval", True, share=True),
    MetricSpec("too_young", "share too young", "interval", True, share=True),
    # age accuracy (agefair.fairness.stats.age_accuracy): one AAR per model; error slopes overall and per group
    MetricSpec("aar", "AAR (Guess-The-Age 2021)", "exact", False, grouped=False),
    MetricSpec("error_slope", "slope of signed error on true age", "exact", True, signed=True, grouped=False),
    # conformal age intervals (agefair.fairness.auditing.intervals): both kinds of labels, one report per calibrator
    MetricSpec("coverage", "interval coverage", None, False, share=True, grouped=False),
    MetricSpec("interval_width", "mean interval width", None, True, grouped=False, unit="years"),
    # age gates (agefair.fairness.stats.gates): both kinds of labels; a rule names a buffer as buffer_<target>
    MetricSpec("false_pass", "false pass (minors let through)", None, True, share=True, gate="threshold"),
    MetricSpec("false_pass_band", "false pass in the minors band", None, True, share=True, gate="threshold"),
    MetricSpec("false_challenge", "false challenge (adults asked for ID)", None, True, share=True, gate="threshold"),
    MetricSpec("false_challenge_over", "false challenge over the challenge age", None, True, share=True,
               gate="threshold"),
    MetricSpec("false_challenge_between", "false challenge between legal and challenge age", None, True, share=True,
               gate="threshold"),
    MetricSpec("buffer", "buffer (challenge age needed)", None, True, gate="threshold", unit="years"),
    MetricSpec("tpr", "in range, estimated in range (TPR)", None, False, share=True, gate="range"),
    MetricSpec("fpr", "out of range, estimated in range (FPR)", None, True, share=True, gate="range"),
    MetricSpec("fpr_below", "FPR of the younger", None, True, share=True, gate="range"),
    MetricSpec("fpr_above", "FPR of the older", None, True, share=True, gate="range"),
)
SPEC: dict[str, MetricSpec] = {s.name: s for s in SPECS}

# The grouped metrics of each kind of label, in the order the audit computes them.
LABEL_METRICS: dict[str, tuple[str, ...]] = {
    k: tuple(s.name for s in SPECS if s.labels == k and s.grouped and not s.gate) for k in LABEL_KINDS}
METRIC_NAMES = LABEL_METRICS["exact"]
INTERVAL_METRIC_NAMES = LABEL_METRICS["interval"]
LOWER_IS_BETTER: dict[str, bool] = {s.name: s.lower_is_better for s in SPECS if s.grouped and not s.gate}
SIGNED: frozenset[str] = frozenset(s.name for s in SPECS if s.signed)
SHARE_METRICS: frozenset[str] = frozenset(s.name for s in SPECS if s.share)
METRIC_TITLES: dict[str, str] = {s.name: s.title for s in SPECS}
INTERVAL_RULE_METRICS: tuple[str, ...] = tuple(s.name for s in SPECS if s.labels == "interval")
# The disparity tables' metrics: the primary one first, then the others in table order.
DISPARITY_METRICS: dict[str, tuple[str, ...]] = {
    k: tuple(sorted(LABEL_METRICS[k], key=lambda m: not SPEC[m].primary)) for k in LABEL_KINDS}
PRIMARY_METRIC: dict[str, str] = {k: DISPARITY_METRICS[k][0] for k in LABEL_KINDS}
# The age grouping of exact ages (age_bin) and of age-group labels (age_group).
AGE_GROUPINGS = ("age_bin", "age_group")


def labels_of(metric: str) -> Labels | None:
    """The kind of label ``metric`` is computed for (None: both, an age gate's rate)."""
    return gate_spec(metric).labels


def gate_spec(metric: str) -> MetricSpec:
    """The spec of ``metric``, a rule's buffer_<target> read as ``buffer``."""
    return SPEC["buffer" if metric.startswith("buffer_") else metric]


def metric_title(metric: str) -> str:
    """The title of ``metric``; a buffer's with its target (``buffer for 1% (years)``)."""
    if metric.startswith("buffer_"):
        return f"buffer for {float(metric[7:]):.0%} (challenge age needed, years)"
    return METRIC_TITLES[metric]


# The rates of each kind of age gate, in the report's order.
GATE_RATES: dict[str, tuple[str, ...]] = {
    k: tuple(s.name for s in SPECS if s.gate == k and s.name != "buffer") for k in ("threshold", "range")}


if tuple(s.name for s in SPECS) != tuple(AUDIT_METRICS):  # pragma: no cover - a programming error
    raise ImportError(f"agefair.fairness.stats.specs and core.config.AUDIT_METRICS disagree: "
                      f"{[s.name for s in SPECS]} vs {list(AUDIT_METRICS)}")
