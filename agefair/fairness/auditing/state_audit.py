"""An audit's grouped-metric states saved (``audit --save-state``) and audited without the rows (``--state``).

``saved_of`` gathers every model's state of an audit (agefair.fairness.engine.cell_state: per finest cell, the
row count and each metric's sum, at the point and per keyed bootstrap replicate); ``audit_saved`` merges
saved states and finishes each model's grouped metrics from them, with the same functions the audit
itself finishes them with (agefair.fairness.stats.metrics.audit_from_state), so a state of all the rows, or
the merged states of its parts, gives the audit's numbers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agefair.core.config import FairnessConfig
from agefair.core.errors import AgefairError
from agefair.fairness.auditing.audit import AuditRun
from agefair.fairness.results.record import nan_to_none
from agefair.fairness.results.state_files import SavedState, StateAudit, load_state
from agefair.fairness.stats.metrics import AuditSettings, audit_from_state


def saved_of(run: AuditRun, fair: FairnessConfig) -> SavedState:
    """The state ``--save-state`` writes: every model's, drawn with the audit's keyed bootstrap."""
    s, d = run.summary.provenance.audit_settings, run.summary.dataset
    if s.get("bootstrap") != "poisson":
        raise AgefairError(f"--save-state needs the keyed bootstrap (bootstrap: poisson), not {s.get('bootstrap')}")
    return SavedState(dict(run.states), fair.n_boot, fair.seed, d.labels,
                      {k: list(v) for k, v in run.groupings.items()},
                      [{"path": d.path, "manifest_hash": d.manifest_hash, "split": d.split,
                        "file_sha256": (run.summary.data.quality or {}).get("file_sha256"),
                        "rows": d.images_in_split}])


def merged(folders: list[Path]) -> SavedState:
    """The saved states of ``folders``, merged in order (one line on a mismatch or rows counted twice)."""
    saved = load_state(folders[0])
    for folder in folders[1:]:
        saved = saved.merge(load_state(folder), str(folder))
    return saved


def audit_saved(saved: SavedState, folders: list[Path], fair: FairnessConfig) -> StateAudit:
    """Every model's grouped metrics from ``saved`` (intervals at fairness.yaml's ci_level, small groups by
    its min_group_size; the draw is the states')."""
    settings = AuditSettings(n_boot=saved.n_boot, ci_level=fair.ci_level, seed=saved.seed,
                             min_group_size=fair.min_group_size, bootstrap="poisson")
    models = {name: {"rows": st.n_rows, "cells": len(st.labels),
                     "audit": audit_from_state(st, settings, saved.groupings)} for name, st in saved.states.items()}
    return StateAudit.model_validate(nan_to_none({
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "states": [str(f) for f in folders], "sources": saved.sources, "rows": sum(int(x.get("rows") or 0) for x in saved.sources),
        "n_boot": saved.n_boot, "seed": saved.seed, "ci_level": fair.ci_level,
        "min_group_size": fair.min_group_size, "labels": saved.labels, "groupings": saved.groupings,
        "models": models}))
