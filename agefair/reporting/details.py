"""Context builders of the report's closing sections: Grad-CAM galleries, training, data quality
and split, provenance (settings, rules, checkpoints, versions, unknown summary fields)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
from dataclasses import dataclass, field

from PIL import Image

from agefair.fairness.results.result import AuditSummary, Training, VariantEntry, nan_to_none
from agefair.reporting.format import (
    GROUPING_TITLES,
    JUDGE_TITLES,
    MISSING,
    as_yaml,
    fmt,
    fmt_int,
    fmt_pct,
    fmt_seconds,
    fmt_signed,
    fmt_text,
    num,
)

# A picture the report embeds: only base64 PNG or JPEG data URIs (never a network fetch, never arbitrary
# text in the gallery's <style> block, where each picture is one CSS rule).
IMAGE_URI = re.compile(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/=]+")


@dataclass(frozen=True)
class GalleryImage:
    """One distinct gallery picture, emitted once in the page as the CSS rule ``.{cls} {background-image: ...}``."""

    cls: str  # "gc-" + the first 10 hex digits of the URI's SHA-256
    uri: str  # matches IMAGE_URI
    width: int  # pixels
    height: int


@dataclass
class Galleries:
    """The gallery section's context: per variant its tiles (``sections``), and every picture they show, once."""

    sections: list[dict] = field(default_factory=list)
    images: list[GalleryImage] = field(default_factory=list)


def _pixel_size(uri: str) -> tuple[int, int] | None:
    """(width, height) from the image's header, or None when the data is not a PNG or JPEG picture."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True))) as img:
            ok = img.format in ("PNG", "JPEG") and img.width > 0 and img.height > 0
            return (img.width, img.height) if ok else None
    except (OSError, ValueError, binascii.Error, SyntaxError, Image.DecompressionBombError):
        return None


def _image(uri: object, seen: dict[str, GalleryImage | None]) -> GalleryImage | None:
    """The picture of a tile's "img" (None: missing, not a PNG/JPEG data URI, or unreadable), registered in ``seen``."""
    if not isinstance(uri, str) or not IMAGE_URI.fullmatch(uri):
        return None
    if uri not in seen:
        size = _pixel_size(uri)
        cls = "gc-" + hashlib.sha256(uri.encode("ascii")).hexdigest()[:10]
        seen[uri] = GalleryImage(cls, uri, *size) if size else None
    return seen[uri]


def _tile(t: dict, seen: dict[str, GalleryImage | None]) -> dict:
    picture = _image(t.get("img"), seen)
    name = fmt_text(t.get("file"))
    true = num(t.get("true"))
    return {"cls": picture.cls if picture else None, "file": name,
            "short": name if len(name) <= 32 else name[:14] + "…" + name[-16:],
            "true": fmt(true, 0 if true is not None and true.is_integer() else 1),
            "pred": fmt(t.get("pred"), 1), "error": fmt_signed(t.get("error"), 1),
            "group": fmt_text(t.get("group"))}


def gallery_sections(galleries: dict[str, dict[str, dict[str, list[dict]]]], variants: list[str]) -> Galleries:
    """Per variant: its worst-error tiles overall and per grouping (gradcam.gallery's
    {variant: {grouping: {group: [tile, ...]}}}; a variant without one reads 'no gallery'), and the
    distinct pictures, each once however many galleries show it (a tile refers to its picture's class)."""
    names = variants + [v for v in galleries if v not in variants]
    seen: dict[str, GalleryImage | None] = {}
    out = []
    for v in names:
        by_grouping = galleries.get(v) or {}
        if not by_grouping:
            out.append({"variant": v, "overall": [], "groupings": [], "missing": True})
            continue
        overall = [_tile(t, seen) for tiles in (by_grouping.get("overall") or {}).values() for t in tiles]
        groupings = []
        for grouping, groups in by_grouping.items():
            if grouping == "overall":
                continue
            items = [{"group": str(g), "tiles": [_tile(t, seen) for t in ts]} for g, ts in groups.items()]
            groupings.append({"grouping": grouping, "title": GROUPING_TITLES.get(grouping, grouping),
                              "groups": items, "n": sum(len(i["tiles"]) for i in items)})
        out.append({"variant": v, "overall": overall, "groupings": groupings, "missing": False})
    return Galleries(out, [p for p in seen.values() if p is not None])


def training_rows(summary: AuditSummary, variants: list[str]) -> list[dict]:
    rows = []
    for v in variants:
        entry = summary.entry(v)
        if entry.external:  # not trained by agefair
            continue
        tr = entry.training or Training()
        hist = tr.history
        secs = [x for x in (num(h.get("seconds")) for h in hist) if x is not None]
        speeds = [s for s in (num(h.get("train_img_per_s")) for h in hist) if s is not None]
        rows.append({
            "variant": v, "epoch": fmt_int(tr.epoch), "val_mae": fmt(tr.val_mae),
            "epochs_run": str(len(hist)) if hist else MISSING,
            "epochs_max": fmt_int((tr.config.get("train") or {}).get("epochs")),
            "train_time": fmt_seconds(sum(secs)) if secs else MISSING,
            "speed": f"{sum(speeds) / len(speeds):.0f}" if speeds else MISSING,
            "lr": fmt_text(hist[-1].get("lr")) if hist else MISSING,
            "timings": ", ".join(f"{k.removesuffix('_s')} {fmt_seconds(t)}" for k, t in entry.timings.items())
            or MISSING,
        })
    return rows


def data_context(summary: AuditSummary) -> dict:
    """The data section: files kept and dropped, problems found and what was done, duplicates, the split."""
    q, split = summary.data.quality, summary.data.split
    counts, actions = q.get("counts") or {}, q.get("actions") or {}
    problems = list(counts) + [k for k in actions if k not in counts]
    totals = (split.get("counts") or {}).get("total") or {}
    fractions = split.get("fractions") or {}
    return {
        "files": [(label, fmt_int(q.get(k))) for k, label in
                  (("files_scanned", "files scanned"), ("files_kept", "kept"), ("files_dropped", "dropped"))
                  if k in q],
        "data_dir": fmt_text(q.get("data_dir")), "manifest_hash": fmt_text(q.get("manifest_hash")),
        "source": _source_text(q.get("source")),
        "problems": [{"problem": p.replace("_", " "), "count": fmt_int(counts.get(p)),
                      "nonzero": bool(num(counts.get(p))), "action": fmt_text(actions.get(p))} for p in problems],
        "duplicates": [(k.replace("_", " "), fmt_int(x)) for k, x in (q.get("duplicate_groups") or {}).items()],
        "split_seed": fmt_text(split.get("seed")),
        "split_parts": [{"name": k, "fraction": fmt_pct(fractions.get(k), 0), "count": fmt_int(totals.get(k))}
                        for k in list(fractions) + [k for k in totals if k not in fractions]],
        "split_details": [(k.replace("_", " "), ", ".join(map(str, x)) if isinstance(x, list) else fmt_text(x))
                          for k, x in split.items() if k in ("stratified_by", "grouped_by", "age_bins")],
        "split_text": summary.data.split_text,
    }


def _source_text(source: dict | None) -> str | None:
    """What a table audit read (agefair.data.table_source.SourceCounts): partitions, empty ones, rows, batches."""
    if not source:
        return None
    n, fmt = source.get("partitions", 0), "Parquet" if source.get("format") == "parquet" else "CSV"
    parts = [f"{fmt_int(n)} {fmt} {'file' if n == 1 else 'partitions'}"]
    if source.get("empty"):
        parts.append(f"{fmt_int(source['empty'])} of them empty")
    parts.append(f"{fmt_int(source.get('rows'))} rows")
    if source.get("batches"):
        parts.append(f"in {fmt_int(source['batches'])} row batches")
    if source.get("hive_columns"):
        parts.append("columns from folder names: " + ", ".join(source["hive_columns"]))
    return "Read " + ", ".join(parts)


def _rule_label(rule: dict) -> str:
    """A rule's name, or the label the threshold table uses (as ``ThresholdRule.label``)."""
    if rule.get("name"):
        return str(rule["name"])
    metric, grouping = rule.get("metric"), rule.get("grouping", "overall")
    what = metric if metric == "age_bin_spread" else f"{metric} {rule.get('statistic', 'value')}"
    where = "" if grouping == "overall" or metric == "age_bin_spread" else f" by {grouping}"
    return f"{what}{where}"


def _rule_row(r: dict) -> dict:
    return {"metric": fmt_text(r.get("metric")), "grouping": fmt_text(r.get("grouping")),
            "statistic": fmt_text(r.get("statistic")),
            "limit": (f"<= {r['max']}" if r.get("max") is not None else f">= {fmt_text(r.get('min'))}"),
            "judge": JUDGE_TITLES.get(str(r.get("judge")), fmt_text(r.get("judge"))),
            "name": _rule_label(r)}


def _checkpoint(v: str, entry: VariantEntry) -> dict:
    """Where a variant's numbers come from: its predictions file, or its checkpoint with config and meta."""
    if entry.external:
        return {"variant": v, "path": fmt_text(entry.predictions.get("file")),
                "sha256": fmt_text(entry.predictions.get("sha256")), "config": "", "meta": ""}
    tr = entry.training or Training()
    return {"variant": v, "path": fmt_text(tr.checkpoint), "sha256": fmt_text(tr.checkpoint_sha256),
            "config": as_yaml(tr.config) if tr.config else "", "meta": as_yaml(tr.meta) if tr.meta else ""}


# The provenance fields the section lists (when the summary has them), with their labels.
PROVENANCE_FIELDS = (
    ("data_dir", "data folder"), ("manifest_hash", "manifest hash"), ("split_seed", "split seed"),
    ("split", "audited split"), ("thresholds_file", "thresholds file"), ("git_commit", "git commit"),
    ("git_dirty", "uncommitted changes"), ("device", "device"), ("precision", "precision"),
    ("torch_threads", "torch threads"), ("platform", "platform"), ("command", "command"),
    ("reproduce", "to reproduce"))


def provenance_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The provenance section: where the data and code came from, the settings and rules, the checkpoints,
    the package versions and any summary fields this version does not know."""
    p = summary.provenance
    given = p.model_fields_set
    settings = p.audit_settings
    extra = nan_to_none(summary.extra_fields)
    return {
        "fields": [(label, fmt_text(getattr(p, k))) for k, label in PROVENANCE_FIELDS if k in given],
        "data_config": as_yaml(p.data_config) if "data_config" in given else "",
        "settings": [(k.replace("_", " "), fmt_text(x)) for k, x in settings.items() if k != "rules"],
        "rules": [_rule_row(r) for r in settings.get("rules") or [] if isinstance(r, dict)],
        "settings_yaml": as_yaml(settings) if settings else "",
        "versions": [(k, fmt_text(x)) for k, x in p.versions.items()],
        "checkpoints": [_checkpoint(v, summary.entry(v)) for v in variants],
        "extra": json.dumps(extra, indent=2, default=str, allow_nan=True)[:200_000] if extra else "",
        "extra_keys": list(extra),
    }
