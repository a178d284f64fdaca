"""CSV-manifest datasets: a labels CSV naming the images, their ages or age groups, and sensitive attributes.

``--data`` takes the CSV itself, or a folder that holds ``labels.csv``. Image paths are relative to
the CSV's folder. The columns are mapped by a small config (agefair.core.config.DatasetConfig,
configs/datasets/*.yaml): the image path, either exact ``age`` or an ``age_group`` (agefair.data.age_groups),
and any number of sensitive-attribute columns, whose values are the dataset's own category names.

Every row is checked and every problem has one action (the same report as UTKFace's folder scan):

=====================  ==============================================  =========
problem                what it is                                      action
=====================  ==============================================  =========
missing_path           the row's image-path cell is empty              dropped
missing_file           the image file does not exist                   dropped
outside_folder         the image path leads outside the CSV's folder   dropped (unless the dataset config
                       (absolute, or ``..`` above it)                  says allow_paths_outside: yes)
not_regular_file       a FIFO, socket, device, broken or looping link  dropped, never opened
zero_byte              empty file                                      dropped
unreadable             not an image, truncated or corrupt              dropped
bad_age                age not a number in 0..max_age (a column of     dropped
                       numbers with a stray value stays exact ages)
bad_age_group          age group not understood                        dropped
missing_attribute      a sensitive-attribute cell is empty             dropped
non_rgb                grayscale, CMYK, palette, alpha, 16-bit         kept, converted to RGB at load
duplicate_agreeing     rows of identical image content (the same       one kept (first by path), the rest dropped
                       file listed twice, or byte-identical copies)
                       with the same labels
duplicate_conflicting  the same, with labels that disagree             whole group dropped
=====================  ==============================================  =========

(``configs/data.yaml: duplicates`` switches the duplicate policy as for UTKFace.)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.errors import AgefairError
from agefair.core.io import read_csv_text, special_file_reason
from agefair.data.age_groups import parse_age_group
from agefair.data.quality import ACTIONS, QualityResult, resolve_duplicates
from agefair.data.scan import scan_files

LABELS_CSV = "labels.csv"
CSV_ACTIONS = {
    "missing_path": "dropped: the row names no image",
    "missing_file": "dropped: the image file does not exist",
    "outside_folder": "dropped: the image path leads outside the CSV's folder",
    "not_regular_file": ACTIONS["not_regular_file"],
    "zero_byte": ACTIONS["zero_byte"],
    "unreadable": ACTIONS["unreadable"],
    "bad_age": "dropped: age is not a number in range",
    "bad_age_group": "dropped: age group not understood (e.g. 20-29, 70+)",
    "missing_attribute": "dropped: a sensitive attribute is empty",
    "non_rgb": ACTIONS["non_rgb"],
    "duplicate_agreeing": ACTIONS["duplicate_agreeing"],
    "duplicate_conflicting": ACTIONS["duplicate_conflicting"],
}
# Column names agefair uses itself: an attribute may not take one.
RESERVED = {"file", "age", "age_group", "age_lo", "age_hi", "age_bin", "pred", "variant", "row", "split", "sha256",
            "width", "height", "shot", "model"}


def labels_csv(path: Path) -> Path | None:
    """The labels CSV that ``path`` designates (the file itself, or DIR/labels.csv), or None."""
    if path.suffix.lower() == ".csv" and path.exists() and not path.is_dir():  # a FIFO too: read_text refuses it
        return path
    if path.is_dir() and (path / LABELS_CSV).is_file():
        return path / LABELS_CSV
    return None


@dataclass
class CsvLabels:
    rows: pd.DataFrame  # one per CSV row: line, file, the label column(s), the attributes
    labels: str  # "exact" or "interval"
    label_columns: list[str]  # ["age"] or ["age_group", "age_lo", "age_hi"]
    attributes: list[str]
    problems: list[dict]
    n_rows: int


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv_text(path, "labels file")


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def age_column_kind(values: pd.Series, aliases: dict[str, str] | None = None) -> str:
    """'exact' or 'interval' for an ``age`` column no config names, decided by the column as a whole: age
    groups when the values that are age groups and not numbers (``20-29``, ``70+``) outnumber the numbers,
    exact ages otherwise. One stray value (``unknown``, ``n/a``) never turns a column of ages into age
    groups: its row is dropped as bad_age and counted."""
    cells = [v.strip() for v in values if v.strip()]
    numbers = sum(is_number(v) for v in cells)
    groups = sum(not is_number(v) and parse_age_group(v, aliases) is not None for v in cells)
    return "interval" if groups > numbers else "exact"


def outside_folder(file: str) -> bool:
    """Whether an image path from a labels CSV leads outside the CSV's folder: absolute (``/x``, ``C:/x``,
    ``//host/x``) or climbing above it with ``..``."""
    if file.startswith("/") or (len(file) > 1 and file[1] == ":"):
        return True
    depth = 0
    for part in file.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def age_column(path: Path, frame: pd.DataFrame, cfg: DatasetConfig) -> tuple[str, str]:
    """(column, 'exact' | 'interval')."""
    hint = "map it in the dataset config (--dataset-config), e.g. columns: {age: AGE} or columns: {age_group: GROUP}"
    cols = list(frame.columns)
    for name, kind in ((cfg.columns.age, "exact"), (cfg.columns.age_group, "interval")):
        if name is not None:
            if name not in cols:
                raise AgefairError(f"{path}: no column {name!r} (columns: {', '.join(cols)}); {hint}")
            return name, kind
    if "age" in cols:
        return "age", age_column_kind(frame["age"], cfg.age_group_labels)
    if "age_group" in cols:
        return "age_group", "interval"
    raise AgefairError(f"{path}: no 'age' or 'age_group' column (columns: {', '.join(cols)}); {hint}")


def attribute_columns(path: Path, cols: list[str], cfg: DatasetConfig, age_col: str) -> list[str]:
    """The sensitive-attribute columns: the config's list, else every column but the image, age and ignored."""
    image = cfg.columns.image
    if cfg.columns.attributes is not None:
        attributes = list(cfg.columns.attributes)
        unknown = [a for a in attributes if a not in cols]
        if unknown:
            raise AgefairError(f"{path}: no attribute column {unknown[0]!r} (columns: {', '.join(cols)})")
    else:
        attributes = [c for c in cols if c not in (image, age_col, cfg.columns.subject) and c not in cfg.ignore]
    clash = [a for a in attributes if a in RESERVED or a in (image, age_col)]
    if clash:
        raise AgefairError(f"{path}: attribute column {clash[0]!r} clashes with a name agefair uses "
                           f"({', '.join(sorted(RESERVED))}); list the attributes in the dataset config "
                           f"(columns: {{attributes: [...]}}) or rename the column")
    return attributes


def read_labels(path: Path, cfg: DatasetConfig, max_age: int) -> CsvLabels:
    """The rows of the labels CSV with parsed labels; rows with a label problem are in ``problems``."""
    frame = _read_csv(path)
    cols = list(frame.columns)
    image = cfg.columns.image
    if image not in cols:
        raise AgefairError(f"{path}: no image-path column {image!r} (columns: {', '.join(cols)}); "
                           f"map it in the dataset config (--dataset-config), e.g. columns: {{image: PATH_COLUMN}}")
    age_col, kind = age_column(path, frame, cfg)
    attributes = attribute_columns(path, cols, cfg, age_col)
    subject = cfg.columns.subject
    if subject is not None and subject not in cols:
        raise AgefairError(f"{path}: no subject column {subject!r} (columns: {', '.join(cols)})")

    problems: list[dict] = []

    def flag(file: str, problem: str, detail: str) -> None:
        problems.append({"file": file, "problem": problem, "action": CSV_ACTIONS[problem], "detail": detail})

    records = []
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(cols, row))
        line = i + 2  # the header is line 1
        file = str(values[image]).strip().replace("\\", "/")
        while file.startswith("./"):
            file = file[2:]
        if not file:
            flag(f"(line {line})", "missing_path", f"line {line}: column {image!r} is empty")
            continue
        if outside_folder(file) and not cfg.allow_paths_outside:
            flag(file, "outside_folder", f"line {line}: {file!r} is outside {path.parent} (allow it with "
                 f"allow_paths_outside: yes in the dataset config)")
            continue
        rec = {"line": line, "file": file}
        raw = str(values[age_col]).strip()
        if kind == "exact":
            age = float(raw) if is_number(raw) else np.nan
            if not (0 <= age <= max_age):  # NaN and inf fail too
                flag(file, "bad_age", f"line {line}: age {raw!r} not a number in 0..{max_age}")
                continue
            rec["age"] = age
        else:
            group = parse_age_group(raw, cfg.age_group_labels)
            if group is None:
                flag(file, "bad_age_group", f"line {line}: age group {raw!r} not understood")
                continue
            rec.update(age_group=group.label, age_lo=group.lo, age_hi=group.hi)
        empty = [a for a in attributes if not str(values[a]).strip()]
        if empty:
            flag(file, "missing_attribute", f"line {line}: {', '.join(empty)} empty")
            continue
        rec.update({a: str(values[a]).strip() for a in attributes})
        if subject is not None:  # an image without a subject id is its own subject
            rec["subject"] = str(values[subject]).strip() or f"(line {line})"
        records.append(rec)
    label_columns = ["age"] if kind == "exact" else ["age_group", "age_lo", "age_hi"]
    rows = pd.DataFrame(records, columns=["line", "file", *label_columns, *attributes,
                                          *(["subject"] if subject is not None else [])])
    return CsvLabels(rows, kind, label_columns, attributes, problems, len(frame))


def assess_csv(path: Path, labels: CsvLabels, data_cfg: DataConfig, cache_file: Path | None,
               progress: bool = True) -> QualityResult:
    """Check the images the rows name (missing, empty, unreadable, duplicates) and build the manifest."""
    root = path.parent
    problems = list(labels.problems)
    rows = labels.rows

    def flag(file: str, problem: str, detail: str) -> None:
        problems.append({"file": file, "problem": problem, "action": CSV_ACTIONS[problem], "detail": detail})

    unique = sorted(set(rows["file"]))
    why_not = {f: special_file_reason(root / f) for f in unique}  # never opens a FIFO or follows a loop
    scan = scan_files(root, [f for f in unique if why_not[f] is None], cache_file=cache_file, progress=progress)
    scan = scan.set_index("file")
    keep = pd.Series(True, index=rows.index)
    for idx, r in rows.iterrows():
        f = r["file"]
        why = why_not[f]
        if why is not None:
            if why == "not found":
                flag(f, "missing_file", f"line {r['line']}: {root / f} not found")
            else:
                flag(f, "not_regular_file", f"line {r['line']}: {why}")
            keep[idx] = False
            continue
        err = scan.at[f, "read_error"]
        if err:
            flag(f, "zero_byte" if err.startswith("empty file") else "unreadable", f"line {r['line']}: {err}")
            keep[idx] = False
    valid = rows[keep].copy()
    valid["sha256"] = scan.loc[valid["file"], "sha256"].to_numpy()
    valid["width"] = scan.loc[valid["file"], "width"].to_numpy(int)
    valid["height"] = scan.loc[valid["file"], "height"].to_numpy(int)
    modes = scan.loc[valid["file"], "mode"].to_numpy()
    for (_, r), mode in zip(valid.iterrows(), modes):
        if mode != "RGB":
            flag(r["file"], "non_rgb", f"line {r['line']}: mode {mode}")

    label_cols = [labels.label_columns[0], *labels.attributes]
    dropped, groups_out, dup_flags = resolve_duplicates(
        valid, label_cols, data_cfg.duplicates,
        lambda r: f"{r['file']} (line {r['line']}): " + ", ".join(f"{c} {r[c]}" for c in label_cols))
    for files, problem, details in dup_flags:
        for f, d in zip(files, details):
            flag(f, problem, d)
    kept = valid.drop(index=list(dropped))
    extra = ["subject"] if "subject" in kept.columns else []
    manifest = (kept[["file", *labels.label_columns, *labels.attributes, *extra, "sha256", "width", "height"]]
                .sort_values("file", kind="mergesort").reset_index(drop=True))
    problem_frame = pd.DataFrame(problems, columns=["file", "problem", "action", "detail"])
    groups = pd.DataFrame(groups_out, columns=["sha256", "n_files", "labels_agree", "kept", "files"])
    return QualityResult(manifest, problem_frame, groups, n_files=labels.n_rows, actions=dict(CSV_ACTIONS),
                         hash_columns=label_cols)


def dataset_groupings(age_key: str, attributes: list[str], intersections: list[list[str]] | None,
                      source: Path | str = "dataset config") -> dict[str, list[str]]:
    """The audit's groupings: the age grouping, each attribute, and intersections (``a x b``).

    Without ``intersections``: every pair of attributes, then the age grouping with each attribute.
    """
    out = {age_key: [age_key]} | {a: [a] for a in attributes}
    if intersections is None:
        intersections = [[a, b] for a, b in combinations(attributes, 2)] + [[age_key, a] for a in attributes]
    known = {age_key, *attributes}
    for cols in intersections:
        cols = [age_key if c in ("age_bin", "age_group") else c for c in cols]
        unknown = [c for c in cols if c not in known]
        if unknown:
            raise AgefairError(f"{source}: intersections: {unknown[0]!r} is not an attribute of the data "
                               f"(attributes: {', '.join(attributes) or 'none'}; age grouping: {age_key})")
        out[" x ".join(cols)] = cols
    return out
