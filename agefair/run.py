"""``python -m agefair.run``: the whole job in one command.

Data-quality report and EDA, then the preset's variants trained (its `variants:`; resuming whatever is
already trained), then the audit; ends with where the report is and the audit's findings (the threshold
checks that fail). Exit code 0 when the job completed, whatever the audit found (``--strict``: 1 when a
threshold check fails, as ``python -m agefair.audit``), 2 on bad input, 130 when interrupted.
"""

from __future__ import annotations

from pathlib import Path

from agefair.cli.args import ArgumentParser, add_data_args, data_request_from_args, positive_int
from agefair.cli.audit_job import REPORT, SUMMARY, AuditJob, AuditOutcome, run_audit_job
from agefair.cli.console import eda_text, finding_text, training_table_text
from agefair.cli.outputs import check_output_dir
from agefair.core.config import CONFIG_DIR, PRESETS, load_fairness_config, load_train_config
from agefair.core.errors import AgefairError, run_cli
from agefair.models.runs import select_variants
from agefair.reporting.eda import write_eda
from agefair.training.trainer import train_all
from agefair.training.variants import VARIANTS

FINDINGS_SHOWN = 20


def closing_text(outcome: AuditOutcome, out: Path, strict: bool) -> str:
    """The job's last lines: that it completed, where the report is, the failing threshold checks (findings)."""
    checks = outcome.summary.thresholds
    failed = [r for r in checks if not r.passed]
    lines = ["== done: the job completed",
             f"report: {(out / REPORT).absolute()} (open in a browser; {SUMMARY} beside it)"]
    if not failed:
        lines.append(f"findings: all {len(checks)} fairness threshold checks pass")
        return "\n".join(lines)
    lines.append(f"findings: {len(failed)} of {len(checks)} fairness threshold checks fail "
                 "(listed above as the audit's findings, not errors):")
    lines += [f"  - {finding_text(r)}" for r in failed[:FINDINGS_SHOWN]]
    if len(failed) > FINDINGS_SHOWN:
        lines.append(f"  ... {len(failed) - FINDINGS_SHOWN} more in the table above and the report")
    lines.append("(--strict: exit 1 on these, as python -m agefair.audit)" if strict else
                 "(python -m agefair.audit and python -m agefair.run --strict exit 1 on these; this job exits 0)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m agefair.run", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="training preset (default: cpu)")
    p.add_argument("--runs", default="runs", metavar="RUNS_DIR")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR")
    p.add_argument("--epochs", type=positive_int, help="override the preset's epoch count")
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on N training images (quick look)")
    p.add_argument("--thresholds", metavar="FILE")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a fairness threshold check fails, as python -m agefair.audit (for CI); "
                        "default: exit 0 when the job completed and list the failing checks as findings")
    add_data_args(p)
    args = p.parse_args(argv)
    check_output_dir(args.runs, "--runs")
    check_output_dir(args.out)
    fair = load_fairness_config(args.thresholds)  # a bad config fails now, not after an hour of training
    cfg = load_train_config(args.preset, None, {"train": {"epochs": args.epochs}} if args.epochs else None)
    if unknown := [v for v in cfg.variants if v not in VARIANTS]:
        raise AgefairError(f"variants: unknown variant {unknown[0]!r}; the variants are {', '.join(VARIANTS)}")
    request = data_request_from_args(args)
    out, runs_dir = Path(args.out), Path(args.runs)

    print("== 1/3 data quality and EDA")
    prepared = request.prepare()
    print(eda_text(write_eda(prepared, request.data_cfg, out), out))
    print(f"\n== 2/3 training {', '.join(cfg.variants)} (resumes finished or interrupted runs)")
    summaries = train_all(variants=list(dict.fromkeys(cfg.variants)), cfg=cfg, data_request=request, out_dir=runs_dir, limit=args.limit,
                          device=args.device, resume=True, progress=not args.quiet,
                          conformal=fair.conformal)
    print("\n" + training_table_text(summaries))
    print("\n== 3/3 audit")
    job = AuditJob(fair=fair, thresholds_file=str(args.thresholds or CONFIG_DIR / "fairness.yaml"), out=out,
                   runs_dir=runs_dir, variants=select_variants(runs_dir, None), device=args.device,
                   progress=not args.quiet)
    outcome = run_audit_job(job, prepared=prepared, data_cfg=request.data_cfg, findings=True)
    print("\n" + closing_text(outcome, out, args.strict))
    return outcome.code if args.strict else 0


if __name__ == "__main__":
    run_cli(main)
