"""The robustness computation behind ``python -m agefair.robustness``: each variant's predictions of
the audited rows clean and under each corruption x severity (agefair.fairness.stats.corruptions; cached
per checkpoint, data, rows and condition), the MAE and the per-group MAE and worst-minus-best gap of
each condition (agefair.fairness.stats.metrics), the robustness rules judged, and robustness.json /
robustness.csv written (agefair.fairness.results.robustness_result.RobustnessResult).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from agefair.core.config import (
    DataConfig,
    FairnessConfig,
    RobustnessRule,
)
from agefair.core.errors import AgefairError
from agefair.core.io import atomic_path, write_csv_atomic, write_json_atomic
from agefair.core.provenance import git_commit, git_dirty, versions
from agefair.data.dataset import FaceDataset
from agefair.data.image_cache import build_image_cache
from agefair.data.labels import age_bin
from agefair.data.prepare import PreparedData
from agefair.data.split import split_rows, stratified_limit
from agefair.fairness.results.result import (
    Corruption,
    GapRow,
    RobustnessCheck,
    RobustnessResult,
    VariantRobustness,
    load_robustness,
)
from agefair.fairness.stats.corruptions import CORRUPTIONS, corrupt
from agefair.fairness.stats.metrics import AuditSettings, grouped_metrics
from agefair.models import runs
from agefair.models.checkpoint import file_sha256, model_from_checkpoint
from agefair.models.posthoc import correction_of
from agefair.models.runtime import Runtime, make_runtime, predict_loader

CLEAN = ("clean", 0)


JSON_NAME, CSV_NAME = "robustness.json", "robustness.csv"


def audited_rows(prepared: PreparedData, data_cfg: DataConfig, split: str, limit: int | None, seed: int) -> np.ndarray:
    """Manifest rows of ``split``; with ``limit``, a seeded subset stratified by age bin (sorted)."""
    rows = split_rows(prepared, split)
    return rows if limit is None else stratified_limit(prepared.manifest, rows, limit, data_cfg, seed)


def conditions(corruptions: list[str], severities: list[int]) -> list[tuple[str, int]]:
    return [CLEAN] + [(c, s) for c in corruptions for s in sorted(set(severities))]


def _cache_file(cache_dir: Path, digest: str, key: str, cond: tuple[str, int]) -> Path:
    version = CORRUPTIONS[cond[0]].version if cond[0] in CORRUPTIONS else 1
    return cache_dir / f"{digest[:16]}-{key}-{cond[0]}-v{version}-{cond[1]}.npy"


def _load_models(variants: list[str], runs_dir: Path, prepared: PreparedData, rt: Runtime) -> tuple[dict, dict]:
    """Each variant's best checkpoint on the device (model, config), and its fields in robustness.json."""
    models, infos = {}, {}
    for v in variants:
        path = runs.best_checkpoint(runs_dir, v)
        model, cfg, ckpt = model_from_checkpoint(path)
        meta = ckpt.get("meta", {})
        if meta.get("manifest_hash") not in (None, prepared.data_hash):
            raise AgefairError(f"{path} was trained on other data (manifest {meta['manifest_hash'][:12]}, "
                               f"audited data {prepared.data_hash[:12]})")
        models[v] = (model.to(rt.device), cfg, correction_of(ckpt, str(path)))
        infos[v] = {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "image_size": cfg.model.image_size,
                    "backbone": cfg.model.backbone, "head": cfg.model.head, "val_mae": ckpt.get("val_mae")}
    return models, infos


def predict_conditions(variants: list[str], runs_dir: Path, prepared: PreparedData, rows: np.ndarray,
                       conds: list[tuple[str, int]], seed: int, batch_size: int, rt: Runtime,
                       progress: bool = True) -> tuple[dict[str, dict[tuple[str, int], np.ndarray]], dict, dict]:
    """Predicted ages of ``rows`` per variant and condition, the checkpoints' fields, and timings.

    The corrupted images of a condition are made once and fed to every variant of the same input size.
    """
    ages = prepared.manifest["age"].to_numpy(np.float32)[rows]
    rows_key = hashlib.sha1(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:10]
    key = f"{prepared.data_hash[:12]}-{rows_key}-s{seed}-{rt.measure_precision_name}"
    cache_dir = prepared.work_dir / "robustness"
    cache_dir.mkdir(parents=True, exist_ok=True)

    models, infos = _load_models(variants, runs_dir, prepared, rt)
    out: dict[str, dict[tuple[str, int], np.ndarray]] = {v: {} for v in variants}
    timings = {"corrupt_s": 0.0, "predict_s": 0.0, "images_predicted": 0, "cached_conditions": 0}
    sizes = sorted({infos[v]["image_size"] for v in variants})
    bar = tqdm(total=len(conds) * len(sizes), desc="robustness", unit="condition", disable=not progress)
    for size in sizes:
        group = [v for v in variants if infos[v]["image_size"] == size]
        images = build_image_cache(prepared.data_dir, prepared.manifest, prepared.data_hash, size,
                                   prepared.work_dir, progress=progress)
        clean = torch.from_numpy(np.ascontiguousarray(images[rows])).permute(0, 3, 1, 2)  # N x 3 x H x W uint8
        for cond in conds:
            bar.set_postfix_str(f"{cond[0]} {cond[1]}" if cond != CLEAN else "clean")
            todo = []
            for v in group:
                f = _cache_file(cache_dir, infos[v]["checkpoint_sha256"], key, cond)
                if f.exists():
                    out[v][cond] = np.load(f)
                    timings["cached_conditions"] += 1
                else:
                    todo.append((v, f))
            if todo:
                t0 = time.perf_counter()
                if cond == CLEAN:
                    x = clean
                else:
                    x = torch.cat([corrupt(clean[i:i + batch_size], cond[0], cond[1], rows[i:i + batch_size], seed)
                                   for i in range(0, len(rows), batch_size)])
                nhwc = x.permute(0, 2, 3, 1).contiguous().numpy()
                t1 = time.perf_counter()
                timings["corrupt_s"] += t1 - t0
                for v, f in todo:
                    model, cfg, _ = models[v]
                    loader = DataLoader(FaceDataset(nhwc, np.arange(len(rows)), ages), batch_size=batch_size)
                    res = predict_loader(model, loader, rt, cfg.train.loss, desc=f"{v} {cond[0]} {cond[1]}",
                                  progress=False)
                    pred = res["pred"].astype(np.float32)
                    with atomic_path(f) as tmp:
                        with open(tmp, "wb") as fh:
                            np.save(fh, pred)
                    out[v][cond] = pred
                    timings["images_predicted"] += len(rows)
                timings["predict_s"] += time.perf_counter() - t1
            bar.update(1)
    bar.close()
    return _corrected(out, models, prepared, rows), infos, timings


def _corrected(out: dict, models: dict, prepared: PreparedData, rows: np.ndarray) -> dict:
    """The calibrated variant's ages corrected per group, as the audit corrects them (the others as they are)."""
    for v, (_, _, correction) in models.items():
        if correction is not None:
            attrs = {a: prepared.manifest[a].to_numpy()[rows] for a in correction.attributes}
            out[v] = {cond: correction.apply(p, attrs).astype(np.float32) for cond, p in out[v].items()}
    return out


def group_summary(frame: pd.DataFrame, grouping: str, settings: AuditSettings) -> dict:
    """Per-group MAE and n, and the worst-minus-best gap over groups of adequate size (with its interval)."""
    g = grouped_metrics(frame, [grouping], settings)
    d = g["disparity"].get("mae")
    return {
        "groups": {x["group"]: {"n": x["n"], "mae": x["mae"]["value"], "bias": x["bias"]["value"], "small": x["small"]}
                   for x in g["groups"]},
        "gap": d["difference"] if d else math.nan, "gap_ci": d["difference_ci"] if d else [math.nan, math.nan],
        "worst_group": d["worst_group"] if d else None, "worst": d["worst"] if d else math.nan,
        "best_group": d["best_group"] if d else None, "best": d["best"] if d else math.nan,
    }


def condition_metrics(base: pd.DataFrame, pred: np.ndarray, groupings: list[str], settings: AuditSettings) -> dict:
    frame = base.assign(pred=pred.astype(float))
    err = frame["pred"].to_numpy() - frame["age"].to_numpy()
    return {"mae": float(np.abs(err).mean()), "bias": float(err.mean()), "pred_sd": float(frame["pred"].std(ddof=0)),
            "groupings": {g: group_summary(frame, g, settings) for g in groupings}}


def evaluate(base: pd.DataFrame, preds: dict[str, dict[tuple[str, int], np.ndarray]], conds: list[tuple[str, int]],
             settings: AuditSettings, groupings: list[str]) -> dict[str, dict]:
    """Per variant: the clean metrics and one entry per corruption x severity (``conds[0]`` is CLEAN)."""
    results = {}
    for v, by_cond in preds.items():
        clean = condition_metrics(base, by_cond[CLEAN], groupings, settings)
        conds_out = [{"corruption": c, "severity": s, "param": CORRUPTIONS[c].param(s),
                      **condition_metrics(base, by_cond[(c, s)], groupings, settings)} for c, s in conds[1:]]
        results[v] = {"clean": clean, "conditions": conds_out}
    return results


def judge_rules(rules: list[RobustnessRule], variants: dict[str, dict]) -> list[dict]:
    """One row per (variant, rule): the worst covered condition decides; a NaN (not computable) fails."""
    rows = []
    for v, res in variants.items():
        clean = res["clean"]
        for rule in rules:
            covered = []
            for c in res["conditions"]:
                if (rule.corruptions is not None and c["corruption"] not in rule.corruptions) \
                        or c["severity"] > rule.max_severity:
                    continue
                if rule.metric in ("mae", "mae_increase"):
                    value, ci, group = c["mae"], [math.nan, math.nan], "all"
                    if rule.metric == "mae_increase":
                        value -= clean["mae"]
                else:
                    gs = c["groupings"].get(rule.grouping, {})
                    value, ci = _f(gs.get("gap")), [_f(x) for x in (gs.get("gap_ci") or [None, None])]
                    group = f"{gs.get('worst_group')} vs {gs.get('best_group')}"
                    if rule.metric == "group_gap_increase":  # the interval is the gap's, not the change's
                        value -= _f(clean["groupings"].get(rule.grouping, {}).get("gap"))
                        ci = [math.nan, math.nan]
                judged = _f({"point": value, "ci_lower": ci[0], "ci_upper": ci[1]}[rule.judge])
                covered.append({"corruption": c["corruption"], "severity": c["severity"], "group": group,
                                "value": value, "ci": ci, "judged_value": judged})
            nan = [r for r in covered if math.isnan(r["judged_value"])]
            worst = nan[0] if nan else max(covered, key=lambda r: r["judged_value"], default=None)
            worst = worst or {"corruption": None, "severity": None, "group": "(no condition covered)",
                              "value": math.nan, "ci": [math.nan, math.nan], "judged_value": math.nan}
            rows.append({"variant": v, "rule": rule.label, "metric": rule.metric, "grouping": rule.grouping,
                         **worst, "judge": rule.judge, "op": "<=", "threshold": rule.max,
                         "passed": bool(not math.isnan(worst["judged_value"]) and worst["judged_value"] <= rule.max)})
    return rows


def _f(x) -> float:
    return math.nan if x is None else float(x)


def gap_rows(variants: dict[str, dict]) -> list[dict]:
    """Every variant x corruption x severity x grouping with its gap, the clean gap and the change."""
    rows = []
    for v, res in variants.items():
        for c in res["conditions"]:
            for g, gs in c["groupings"].items():
                clean_gap = _f(res["clean"]["groupings"][g]["gap"])
                gap = _f(gs["gap"])
                rows.append({"variant": v, "corruption": c["corruption"], "severity": c["severity"], "grouping": g,
                             "worst_group": gs["worst_group"], "worst": gs["worst"], "best_group": gs["best_group"],
                             "best": gs["best"], "gap": gap, "gap_ci": gs["gap_ci"], "clean_gap": clean_gap,
                             "gap_increase": gap - clean_gap, "mae": c["mae"], "clean_mae": res["clean"]["mae"]})
    return rows


def worst_gaps(variants: dict[str, dict], k: int = 3, key: str = "gap_increase") -> list[dict]:
    rows = [r for r in gap_rows(variants) if not math.isnan(r[key])]
    return sorted(rows, key=lambda r: -r[key])[:k]


def run_robustness(prepared: PreparedData, data_cfg: DataConfig, fair: FairnessConfig, runs_dir: Path,
                   variants: list[str], split: str = "test", device: str = "auto", progress: bool = True,
                   limit: int | None = None, severities: list[int] | None = None,
                   corruptions: list[str] | None = None, thresholds_file: str = "") -> RobustnessResult:
    """Everything robustness.json holds (see the module docstring)."""
    if prepared.kind != "utkface":
        raise AgefairError(f"{prepared.source or prepared.data_dir}: the robustness audit needs a UTKFace-style folder "
                           f"(aligned crops with exact ages, gender and ethnicity); this is a labels CSV")
    started = time.perf_counter()
    rc = fair.robustness
    severities = sorted(set(severities or rc.severities))
    corruptions = list(corruptions or rc.corruptions)
    rows = audited_rows(prepared, data_cfg, split, limit, rc.seed)
    if len(rows) == 0:
        raise AgefairError(f"{prepared.data_dir}: the {split} split is empty")
    rt = make_runtime(device, "auto", True)
    conds = conditions(corruptions, severities)
    preds, infos, timings = predict_conditions(variants, runs_dir, prepared, rows, conds, rc.seed, rc.batch_size,
                                               rt, progress)
    t0 = time.perf_counter()
    m = prepared.manifest
    ages = m["age"].to_numpy()[rows]
    base = pd.DataFrame({"age": ages.astype(float), "ethnicity": m["ethnicity"].to_numpy()[rows],
                         "gender": m["gender"].to_numpy()[rows],
                         "age_bin": age_bin(ages, data_cfg.age_bins)})
    settings = AuditSettings(n_boot=rc.n_boot, ci_level=fair.ci_level, seed=fair.seed,
                             min_group_size=fair.min_group_size)
    groupings = ["ethnicity", "gender", "age_bin"]
    results = {v: infos[v] | r for v, r in evaluate(base, preds, conds, settings, groupings).items()}
    timings["metrics_s"] = time.perf_counter() - t0
    verdicts = judge_rules(rc.rules, results)
    return RobustnessResult(
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        split=split, n_images=int(len(rows)), limit=limit, severities=severities, groupings=groupings,
        corruptions={c: Corruption(title=CORRUPTIONS[c].title, unit=CORRUPTIONS[c].unit,
                                   params=list(CORRUPTIONS[c].params), version=CORRUPTIONS[c].version)
                     for c in corruptions},
        variants={v: VariantRobustness.model_validate(r) for v, r in results.items()},
        largest_gaps=[GapRow.model_validate(r) for r in worst_gaps(results, k=10)],
        thresholds=[RobustnessCheck.model_validate(r) for r in verdicts],
        passed=all(r["passed"] for r in verdicts),
        timings=timings | {"seconds": time.perf_counter() - started},
        provenance=_provenance(prepared, split, limit, rows, rc, fair, rt, thresholds_file),
    )


def _provenance(prepared: PreparedData, split: str, limit: int | None, rows: np.ndarray, rc, fair: FairnessConfig,
                rt: Runtime, thresholds_file: str) -> dict:
    return {
        "data_dir": str(prepared.data_dir), "manifest_hash": prepared.data_hash,
        "split_seed": prepared.split_meta["seed"], "split": split, "limit": limit,
        "rows_sha1": hashlib.sha1(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest(),
        "corruption_seed": rc.seed, "thresholds_file": thresholds_file,
        "settings": rc.model_dump(mode="json") | {"min_group_size": fair.min_group_size,
                                                  "ci_level": fair.ci_level, "bootstrap_seed": fair.seed},
        "device": str(rt.device), "precision": rt.measure_precision_name, "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def csv_frame(result: RobustnessResult) -> pd.DataFrame:
    """Long table: one row per variant x condition x grouping x group (grouping 'overall' = all images):
    MAE, mean signed error (bias: + = too old), the clean MAE and the increase."""
    recs = []
    for v, res in result.variants.items():
        clean = res.clean
        for c in [clean.model_copy(update={"corruption": "clean", "severity": 0, "param": None}), *res.conditions]:
            base = {"variant": v, "corruption": c.corruption, "severity": c.severity, "param": c.param}
            recs.append(base | {"grouping": "overall", "group": "all", "n": result.n_images, "mae": c.mae,
                                "bias": c.bias, "clean_mae": clean.mae})
            for g, gs in c.groupings.items():
                clean_groups = clean.groupings[g].groups
                for name, x in gs.groups.items():
                    recs.append(base | {"grouping": g, "group": name, "n": x.n, "mae": x.mae, "bias": x.bias,
                                        "clean_mae": clean_groups[name].mae if name in clean_groups else None,
                                        "small_group": x.small})
    df = pd.DataFrame.from_records(recs)
    df["mae_increase"] = df["mae"] - df["clean_mae"]
    return df


def write_outputs(result: RobustnessResult, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / JSON_NAME, result.to_json())
    write_csv_atomic(out / CSV_NAME, csv_frame(result), float_format="%.4f")  # no formula from a group name
    return out / JSON_NAME, out / CSV_NAME


def load_result(path: Path) -> RobustnessResult | None:
    """robustness.json for the report, or None when there is none; a broken one (unreadable, or not a
    ``RobustnessResult``) is named on stderr in one line and left out of the report."""
    if not path.exists():
        return None
    try:
        result = load_robustness(path)
    except AgefairError as exc:
        print(f"agefair: note: {path} left out of the report: {str(exc).removeprefix(f'{path}: ')}", file=sys.stderr)
        return None
    if not result.variants:
        print(f"agefair: note: {path} left out of the report: not a robustness result", file=sys.stderr)
        return None
    return result
