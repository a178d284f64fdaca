"""The audit as the commands run it (``python -m agefair.audit`` and the audit step of
``python -m agefair.run``): audit, optional robustness, publish the files together, print; the outcome (the
exit code of ``python -m agefair.audit`` and the typed summary)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agefair.cli.console import gates_text, print_leaderboard, print_result, thresholds_text, verdict_text
from agefair.cli.outputs import publishing_audit
from agefair.core.config import DataConfig, FairnessConfig
from agefair.core.io import write_csv_atomic, write_json_atomic
from agefair.data.prepare import PreparedData
from agefair.data.table import TableData
from agefair.fairness.auditing import robustness
from agefair.fairness.auditing.audit import run_audit
from agefair.fairness.auditing.state_audit import saved_of
from agefair.fairness.results.result import AuditSummary, RobustnessResult
from agefair.fairness.results.state_files import save_state
from agefair.reporting.report import render_report

SUMMARY, PREDICTIONS, REPORT = "summary.json", "predictions.csv", "report.html"


@dataclass(frozen=True)
class AuditJob:
    """What to audit and where the files go (every field as the audit command's options say)."""

    fair: FairnessConfig
    thresholds_file: str
    out: Path
    runs_dir: Path | None = None
    variants: list[str] = field(default_factory=list)
    external: list[tuple[Path, str]] = field(default_factory=list)
    split: str | None = None
    device: str = "auto"
    progress: bool = True
    galleries: bool = True
    robustness: bool = False
    reference: str | None = None  # --reference (default: fairness.yaml's, else baseline, else the first)
    compare_to: Path | None = None  # --compare-to: a previous audit's summary.json
    table: TableData | None = None  # --table: the table whose prediction columns are the models
    save_state: Path | None = None  # --save-state: where every model's grouped-metric state is written


@dataclass(frozen=True)
class AuditOutcome:
    """What an audit job found: ``code`` 0 every threshold holds, 1 one failed (the audit command's exit code)."""

    code: int
    summary: AuditSummary


def run_audit_job(job: AuditJob, *, prepared: PreparedData, data_cfg: DataConfig,
                  findings: bool = False) -> AuditOutcome:
    """Audit, write, print; the outcome. ``findings``: word failed thresholds as the job's findings (python -m
    agefair.run, which sums them up after) rather than as the audit command's failure."""
    started = time.perf_counter()
    done = run_audit(
        prepared, data_cfg, job.fair, runs_dir=job.runs_dir, variants=job.variants, split=job.split,
        device=job.device, progress=job.progress, galleries=job.galleries, thresholds_file=job.thresholds_file,
        external=job.external, reference=job.reference, compare_to_path=job.compare_to, table=job.table)
    summary, preds, galleries = done.summary, done.predictions, done.galleries
    summary.seconds = time.perf_counter() - started
    rob = None
    if job.robustness:
        prov = summary.provenance
        rob = robustness.run_robustness(prepared, data_cfg, job.fair, job.runs_dir, job.variants, prov.split,
                                        job.device, job.progress, thresholds_file=prov.thresholds_file)
    with publishing_audit(job.out) as gen:  # every file appears at once, at the end (docs/audit.md)
        write_json_atomic(gen / SUMMARY, summary.to_json())
        write_csv_atomic(gen / PREDICTIONS, preds.drop(columns=["row"]))  # no formula from a file name
        if rob is not None:
            robustness.write_outputs(rob, gen)
        render_report(summary, galleries, gen / REPORT,
                      rob or robustness.load_result(job.out / robustness.JSON_NAME))
    if job.save_state is not None:
        save_state(saved_of(done, job.fair), job.save_state)
        print(f"wrote the state of {len(done.states)} models ({summary.dataset.images_in_split} rows) to {job.save_state}")
    if rob is not None:
        print_result(rob, job.out / robustness.JSON_NAME, job.out / robustness.CSV_NAME)
    return AuditOutcome(print_audit(summary, job.out, rob, findings=findings), summary)


def print_audit(summary: AuditSummary, out: Path, rob: RobustnessResult | None, *, findings: bool = False) -> int:
    """The leaderboard, the verdict and the failed thresholds; the exit code (0 all hold, 1 one failed).
    ``findings``: the failed thresholds headed as findings, not as "fairness thresholds FAILED"."""
    d = summary.dataset
    interval = summary.labels == "interval"
    print(f"audited on {d.name} ({d.path}), {d.split} split, {d.images_in_split} images, "
          f"{'age-group labels' if interval else 'exact ages'}")
    print_leaderboard(summary.leaderboard)
    print(verdict_text(summary))
    if (c := summary.compare_to) is not None:
        print(f"compared with the previous audit {c.path} ({c.generated}): {', '.join(c.models) or 'no model in both'}")
    if gates := gates_text(summary):
        print("age gates (worst group's false pass; the largest difference in the challenge age groups need):")
        print(gates)
    if summary.thresholds_not_applicable:
        print(f"not checked ({'age groups' if interval else 'exact ages'} here): "
              + "; ".join(f"{r.rule} ({r.reason})" for r in summary.thresholds_not_applicable))
    print(f"wrote {out / REPORT}, {out / SUMMARY}, {out / PREDICTIONS} in {summary.seconds:.0f} s")
    if not summary.passed:
        print("\nthreshold checks that fail (the audit's findings, summed up at the end):" if findings
              else "\nfairness thresholds FAILED:")
        print(thresholds_text(summary.thresholds, only_failed=True))
        return 1
    print(f"all {len(summary.thresholds)} threshold checks passed")
    if rob is not None and not rob.passed:
        head = "robustness checks that fail (findings)" if findings else "robustness thresholds FAILED"
        print(f"{head}: {sum(not r.passed for r in rob.thresholds)} of {len(rob.thresholds)} (listed above)")
        return 1
    return 0
