"""A table too large to hold, audited into its state one batch of rows at a time (``audit --table PATH
--state-only``): map each checked batch (agefair.data.table_stream) to every model's grouped-metric state,
merge the states by addition as they come, finish from the merged state (agefair.fairness.auditing.state_audit).

Each batch's per-model frame is the one the full audit builds for that model's rows (file, age, pred rounded
to 1e-4 years, the attributes, the age bin), and the draw is keyed by the rows' ids, so the merged state is the
full audit's state of the same rows: the grouped metrics agree with the full audit's to rounding
(tests/test_audit_state.py). Memory holds one batch and the states (cells x replicates), not the rows.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig, FairnessConfig
from agefair.core.errors import AgefairError
from agefair.data.table_stream import CheckedBatch, TableStream
from agefair.fairness.auditing.model_predictions import labelled_predictions
from agefair.fairness.engine.cell_state import CellState
from agefair.fairness.results.state_files import SavedState
from agefair.fairness.stats.metrics import AuditSettings, variant_state


def _model_frame(batch: CheckedBatch, stream: TableStream, model: str, data_cfg: DataConfig) -> pd.DataFrame:
    """The rows of ``batch`` ``model`` predicts, framed as the full audit frames a table model's predictions."""
    preds = batch.predictions[model]
    rows = np.flatnonzero(np.isfinite(preds))
    return pd.DataFrame(labelled_predictions(batch.labels, rows, preds[rows], model, labels=stream.kind,
                                             attributes=stream.attributes, age_bins=data_cfg.age_bins))


def stream_state(stream: TableStream, fair: FairnessConfig, data_cfg: DataConfig, *,
                 progress: bool = False) -> SavedState:
    """Every model's state of the table's kept rows, mapped batch by batch and merged."""
    settings = AuditSettings(n_boot=fair.n_boot, ci_level=fair.ci_level, seed=fair.seed,
                             min_group_size=fair.min_group_size, bootstrap="poisson")
    states: dict[str, CellState] = {}
    t0, n = time.perf_counter(), 0
    for batch in stream.batches():
        for model in stream.models:
            frame = _model_frame(batch, stream, model, data_cfg)
            if len(frame):
                st = variant_state(frame, settings, stream.groupings)
                states[model] = states[model].merge(st) if model in states else st
        n += len(batch.labels)
        if progress:
            print(f"  {n:,} rows into the state ({n / max(time.perf_counter() - t0, 1e-9):,.0f} rows/s)", flush=True)
    for model in stream.models:
        if model not in states or states[model].n_rows < fair.min_group_size:
            have = states[model].n_rows if model in states else 0
            raise AgefairError(f"{stream.path}: model {model} has {have} usable predictions, fewer than "
                               f"min_group_size ({fair.min_group_size})")
    q = stream.quality
    return SavedState({m: states[m] for m in stream.models}, fair.n_boot, fair.seed, stream.kind,
                      {k: list(v) for k, v in stream.groupings.items()},
                      [{"path": str(stream.path), "manifest_hash": None, "file_sha256": q["file_sha256"],
                        "split": "all", "rows": q["kept"], "read": q["source"], "dropped": q["dropped"]}])
