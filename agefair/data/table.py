"""A table of labels and predictions, audited without images (``python -m agefair.audit --table PATH``).

One row per face: an id, the true age (``age``) or age group (``age_group``), sensitive attributes, and
one predicted-age column per model: ``--pred COLUMN[=NAME]`` names them, else every ``pred_*`` column
is one (its model named by the part after ``pred_``). Every other column is an attribute (the dataset
config's ``columns:`` and ``ignore:`` apply as for a labels CSV: agefair.data.csv_dataset); one taken so by
default with more than MAX_ATTRIBUTE_VALUES values (an id, a timestamp) is an error. PATH is a file, a
folder of partitions (a Parquet dataset, hive-partitioned or not) or a glob; agefair.data.table_source reads
them (CSV as every text input; Parquet through pyarrow in row batches) and counts what it read.

A previous audit's ``predictions.csv`` is read too (the *long* format: a ``variant`` and a ``pred``
column, one row per file x variant): it is pivoted to one prediction column per variant, rows keyed
by ``file``; its own columns (``age_bin``, ``row``, ``age_lo`` / ``age_hi`` ...) are not attributes.

Rows are checked as labels-CSV rows, and each problem has one action, counted in ``quality``:

====================  =====================================================  ==========================
problem               what it is                                             action
====================  =====================================================  ==========================
missing_id            the id cell is empty                                   dropped
bad_age               age not a number in 0..max_age                         dropped
bad_age_group         age group not understood (``20-29``, ``70+``)          dropped
missing_attribute     a sensitive-attribute cell is empty                    dropped
duplicate_agreeing    an id repeated with the same labels and predictions    first kept, the rest dropped
duplicate_conflicting an id repeated with different labels or predictions    every row of it dropped
====================  =====================================================  ==========================

A prediction cell that is empty, not a number or outside 0..``MAX_PRED`` is counted per model
(``quality["predictions"]``) and that row is left out of that model only (NaN in ``predictions``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.errors import AgefairError
from agefair.data.age_groups import parse_age_group
from agefair.data.csv_dataset import age_column, attribute_columns, dataset_groupings, is_number
from agefair.data.table_source import read_partitions, source_sha256

ID_COLUMNS = ("file", "id", "image", "path", "filename", "image_path", "img")
PRED_PREFIX = "pred_"
MAX_PRED = 200.0  # a prediction over 200 years (or under 0) is counted out of range
MAX_ATTRIBUTE_VALUES = 200  # more values in a column taken as an attribute by default: an error (not a grouping)
TABLE_ACTIONS = {
    "missing_id": "dropped: the row has no id",
    "bad_age": "dropped: age is not a number in range",
    "bad_age_group": "dropped: age group not understood (e.g. 20-29, 70+)",
    "missing_attribute": "dropped: a sensitive attribute is empty",
    "duplicate_agreeing": "first kept, the rest dropped: the id is repeated with the same labels and predictions",
    "duplicate_conflicting": "every row dropped: the id is repeated with different labels or predictions",
}
LONG_OWN = {"file", "variant", "pred", "age", "age_group", "age_lo", "age_hi", "age_bin", "row", "subject", "shot",
            "lo", "hi", "sigma", "coverage"}
# A model's interval columns: a predictions.csv's lo, hi, coverage per variant row (pivoted to lo_<variant> ...),
# or a wide table's lo_<name>, hi_<name>, coverage_<name> beside pred_<name>: intervals whose coverage is audited.
INTERVAL_PARTS = ("lo", "hi", "coverage")
PER_MODEL = (*INTERVAL_PARTS, "sigma")  # per-variant columns of a long table (sigma: the model's spread)


@dataclass(frozen=True)
class ModelIntervals:
    """A model's prediction intervals as the table gives them (aligned with the manifest; NaN: none)."""

    lo: np.ndarray
    hi: np.ndarray
    coverage: float  # their target coverage (the table's coverage column; one value)


@dataclass(frozen=True)
class TableData:
    """A checked table: ``manifest`` (file, the labels, the attributes, [subject], split 'all'; shaped like
    a labels CSV's ``PreparedData.manifest``) and each model's predictions aligned with it (NaN: none)."""

    path: Path
    manifest: pd.DataFrame
    labels: str  # "exact" or "interval"
    attributes: list[str]
    predictions: dict[str, np.ndarray]
    quality: dict
    data_hash: str
    format: str  # "wide" or "long" (a previous audit's predictions.csv)
    groupings: dict[str, list[str]] = field(default_factory=dict)
    intervals: dict[str, ModelIntervals] = field(default_factory=dict)  # models whose table holds their intervals

    @property
    def age_key(self) -> str:
        return "age_group" if self.labels == "interval" else "age_bin"


def _text(col: pd.Series) -> pd.Series:
    """Cells as stripped text ('' for a missing cell)."""
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        return col.fillna("").astype(str).str.strip()
    return col.astype(str).where(col.notna(), "").str.strip()


def _numbers(col: pd.Series) -> np.ndarray:
    """Cells as floats, NaN where a cell is not a number (Python's float() on each distinct text)."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=float, na_value=np.nan)
    text = _text(col)
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, copy=True)
    odd = np.isnan(out) & (text != "").to_numpy()  # what pandas does not read ('1_000', 'inf '...): as float() does
    if odd.any():
        uniq = pd.unique(text[odd])
        values = {u: float(u) if is_number(u) else np.nan for u in uniq}
        out[odd] = text[odd].map(values).to_numpy(dtype=float)
    return out


def _age_kind(col: pd.Series, aliases: dict[str, str]) -> str:
    """agefair.data.csv_dataset.age_column_kind, counted over distinct values (fast on a million rows)."""
    if pd.api.types.is_numeric_dtype(col):
        return "exact"
    counts = _text(col).value_counts()
    numbers = sum(c for v, c in counts.items() if v and is_number(v))
    groups = sum(c for v, c in counts.items() if v and not is_number(v) and parse_age_group(v, aliases) is not None)
    return "interval" if groups > numbers else "exact"


def parse_pred_specs(path: Path, specs, columns: list[str]) -> dict[str, str]:
    """model name -> column, from ``COLUMN[=NAME]`` specs, else every ``pred_*`` column."""
    out: dict[str, str] = {}
    if specs:
        for spec in specs:
            col, _, name = str(spec).partition("=")
            col, name = col.strip(), (name.strip() or col.strip().removeprefix(PRED_PREFIX) or col.strip())
            if col not in columns:
                raise AgefairError(f"{path}: --pred {spec}: no column {col!r} (columns: {', '.join(columns)})")
            if name in out:
                raise AgefairError(f"{path}: two prediction columns are both named {name!r} (--pred COLUMN=NAME)")
            out[name] = col
        return out
    for col in columns:
        if col.startswith(PRED_PREFIX) and len(col) > len(PRED_PREFIX):
            name = col[len(PRED_PREFIX):]
            if name in out:
                raise AgefairError(f"{path}: two prediction columns are both named {name!r}")
            out[name] = col
    if not out:
        raise AgefairError(f"{path}: no prediction column: name one with --pred COLUMN[=NAME], or call the "
                           f"columns pred_NAME (columns: {', '.join(columns)})")
    return out


def _id_column(path: Path, columns: list[str], cfg: DatasetConfig) -> str:
    if cfg.columns.image != "file" or "file" in columns:
        if cfg.columns.image not in columns:
            raise AgefairError(f"{path}: no id column {cfg.columns.image!r} (columns: {', '.join(columns)})")
        return cfg.columns.image
    for name in ID_COLUMNS:
        if name in columns:
            return name
    raise AgefairError(f"{path}: no id column ({', '.join(ID_COLUMNS)}; or map one in the dataset config: "
                       f"columns: {{image: ID}}) (columns: {', '.join(columns)})")


def _long_to_wide(path: Path, frame: pd.DataFrame, problems: dict) -> pd.DataFrame:
    """A previous audit's predictions.csv (file x variant rows) as one row per file, a pred_<variant> each."""
    frame = frame.copy()
    frame["file"] = _text(frame["file"])
    frame["variant"] = _text(frame["variant"])
    frame = frame[frame["variant"] != ""]
    labels = [c for c in frame.columns if c not in ("variant", "pred", "row", "age_bin", "age_lo", "age_hi",
                                                     *PER_MODEL)]
    per_file = frame.drop_duplicates(subset=labels)
    clash = per_file["file"].duplicated(keep=False)
    if clash.any():  # the same file with other labels in another variant's rows: whole file dropped
        bad = set(per_file.loc[clash, "file"])
        problems["duplicate_conflicting"] += int(frame["file"].isin(bad).sum())
        per_file = per_file[~per_file["file"].isin(bad)]
        frame = frame[~frame["file"].isin(bad)]
    repeats = frame.duplicated(subset=["file", "variant"])
    problems["duplicate_agreeing"] += int(repeats.sum())
    wide = per_file[labels].set_index("file")
    for col, prefix in (("pred", PRED_PREFIX), *((c, f"{c}_") for c in PER_MODEL if c in frame.columns)):
        part = frame[~repeats].pivot(index="file", columns="variant", values=col)
        part.columns = [f"{prefix}{v}" for v in part.columns]
        wide = wide.join(part)
    return wide.reset_index()


def _rename_config(cfg: DatasetConfig, id_col: str) -> DatasetConfig:
    return cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"image": id_col})})


def check_rows(frame: pd.DataFrame, id_col: str, age_col: str, kind: str, attributes: list[str],
               cfg: DatasetConfig, max_age: int) -> tuple[pd.DataFrame, pd.Series]:
    """(the labels of every row: file, age or age_group/age_lo/age_hi, attributes; each row's problem,
    '' when it is kept so far), checked in the labels CSV's order: id, age, attributes."""
    problem = pd.Series("", index=frame.index, dtype=object)
    out = pd.DataFrame({"file": _text(frame[id_col]).str.replace("\\", "/", regex=False)}, index=frame.index)
    problem[out["file"] == ""] = "missing_id"
    if kind == "exact":
        age = _numbers(frame[age_col])
        with np.errstate(invalid="ignore"):
            bad = ~((age >= 0) & (age <= max_age))
        problem[(problem == "") & bad] = "bad_age"
        out["age"] = age
    else:
        text = _text(frame[age_col])
        groups = {u: parse_age_group(u, cfg.age_group_labels) for u in pd.unique(text)}
        parsed = text.map(groups)
        problem[(problem == "") & parsed.isna()] = "bad_age_group"
        out["age_group"] = parsed.map(lambda g: g.label if g is not None else None)
        out["age_lo"] = parsed.map(lambda g: g.lo if g is not None else np.nan).astype(float)
        out["age_hi"] = parsed.map(lambda g: g.hi if g is not None else np.nan).astype(float)
    for a in attributes:
        out[a] = _text(frame[a])
        problem[(problem == "") & (out[a] == "")] = "missing_attribute"
    if cfg.columns.subject is not None:
        subject = _text(frame[cfg.columns.subject])
        out["subject"] = subject.where(subject != "", "(row " + (frame.index.to_series() + 2).astype(str) + ")")
    return out, problem


def parse_predictions(frame: pd.DataFrame, models: dict[str, str]) -> tuple[dict[str, np.ndarray], dict]:
    """Each model's predictions (NaN where the cell is empty, not a number or out of range) and, per
    model, each row's problem with its cell ('' when none)."""
    preds, why = {}, {}
    for name, col in models.items():
        empty = (_text(frame[col]) == "" if not pd.api.types.is_numeric_dtype(frame[col]) else frame[col].isna())
        p = _numbers(frame[col])
        with np.errstate(invalid="ignore"):
            out_of_range = np.isfinite(p) & ~((p >= 0) & (p <= MAX_PRED))
        nan = ~np.isfinite(p)
        why[name] = np.select([empty.to_numpy(), nan, out_of_range], ["missing", "not_a_number", "out_of_range"], "")
        preds[name] = np.where(nan | out_of_range, np.nan, p)
    return preds, why


def _prediction_counts(models: dict[str, str], why: dict[str, np.ndarray], kept: np.ndarray) -> dict:
    out = {}
    for name, col in models.items():
        w = why[name][kept]
        out[name] = {"column": col, "predicted": int((w == "").sum()),
                     **{k: int((w == k).sum()) for k in ("missing", "not_a_number", "out_of_range")}}
    return out


def _duplicates(labels: pd.DataFrame, preds: dict[str, np.ndarray], problem: pd.Series) -> None:
    """Mark repeated ids among the rows kept so far: agreeing copies after the first, every conflicting row."""
    kept = problem == ""
    ids = labels["file"].where(kept)
    dup = ids.duplicated(keep=False) & kept
    if not dup.any():
        return
    full = labels.assign(**{f"\0{k}": v for k, v in preds.items()}).loc[dup]
    variants = full.drop_duplicates().groupby("file").size()
    conflicting = set(variants[variants > 1].index)
    rows = full.index
    is_conf = labels.loc[rows, "file"].isin(conflicting)
    problem[rows[is_conf.to_numpy()]] = "duplicate_conflicting"
    agreeing = full.loc[~is_conf.to_numpy()]
    problem[agreeing.index[agreeing["file"].duplicated().to_numpy()]] = "duplicate_agreeing"


def _intervals(path: Path, frame: pd.DataFrame, models: dict[str, str]) -> dict[str, ModelIntervals]:
    """Each model's lo_/hi_/coverage_ columns, when the table has all three (a row without both ends: NaN)."""
    out = {}
    for name in models:
        cols = [f"{part}_{name}" for part in INTERVAL_PARTS]
        if not all(c in frame.columns for c in cols):
            continue
        lo, hi, cov = (_numbers(frame[c]) for c in cols)
        targets = np.unique(cov[np.isfinite(cov)])
        if len(targets) != 1 or not 0 < targets[0] < 1:
            raise AgefairError(f"{path}: {cols[2]} must hold one coverage between 0 and 1 (found "
                               f"{', '.join(f'{t:g}' for t in targets[:5]) or 'none'})")
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(lo) & np.isfinite(hi) & (lo <= hi))
        out[name] = ModelIntervals(np.where(bad, np.nan, lo), np.where(bad, np.nan, hi), float(targets[0]))
    return out


def table_layout(path: Path, frame: pd.DataFrame, cfg: DatasetConfig, preds, long: bool = False
                 ) -> tuple[str, str, str, dict, list[str]]:
    """(id column, age column, 'exact' | 'interval', model -> column, attributes); ``long``: a previous
    audit's predictions.csv, whose own columns (LONG_OWN: shot, age_bin ...) are never attributes."""
    columns = list(frame.columns)
    id_col = _id_column(path, columns, cfg)
    models = parse_pred_specs(path, preds, columns)
    cfg = _rename_config(cfg, id_col)
    own = {f"{part}_{name}" for name in models for part in PER_MODEL}  # a model's interval (and spread) columns
    reserved = (LONG_OWN - {"file", "age", "age_group", "subject"}) if long else set()
    label_frame = frame[[c for c in columns if c not in models.values() and c not in own and c not in reserved]]
    if cfg.columns.age is None and cfg.columns.age_group is None and "age" in columns:
        age_col, kind = "age", _age_kind(frame["age"], cfg.age_group_labels)
    else:
        age_col, kind = age_column(path, label_frame.iloc[:0], cfg)
    if age_col in models.values():
        raise AgefairError(f"{path}: column {age_col!r} is the labels, not a model's predictions")
    attrs = attribute_columns(path, list(label_frame.columns), cfg, age_col)
    return id_col, age_col, kind, models, attrs


# long: reads, pivots a long table, checks the rows and the predictions, then assembles the result
def read_table(path: str | Path, *, data_cfg: DataConfig, dataset_cfg: DatasetConfig | None = None,
               preds=(), max_age: int | None = None) -> TableData:
    """The table at ``path`` (a CSV or Parquet file, a folder of partitions or a glob of them:
    agefair.data.table_source; wide or a previous audit's long predictions.csv), checked.

    ``preds``: ``COLUMN[=NAME]`` specs (a long table: variant names); default every ``pred_*`` column
    (a long table: every variant). Every problem with the table itself is one AgefairError line."""
    path = Path(path)
    cfg = dataset_cfg or DatasetConfig()
    max_age = data_cfg.max_age if max_age is None else max_age
    frame, source, files, root = read_partitions(path)
    n_rows = len(frame)
    problems = dict.fromkeys(TABLE_ACTIONS, 0)
    fmt = "long" if {"variant", "pred"} <= set(frame.columns) else "wide"
    if fmt == "long":
        if "file" not in frame.columns:
            raise AgefairError(f"{path}: a predictions table (variant, pred) needs a 'file' column")
        frame = _long_to_wide(path, frame, problems)
        preds = [f"{PRED_PREFIX}{re.sub(r'^' + PRED_PREFIX, '', str(p))}" for p in preds]
        if "subject" in frame.columns and cfg.columns.subject is None:
            cfg = cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"subject": "subject"})})
    id_col, age_col, kind, models, attributes = table_layout(path, frame, cfg, preds, long=fmt == "long")
    labels, problem = check_rows(frame, id_col, age_col, kind, attributes, cfg, max_age)
    if cfg.columns.attributes is None:
        _check_attribute_sizes(path, labels, attributes)
    predictions, why = parse_predictions(frame, models)
    _duplicates(labels, predictions, problem)
    kept = (problem == "").to_numpy()
    if not kept.any():
        raise AgefairError(f"{path}: no usable row ({_counts_text(problem, n_rows)})")
    for reason, count in problem[problem != ""].value_counts().items():
        problems[reason] += int(count)
    examples = {r: labels.loc[problem == r, "file"].head(5).tolist() for r in TABLE_ACTIONS if (problem == r).any()}
    manifest = labels.loc[kept].reset_index(drop=True).assign(split="all")
    if fmt == "long" and "shot" in frame.columns:  # a previous audit's many/medium/few-shot ages: kept as its grouping
        manifest["shot"] = _text(frame.loc[kept, "shot"]).to_numpy()
    predictions = {k: v[kept] for k, v in predictions.items()}
    pred_counts = _prediction_counts(models, why, kept)
    intervals = _intervals(path, frame.loc[kept], models)
    quality = {"format": fmt, "source": source.to_json(), "rows": n_rows, "kept": int(kept.sum()), "dropped": problems,
               "actions": dict(TABLE_ACTIONS), "examples": examples, "predictions": pred_counts}
    age_key = "age_group" if kind == "interval" else "age_bin"
    return TableData(path=path, manifest=manifest, labels=kind, attributes=attributes, predictions=predictions,
                     quality=quality, data_hash=source_sha256(files, root), format=fmt,
                     groupings=dataset_groupings(age_key, attributes, cfg.intersections, path)
                     | ({"shot": ["shot"]} if "shot" in manifest.columns else {}), intervals=intervals)


def _check_attribute_sizes(path: Path, labels: pd.DataFrame, attributes: list[str]) -> None:
    """A column taken as an attribute by default (not named in the dataset config) with more than
    MAX_ATTRIBUTE_VALUES values is an error: an id, a timestamp or a free-text column, not a group."""
    for a in attributes:
        k = labels[a].nunique()
        if k > MAX_ATTRIBUTE_VALUES:
            raise AgefairError(f"{path}: column {a!r} has {k:,} distinct values, too many for a sensitive attribute "
                               f"(at most {MAX_ATTRIBUTE_VALUES}); list it under ignore: in a dataset config "
                               f"(--dataset-config), or name the attributes there (columns: {{attributes: [...]}})")


def _counts_text(problem: pd.Series, n_rows: int) -> str:
    if n_rows == 0:
        return "the table has no rows"
    counts = problem.value_counts()
    return ", ".join(f"{k}: {v}" for k, v in counts.items() if k) or "every row dropped"
