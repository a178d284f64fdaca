"""``audit --state DIR [DIR ...]``: saved states merged and audited without the rows; ``--save-state DIR``
checked before any work (agefair.fairness.auditing.state_audit, agefair.fairness.results.state_files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agefair.cli.outputs import STATE_AUDIT, publishing_state_audit
from agefair.core.config import FairnessConfig, load_data_config, load_dataset_config
from agefair.core.errors import AgefairError
from agefair.core.io import write_json_atomic
from agefair.data.table_stream import stream_table
from agefair.fairness.auditing.state_audit import audit_saved, merged
from agefair.fairness.auditing.state_stream import stream_state
from agefair.fairness.results.state_files import STATE_JSON, SavedState, StateAudit, save_state

ROW_INPUTS = ("runs", "predictions", "name", "variant", "split", "compare_to", "robustness", "reference", "data")
STATE_EXCLUDES = ("table", "pred", *ROW_INPUTS)  # --state reads no rows at all


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [f"--{a.replace('_', '-')}" for a in names if getattr(args, a, None) not in (None, False, [])]


def check_state_dir(path: str | None) -> Path | None:
    """--save-state's folder: new, empty, or a state folder (replaced); anything else is one line."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise AgefairError(f"{p}: --save-state needs a folder, and this is a file")
    if p.is_dir() and any(p.iterdir()) and not (p / STATE_JSON).is_file():
        raise AgefairError(f"{p}: --save-state would replace a folder that holds other files than a state "
                           f"(no {STATE_JSON}); give a new or empty folder")
    return p


def run_state_audit(args: argparse.Namespace, fair: FairnessConfig) -> int:
    """Merge the states of ``--state``, audit them, publish state_audit.json in --out, print; exit 0."""
    given = _given(args, STATE_EXCLUDES)
    if given:
        raise AgefairError(f"--state audits saved states without rows: leave out {', '.join(given)}")
    target = check_state_dir(args.save_state)
    folders = [Path(f) for f in args.state]
    saved = merged(folders)
    return _publish(audit_saved(saved, folders, fair), saved, Path(args.out), target)


def _publish(result: StateAudit, saved: SavedState, out: Path, target: Path | None) -> int:
    """state_audit.json published in ``out`` (and the state saved in ``target``), printed; exit 0."""
    with publishing_state_audit(out) as gen:
        write_json_atomic(gen / STATE_AUDIT, result.to_json())
    if target is not None:
        save_state(saved, target)
    print_state_audit(result, out / STATE_AUDIT, target)
    return 0


def run_stream_audit(args: argparse.Namespace, fair: FairnessConfig) -> int:
    """``--table PATH --state-only``: the table read batch by batch into every model's state, the grouped
    metrics of that state in state_audit.json (and the state in --save-state DIR); exit 0."""
    if args.table is None:
        raise AgefairError("--state-only reads a table batch by batch into its state: give --table PATH")
    given = _given(args, ROW_INPUTS)
    if given or args.engine != "local":
        raise AgefairError(f"--state-only audits the table's grouped metrics alone: leave out "
                           f"{', '.join(given or ['--engine dask'])}")
    target = check_state_dir(args.save_state)
    data_cfg = load_data_config(args.data_config)
    stream = stream_table(args.table, data_cfg=data_cfg, dataset_cfg=load_dataset_config(args.dataset_config),
                          preds=args.pred or ())
    saved = stream_state(stream, fair, data_cfg, progress=not args.quiet)
    return _publish(audit_saved(saved, [], fair), saved, Path(args.out), target)


def print_state_audit(result: StateAudit, path: Path, saved_to: Path | None) -> None:
    head = f"{len(result.states)} saved state(s)" if result.states else "the table's state, read batch by batch"
    print(f"audited {head}, {len(result.sources)} source(s), {result.rows:,} rows; "
          f"{result.n_boot} keyed bootstrap replicates (seed {result.seed}), {result.ci_level:.0%} intervals")
    for name, m in result.models.items():
        a = m.audit
        primary = "mae" if result.labels == "exact" else "dist"
        o = getattr(a.overall, primary)
        print(f"{name:<14} {primary.upper()} {o.value:.2f} [{o.ci[0]:.2f}, {o.ci[1]:.2f}]  ({m.rows:,} rows)")
        for g_name, g in a.groupings.items():
            d = getattr(g.disparity, primary, None)
            if d is not None:
                print(f"  {g_name:<22} worst {d.worst_group} {d.worst:.2f}, gap {d.difference:.2f} "
                      f"[{d.difference_ci[0]:.2f}, {d.difference_ci[1]:.2f}]")
    print(f"wrote {path}" + (f"; the merged state to {saved_to}" if saved_to is not None else ""))
    print(f"a state holds {result.holds}")
