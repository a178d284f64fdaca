"""``python -m agefair.audit``: audit every trained variant for accuracy and fairness.

Writes REPORT_DIR/report.html (self-contained, opens offline), REPORT_DIR/summary.json (every number
in the report) and REPORT_DIR/predictions.csv. Exit code 0 when every threshold holds, 1 when any
fails (the failing rows are printed), 2 on bad input or usage.
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
from agefair.metrics import AuditSettings, audit_variant, shot_labels
from agefair.predictions import find_variants, note_unfinished, predict_variant
from agefair.provenance import git_dirty, reproduce_command
from agefair.summary import by_age, leaderboard, nan_to_none, verdict
from agefair.thresholds import judge, table_text


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


def run_audit(prepared: PreparedData, data_cfg, fair: FairnessConfig, runs_dir: Path, variants: list[str],
              split: str, device: str, progress: bool, galleries: bool,
              thresholds_file: str) -> tuple[dict, pd.DataFrame, dict]:
    """(summary, predictions, galleries) for ``variants`` in ``runs_dir``."""
    rt = make_runtime(device, "auto", True)
    settings = AuditSettings(n_boot=fair.n_boot, ci_level=fair.ci_level, seed=fair.seed,
                             min_group_size=fair.min_group_size, bootstrap=fair.bootstrap)
    train_ages = prepared.manifest.loc[prepared.manifest["split"] == "train", "age"].to_numpy()
    preds, infos, audits, timings = [], {}, {}, {}
    for v in variants:
        t0 = time.perf_counter()
        pred, info = predict_variant(v, runs_dir / v / "model.pt", prepared, data_cfg, split, rt, progress)
        if info["meta"].get("manifest_hash") not in (None, prepared.data_hash):
            raise AgefairError(f"{runs_dir / v / 'model.pt'} was trained on other data (manifest "
                               f"{info['meta']['manifest_hash'][:12]}, audited data {prepared.data_hash[:12]})")
        t1 = time.perf_counter()
        pred["shot"] = shot_labels(pred["age"].to_numpy(), train_ages, fair.many_shot, fair.few_shot)
        audits[v] = audit_variant(pred, settings)
        audits[v]["by_age"] = by_age(pred)
        infos[v] = info
        preds.append(pred)
        timings[v] = {"predict_s": t1 - t0, "metrics_s": time.perf_counter() - t1}
    verdicts = judge(fair.rules, audits)
    board = leaderboard(audits, verdicts)

    gallery_data: dict = {}
    if galleries and fair.gallery_k > 0:
        from agefair.checkpoint import model_from_checkpoint
        from agefair.data.image_cache import build_image_cache
        from agefair.gradcam import gallery

        for v, pred in zip(variants, preds):
            t0 = time.perf_counter()
            model, cfg, _ = model_from_checkpoint(runs_dir / v / "model.pt")
            images = build_image_cache(prepared.data_dir, prepared.manifest, prepared.data_hash,
                                       cfg.model.image_size, prepared.work_dir, progress=progress)
            gallery_data[v] = gallery(model, images, pred, fair.gallery_k)
            timings[v]["gallery_s"] = time.perf_counter() - t0

    quality = {k: prepared.quality_report[k] for k in prepared.quality_report if k != "problems"}
    summary = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "passed": all(r["passed"] for r in verdicts),
        "verdict": verdict(board),
        "leaderboard": board,
        "thresholds": verdicts,
        "variants": {v: {"training": {k: infos[v][k] for k in ("checkpoint", "checkpoint_sha256", "epoch", "val_mae")}
                         | {"config": infos[v]["config"], "meta": infos[v]["meta"], "history": infos[v]["history"]},
                         "audit": audits[v], "timings": timings[v]} for v in variants},
        "data": {"quality": quality, "split": prepared.split_meta, "split_text": counts_text(prepared.split_meta)},
        "provenance": {
            "data_dir": str(prepared.data_dir), "manifest_hash": prepared.data_hash,
            "split_seed": prepared.split_meta["seed"], "split": split, "thresholds_file": thresholds_file,
            "audit_settings": fair.model_dump(mode="json"), "git_commit": git_commit(), "git_dirty": git_dirty(),
            "versions": versions(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "reproduce": reproduce_command(runs_dir, prepared.data_dir, prepared.split_meta["seed"], split,
                                           thresholds_file, variants),
            "device": str(rt.device), "precision": rt.precision_name, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "data_config": data_cfg.model_dump(mode="json"),
        },
    }
    return nan_to_none(summary), pd.concat(preds, ignore_index=True), gallery_data


def print_leaderboard(board: list[dict]) -> None:
    print(f"{'variant':<12} {'MAE':>6} {'95% CI':>15} {'worst group (MAE)':>38} {'eth. gap':>9} {'bin spread':>10}  rules")
    for r in board:
        ci = f"[{r['mae_ci'][0]:.2f}, {r['mae_ci'][1]:.2f}]" if r["mae_ci"][0] is not None else ""
        wg = f"{r['worst_group']} ({r['worst_group_mae']:.2f})" if r["worst_group"] else "-"
        gap = f"{r['ethnicity_gap']:.2f}" if r["ethnicity_gap"] is not None else "-"
        spread = f"{r['age_bin_spread']:.2f}" if r["age_bin_spread"] is not None else "-"
        print(f"{r['variant']:<12} {r['mae']:>6.2f} {ci:>15} {wg[:38]:>38} {gap:>9} {spread:>10}  "
              f"{r['rules_passed']}/{r['rules']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agefair.audit", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="runs", metavar="RUNS_DIR", help="trained runs (default: runs/)")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR", help="output folder (default: reports/)")
    p.add_argument("--thresholds", metavar="FILE", help=f"fairness config (default: {CONFIG_DIR / 'fairness.yaml'})")
    p.add_argument("--variant", nargs="+", metavar="NAME", help="variants to audit (default: every one found)")
    p.add_argument("--split", default="test", choices=["test", "val"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-gallery", action="store_true", help="skip the Grad-CAM galleries")
    p.add_argument("--robustness", action="store_true",
                   help="also run the corruption audit (python -m agefair.robustness) and judge its rules")
    add_data_args(p)
    args = p.parse_args(argv)

    started = time.perf_counter()
    fair = load_fairness_config(args.thresholds)
    runs_dir = Path(args.runs)
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

    prepared, data_cfg = prepare_from_args(args)
    summary, preds, galleries = run_audit(prepared, data_cfg, fair, runs_dir, variants, args.split, args.device,
                                          not args.quiet, not args.no_gallery,
                                          str(args.thresholds or CONFIG_DIR / "fairness.yaml"))
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
        rob = robustness.run_robustness(prepared, data_cfg, fair, runs_dir, variants, args.split, args.device,
                                        not args.quiet, thresholds_file=summary["provenance"]["thresholds_file"])
        robustness.print_result(rob, *robustness.write_outputs(rob, out))
    render_report(summary, galleries, out / "report.html", rob or robustness.load_result(out / robustness.JSON_NAME))

    print_leaderboard(summary["leaderboard"])
    v = summary["verdict"]
    print(f"most accurate: {v['most_accurate']}; smallest worst-group MAE: {v['smallest_worst_group_mae']}; "
          f"smallest ethnicity gap: {v['smallest_ethnicity_gap']}; smallest age-bin spread: {v['smallest_age_bin_spread']}")
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
