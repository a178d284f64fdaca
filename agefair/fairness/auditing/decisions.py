"""The audit's decisions: every model against a reference with paired evidence, and the verdict in words.

``comparisons(...)`` runs agefair.fairness.stats.compare on the rows every model predicted: per model, the
overall metric (MAE, or ``dist`` for age-group labels), each grouping's gap, worst-group value and
(exact ages) age-bin spread -- the *overall* table; each group's value -- the *groups* table; each
threshold gate's false-pass rate, overall and per group of each sensitive attribute -- the *gates*
table. Each table is one Benjamini-Hochberg family (across all models). A ``subject`` column makes
every resample draw subjects, not images.

Each row is classified against its metric's margin (``comparisons: margins:``, agefair.fairness.stats.decide.practical):
better or worse by more than the margin, practically equivalent, or can't tell.

``verdict(...)``: per criterion (overall accuracy, worst group and gap of each sensitive attribute,
age-bin spread) agefair.fairness.stats.decide.credibly_best over all models (the leader must win by more than
the margin), the ``describe`` sentences of the differences that matter (beyond the margin and
significant after adjustment), and how many rows fall in each class.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from agefair.core.decision_config import ComparisonSettings
from agefair.core.errors import AgefairError
from agefair.core.gate_config import ThresholdGate
from agefair.fairness.engine.resampling import SUBJECT, units_of
from agefair.fairness.results.decision_types import BestStatement, ComparisonRow, Comparisons, Verdict
from agefair.fairness.stats.compare import Comparison, adjust_bh, compare_many, row_errors
from agefair.fairness.stats.decide import credibly_best_many, describe, minimum_detectable, practical
from agefair.fairness.stats.metrics import AuditSettings, attribute_groupings
from agefair.fairness.stats.specs import SHARE_METRICS


def pick_reference(names: list[str], requested: str | None, *, flag: str = "reference") -> str:
    """``requested`` (an audited model's name), else ``baseline`` when audited, else the first model."""
    if requested is None:
        return "baseline" if "baseline" in names else names[0]
    if requested not in names:
        raise AgefairError(f"{flag} {requested}: no audited model has that name (models: {', '.join(names)})")
    return requested


def aligned(preds: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The rows every model predicted (by ``row``): the labels of the first frame, one ``pred`` column
    per model (named as the model)."""
    frames = list(preds.values())
    common = set(frames[0]["row"])
    for f in frames[1:]:
        common &= set(f["row"])
    base = frames[0][frames[0]["row"].isin(common)].drop(columns=["pred", "variant"]).sort_values("row")
    out = base.reset_index(drop=True)
    for name, f in preds.items():
        out[name] = f.set_index("row")["pred"].reindex(out["row"]).to_numpy()
    return out


def _labels(frame: pd.DataFrame) -> dict:
    if "age" in frame.columns:
        return {"age": frame["age"].to_numpy(float)}
    return {"age_lo": frame["age_lo"].to_numpy(float), "age_hi": frame["age_hi"].to_numpy(float)}


def _grouping_arrays(frame: pd.DataFrame, groupings: Mapping[str, list[str]]) -> dict:
    return {name: (frame[cols] if len(cols) > 1 else frame[cols[0]].to_numpy())
            for name, cols in groupings.items() if all(c in frame.columns for c in cols)}


def _row(c: Comparison, table: str, config: ComparisonSettings, gate: str | None = None) -> ComparisonRow:
    mde = float(minimum_detectable(c.se, level=c.level, power=config.power)) if np.isfinite(c.se) else None
    d = c.to_json()
    d.pop("n_boot", None), d.pop("n_perm", None)
    margin = config.margin(c.metric)
    share = d.get("metric") in SHARE_METRICS  # a rate (false pass): in percentage points, not years
    sentence = (describe(c, unit="percentage points", decimals=1, scale=100, margin=margin) if share
                else describe(c, margin=margin, decimals=2))
    return ComparisonRow(table=table, gate=gate, mde=mde, sentence=sentence, margin=margin,
                         practical=practical(c.difference, c.ci, margin), **d)


GATE_CRITERIA = ("overall", "group", "worst_any")


def _gate_calls(frame, names, reference, gates, groupings) -> list[tuple[str, dict]]:
    """(gate, compare_values arguments) of each threshold gate's false pass (share of minors estimated at or
    over the challenge age) and false challenge (share of adults estimated under it), every model against the
    reference: overall, per group of each sensitive attribute, and the worst group over them all."""
    attrs = {g: v for g, v in _grouping_arrays(frame, groupings).items() if g in attribute_groupings(groupings)}
    exact = "age" in frame.columns
    out = []
    for gate in gates:
        if not isinstance(gate, ThresholdGate):
            continue
        minors = (frame["age"] < gate.legal_age if exact else frame["age_hi"] <= gate.legal_age).to_numpy()
        adults = (frame["age"] >= gate.legal_age if exact else frame["age_lo"] >= gate.legal_age).to_numpy()
        passed = {m: (frame[m].to_numpy(float) >= gate.challenge_age).astype(float) for m in names}
        for m in (m for m in names if m != reference):
            out.append((gate.name, dict(value_a=passed[reference], value_b=passed[m], groupings=attrs, mask=minors,
                                        names=(reference, m), metric="false_pass", criteria=GATE_CRITERIA)))
            out.append((gate.name, dict(value_a=1 - passed[reference], value_b=1 - passed[m], groupings=attrs,
                                        mask=adults, names=(reference, m), metric="false_challenge",
                                        criteria=GATE_CRITERIA)))
    return out


# long: aligns the frames, runs every comparison on one draw, then the three tables, each BH-adjusted as one family
def comparisons(preds: Mapping[str, pd.DataFrame], *, groupings: Mapping[str, list[str]], settings: AuditSettings,
                config: ComparisonSettings, reference: str, gates=()) -> tuple[Comparisons, pd.DataFrame]:
    """(the comparison tables, the aligned frame) of every model in ``preds`` against ``reference``.

    Every comparison (each model's errors, each gate's false passes) runs on one bootstrap draw and one
    set of permutation swaps (agefair.fairness.stats.compare.compare_many): the same numbers as one call each."""
    frame = aligned(preds)
    names = list(preds)
    cluster = units_of(frame)
    labels = _labels(frame)
    exact = "age" in labels
    arrays = _grouping_arrays(frame, groupings)
    n_perm = config.n_perm
    calls = []
    for m in names:
        if m != reference:
            ea, metric = row_errors(pred=frame[reference].to_numpy(float), **labels)
            eb, _ = row_errors(pred=frame[m].to_numpy(float), **labels)
            calls.append(dict(value_a=np.abs(ea), value_b=np.abs(eb), groupings=arrays, names=(reference, m),
                              metric=metric, age_grouping="age_bin" if exact else None))
    gate_calls = _gate_calls(frame, names, reference, gates, groupings)
    done = compare_many(calls + [c for _, c in gate_calls], cluster=cluster, settings=settings, n_perm=n_perm)
    main: list[Comparison] = [r for rows in done[:len(calls)] for r in rows]
    gate_pairs = [(g, r) for (g, _), rows in zip(gate_calls, done[len(calls):]) for r in rows]
    overall = adjust_bh([c for c in main if c.criterion != "group"]) if n_perm else [
        c for c in main if c.criterion != "group"]
    groups = adjust_bh([c for c in main if c.criterion == "group"]) if n_perm else [
        c for c in main if c.criterion == "group"]
    gate_adj = adjust_bh([c for _, c in gate_pairs]) if n_perm else [c for _, c in gate_pairs]
    out = Comparisons(
        reference=reference, level=settings.ci_level, n_boot=settings.n_boot, n_perm=n_perm,
        subject=SUBJECT if cluster.cluster is not None else None, rows=len(frame), margins=dict(config.margins),
        overall=[_row(c, "overall", config) for c in overall], groups=[_row(c, "groups", config) for c in groups],
        gates=[_row(c, "gates", config, gate=g) for (g, _), c in zip(gate_pairs, gate_adj)])
    return out, frame


def _criteria(frame: pd.DataFrame, groupings: Mapping[str, list[str]], exact: bool) -> list[tuple[str, dict]]:
    out = [("overall", {"criterion": "overall"})]
    for g in attribute_groupings(dict(groupings)):
        if g in frame.columns or all(c in frame.columns for c in groupings[g]):
            out.append((f"worst:{g}", {"criterion": "worst", "grouping": g}))
            out.append((f"gap:{g}", {"criterion": "gap", "grouping": g}))
    if exact and "age_bin" in frame.columns:
        out.append(("spread", {"criterion": "spread", "grouping": "age_bin"}))
    return out


def matters(row: ComparisonRow) -> bool:
    """A difference worth a sentence: beyond the margin, and significant after adjustment where p-values exist."""
    return row.practical in ("better", "worse") and row.significant is not False


def verdict(frame: pd.DataFrame, names: list[str], comps: Comparisons, *, groupings: Mapping[str, list[str]],
            settings: AuditSettings, config: ComparisonSettings = ComparisonSettings()) -> Verdict:
    """Per criterion, the credibly best model (or that none is: the leader must win by more than the margin), the
    sentences of the differences that matter and the number of comparisons in each practical class."""
    if len(names) < 2:
        return Verdict(reference=comps.reference if comps else None,
                       note="one model audited: nothing to compare it with")
    labels = _labels(frame)
    arrays = _grouping_arrays(frame, groupings)
    cluster = units_of(frame)
    preds = {m: frame[m].to_numpy(float) for m in names}
    best = []
    crits = _criteria(frame, groupings, "age" in labels)
    margin = config.margin("mae" if "age" in labels else "dist")
    judged = credibly_best_many([dict(preds=preds, groupings=arrays, margin=margin, **crit, **labels)
                                 for _, crit in crits], cluster=cluster, settings=settings)  # one draw for all
    for (key, _), v in zip(crits, judged):
        if isinstance(v, ValueError):  # too few groups of adequate size
            continue
        best.append(BestStatement(key=key, criterion=v.criterion, leader=v.leader, best=v.best, values=v.values,
                                  level=v.level, margin=v.margin, statement=v.statement))
    rows = [r for t in (comps.overall, comps.groups, comps.gates) for r in t]
    diffs = [r.sentence for r in rows if matters(r) and r.sentence]
    counts = {k: sum(r.practical == k for r in rows) for k in ("better", "worse", "equivalent", "unclear")}
    return Verdict(reference=comps.reference, best=best, differences=diffs, counts=counts)
