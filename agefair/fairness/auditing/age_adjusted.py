"""Per-model numbers that adjust for, or look along, true age (exact ages only): the age-standardised MAE
of each group of each single-attribute grouping (agefair.fairness.stats.standardise: the reference is the
age-bin mix of the whole evaluated split; a group lacking a bin is renormalised and flagged), the
Guess-The-Age AAR and the slopes of signed error on true age, overall and per group
(agefair.fairness.stats.age_accuracy). All with bootstrap intervals (subjects resampled when the frame has a
``subject`` column); the audit runs them on one draw (``age_adjusted``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from agefair.fairness.engine.replicates import run_planned
from agefair.fairness.engine.resampling import Resampler, units_of
from agefair.fairness.stats.age_accuracy import aar_and_slopes, plan_aar_and_slopes
from agefair.fairness.stats.metrics import AuditSettings, attribute_groupings
from agefair.fairness.stats.standardise import plan_standardised, standardised_many


def _standardised_calls(pred: pd.DataFrame, groupings: Mapping[str, list[str]]) -> dict[str, dict]:
    calls = {}
    for name in attribute_groupings(dict(groupings)):
        col = groupings[name][0]
        if col not in pred.columns or "age_bin" not in pred.columns:
            continue
        calls[name] = dict(pred=pred["pred"].to_numpy(float), age=pred["age"].to_numpy(float),
                           age_bin=pred["age_bin"].to_numpy(), group=pred[col].to_numpy(), grouping=name)
    return calls


def standardised_groupings(pred: pd.DataFrame, groupings: Mapping[str, list[str]], settings: AuditSettings) -> dict:
    """grouping -> agefair.fairness.stats.standardise.Standardisation as JSON, for each single-attribute grouping."""
    calls = _standardised_calls(pred, groupings)
    done = standardised_many(list(calls.values()), cluster=units_of(pred), settings=settings)  # one draw
    return {name: s.to_json() for name, s in zip(calls, done)}


def age_adjusted(pred: pd.DataFrame, groupings: Mapping[str, list[str]], settings: AuditSettings) -> dict:
    """{"standardised": standardised_groupings, "aar": ..., "error_slopes": ...} on one bootstrap draw: the
    same numbers as standardised_groupings and age_accuracy called apart, one draw fewer."""
    units = units_of(pred)
    calls = _standardised_calls(pred, groupings)
    p, age = pred["pred"].to_numpy(float), pred["age"].to_numpy(float)
    planned = [plan_standardised(list(calls.values()), cluster=units, settings=settings),
               plan_aar_and_slopes(pred=p, age=age, groupings=_single(pred, groupings), cluster=units,
                                   settings=settings)]
    res = Resampler.of(len(pred), units, settings.bootstrap)
    done, (a, slopes) = run_planned(planned, res, settings.n_boot, settings.seed)
    return {"standardised": {name: s.to_json() for name, s in zip(calls, done)},
            "aar": a.to_json(), "error_slopes": [s.to_json() for s in slopes]}


def _single(pred: pd.DataFrame, groupings: Mapping[str, list[str]]) -> dict:
    return {n: pred[c[0]].to_numpy() for n, c in groupings.items()
            if len(c) == 1 and c[0] in pred.columns and c[0] != "shot"}


def age_accuracy(pred: pd.DataFrame, groupings: Mapping[str, list[str]], settings: AuditSettings) -> dict:
    """{"aar": AAR as JSON, "error_slopes": [Slope as JSON]}: overall and per group of each single grouping
    (the attributes and age_bin)."""
    p, age, cluster = pred["pred"].to_numpy(float), pred["age"].to_numpy(float), units_of(pred)
    a, slopes = aar_and_slopes(pred=p, age=age, groupings=_single(pred, groupings), cluster=cluster, settings=settings)
    return {"aar": a.to_json(), "error_slopes": [s.to_json() for s in slopes]}
