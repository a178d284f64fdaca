"""A table read and checked one batch of rows at a time, for tables too large to hold (``audit --table PATH
--state-only``): memory holds one batch (``table_source.BATCH_ROWS`` rows of a Parquet file, or one CSV file)
and 16 bytes per row for the duplicate check, never the rows.

The checks are ``read_table``'s (agefair.data.table): the same layout (id, age or age group, attributes,
``pred_*`` models), the same row problems, the same per-model prediction problems. Repeated ids need the
whole table: a first pass reads every batch and keeps, per row still kept, its id's key and a hash of its
labels and predictions; an id whose copies differ is dropped whole (``duplicate_conflicting``), the copies
after the first of one whose copies agree are dropped (``duplicate_agreeing``), as ``read_table`` does. The
second pass yields the kept rows batch by batch. A previous audit's long predictions.csv is not streamed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.errors import AgefairError
from agefair.data.csv_dataset import dataset_groupings
from agefair.data.table import MAX_ATTRIBUTE_VALUES, check_rows, parse_predictions, table_layout
from agefair.data.table_source import iter_batches, source_sha256


@dataclass(frozen=True)
class CheckedBatch:
    """The kept rows of one batch: their labels (file, age or age_group/age_lo/age_hi, attributes) and each
    model's predictions (NaN where that model has none)."""

    labels: pd.DataFrame
    predictions: dict[str, np.ndarray]


@dataclass
class TableStream:
    """A table's layout, read from its first batch, and its checked batches (``batches()``)."""

    path: Path
    kind: str  # exact | interval
    attributes: list[str]
    models: dict[str, str]  # model -> column
    groupings: dict[str, list[str]]
    _layout: tuple = ()
    _drop: np.ndarray | None = None  # per row kept by the row checks: dropped as a duplicate
    quality: dict = field(default_factory=dict)

    def _checked(self) -> Iterator[tuple[pd.DataFrame, pd.Series, dict, dict]]:
        id_col, age_col, cfg, max_age = self._layout
        counts: dict = {}
        for frame in iter_batches(self.path, counts):
            frame = frame.reset_index(drop=True)
            labels, problem = check_rows(frame, id_col, age_col, self.kind, self.attributes, cfg, max_age)
            preds, why = parse_predictions(frame, self.models)
            yield labels, problem, preds, why
        self.quality["source"] = {k: v for k, v in counts.items() if k not in ("files", "root")}
        self.quality["file_sha256"] = source_sha256(counts["files"], counts["root"])

    def find_duplicates(self) -> None:
        """The first pass: every kept row's id key and content hash; the duplicates to drop."""
        keys, hashes = [], []
        for labels, problem, preds, _ in self._checked():
            kept = (problem == "").to_numpy()
            full = labels.assign(**{f"\0{k}": v for k, v in preds.items()}).loc[kept]
            keys.append(pd.util.hash_array(full["file"].to_numpy(dtype=object), categorize=False))
            hashes.append(pd.util.hash_pandas_object(full, index=False).to_numpy())
        key = np.concatenate(keys)
        del keys
        order = np.argsort(key, kind="stable")  # equal ids in their order: the first copy first
        k = key[order]
        del key
        hs = np.concatenate(hashes)[order]
        del hashes
        start = np.r_[True, k[1:] != k[:-1]]
        del k
        group = np.cumsum(start) - 1
        size = np.bincount(group)
        differs = np.bincount(group, hs != hs[np.flatnonzero(start)][group]) > 0
        drop = np.zeros(len(order), bool)
        conflicting = differs[group] & (size[group] > 1)
        drop[order[conflicting]] = True
        drop[order[~conflicting & ~start]] = True  # agreeing copies after the first
        self._drop, self.quality["duplicates"] = drop, {"duplicate_conflicting": int(conflicting.sum()),
                                                        "duplicate_agreeing": int((~conflicting & ~start).sum())}

    def batches(self) -> Iterator[CheckedBatch]:
        """The second pass: the kept rows, batch by batch; ``quality`` holds the counts once it is done."""
        if self._drop is None:
            self.find_duplicates()
        cfg = self._layout[2]
        problems, pred_counts, offset, kept_rows = Counter(), {m: Counter() for m in self.models}, 0, 0
        values: dict[str, set] = {a: set() for a in self.attributes}
        for labels, problem, preds, why in self._checked():
            kept = (problem == "").to_numpy().copy()
            n = int(kept.sum())
            dup = self._drop[offset:offset + n]
            offset += n
            idx = np.flatnonzero(kept)
            kept[idx[dup]] = False
            problems.update(problem[problem != ""].tolist())
            for m in self.models:
                pred_counts[m].update(why[m][kept].tolist())
            for a in self.attributes if cfg.columns.attributes is None else ():  # named ones: any size
                values[a].update(labels.loc[kept, a].unique().tolist())
                self._check_size(a, values[a])
            kept_rows += int(kept.sum())
            if kept.any():
                yield CheckedBatch(labels.loc[kept].reset_index(drop=True), {m: p[kept] for m, p in preds.items()})
        problems.update(self.quality["duplicates"])
        self.quality.update(kept=kept_rows, dropped=dict(problems), predictions={
            m: {"column": self.models[m], "predicted": c[""], **{k: c[k] for k in ("missing", "not_a_number",
                                                                                   "out_of_range")}}
            for m, c in pred_counts.items()})
        if kept_rows == 0:
            raise AgefairError(f"{self.path}: no usable row")

    def _check_size(self, a: str, seen: set) -> None:
        if len(seen) > MAX_ATTRIBUTE_VALUES:
            raise AgefairError(f"{self.path}: column {a!r} has more than {MAX_ATTRIBUTE_VALUES} distinct values, too "
                               f"many for a sensitive attribute; list it under ignore: in a dataset config")


def stream_table(path: str | Path, *, data_cfg: DataConfig, dataset_cfg: DatasetConfig | None = None,
                 preds=()) -> TableStream:
    """The table at ``path`` (a file, a folder of partitions or a glob), its layout read from its first
    batch; the rows are read by ``TableStream.batches()``."""
    path, cfg = Path(path), dataset_cfg or DatasetConfig()
    first = next(iter_batches(path, {}))
    if {"variant", "pred"} <= set(first.columns):
        raise AgefairError(f"{path}: a previous audit's predictions table (variant, pred) is audited whole: leave "
                           f"out --state-only")
    id_col, age_col, kind, models, attributes = table_layout(path, first, cfg, preds)
    age_key = "age_group" if kind == "interval" else "age_bin"
    return TableStream(path, kind, attributes, models, dataset_groupings(age_key, attributes, cfg.intersections, path),
                       (id_col, age_col, cfg, data_cfg.max_age))
