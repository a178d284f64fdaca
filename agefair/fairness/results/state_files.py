"""The saved audit state (``audit --save-state DIR``, read by ``audit --state DIR [DIR ...]``): format version 1.

A folder of:

* ``state.json``: ``format`` (``agefair-audit-state``), ``version`` (1), the draw (``n_boot``, ``seed``,
  ``bootstrap``: always ``poisson``, the keyed draw that makes states mergeable), the label kind (exact ages
  or age groups), the groupings, what was read (``sources``: each input's path, manifest hash and rows;
  several after a merge) and, per model in order, its name, rows, cells and summed values;
* ``cells-K.parquet``: model K's finest cells, one row each, one column per grouping column (Parquet keeps
  the columns' types, so the groups sort as they did in the audit);
* ``sums-K.npy`` and ``boot-K.npy``: its (cells x 1 + values) sums and (n_boot x cells x 1 + values)
  replicate sums, float64.

A state holds per-cell sums only, never a row, an id or a file name from the data. The folder is written
beside its final place and swapped in (agefair.core.publish), so a kill leaves the previous state whole.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agefair.core.errors import AgefairError
from agefair.core.publish import recover_swap, staging_path, swap_in
from agefair.fairness.engine.cell_state import CellState
from agefair.fairness.results.record import Record
from agefair.fairness.results.summary import Audit, ExactAudit

FORMAT, VERSION = "agefair-audit-state", 1
STATE_JSON = "state.json"
SOURCE_HASHES = ("manifest_hash", "file_sha256")  # what names a source's rows: its labels' hash, its files' hash


@dataclass
class SavedState:
    """Every model's grouped-metric state and what they were drawn with."""

    states: dict[str, CellState]
    n_boot: int
    seed: int
    labels: str  # exact | interval
    groupings: dict[str, list[str]]
    sources: list[dict] = field(default_factory=list)  # each input read: path, manifest_hash, rows

    def merge(self, other: SavedState, where: str) -> SavedState:
        """Both states' rows (each model merged where both have it); a mismatch is one line naming ``where``."""
        for what, a, b in (("n_boot", self.n_boot, other.n_boot), ("seed", self.seed, other.seed),
                           ("labels", self.labels, other.labels), ("groupings", self.groupings, other.groupings)):
            if a != b:
                raise AgefairError(f"{where}: {what} {b} differs from the first state's {a}: states merge only "
                                   "when drawn alike")
        seen = {s.get(k) for s in self.sources for k in SOURCE_HASHES} - {None}
        again = [(s, h) for s in other.sources for h in (s.get(k) for k in SOURCE_HASHES) if h in seen]
        if again:
            source, digest = again[0]
            raise AgefairError(f"{where}: holds rows already merged ({source['path']}, {digest[:12]}): each "
                               "state's rows must be counted once")
        states = dict(self.states)
        for name, st in other.states.items():
            states[name] = states[name].merge(st) if name in states else st
        return SavedState(states, self.n_boot, self.seed, self.labels, self.groupings, self.sources + other.sources)


def save_state(saved: SavedState, folder: Path) -> None:
    """Write ``saved`` as the state folder ``folder`` (replacing one that is there), atomically."""
    folder = Path(folder)
    recover_swap(folder)
    staged = staging_path(folder)
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    models = []
    for k, (name, st) in enumerate(saved.states.items()):
        st.labels.to_parquet(staged / f"cells-{k}.parquet", index=False)
        np.save(staged / f"sums-{k}.npy", st.point)
        np.save(staged / f"boot-{k}.npy", st.boot if st.boot is not None else np.zeros((0, *st.point.shape)))
        models.append({"name": name, "rows": st.n_rows, "cells": len(st.labels), "values": list(st.values)})
    meta = {"format": FORMAT, "version": VERSION, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "n_boot": saved.n_boot, "seed": saved.seed, "bootstrap": "poisson", "labels": saved.labels,
            "groupings": saved.groupings, "sources": saved.sources, "models": models}
    (staged / STATE_JSON).write_text(json.dumps(meta, indent=2))
    swap_in(staged, folder)


def load_state(folder: Path) -> SavedState:
    """The state folder ``folder``; anything missing, of another format or version, or inconsistent is one
    line naming the file."""
    folder = Path(folder)
    meta_path = folder / STATE_JSON
    if not folder.is_dir():
        raise AgefairError(f"{folder}: not a state folder (audit --save-state DIR writes one)")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise AgefairError(f"{meta_path}: missing: not a state folder (audit --save-state DIR writes one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AgefairError(f"{meta_path}: not a readable state ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AgefairError(f"{meta_path}: not an agefair audit state (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise AgefairError(f"{meta_path}: state format version {meta.get('version')!r}; this agefair reads version {VERSION}")
    try:
        states = {m["name"]: _model(folder, k, m, int(meta["n_boot"])) for k, m in enumerate(meta["models"])}
        return SavedState(states, int(meta["n_boot"]), int(meta["seed"]), str(meta["labels"]),
                          {str(g): [str(c) for c in cols] for g, cols in meta["groupings"].items()},
                          [dict(s) for s in meta["sources"]])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AgefairError(f"{meta_path}: a field is missing or of the wrong type ({type(e).__name__}: {e})") from None


def _model(folder: Path, k: int, meta: dict, n_boot: int) -> CellState:
    paths = [folder / f"cells-{k}.parquet", folder / f"sums-{k}.npy", folder / f"boot-{k}.npy"]
    try:
        labels = pd.read_parquet(paths[0])
        point = np.load(paths[1], allow_pickle=False)
        boot = np.load(paths[2], allow_pickle=False)
    except FileNotFoundError as e:
        raise AgefairError(f"{e.filename}: missing from the state folder") from None
    except (OSError, ValueError) as e:
        raise AgefairError(f"{folder}: model {meta['name']}'s files are not readable ({type(e).__name__})") from None
    values = tuple(str(v) for v in meta["values"])
    k1 = 1 + len(values)
    if point.shape != (len(labels), k1) or boot.shape[1:] != (len(labels), k1) or boot.shape[0] not in (0, n_boot):
        raise AgefairError(f"{paths[1]}: shapes {point.shape} and {boot.shape} do not fit {len(labels)} cells, "
                           f"{k1} sums and {n_boot} replicates")
    if not (np.all(np.isfinite(point)) and np.all(np.isfinite(boot))):
        raise AgefairError(f"{paths[1]}: holds a value that is not a finite number")
    return CellState(labels, values, point.astype(float), boot.astype(float) if boot.shape[0] else None)


class StateModel(Record):
    """One model audited from a state: its rows and cells, and the grouped metrics (the ``audit`` part of
    summary.json that a state holds: overall, every grouping with intervals and disparities, the age-bin
    spread)."""

    rows: int = 0
    cells: int = 0
    audit: Audit = ExactAudit()


class StateAudit(Record):
    """``state_audit.json``: what ``audit --state DIR [DIR ...]`` computed from the merged states."""

    generated: str | None = None
    states: list[str] = []  # the folders merged, in order
    sources: list[dict[str, Any]] = []  # what the rows came from, per state
    rows: int = 0  # the rows the states were made of (each model's rows with a usable prediction under models)
    n_boot: int = 0
    seed: int = 0
    ci_level: float = 0.95
    min_group_size: int = 0
    labels: str = "exact"
    groupings: dict[str, list[str]] = {}
    models: dict[str, StateModel] = {}
    holds: str = ("the grouped metrics of every model (overall and every grouping: MAE, RMSE, bias, CS@5, or "
                  "the age-group metrics, with bootstrap intervals, worst and best groups, differences and "
                  "ratios); not the comparisons, verdict, age gates, standardised gaps, AAR, coverage or "
                  "label-noise list of a full audit")
