"""``python -m agefair.audit``: audit every trained variant for accuracy and fairness.

The audited data (``--data``) is a UTKFace folder or a labels CSV (exact ages or age groups, any
sensitive attributes); the models are agefair's trained variants (``--runs``) and/or any model's
predictions (``--predictions FILE.csv``, several files side by side). Variants trained on other
data are evaluated across datasets, on every image of the CSV (faces detected where the images are
not aligned crops). Writes REPORT_DIR/report.html (self-contained, opens offline),
REPORT_DIR/summary.json (every number in the report) and REPORT_DIR/predictions.csv. Exit code 0
when every threshold holds, 1 when any fails (the failing rows are printed), 2 on bad input or usage.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from agefair.core.config import FairnessConfig
from agefair.core.errors import AgefairError
from agefair.core.provenance import git_commit, git_dirty, reproduce_command, versions
from agefair.data.prepare import PreparedData
from agefair.data.split import counts_text
from agefair.fairness.leaderboard import by_age, leaderboard, nan_to_none, verdict
from agefair.fairness.metrics import (
    GROUPINGS,
    AuditSettings,
    audit_variant,
    shot_labels,
)
from agefair.fairness.model_predictions import (
    predict_variant,
    split_rows,
)
from agefair.fairness.thresholds import judge, not_applicable
from agefair.models.runtime import make_runtime


def trained_here(runs_dir: Path, variants: list[str], prepared: PreparedData) -> dict[str, bool]:
    """Whether each variant was trained on the audited data (its checkpoint's manifest hash).

    A UTKFace folder is only audited by the variants trained on it (its test split); a labels CSV
    may be audited by variants trained elsewhere (cross-dataset evaluation)."""
    from agefair.models.checkpoint import load_checkpoint

    out = {}
    for v in variants:
        path = runs_dir / v / "model.pt"
        trained = load_checkpoint(path).get("meta", {}).get("manifest_hash")
        out[v] = trained in (None, prepared.data_hash)
        if not out[v] and prepared.kind != "csv":
            raise AgefairError(f"{path} was trained on other data (manifest {trained[:12]}, audited data "
                               f"{prepared.data_hash[:12]})")
    return out


def choose_split(split: str | None, prepared: PreparedData, here: dict[str, bool]) -> str:
    """--split, else test (UTKFace, or a CSV a variant was trained on), else all (cross-dataset)."""
    if split is None:
        split = "test" if prepared.kind != "csv" or any(here.values()) else "all"
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
            "detector": prepared.detector if prepared.kind == "csv" and prepared.aligned != "yes" else None}


def run_audit(prepared: PreparedData, data_cfg, fair: FairnessConfig, runs_dir: Path | None, variants: list[str],
              split: str | None, device: str, progress: bool, galleries: bool,
              thresholds_file: str, external: list[tuple[Path, str]] = ()) -> tuple[dict, pd.DataFrame, dict]:
    """(summary, predictions, galleries) for ``variants`` in ``runs_dir`` and ``external`` (file, name) predictions."""
    from agefair.fairness.external import describe_matching, load_external

    here = trained_here(runs_dir, variants, prepared) if variants else {}
    split = choose_split(split, prepared, here)
    rows_in_split = split_rows(prepared, split)
    if len(rows_in_split) == 0:
        raise AgefairError(f"{prepared.source or prepared.data_dir}: the {split} split holds no image")
    settings = AuditSettings(n_boot=fair.n_boot, ci_level=fair.ci_level, seed=fair.seed,
                             min_group_size=fair.min_group_size, bootstrap=fair.bootstrap)
    groupings = dict(prepared.groupings or GROUPINGS)
    # many/medium/few-shot ages count this data's training split: only when a variant was trained on it
    # (then for every model, so that all are compared over the same groupings)
    train_ages = (prepared.manifest.loc[prepared.manifest["split"] == "train", "age"].to_numpy()
                  if prepared.labels == "exact" and any(here.values()) else None)
    if train_ages is not None:
        groupings.setdefault("shot", ["shot"])
    where = f"{prepared.name} ({split} split, {len(rows_in_split)} images)"
    preds, infos, audits, timings, entries = [], {}, {}, {}, {}
    rt = make_runtime(device, "auto", True) if variants else None

    def audit_predictions(pred: pd.DataFrame) -> dict:
        """Grouped metrics of one model's predictions (adds the shot column to ``pred`` when it applies)."""
        if train_ages is not None:
            pred["shot"] = shot_labels(pred["age"].to_numpy(), train_ages, fair.many_shot, fair.few_shot)
        audit = audit_variant(pred, settings, groupings)
        if prepared.labels == "exact":
            audit["by_age"] = by_age(pred)
        return audit

    for v in variants:
        t0 = time.perf_counter()
        pred, info = predict_variant(v, runs_dir / v / "model.pt", prepared, data_cfg, split, rt, progress)
        if pred.empty:
            raise AgefairError(f"{runs_dir / v / 'model.pt'}: no image of {where} could be read as a face "
                               f"({info.get('faces')})")
        t1 = time.perf_counter()
        audits[v] = audit_predictions(pred)
        infos[v] = info
        preds.append(pred)
        timings[v] = {"predict_s": t1 - t0, "metrics_s": time.perf_counter() - t1}
        trained = info["meta"].get("manifest_hash")
        entries[v] = {"source": "agefair", "evaluated_on": where,
                      "trained_on": ("this dataset's train split" if here[v] else
                                     f"other data (manifest {str(trained)[:12]}): cross-dataset evaluation"),
                      "coverage": {"images_in_split": len(rows_in_split), "predicted": int(len(pred)),
                                   **({"faces": info["faces"]} if "faces" in info else {})}}
    for path, name in external:
        t0 = time.perf_counter()
        pred, matching = load_external(path, name, prepared, data_cfg, split)
        t1 = time.perf_counter()
        audits[name] = audit_predictions(pred)
        preds.append(pred)
        timings[name] = {"load_s": t1 - t0, "metrics_s": time.perf_counter() - t1}
        entries[name] = {"source": "external", "evaluated_on": where, "trained_on": "unknown (external model)",
                         "predictions": matching, "matching_text": describe_matching(matching),
                         "coverage": {"images_in_split": len(rows_in_split), "predicted": int(len(pred))}}
        print(f"external predictions {name} ({path}): {describe_matching(matching)}")
    verdicts = judge(fair.rules, audits)
    board = leaderboard(audits, verdicts)

    gallery_data: dict = {}
    gallery_note = None
    if galleries and fair.gallery_k > 0 and variants and prepared.labels == "interval":
        gallery_note = "galleries rank errors against exact ages; this dataset has age groups only"
    elif galleries and fair.gallery_k > 0:
        from agefair.data.inputs import model_inputs
        from agefair.models.checkpoint import model_from_checkpoint
        from agefair.models.gradcam import gallery

        by = ("overall", "ethnicity", "age_bin") if prepared.kind != "csv" else ("overall", *prepared.attributes,
                                                                                 "age_bin")
        for v, pred in zip(variants, preds):
            t0 = time.perf_counter()
            model, cfg, _ = model_from_checkpoint(runs_dir / v / "model.pt")
            images, _ = model_inputs(prepared, pred["row"].to_numpy(), cfg.model.image_size, progress)
            gallery_data[v] = gallery(model, images, pred, fair.gallery_k, groupings=by)
            timings[v]["gallery_s"] = time.perf_counter() - t0

    quality = {k: prepared.quality_report[k] for k in prepared.quality_report if k != "problems"}
    summary = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "passed": all(r["passed"] for r in verdicts),
        "verdict": verdict(board),
        "leaderboard": board,
        "thresholds": verdicts,
        "thresholds_not_applicable": not_applicable(fair.rules, audits),
        "dataset": dataset_info(prepared, split, len(rows_in_split)),
        "variants": {v: ({"training": {k: infos[v][k] for k in ("checkpoint", "checkpoint_sha256", "epoch", "val_mae")}
                          | {"config": infos[v]["config"], "meta": infos[v]["meta"], "history": infos[v]["history"]}}
                         if v in infos else {}) | entries[v] | {"audit": audits[v], "timings": timings[v]}
                     for v in audits},
        "data": {"quality": quality, "split": prepared.split_meta, "split_text": counts_text(prepared.split_meta)},
        "provenance": {
            "data_dir": str(prepared.source or prepared.data_dir), "manifest_hash": prepared.data_hash,
            "split_seed": prepared.split_meta["seed"], "split": split, "thresholds_file": thresholds_file,
            "audit_settings": fair.model_dump(mode="json"), "git_commit": git_commit(), "git_dirty": git_dirty(),
            "versions": versions(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "reproduce": reproduce_command(runs_dir, prepared.source or prepared.data_dir, prepared.split_meta["seed"],
                                           split, thresholds_file, variants, external),
            "device": str(rt.device) if rt else None, "precision": rt.measure_precision_name if rt else None,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "data_config": data_cfg.model_dump(mode="json"),
        },
    }
    if gallery_note:
        summary["gallery_note"] = gallery_note
    return nan_to_none(summary), pd.concat(preds, ignore_index=True), gallery_data
