"""summary.json's age-adjusted parts of an exact-age audit (pydantic, no numpy): the age-standardised
MAE per group (``standardised``), the AAR and the error slopes; agefair.fairness.auditing.age_adjusted computes
them."""

from __future__ import annotations

from typing import Any

from agefair.fairness.results.record import CI, Num, Record


class StandardisedGroup(Record):
    group: str | None = None
    n: int | None = None
    small: bool = False
    raw: Num = None
    raw_ci: CI = [None, None]
    standardised: Num = None
    standardised_ci: CI = [None, None]
    missing_bins: list[str] = []  # reference bins the group lacks (its weights renormalised over the others)
    coverage: Num = None  # share of the reference weight the group covers (1: complete)


class StandardisedGrouping(Record):
    """One grouping's raw and age-standardised MAE and gap (reference: the split's age-bin mix)."""

    grouping: str | None = None
    metric: str | None = None
    reference: dict[str, float] = {}
    missing: str | None = None
    groups: list[StandardisedGroup] = []
    raw_gap: Num = None
    raw_gap_ci: CI = [None, None]
    gap: Num = None  # standardised worst - best over the groups of adequate size
    gap_ci: CI = [None, None]
    worst_group: str | None = None
    best_group: str | None = None
    cells: list[dict[str, Any]] = []
    level: Num = None
    n_boot: int | None = None
    clustered: bool = False

    def group(self, name: str | None) -> StandardisedGroup | None:
        return next((g for g in self.groups if g.group == name), None)


class AARResult(Record):
    """The Guess-The-Age 2021 AAR = max(0, 7 - MAE) + max(0, 3 - sigma) (agefair.fairness.stats.age_accuracy)."""

    aar: Num = None
    aar_ci: CI = [None, None]
    mae: Num = None
    mae_ci: CI = [None, None]
    sigma: Num = None
    sigma_ci: CI = [None, None]
    group_mae: dict[str, Num] = {}
    group_n: dict[str, int] = {}
    missing_groups: list[str] = []
    level: Num = None
    n_boot: int | None = None
    clustered: bool = False


class SlopeResult(Record):
    """The OLS slope of signed error on true age (years per year), overall (grouping None) or in one group."""

    grouping: str | None = None
    group: str | None = None
    n: int | None = None
    mean_age: Num = None
    slope: Num = None
    ci: CI = [None, None]
    level: Num = None


class NoiseSuspect(Record):
    row: int | None = None
    file: str | None = None
    age: Num = None  # the label
    mean_pred: Num = None
    spread: Num = None
    min_abs_error: Num = None
    predictions: dict[str, Num] = {}
    thumbnail: str | None = None  # a PNG data URI (None: not available)


class NoiseSensitivity(Record):
    model: str | None = None
    grouping: str | None = None  # None: overall
    group: str | None = None  # None: the grouping's gap
    statistic: str | None = None  # mae | gap
    n: int | None = None
    n_flagged: int | None = None
    with_flagged: Num = None
    without_flagged: Num = None
    change: Num = None


class LabelNoiseResult(Record):
    """summary.label_noise: suspected wrong labels (agefair.fairness.stats.label_noise) and the sensitivity table."""

    rule: dict[str, Any] = {}
    suspects: list[NoiseSuspect] = []  # the MAX_LISTED with the largest errors (agefair.fairness.auditing.noise_audit)
    sensitivity: list[NoiseSensitivity] = []
    n_flagged: int | None = None  # every suspect, listed or not (None: an older summary, which listed them all)
