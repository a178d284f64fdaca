"""Age-accuracy summaries: the Guess-The-Age AAR and the slope of error against true age.

**AAR** (Age Accuracy and Regularity), from Greco, Saggese, Vento, Vigilante: "Guess the Age 2021:
age estimation from facial images with deep convolutional neural networks" contest (CAIP 2021).
As implemented here:

    AAR   = max(0, 7 - MAE) + max(0, 3 - sigma)
    sigma = sqrt( (1/8) * sum_j (MAE_j - MAE)^2 )

with MAE over all rows and MAE_j over the rows of age group j, the 8 groups 1-10, 11-20, ...,
61-70, 70+. Details this module has to choose, where the contest text is not explicit to us:
ages are assigned by ``j = clip(ceil(age / 10), 1, 8)``, so 70 is in 61-70 and "70+" holds ages
over 70 (the listed groups overlap at 70); ages below 1 count in 1-10; a group with no row is left
out of sigma's mean (the contest's test set had all 8; ``missing_groups`` says when that happened).
MAE and sigma are in years; the best AAR is 10. Exact ages only.

**Slope of signed error against true age**, per group: the OLS slope of (pred - age) on age.
Regression to the mean makes it negative: children over-predicted, elderly under-predicted; 0 is no
age-dependent bias. Bootstrap percentile intervals for both (rows, or clusters when given).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from agefair.fairness.engine.replicates import Job, Planned, replicate_many, run_planned
from agefair.fairness.engine.resampling import (
    Resampler,
    as_labels,
    build_layout,
    is_clustered,
    quantile_ci,
    to_json_value,
)
from agefair.fairness.stats.metrics import AuditSettings

AAR_GROUPS = ("1-10", "11-20", "21-30", "31-40", "41-50", "51-60", "61-70", "70+")


def aar_group(age) -> np.ndarray:
    """The contest age group label of each age (see the module docstring for the edges)."""
    j = np.clip(np.ceil(np.asarray(age, float) / 10), 1, 8).astype(int) - 1
    return np.array(AAR_GROUPS, dtype=object)[j]


def aar_from(mae: float | np.ndarray, group_mae: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AAR, sigma) from the overall MAE (r,) and the groups' MAE (r x groups; NaN: absent)."""
    mae = np.asarray(mae, float).reshape(-1)
    g = np.atleast_2d(np.asarray(group_mae, float))
    fin = np.isfinite(g)
    dev = np.where(fin, (g - mae[:, None]) ** 2, 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.where(fin.any(axis=1), np.sqrt(dev / fin.sum(axis=1)), np.nan)
    return np.maximum(0, 7 - mae) + np.maximum(0, 3 - sigma), sigma


@dataclass(frozen=True)
class AAR:
    aar: float
    aar_ci: tuple[float, float]
    mae: float
    mae_ci: tuple[float, float]
    sigma: float
    sigma_ci: tuple[float, float]
    group_mae: dict[str, float]
    group_n: dict[str, int]
    missing_groups: tuple[str, ...]
    level: float
    n_boot: int
    clustered: bool

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


def _aar_job(pred, age) -> tuple[Job, np.ndarray]:
    age = np.asarray(age, float)
    err = np.abs(np.asarray(pred, float) - age)
    n = len(err)
    layout = build_layout({"all": np.full(n, "all", dtype=object), "aar": aar_group(age)}, n)
    all_c, gcols = layout.cols("all")[0], layout.cols("aar")

    def _aar(m):
        return aar_from(m[:, all_c], m[:, gcols])[0]

    def _sigma(m):
        return aar_from(m[:, all_c], m[:, gcols])[1]

    return Job([err], layout, [_aar, lambda m: m[:, all_c], _sigma]), err


def _aar_result(job: Job, err: np.ndarray, point, boot, cluster, settings: AuditSettings) -> AAR:
    layout = job.layout
    gcols = layout.cols("aar")
    ci = [quantile_ci(boot[i, :, 0], settings.ci_level) for i in range(3)]
    counts, labels = layout.counts(), layout.labels("aar")
    gm = np.asarray(layout.incidence[:, gcols].T @ err).ravel() / counts[gcols]
    return AAR(float(point[0, 0]), ci[0], float(point[1, 0]), ci[1], float(point[2, 0]), ci[2],
               dict(zip(labels, gm.tolist())), {g: int(c) for g, c in zip(labels, counts[gcols])},
               tuple(g for g in AAR_GROUPS if g not in labels), settings.ci_level, settings.n_boot,
               is_clustered(cluster))


def aar(*, pred, age, cluster=None, settings: AuditSettings = AuditSettings()) -> AAR:
    """The Guess-The-Age 2021 AAR with bootstrap intervals for it, the MAE and sigma."""
    job, err = _aar_job(pred, age)
    res = Resampler.of(len(err), cluster, settings.bootstrap)
    (point, boot), = replicate_many([job], res, settings.n_boot, settings.seed)
    return _aar_result(job, err, point, boot, cluster, settings)


def plan_aar_and_slopes(*, pred, age, groupings: Mapping[str, object] | None = None, cluster=None,
                        settings: AuditSettings = AuditSettings()) -> Planned:
    """``aar_and_slopes`` ready to run (agefair.fairness.engine.replicates.run_planned): (AAR, slopes)."""
    a_job, err = _aar_job(pred, age)
    s_job, age_arr = _slopes_job(pred, age, groupings)

    def finish(done):
        (ap, ab), (sp, sb) = done
        return _aar_result(a_job, err, ap, ab, cluster, settings), _slopes_result(s_job, age_arr, sp, sb, settings)

    return Planned([a_job, s_job], finish)


def aar_and_slopes(*, pred, age, groupings: Mapping[str, object] | None = None, cluster=None,
                   settings: AuditSettings = AuditSettings()) -> tuple[AAR, list[Slope]]:
    """``aar`` and ``error_slopes`` on one bootstrap draw (the same numbers as one call each)."""
    planned = plan_aar_and_slopes(pred=pred, age=age, groupings=groupings, cluster=cluster, settings=settings)
    res = Resampler.of(len(np.asarray(age)), cluster, settings.bootstrap)
    return run_planned([planned], res, settings.n_boot, settings.seed)[0]


@dataclass(frozen=True)
class Slope:
    grouping: str | None  # None: all rows
    group: str | None
    n: int
    mean_age: float
    slope: float  # years of signed error per year of true age
    ci: tuple[float, float]
    level: float

    def to_json(self) -> dict:
        return to_json_value(asdict(self))


def _ols(means: np.ndarray, k: int) -> np.ndarray:
    """Slopes from the cell means of x, y, xx, xy stacked as four (r x k) blocks."""
    mx, my, mxx, mxy = (means[:, i * k:(i + 1) * k] for i in range(4))
    var = mxx - mx ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-12, (mxy - mx * my) / np.where(var > 1e-12, var, 1), np.nan)


def _slopes_job(pred, age, groupings) -> tuple[Job, np.ndarray]:
    age = np.asarray(age, float)
    y = np.asarray(pred, float) - age
    n = len(y)
    x = age - age.mean()  # centred: the moments stay well conditioned
    blocks = {"__all__": np.full(n, "all", dtype=object)} | {k: as_labels(v) for k, v in (groupings or {}).items()}
    layout = build_layout(blocks, n)
    k = layout.n_cells
    return Job([x, y, x * x, x * y], layout, [lambda m: _ols(m, k)], joint=True), age


def _slopes_result(job: Job, age: np.ndarray, point, boot, settings: AuditSettings) -> list[Slope]:
    layout, point, boot = job.layout, point[0], boot[0]
    counts = layout.counts()
    mean_age = np.asarray(layout.incidence.T @ age).ravel() / np.maximum(counts, 1)
    out = []
    for name in layout.blocks:
        for c, g in zip(layout.cols(name), layout.labels(name)):
            top = name == "__all__"
            out.append(Slope(None if top else name, None if top else g, int(counts[c]), float(mean_age[c]),
                             float(point[c]), quantile_ci(boot[:, c], settings.ci_level), settings.ci_level))
    return out


def error_slopes(*, pred, age, groupings: Mapping[str, object] | None = None, cluster=None,
                 settings: AuditSettings = AuditSettings()) -> list[Slope]:
    """The OLS slope of signed error (pred - age) on true age, overall and per group, with
    bootstrap intervals (all groups on the same draws)."""
    job, age = _slopes_job(pred, age, groupings)
    res = Resampler.of(len(age), cluster, settings.bootstrap)
    (point, boot), = replicate_many([job], res, settings.n_boot, settings.seed)
    return _slopes_result(job, age, point, boot, settings)
