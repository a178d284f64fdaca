"""Context builders of the report's closing sections: Grad-CAM galleries, training, data quality
and split, provenance (settings, rules, checkpoints, versions, unknown summary fields)."""

from __future__ import annotations

import json
from typing import Any

from agefair.reporting.format import (
    GROUPING_TITLES,
    JUDGE_TITLES,
    MISSING,
    as_dict,
    as_list,
    as_yaml,
    fmt,
    fmt_int,
    fmt_pct,
    fmt_seconds,
    fmt_signed,
    fmt_text,
    num,
)

KNOWN_KEYS = {"generated", "split", "passed", "verdict", "leaderboard", "thresholds", "variants", "data",
              "provenance", "seconds", "dataset", "thresholds_not_applicable", "gallery_note"}


def _tile(t: Any) -> dict | None:
    if not isinstance(t, dict):
        return None
    img = t.get("img")
    src = img if isinstance(img, str) and img.startswith("data:image/") else None  # never a network fetch
    name = fmt_text(t.get("file"))
    true = num(t.get("true"))
    return {"src": src, "file": name, "short": name if len(name) <= 32 else name[:14] + "…" + name[-16:],
            "true": fmt(true, 0 if true is not None and true.is_integer() else 1),
            "pred": fmt(t.get("pred"), 1), "error": fmt_signed(t.get("error"), 1),
            "group": fmt_text(t.get("group"))}


def gallery_sections(galleries: Any, variants: list[str]) -> list[dict]:
    galleries = as_dict(galleries)
    names = variants + [v for v in galleries if v not in variants]
    out = []
    for v in names:
        by_grouping = as_dict(galleries.get(v))
        if not by_grouping:
            out.append({"variant": v, "overall": [], "groupings": [], "missing": True})
            continue
        overall = [t for grp in as_dict(by_grouping.get("overall")).values() for t in map(_tile, as_list(grp)) if t]
        groupings = []
        for grouping, groups in by_grouping.items():
            if grouping == "overall":
                continue
            items = [{"group": str(g), "tiles": [t for t in map(_tile, as_list(ts)) if t]} for g, ts in as_dict(groups).items()]
            groupings.append({"grouping": grouping, "title": GROUPING_TITLES.get(grouping, grouping),
                              "groups": items, "n": sum(len(i["tiles"]) for i in items)})
        out.append({"variant": v, "overall": overall, "groupings": groupings, "missing": False})
    return out


def training_rows(summary: dict, variants: list[str]) -> list[dict]:
    rows = []
    for v in variants:
        entry = as_dict(as_dict(summary.get("variants")).get(v))
        if entry.get("source") == "external":  # not trained by agefair
            continue
        tr = as_dict(entry.get("training"))
        hist = [h for h in as_list(tr.get("history")) if isinstance(h, dict)]
        cfg_train = as_dict(as_dict(tr.get("config")).get("train"))
        secs = [x for x in (num(h.get("seconds")) for h in hist) if x is not None]
        speeds = [s for s in (num(h.get("train_img_per_s")) for h in hist) if s is not None]
        timings = as_dict(entry.get("timings"))
        rows.append({
            "variant": v, "epoch": fmt_int(tr.get("epoch")), "val_mae": fmt(tr.get("val_mae")),
            "epochs_run": str(len(hist)) if hist else MISSING, "epochs_max": fmt_int(cfg_train.get("epochs")),
            "train_time": fmt_seconds(sum(secs)) if secs else MISSING,
            "speed": f"{sum(speeds) / len(speeds):.0f}" if speeds else MISSING,
            "lr": fmt_text(as_dict(hist[-1]).get("lr")) if hist else MISSING,
            "timings": ", ".join(f"{k.removesuffix('_s')} {fmt_seconds(t)}" for k, t in timings.items()) or MISSING,
        })
    return rows


def data_context(summary: dict) -> dict:
    data = as_dict(summary.get("data"))
    q = as_dict(data.get("quality"))
    counts, actions = as_dict(q.get("counts")), as_dict(q.get("actions"))
    problems = list(counts) + [k for k in actions if k not in counts]
    split = as_dict(data.get("split"))
    totals = as_dict(as_dict(split.get("counts")).get("total"))
    fractions = as_dict(split.get("fractions"))
    return {
        "files": [(label, fmt_int(q.get(k))) for k, label in
                  (("files_scanned", "files scanned"), ("files_kept", "kept"), ("files_dropped", "dropped"))
                  if k in q],
        "data_dir": fmt_text(q.get("data_dir")), "manifest_hash": fmt_text(q.get("manifest_hash")),
        "problems": [{"problem": p.replace("_", " "), "count": fmt_int(counts.get(p)),
                      "nonzero": bool(num(counts.get(p))), "action": fmt_text(actions.get(p))} for p in problems],
        "duplicates": [(k.replace("_", " "), fmt_int(x)) for k, x in as_dict(q.get("duplicate_groups")).items()],
        "split_seed": fmt_text(split.get("seed")),
        "split_parts": [{"name": k, "fraction": fmt_pct(fractions.get(k), 0), "count": fmt_int(totals.get(k))}
                        for k in list(fractions) + [k for k in totals if k not in fractions]],
        "split_details": [(k.replace("_", " "), ", ".join(map(str, x)) if isinstance(x, list) else fmt_text(x))
                          for k, x in split.items() if k in ("stratified_by", "grouped_by", "age_bins")],
        "split_text": data.get("split_text") if isinstance(data.get("split_text"), str) else "",
    }


def _rule_label(rule: dict) -> str:
    """A rule's name, or the label the threshold table uses (as ``ThresholdRule.label``)."""
    if rule.get("name"):
        return str(rule["name"])
    metric, grouping = rule.get("metric"), rule.get("grouping", "overall")
    what = metric if metric == "age_bin_spread" else f"{metric} {rule.get('statistic', 'value')}"
    where = "" if grouping == "overall" or metric == "age_bin_spread" else f" by {grouping}"
    return f"{what}{where}"


def provenance_context(summary: dict, variants: list[str]) -> dict:
    p = as_dict(summary.get("provenance"))
    settings = as_dict(p.get("audit_settings"))
    rules = as_list(settings.get("rules"))
    checkpoints = []
    for v in variants:
        entry = as_dict(as_dict(summary.get("variants")).get(v))
        if entry.get("source") == "external":
            ext = as_dict(entry.get("predictions"))
            checkpoints.append({"variant": v, "path": fmt_text(ext.get("file")), "sha256": fmt_text(ext.get("sha256")),
                                "config": "", "meta": ""})
            continue
        tr = as_dict(entry.get("training"))
        checkpoints.append({"variant": v, "path": fmt_text(tr.get("checkpoint")),
                            "sha256": fmt_text(tr.get("checkpoint_sha256")),
                            "config": as_yaml(tr.get("config")) if tr.get("config") else "",
                            "meta": as_yaml(tr.get("meta")) if tr.get("meta") else ""})
    extra = {k: summary[k] for k in summary if k not in KNOWN_KEYS}
    return {
        "fields": [(label, fmt_text(p.get(k))) for k, label in (
            ("data_dir", "data folder"), ("manifest_hash", "manifest hash"), ("split_seed", "split seed"),
            ("split", "audited split"), ("thresholds_file", "thresholds file"), ("git_commit", "git commit"),
            ("git_dirty", "uncommitted changes"), ("device", "device"), ("precision", "precision"),
            ("torch_threads", "torch threads"), ("platform", "platform"), ("command", "command"),
            ("reproduce", "to reproduce")) if k in p],
        "data_config": as_yaml(p["data_config"]) if isinstance(p.get("data_config"), dict) else "",
        "settings": [(k.replace("_", " "), fmt_text(x)) for k, x in settings.items() if k != "rules"],
        "rules": [{"metric": fmt_text(r.get("metric")), "grouping": fmt_text(r.get("grouping")),
                   "statistic": fmt_text(r.get("statistic")),
                   "limit": (f"<= {r['max']}" if r.get("max") is not None else f">= {fmt_text(r.get('min'))}"),
                   "judge": JUDGE_TITLES.get(str(r.get("judge")), fmt_text(r.get("judge"))),
                   "name": _rule_label(r)} for r in rules if isinstance(r, dict)],
        "settings_yaml": as_yaml(settings) if settings else "",
        "versions": [(k, fmt_text(x)) for k, x in as_dict(p.get("versions")).items()],
        "checkpoints": checkpoints,
        "extra": json.dumps(extra, indent=2, default=str, allow_nan=True)[:200_000] if extra else "",
        "extra_keys": list(extra),
    }

