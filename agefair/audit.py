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

import argparse
import datetime as dt
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from agefair import __version__
from agefair.cli_common import add_data_args, prepare_from_args
from agefair.config import CONFIG_DIR, FairnessConfig, load_fairness_config
from agefair.data.prepare import PreparedData
from agefair.data.split import counts_text
from agefair.engine import make_runtime
from agefair.errors import AgefairError, run_cli
from agefair.io_utils import atomic_path, write_json_atomic
from agefair.metrics import GROUPINGS, AuditSettings, audit_variant, shot_labels
from agefair.predictions import find_variants, note_unfinished, predict_variant, split_rows
from agefair.provenance import git_dirty, reproduce_command
from agefair.summary import by_age, leaderboard, nan_to_none, verdict
from agefair.thresholds import judge, not_applicable, table_text


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "agefair": __version__}
    for pkg in ("torch", "torchvision", "fairlearn", "pandas", "numpy", "scikit-learn", "plotly", "grad-cam"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def trained_here(runs_dir: Path, variants: list[str], prepared: PreparedData) -> dict[str, bool]:
    """Whether each variant was trained on the audited data (its checkpoint's manifest hash).

    A UTKFace folder is only audited by the variants trained on it (its test split); a labels CSV
    may be audited by variants trained elsewhere (cross-dataset evaluation)."""
    from agefair.checkpoint import load_checkpoint

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
    from agefair.external import describe_matching, load_external

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
        from agefair.checkpoint import model_from_checkpoint
        from agefair.face_inputs import model_inputs
        from agefair.gradcam import gallery

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
            "device": str(rt.device) if rt else None, "precision": rt.precision_name if rt else None,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "data_config": data_cfg.model_dump(mode="json"),
        },
    }
    if gallery_note:
        summary["gallery_note"] = gallery_note
    return nan_to_none(summary), pd.concat(preds, ignore_index=True), gallery_data


def print_leaderboard(board: list[dict]) -> None:
    w = max([12, *(len(str(r["variant"])) for r in board)])
    if board and board[0].get("labels") == "interval":
        print(f"{'model':<{w}} {'in group':>8} {'dist':>6} {'95% CI':>15} {'signed':>7} {'worst group (dist)':>38} "
              f"{'attr. gap':>9}  rules")
        for r in board:
            ci = f"[{r['dist_ci'][0]:.2f}, {r['dist_ci'][1]:.2f}]" if r["dist_ci"][0] is not None else ""
            wg = f"{r['worst_group']} ({r['worst_group_dist']:.2f})" if r["worst_group"] else "-"
            gap = f"{r['gap']:.2f}" if r["gap"] is not None else "-"
            print(f"{r['variant']:<{w}} {100 * r['in_group']:>7.1f}% {r['dist']:>6.2f} {ci:>15} {r['signed']:>+7.2f} "
                  f"{wg[:38]:>38} {gap:>9}  {r['rules_passed']}/{r['rules']}")
        return
    key = "ethnicity_gap" if any(r.get("ethnicity_gap") is not None for r in board) else "gap"
    print(f"{'variant':<{w}} {'MAE':>6} {'95% CI':>15} {'worst group (MAE)':>38} "
          f"{'eth. gap' if key == 'ethnicity_gap' else 'attr. gap':>9} {'bin spread':>10}  rules")
    for r in board:
        ci = f"[{r['mae_ci'][0]:.2f}, {r['mae_ci'][1]:.2f}]" if r["mae_ci"][0] is not None else ""
        wg = f"{r['worst_group']} ({r['worst_group_mae']:.2f})" if r["worst_group"] else "-"
        gap = f"{r[key]:.2f}" if r.get(key) is not None else "-"
        spread = f"{r['age_bin_spread']:.2f}" if r["age_bin_spread"] is not None else "-"
        print(f"{r['variant']:<{w}} {r['mae']:>6.2f} {ci:>15} {wg[:38]:>38} {gap:>9} {spread:>10}  "
              f"{r['rules_passed']}/{r['rules']}")


def external_args(files: list[str], names: list[str]) -> list[tuple[Path, str]]:
    """(file, name) of each --predictions file; names from --name in order, else the file's stem."""
    if len(names) > len(files):
        raise AgefairError(f"{len(names)} --name for {len(files)} --predictions file(s): give one name per file")
    out = [(Path(f), names[i] if i < len(names) else Path(f).stem) for i, f in enumerate(files)]
    seen: set[str] = set()
    for path, name in out:
        if not name.strip():
            raise AgefairError(f"--name for {path} is empty")
        if name in seen:
            raise AgefairError(f"two --predictions files are named {name!r}; give each a --name")
        seen.add(name)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agefair.audit", description=__doc__.split("\n")[0])
    p.add_argument("--runs", metavar="RUNS_DIR", help="trained runs (default: runs/, or none when --predictions is given)")
    p.add_argument("--predictions", action="append", metavar="FILE.csv",
                   help="predictions of any model: a CSV with an image path or id column and a predicted-age column "
                        "(repeat for several models)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="name of the model behind each --predictions file, in the same order (default: the file's stem)")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR", help="output folder (default: reports/)")
    p.add_argument("--thresholds", metavar="FILE", help=f"fairness config (default: {CONFIG_DIR / 'fairness.yaml'})")
    p.add_argument("--variant", nargs="+", metavar="NAME", help="variants to audit (default: every one found)")
    p.add_argument("--split", choices=["test", "val", "all"],
                   help="default: test; all (every image) for a labels CSV that no audited variant was trained on")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-gallery", action="store_true", help="skip the Grad-CAM galleries")
    p.add_argument("--robustness", action="store_true",
                   help="also run the corruption audit (python -m agefair.robustness) and judge its rules")
    add_data_args(p)
    args = p.parse_args(argv)

    started = time.perf_counter()
    fair = load_fairness_config(args.thresholds)
    external = external_args(args.predictions or [], args.name or [])
    runs_dir, variants = None, []
    if args.runs is not None or not external:
        runs_dir = Path(args.runs or "runs")
        if not runs_dir.is_dir():
            raise AgefairError(f"runs folder {runs_dir} does not exist; train first: python -m agefair.train --variant all")
        found = find_variants(runs_dir)
        if not args.variant:
            note_unfinished(runs_dir)
        variants = args.variant or found
        missing = [v for v in variants if v not in found]
        if missing:
            raise AgefairError(f"{runs_dir}: no trained model for {', '.join(missing)} (found: {', '.join(found) or 'none'})")
        if not variants:
            raise AgefairError(f"{runs_dir}: no trained variant (no */model.pt); train first: python -m agefair.train --variant all")
    elif args.variant:
        raise AgefairError("--variant picks trained variants: give --runs RUNS_DIR too")
    clash = sorted({n for _, n in external} & set(variants))
    if clash:
        raise AgefairError(f"--name {clash[0]}: a trained variant has that name; name the predictions otherwise")

    prepared, data_cfg = prepare_from_args(args, csv_ok=True)
    summary, preds, galleries = run_audit(prepared, data_cfg, fair, runs_dir, variants, args.split, args.device,
                                          not args.quiet, not args.no_gallery,
                                          str(args.thresholds or CONFIG_DIR / "fairness.yaml"), external)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary["seconds"] = time.perf_counter() - started
    write_json_atomic(out / "summary.json", summary)
    with atomic_path(out / "predictions.csv") as tmp:
        preds.drop(columns=["row"]).to_csv(tmp, index=False)
    from agefair import robustness
    from agefair.report import render_report

    rob = None
    if args.robustness:
        if not variants:
            raise AgefairError("--robustness corrupts images for agefair's own variants: give --runs RUNS_DIR")
        prov = summary["provenance"]
        rob = robustness.run_robustness(prepared, data_cfg, fair, runs_dir, variants, prov["split"], args.device,
                                        not args.quiet, thresholds_file=prov["thresholds_file"])
        robustness.print_result(rob, *robustness.write_outputs(rob, out))
    render_report(summary, galleries, out / "report.html", rob or robustness.load_result(out / robustness.JSON_NAME))

    d = summary["dataset"]
    print(f"audited on {d['name']} ({d['path']}), {d['split']} split, {d['images_in_split']} images, "
          f"{'age-group labels' if d['labels'] == 'interval' else 'exact ages'}")
    print_leaderboard(summary["leaderboard"])
    print("; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary["verdict"].items()))
    if summary["thresholds_not_applicable"]:
        print(f"not checked ({'age groups' if d['labels'] == 'interval' else 'exact ages'} here): "
              + "; ".join(f"{r['rule']} ({r['reason']})" for r in summary["thresholds_not_applicable"]))
    print(f"wrote {out / 'report.html'}, {out / 'summary.json'}, {out / 'predictions.csv'} "
          f"in {summary['seconds']:.0f} s")
    if not summary["passed"]:
        print("\nfairness thresholds FAILED:")
        print(table_text(summary["thresholds"], only_failed=True))
        return 1
    print(f"all {len(summary['thresholds'])} threshold checks passed")
    if rob is not None and not rob["passed"]:
        print(f"robustness thresholds FAILED: {sum(not r['passed'] for r in rob['thresholds'])} of "
              f"{len(rob['thresholds'])} (listed above)")
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
