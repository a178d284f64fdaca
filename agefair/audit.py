"""``python -m agefair.audit``: audit every trained variant for accuracy and fairness.

The audited data (``--data``) is a UTKFace folder or a labels CSV (exact ages or age groups, any
sensitive attributes); the models are agefair's trained variants (``--runs``) and/or any model's
predictions (``--predictions FILE.csv``, several files side by side). ``--table FILE`` audits a table
alone, without images: labels, attributes and one predicted-age column per model (``--pred
COLUMN[=NAME]``, default every ``pred_*`` column), CSV or Parquet, or a previous audit's predictions.csv. Variants trained on other
data are evaluated across datasets, on every image of the CSV (faces detected where the images are
not aligned crops). Writes REPORT_DIR/report.html (self-contained, opens offline),
REPORT_DIR/summary.json (every number in the report) and REPORT_DIR/predictions.csv. Exit code 0
when every threshold holds, 1 when any fails (the failing rows are printed), 2 on bad input or usage.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agefair.cli.args import ArgumentParser, add_data_args, prepare_from_args
from agefair.cli.audit_job import AuditJob, run_audit_job
from agefair.cli.engine import add_engine_args, engine_from_args, engine_settings
from agefair.cli.outputs import check_output_dir
from agefair.cli.state_job import check_state_dir, run_state_audit, run_stream_audit
from agefair.core.config import CONFIG_DIR, DataConfig, load_data_config, load_dataset_config, load_fairness_config
from agefair.core.errors import AgefairError, run_cli
from agefair.data.prepare import PreparedData, prepare_table
from agefair.data.table import read_table
from agefair.models.runs import select_variants


def external_args(files: list[str], names: list[str]) -> list[tuple[Path, str]]:
    """(file, name) of each --predictions file; names from --name in order, else the file's stem."""
    if len(names) > len(files):
        raise AgefairError(f"{len(names)} --name for {len(files)} --predictions file(s): give one name per file")
    out = [(Path(f), names[i] if i < len(names) else Path(f).stem) for i, f in enumerate(files)]
    seen: set[str] = set()
    for path, name in out:
        if not name.strip():
            raise AgefairError(f"--name for {path} is empty")
        if name in seen:
            raise AgefairError(f"two --predictions files are named {name!r}; give each a --name")
        seen.add(name)
    return out


TABLE_EXCLUDES = ("runs", "variant", "predictions", "name", "data", "robustness", "split_seed", "resplit")


def table_job(args, fair, thresholds_file: str) -> tuple[AuditJob, PreparedData, DataConfig]:
    """--table: the table read and checked (agefair.data.table), as the audited data and its models."""
    given = [f"--{a.replace('_', '-')}" for a in TABLE_EXCLUDES if getattr(args, a) not in (None, False, [])]
    if given:
        raise AgefairError(f"--table audits the table's own predictions: leave out {', '.join(given)}")
    if args.split not in (None, "all"):
        raise AgefairError(f"--split {args.split}: a table has no train/val/test split (it is audited whole)")
    data_cfg = load_data_config(args.data_config)
    table = read_table(args.table, data_cfg=data_cfg, dataset_cfg=load_dataset_config(args.dataset_config),
                       preds=args.pred or ())
    if args.reference is not None and args.reference not in table.predictions:
        raise AgefairError(f"--reference {args.reference}: no model of {args.table} has that name (models: "
                           f"{', '.join(table.predictions)})")
    job = AuditJob(fair=fair, thresholds_file=thresholds_file, out=Path(args.out), split="all", progress=not args.quiet,
                   galleries=False, reference=args.reference, table=table,
                   compare_to=Path(args.compare_to) if args.compare_to else None)
    return job, prepare_table(table, data_cfg, args.work), data_cfg


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m agefair.audit", description=__doc__.split("\n")[0])
    p.add_argument("--table", metavar="PATH", help="audit a table without images (labels, attributes, pred_* columns): "
                   "a CSV or Parquet file, a folder of partitions (a Parquet dataset) or a quoted glob ('logs/*.csv')")
    p.add_argument("--pred", action="append", metavar="COLUMN[=NAME]",
                   help="with --table: a predicted-age column and its model's name (repeat; default: every pred_* column)")
    p.add_argument("--runs", metavar="RUNS_DIR", help="trained runs (default: runs/, or none when --predictions is given)")
    p.add_argument("--predictions", action="append", metavar="FILE.csv",
                   help="predictions of any model: a CSV with an image path or id column and a predicted-age column "
                        "(repeat for several models)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="name of the model behind each --predictions file, in the same order (default: the file's stem)")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR", help="output folder (default: reports/)")
    p.add_argument("--thresholds", metavar="FILE", help=f"fairness config (default: {CONFIG_DIR / 'fairness.yaml'})")
    p.add_argument("--variant", nargs="+", metavar="NAME", help="variants to audit (default: every one found)")
    p.add_argument("--split", choices=["test", "val", "all"],
                   help="default: test; all (every image) for a labels CSV that no audited variant was trained on")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-gallery", action="store_true", help="skip the Grad-CAM galleries")
    p.add_argument("--reference", metavar="NAME",
                   help="the model every other is compared with (default: fairness.yaml's reference:, else baseline, "
                        "else the first model)")
    p.add_argument("--compare-to", metavar="OLD/summary.json",
                   help="a previous audit of the same data (its summary.json, predictions.csv beside it): new - old per "
                        "model, judged by statistic: change rules")
    p.add_argument("--robustness", action="store_true",
                   help="also run the corruption audit (python -m agefair.robustness) and judge its rules")
    p.add_argument("--save-state", metavar="DIR",
                   help="also write every model's grouped-metric state (mergeable: keyed bootstrap sums per cell) to DIR")
    p.add_argument("--state", nargs="+", metavar="DIR",
                   help="audit saved states (--save-state) without the rows: merged, their grouped metrics in "
                        "REPORT_DIR/state_audit.json")
    p.add_argument("--state-only", action="store_true",
                   help="with --table: read the table batch by batch into every model's grouped-metric state (memory "
                        "bounded by a batch, not the rows) and audit that state alone (REPORT_DIR/state_audit.json)")
    add_engine_args(p)
    add_data_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_output_dir(args.out)

    fair = engine_settings(args, load_fairness_config(args.thresholds))
    thresholds_file = str(args.thresholds or CONFIG_DIR / "fairness.yaml")
    if args.state:
        if args.state_only:
            raise AgefairError("--state-only reads a table; --state reads saved states: give one of them")
        return run_state_audit(args, fair)
    if args.state_only:
        return run_stream_audit(args, fair)
    save_state = check_state_dir(args.save_state)
    if args.table is not None:
        job, prepared, data_cfg = table_job(args, fair, thresholds_file)
        job = replace(job, save_state=save_state)
        with engine_from_args(args):
            return run_audit_job(job, prepared=prepared, data_cfg=data_cfg).code
    if args.pred:
        raise AgefairError("--pred names a column of --table: give --table FILE")
    external = external_args(args.predictions or [], args.name or [])
    runs_dir, variants = None, []
    if args.runs is not None or not external:
        runs_dir = Path(args.runs or "runs")
        variants = select_variants(runs_dir, args.variant)
    elif args.variant:
        raise AgefairError("--variant picks trained variants: give --runs RUNS_DIR too")
    if args.robustness and not variants:
        raise AgefairError("--robustness corrupts images for agefair's own variants: give --runs RUNS_DIR")
    clash = sorted({n for _, n in external} & set(variants))
    if clash:
        raise AgefairError(f"--name {clash[0]}: a trained variant has that name; name the predictions otherwise")

    if args.reference is not None and args.reference not in [*variants, *(n for _, n in external)]:
        raise AgefairError(f"--reference {args.reference}: no audited model has that name (models: "
                           f"{', '.join([*variants, *(n for _, n in external)])})")
    prepared, data_cfg = prepare_from_args(args, csv_ok=True)
    job = AuditJob(fair=fair, thresholds_file=thresholds_file, out=Path(args.out),
                   runs_dir=runs_dir, variants=variants, external=external, split=args.split, device=args.device,
                   progress=not args.quiet, galleries=not args.no_gallery, robustness=args.robustness,
                   reference=args.reference, compare_to=Path(args.compare_to) if args.compare_to else None,
                   save_state=save_state)
    with engine_from_args(args):
        return run_audit_job(job, prepared=prepared, data_cfg=data_cfg).code

if __name__ == "__main__":
    run_cli(main)
