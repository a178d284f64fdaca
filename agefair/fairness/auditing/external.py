"""Predictions made by any model, read from a CSV and matched to the audited dataset's images.

A predictions file has an image column (a path or an id) and a predicted-age column; their names
are recognised from ID_COLUMNS and PRED_COLUMNS (case-insensitive), so ``python -m agefair.predict
--format csv`` output (file, face, box, age, status) is read as is. Each row is matched to the
audited data by, in order: its path as written in the dataset, a trailing part of its path
(``/data/fairface/val/1.jpg`` matches ``val/1.jpg``), its file name, or its file name without the
extension, each only when it points to exactly one image. Nothing is dropped silently: rows that
match no image, match several, name an image the data-quality policy dropped, fall outside the
audited split, repeat an image, or hold no usable age are counted (with examples) in ``matching``.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig
from agefair.core.errors import AgefairError
from agefair.core.io import read_csv_text
from agefair.data.prepare import PreparedData
from agefair.data.split import split_rows
from agefair.fairness.auditing.model_predictions import prediction_frame

ID_COLUMNS = ("file", "image", "image_path", "path", "filename", "file_name", "img", "image_id", "id")
PRED_COLUMNS = ("pred", "predicted_age", "prediction", "pred_age", "age_pred", "predicted", "age")
MAX_AGE = 150
N_EXAMPLES = 5
MATCH_KINDS = ("path", "path suffix", "file name", "file stem")


def _norm(text: str) -> str:
    t = str(text).strip().replace("\\", "/")
    while t.startswith("./"):
        t = t[2:]
    return t


def _pick(columns: list[str], wanted: tuple[str, ...], path: Path, what: str, exclude: str | None = None) -> str:
    lower = {c.lower(): c for c in columns if c != exclude}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise AgefairError(f"{path}: no {what} column (columns: {', '.join(columns)}; expected one of "
                       f"{', '.join(wanted)})")


class Matcher:
    """Finds the manifest row an image path or id designates (see the module docstring)."""

    def __init__(self, files: list[str]):
        self.exact = {f: i for i, f in enumerate(files)}
        self.suffix: dict[str, set[int]] = defaultdict(set)
        self.name: dict[str, set[int]] = defaultdict(set)
        self.stem: dict[str, set[int]] = defaultdict(set)
        for i, f in enumerate(files):
            parts = PurePosixPath(f).parts
            for k in range(1, len(parts)):
                self.suffix["/".join(parts[k:])].add(i)
            name = parts[-1] if parts else f
            self.name[name].add(i)
            self.stem[PurePosixPath(name).stem].add(i)

    def match(self, key: str) -> tuple[int | None, str]:
        """(row, how) or (None, 'unknown' | 'ambiguous')."""
        if key in self.exact:
            return self.exact[key], "path"
        parts = PurePosixPath(key).parts
        ambiguous = False
        for k in range(len(parts)):  # longest trailing part first
            tail = "/".join(parts[k:])
            if tail in self.exact:
                return self.exact[tail], "path suffix"
            hits = self.suffix.get(tail, set())
            if len(hits) == 1:
                return next(iter(hits)), "path suffix"
            ambiguous |= len(hits) > 1
        name = parts[-1] if parts else key
        for hits, how in ((self.name.get(name, set()), "file name"),
                          (self.stem.get(PurePosixPath(name).stem, set()), "file stem")):
            if len(hits) == 1:
                return next(iter(hits)), how
            ambiguous |= len(hits) > 1
        return None, "ambiguous" if ambiguous else "unknown"


def read_predictions(path: Path, labels_file: Path | None = None) -> tuple[pd.DataFrame, str, str]:
    """(rows as text, id column, predicted-age column), read with agefair.core.io.read_csv_text's checks;
    ``labels_file`` itself (the audited labels CSV) is refused."""
    if labels_file is not None and path.is_file() and path.resolve() == Path(labels_file).resolve():
        raise AgefairError(f"{path}: this is the audited labels file itself, not a model's predictions; refused")
    frame = read_csv_text(path, "predictions file")
    id_col = _pick(list(frame.columns), ID_COLUMNS, path, "image path or id")
    pred_col = _pick(list(frame.columns), PRED_COLUMNS, path, "predicted-age", exclude=id_col)
    if frame.empty:
        raise AgefairError(f"{path}: no rows under the header")
    return frame, id_col, pred_col


def load_external(path: Path, name: str, prepared: PreparedData, data_cfg: DataConfig,
                  split: str, min_rows: int = 1) -> tuple[pd.DataFrame, dict]:
    """The matched predictions (as agefair.fairness.auditing.model_predictions.prediction_frame, variant = ``name``) and ``matching``:
    the counts of every row that was used or not, and why. The labels given as predictions, and fewer
    matched rows than ``min_rows`` (min_group_size), are refused: see _refuse_labels_or_too_few."""
    frame, id_col, pred_col = read_predictions(path, prepared.source)
    manifest_files = list(prepared.manifest["file"])
    matcher = Matcher(manifest_files)
    in_split = np.zeros(len(manifest_files), dtype=bool)
    in_split[split_rows(prepared, split)] = True
    problem_files = Matcher(sorted(set(prepared.quality.problems["file"]) - set(manifest_files)))

    counts = dict.fromkeys(("matched", "unknown", "ambiguous", "dropped_by_quality", "outside_split", "duplicate",
                            "invalid_age"), 0)
    how_counts = dict.fromkeys(MATCH_KINDS, 0)
    examples: dict[str, list[str]] = defaultdict(list)
    used: dict[int, float] = {}

    def note(kind: str, text: str) -> None:
        counts[kind] += 1
        if len(examples[kind]) < N_EXAMPLES:
            examples[kind].append(text)

    for key_raw, pred_raw in zip(frame[id_col], frame[pred_col]):
        key = _norm(key_raw)
        try:
            pred = float(pred_raw)
        except ValueError:
            pred = math.nan
        if not (0 <= pred <= MAX_AGE):  # NaN fails too
            note("invalid_age", f"{key}: {pred_raw!r}")
            continue
        row, how = matcher.match(key) if key else (None, "unknown")
        if row is None:
            if how == "unknown" and key and problem_files.match(key)[0] is not None:
                note("dropped_by_quality", key)
            else:
                note(how, key or "(empty)")
            continue
        if not in_split[row]:
            note("outside_split", key)
            continue
        if row in used:
            note("duplicate", key)
            continue
        used[row] = pred
        how_counts[how] += 1
        counts["matched"] += 1

    n_split = int(in_split.sum())
    matching = {
        "file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": int(len(frame)),
        "id_column": id_col, "pred_column": pred_col, **counts, "matched_by": how_counts,
        "images_in_split": n_split, "images_without_prediction": n_split - counts["matched"],
        "examples": dict(examples),
    }
    rows = np.array(sorted(used), dtype=np.int64)
    preds = np.array([used[r] for r in rows], dtype=float)
    _refuse_labels_or_too_few(path, prepared, rows, preds, pred_col, min_rows, split, matching)
    return prediction_frame(prepared, data_cfg, rows, preds, name), matching


def _refuse_labels_or_too_few(path: Path, prepared: PreparedData, rows: np.ndarray, preds: np.ndarray, pred_col: str,
                              min_rows: int, split: str, matching: dict) -> None:
    """One-line refusals: a file whose every matched prediction equals the image's true age (the labels, not a
    model: it would pass every threshold with MAE 0), and one matching fewer than ``min_rows`` images (the
    fairness config's min_group_size: no metric or threshold is judged on so few); and one matching none."""
    if not len(rows):
        raise AgefairError(f"{path}: none of its {matching['rows']} rows matches an image of the audited {split} split "
                           f"({describe_matching(matching)})")
    if prepared.labels == "exact":
        truth = prepared.manifest["age"].to_numpy(dtype=float)[rows]
        if np.all(np.abs(preds - truth) < 1e-6):
            raise AgefairError(f"{path}: every one of its {len(rows)} matched predictions (column {pred_col!r}) equals "
                               f"the image's true age: these are the labels, not a model's predictions (an audit "
                               f"would pass every threshold with MAE 0); refused")
    if len(rows) < min_rows:
        raise AgefairError(f"{path}: only {len(rows)} of its rows match an image of the audited {split} split, fewer "
                           f"than the fairness config's min_group_size {min_rows}; no metric or threshold is judged "
                           f"on so few ({describe_matching(matching)})")


def describe_matching(m: dict) -> str:
    """One line: how many rows were used and why the others were not."""
    parts = [f"{m['matched']} of {m['rows']} rows matched"]
    labels = {"unknown": "unknown ids", "ambiguous": "ambiguous ids (several images)",
              "dropped_by_quality": "images dropped by the data-quality checks",
              "outside_split": "images outside the audited split", "duplicate": "repeated images (first kept)",
              "invalid_age": "no usable predicted age"}
    for key, label in labels.items():
        if m.get(key):
            ex = ", ".join(m.get("examples", {}).get(key, [])[:3])
            parts.append(f"{m[key]} {label}" + (f" (e.g. {ex})" if ex else ""))
    if m.get("images_without_prediction"):
        parts.append(f"{m['images_without_prediction']} of {m['images_in_split']} audited images have no prediction")
    return "; ".join(parts)
