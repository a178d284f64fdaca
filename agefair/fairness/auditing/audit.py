"""The audit of one dataset split: every trained variant's and every external model's predictions,
grouped metrics with intervals, thresholds, age gates, paired comparisons, the typed summary
(agefair.fairness.results.summary.AuditSummary). The command around it is ``python -m agefair.audit``
(agefair/audit.py; agefair/cli/audit_job.py writes and prints).
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agefair.core.config import FairnessConfig
from agefair.core.errors import AgefairError
from agefair.core.provenance import git_commit, git_dirty, reproduce_command, versions
from agefair.data.prepare import PreparedData
from agefair.data.split import counts_text
from agefair.data.table import TableData
from agefair.fairness.auditing.age_adjusted import age_adjusted
from agefair.fairness.auditing.decisions import comparisons, pick_reference, verdict
from agefair.fairness.auditing.external import describe_matching, load_external
from agefair.fairness.auditing.intervals import audit_intervals, run_calibration, table_intervals
from agefair.fairness.auditing.leaderboard import by_age, leaderboard
from agefair.fairness.auditing.model_predictions import (
    predict_variant,
    prediction_frame,
    split_rows,
)
from agefair.fairness.auditing.noise_audit import label_noise
from agefair.fairness.auditing.regression import Previous, check_same_data, compare_to, load_previous
from agefair.fairness.auditing.scorecard import scorecard
from agefair.fairness.auditing.thresholds import judge, not_applicable
from agefair.fairness.engine import executor
from agefair.fairness.engine.cell_state import CellState
from agefair.fairness.results.decision_types import CompareTo, Verdict
from agefair.fairness.results.interval_types import IntervalsAudit
from agefair.fairness.results.result import AuditSummary, Provenance, nan_to_none
from agefair.fairness.stats.gates import gate_summaries
from agefair.fairness.stats.metrics import (
    GROUPINGS,
    AuditSettings,
    audit_from_state,
    audit_variant,
    shot_labels,
    variant_state,
)
from agefair.fairness.stats.power import group_power
from agefair.models import runs
from agefair.models.calibration import interval_head
from agefair.models.checkpoint import load_checkpoint
from agefair.models.runtime import make_runtime


def trained_here(runs_dir: Path, variants: list[str], prepared: PreparedData) -> dict[str, bool]:
    """Whether each variant was trained on the audited data (its checkpoint's manifest hash).

    A UTKFace folder is only audited by the variants trained on it (its test split); a labels CSV
    may be audited by variants trained elsewhere (cross-dataset evaluation)."""
    out = {}
    for v in variants:
        path = runs.best_checkpoint(runs_dir, v)
        trained = load_checkpoint(path).get("meta", {}).get("manifest_hash")
        out[v] = trained in (None, prepared.data_hash)
        if not out[v] and prepared.kind != "csv":
            raise AgefairError(f"{path} was trained on other data (manifest {trained[:12]}, audited data "
                               f"{prepared.data_hash[:12]})")
    return out


def choose_split(split: str | None, prepared: PreparedData, here: dict[str, bool]) -> str:
    """--split, else test (UTKFace, or a CSV a variant was trained on), else all (cross-dataset)."""
    if split is None:
        split = "test" if prepared.kind == "utkface" or any(here.values()) else "all"
    if split == "all" and any(here.values()):
        names = ", ".join(v for v, h in here.items() if h)
        raise AgefairError(f"--split all would audit {names} on the images it was trained on; "
                           f"use --split test (or val)")
    return split


def dataset_info(prepared: PreparedData, split: str, n_split: int) -> dict:
    """What the report says about the audited data: every number in it comes from this dataset and split."""
    return {"name": prepared.name, "kind": prepared.kind, "path": str(prepared.source or prepared.data_dir),
            "labels": prepared.labels, "attributes": list(prepared.attributes),
            "groupings": list(prepared.groupings or GROUPINGS), "manifest_hash": prepared.data_hash,
            "split": split, "images_in_split": n_split, "aligned": prepared.aligned,
            "detector": prepared.detector if prepared.kind == "csv" and prepared.aligned != "yes" else None,
            **({"skipped": TABLE_SKIPPED} if prepared.kind == "table" else {})}


TABLE_SKIPPED = [
    "Grad-CAM galleries and label-noise thumbnails: a table has no images",
    "training curves: its models were not trained by agefair",
    "robustness to corruptions: it needs the images",
    "coverage of age intervals, for models without lo_, hi_ and coverage_ columns",
]


@dataclass
class _Audited:
    """What auditing one model's predictions yields, for the summary."""

    pred: pd.DataFrame
    audit: dict
    entry: dict  # source, trained_on, evaluated_on, coverage (and the training record of agefair variants)
    timings: dict
    state: CellState | None = None  # its grouped-metric state (None with bootstrap: fairlearn)


@dataclass
class AuditRun:
    """What ``run_audit`` yields: the summary, every model's predictions, the galleries, and every model's
    grouped-metric state (what ``audit --save-state`` writes)."""

    summary: AuditSummary
    predictions: pd.DataFrame
    galleries: dict
    states: dict[str, CellState]
    groupings: dict[str, list[str]]  # each grouping's columns


@dataclass
class _Scope:
    """The audited data and how every model is audited on it."""

    prepared: PreparedData
    split: str
    n_split: int
    settings: AuditSettings
    groupings: dict[str, list[str]]
    train_ages: np.ndarray | None  # many/medium/few-shot ages count this data's training split
    fair: FairnessConfig

    @property
    def where(self) -> str:
        return f"{self.prepared.name} ({self.split} split, {self.n_split} images)"

    def audit(self, pred: pd.DataFrame) -> tuple[dict, CellState | None]:
        """(Every statistic of one model's predictions, its grouped-metric state); adds the shot column to
        ``pred`` when it applies. The grouped metrics finish from the state (bootstrap: fairlearn: MetricFrame)."""
        if self.train_ages is not None:
            pred["shot"] = shot_labels(pred["age"].to_numpy(), self.train_ages, self.fair.many_shot,
                                       self.fair.few_shot)
        state = None
        if self.settings.bootstrap == "fairlearn":
            audit = audit_variant(pred, self.settings, self.groupings)
        else:
            state = variant_state(pred, self.settings, self.groupings)
            audit = audit_from_state(state, self.settings, self.groupings)
        if self.prepared.labels == "exact":
            audit["by_age"] = by_age(pred)
            audit.update(age_adjusted(pred, self.groupings, self.settings))  # standardised MAE, AAR, slopes
        audit["gates"] = gate_summaries(pred, groupings=self.groupings, gates=self.fair.gates, settings=self.settings)
        return audit, state


def _scope(prepared: PreparedData, fair: FairnessConfig, split: str, here: dict[str, bool]) -> _Scope:
    rows_in_split = split_rows(prepared, split)
    if len(rows_in_split) == 0:
        raise AgefairError(f"{prepared.source or prepared.data_dir}: the {split} split holds no image")
    settings = AuditSettings(n_boot=fair.n_boot, ci_level=fair.ci_level, seed=fair.seed,
                             min_group_size=fair.min_group_size, bootstrap=fair.bootstrap)
    groupings = dict(prepared.groupings or GROUPINGS)
    # only when a variant was trained on this data (then for every model, so all share the same groupings)
    train_ages = (prepared.manifest.loc[prepared.manifest["split"] == "train", "age"].to_numpy()
                  if prepared.labels == "exact" and any(here.values()) else None)
    if train_ages is not None:
        groupings.setdefault("shot", ["shot"])
    return _Scope(prepared, split, len(rows_in_split), settings, groupings, train_ages, fair)


def _audit_variant(scope: _Scope, v: str, runs_dir: Path, data_cfg, rt, progress: bool, trained_here: bool) -> _Audited:
    """Predict with one trained variant and audit its predictions."""
    t0 = time.perf_counter()
    checkpoint = runs.best_checkpoint(runs_dir, v)
    pred, info = predict_variant(v, checkpoint, scope.prepared, data_cfg, scope.split, rt, progress)
    if pred.empty:
        raise AgefairError(f"{checkpoint}: no image of {scope.where} could be read as a face "
                           f"({info.get('faces')})")
    t1 = time.perf_counter()
    audit, state = scope.audit(pred)
    if scope.fair.conformal.enabled:
        audit["intervals"] = _intervals(scope, v, checkpoint, pred, info, data_cfg, rt, progress, trained_here)
    trained = info["meta"].get("manifest_hash")
    entry = {"training": {k: info[k] for k in ("checkpoint", "checkpoint_sha256", "epoch", "val_mae", "config",
                                               "meta", "history")},
             "source": "agefair", "evaluated_on": scope.where,
             "trained_on": ("this dataset's train split" if trained_here else
                            f"other data (manifest {str(trained)[:12]}): cross-dataset evaluation"),
             "coverage": {"images_in_split": scope.n_split, "predicted": int(len(pred)),
                          **({"faces": info["faces"]} if "faces" in info else {})},
             **({"uses_attributes": info["uses_attributes"]} if "uses_attributes" in info else {})}
    return _Audited(pred, audit, entry, {"predict_s": t1 - t0, "metrics_s": time.perf_counter() - t1}, state)


def _intervals(scope: _Scope, v: str, checkpoint: Path, pred: pd.DataFrame, info: dict, data_cfg, rt, progress: bool,
               trained_here: bool) -> dict:
    """The variant's conformal intervals on the audited split (agefair.fairness.auditing.intervals), as summary.json holds them."""
    prepared = scope.prepared
    model_cfg = info["config"]["model"]
    if scope.split == "val":
        return IntervalsAudit(notes=["no intervals: the audited split (val) is the one they are calibrated on"]).to_json()
    own_val = trained_here and prepared.labels == "exact" and scope.split != "val"

    def val_pred() -> pd.DataFrame:
        return predict_variant(v, checkpoint, prepared, data_cfg, "val", rt, progress)[0]

    head = interval_head(model_cfg["head"], info["config"].get("train", {}).get("loss", "l1"))
    calibrated = run_calibration(checkpoint=checkpoint, settings=scope.fair.conformal,
                                 val_pred=val_pred if own_val else None, head=head, max_age=model_cfg["max_age"],
                                 manifest_hash=prepared.data_hash, checkpoint_sha256=info["checkpoint_sha256"])
    if isinstance(calibrated, str):
        return IntervalsAudit(notes=[calibrated]).to_json()
    return audit_intervals(pred, calibrated, groupings=scope.groupings, settings=scope.settings).to_json()


def _audit_external(scope: _Scope, path: Path, name: str, data_cfg) -> _Audited:
    """Load one predictions file (matched to the audited rows) and audit it."""
    t0 = time.perf_counter()
    pred, matching = load_external(path, name, scope.prepared, data_cfg, scope.split,
                                   min_rows=scope.fair.min_group_size)
    t1 = time.perf_counter()
    audit, state = scope.audit(pred)
    entry = {"source": "external", "evaluated_on": scope.where, "trained_on": "unknown (external model)",
             "predictions": matching, "matching_text": describe_matching(matching),
             "coverage": {"images_in_split": scope.n_split, "predicted": int(len(pred))}}
    print(f"external predictions {name} ({path}): {describe_matching(matching)}")
    return _Audited(pred, audit, entry, {"load_s": t1 - t0, "metrics_s": time.perf_counter() - t1}, state)


def _audit_table_model(scope: _Scope, table: TableData, name: str, data_cfg) -> _Audited:
    """One model's predictions from the table's column (the rows where it has one) and their audit; the
    coverage of its intervals where the table gives them (lo_, hi_, coverage_ columns)."""
    t0 = time.perf_counter()
    preds = table.predictions[name]
    rows = np.flatnonzero(np.isfinite(preds))
    if len(rows) < scope.fair.min_group_size:
        raise AgefairError(f"{table.path}: model {name} has {len(rows)} usable predictions, fewer than min_group_size "
                           f"({scope.fair.min_group_size})")
    pred = prediction_frame(scope.prepared, data_cfg, rows, preds[rows], name)
    if "shot" in scope.prepared.manifest.columns:  # a previous audit's predictions.csv: its shot labels
        pred["shot"] = scope.prepared.manifest["shot"].to_numpy()[rows]
    audit, state = scope.audit(pred)
    if name in table.intervals:
        audit["intervals"] = table_intervals(pred, table.intervals[name], rows, groupings=scope.groupings,
                                             settings=scope.settings, max_age=data_cfg.max_age).to_json()
    counts = table.quality["predictions"][name]
    entry = {"source": "external", "evaluated_on": scope.where, "trained_on": "unknown (a table's predictions)",
             "predictions": {"table": str(table.path), **counts},
             "matching_text": f"column {counts['column']}: {counts['predicted']} rows predicted, "
                              f"{counts['missing']} empty, {counts['not_a_number']} not a number, "
                              f"{counts['out_of_range']} out of range",
             "coverage": {"images_in_split": scope.n_split, "predicted": int(len(pred))}}
    return _Audited(pred, audit, entry, {"metrics_s": time.perf_counter() - t0}, state)


def _galleries(scope: _Scope, audited: dict[str, _Audited], variants: list[str], runs_dir: Path | None,
               progress: bool) -> tuple[dict, str | None]:
    """(Grad-CAM galleries of the worst errors per variant, or a note saying why there are none)."""
    if scope.prepared.kind == "table":
        return {}, "a table has no images: no Grad-CAM galleries"
    if scope.fair.gallery_k <= 0:
        return {}, None
    if variants and scope.prepared.labels == "interval":
        return {}, "galleries rank errors against exact ages; this dataset has age groups only"
    from agefair.data.inputs import model_inputs
    from agefair.models.checkpoint import model_from_checkpoint
    from agefair.models.gradcam import gallery

    prepared = scope.prepared
    by = ("overall", "ethnicity", "age_bin") if prepared.kind != "csv" else ("overall", *prepared.attributes, "age_bin")
    out = {}
    for v in variants:
        t0 = time.perf_counter()
        model, cfg, _ = model_from_checkpoint(runs.best_checkpoint(runs_dir, v))
        pred = audited[v].pred
        images, _ = model_inputs(prepared, pred["row"].to_numpy(), cfg.model.image_size, progress)
        out[v] = gallery(model, images, pred, scope.fair.gallery_k, groupings=by)
        audited[v].timings["gallery_s"] = time.perf_counter() - t0
    return out, None


def _provenance(scope: _Scope, data_cfg, runs_dir: Path | None, variants: list[str], thresholds_file: str,
                external: list[tuple[Path, str]], rt, table_preds: list[str] | None = None) -> Provenance:
    prepared, fair = scope.prepared, scope.fair
    source = prepared.source or prepared.data_dir
    return Provenance(
        data_dir=str(source), manifest_hash=prepared.data_hash, split_seed=prepared.split_meta["seed"],
        split=scope.split, thresholds_file=thresholds_file, audit_settings=fair.model_dump(mode="json"),
        git_commit=git_commit(), git_dirty=git_dirty(), versions=versions(),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        reproduce=reproduce_command(runs_dir, source, prepared.split_meta["seed"], scope.split, thresholds_file,
                                    variants, external, table_preds),
        device=str(rt.device) if rt else None, precision=rt.measure_precision_name if rt else None,
        torch_threads=torch.get_num_threads(), platform=platform.platform(),
        data_config=data_cfg.model_dump(mode="json"), engine=executor.current().describe())


def _decisions(scope: _Scope, audited: dict[str, _Audited], reference: str):
    """(comparisons, verdict): every model against ``reference``, paired (None, a note: one model)."""
    names = list(audited)
    if len(names) < 2 or not scope.fair.comparisons.enabled:
        why = "one model audited: nothing to compare it with" if len(names) < 2 else "comparisons: enabled: false"
        return None, Verdict(reference=reference, note=why)
    comps, frame = comparisons({n: a.pred for n, a in audited.items()}, groupings=scope.groupings,
                               settings=scope.settings, config=scope.fair.comparisons, reference=reference,
                               gates=scope.fair.gates)
    return comps, verdict(frame, names, comps, groupings=scope.groupings, settings=scope.settings,
                          config=scope.fair.comparisons)


def _compare_to(scope: _Scope, audited: dict[str, _Audited], previous: Previous | None) -> dict | None:
    if previous is None:
        return None
    d = compare_to(previous, {n: a.pred for n, a in audited.items()}, groupings=scope.groupings,
                   settings=scope.settings, config=scope.fair.comparisons)
    return CompareTo.model_validate(nan_to_none(d)).to_json()


# long: gathers every part of summary.json in its order
def _summary(scope: _Scope, audited: dict[str, _Audited], provenance: Provenance,
             gallery_note: str | None, reference: str, previous: Previous | None = None) -> AuditSummary:
    """The typed summary (summary.json) of the audited models."""
    prepared, rules = scope.prepared, scope.fair.rules
    audits = {name: a.audit for name, a in audited.items()}
    fair = scope.fair
    power = group_power(audits, rules, level=fair.ci_level, power=fair.comparisons.power,
                        min_group_size=fair.min_group_size)
    changes = _compare_to(scope, audited, previous)
    noise = label_noise({n: a.pred for n, a in audited.items()}, groupings=scope.groupings,
                        data_dir=prepared.data_dir, settings=fair.label_noise, min_group_size=fair.min_group_size,
                        thumbnails=prepared.kind != "table")
    verdicts = judge(rules, audits, power, changes)
    board = leaderboard(audits, verdicts)
    comps, said = _decisions(scope, audited, reference)
    quality = {k: prepared.quality_report[k] for k in prepared.quality_report if k != "problems"}
    parts = dict(
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        split=scope.split, passed=all(r["passed"] for r in verdicts), verdict=said.to_json(), leaderboard=board,
        thresholds=verdicts, thresholds_not_applicable=not_applicable(rules, audits, changes is not None),
        **({"comparisons": comps.to_json()} if comps is not None else {}), power=power,
        **({"compare_to": changes} if changes is not None else {}),
        **({"label_noise": noise} if noise is not None else {}),
        dataset=dataset_info(prepared, scope.split, scope.n_split),
        variants={name: a.entry | {"audit": a.audit, "timings": a.timings} for name, a in audited.items()},
        data={"quality": quality, "split": prepared.split_meta,
              "split_text": counts_text(prepared.split_meta) if prepared.kind != "table" else ""},
    )
    summary = AuditSummary.model_validate(nan_to_none(parts))
    summary.scorecard = scorecard(summary)
    summary.provenance = provenance
    if gallery_note:
        summary.gallery_note = gallery_note
    return summary


def run_audit(prepared: PreparedData, data_cfg, fair: FairnessConfig, *, runs_dir: Path | None = None,
              variants: list[str] = (), split: str | None = None, device: str = "auto", progress: bool = False,
              galleries: bool = True, thresholds_file: str = "",
              external: list[tuple[Path, str]] = (), reference: str | None = None,
              compare_to_path: Path | None = None, table: TableData | None = None) -> AuditRun:
    """The summary, predictions, galleries and states (``AuditRun``) for ``variants`` in ``runs_dir``, ``external`` (file, name) predictions
    and, auditing a table (``prepared`` from agefair.data.prepare.prepare_table), the table's models;
    every model is compared with ``reference`` (default: fairness.yaml's ``reference:``, else baseline, else the
    first model); ``compare_to_path``: a previous audit's summary.json (--compare-to)."""
    previous = load_previous(compare_to_path) if compare_to_path is not None else None
    if previous is not None:
        check_same_data(previous, manifest_hash=prepared.data_hash, labels=prepared.labels)
    variants = list(variants)
    names = [*variants, *(n for _, n in external), *(table.predictions if table is not None else [])]
    ref = pick_reference(names, reference, flag="--reference") if reference else (
        pick_reference(names, fair.reference, flag="fairness.yaml reference:") if names else None)
    here = trained_here(runs_dir, variants, prepared) if variants else {}
    scope = _scope(prepared, fair, choose_split(split, prepared, here), here)
    if previous is not None:
        check_same_data(previous, manifest_hash=prepared.data_hash, labels=prepared.labels, split=scope.split)
    rt = make_runtime(device, "auto", True) if variants else None
    audited = {v: _audit_variant(scope, v, runs_dir, data_cfg, rt, progress, here[v]) for v in variants}
    for path, name in external:
        audited[name] = _audit_external(scope, path, name, data_cfg)
    for name in table.predictions if table is not None else []:
        audited[name] = _audit_table_model(scope, table, name, data_cfg)
    gallery_data, note = _galleries(scope, audited, variants, runs_dir, progress) if galleries else ({}, None)
    table_preds = ([f"{c['column']}={n}" for n, c in table.quality["predictions"].items()] if table is not None
                   else None)
    provenance = _provenance(scope, data_cfg, runs_dir, variants, thresholds_file, list(external), rt, table_preds)
    summary = _summary(scope, audited, provenance, note, ref, previous)
    return AuditRun(summary, pd.concat([a.pred for a in audited.values()], ignore_index=True), gallery_data,
                    {n: a.state for n, a in audited.items() if a.state is not None}, scope.groupings)
