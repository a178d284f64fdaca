"""``python -m agefair.robustness``: how much worse, and how much less fair, each variant gets under
poor imaging conditions.

Every trained variant predicts the audited split (test by default) clean and under each corruption
of agefair.fairness.stats.corruptions (lighting, blur, noise, JPEG, low resolution, occlusion) at each severity.
For every variant x corruption x severity it computes the MAE and, with agefair.fairness.stats.metrics (fairlearn's
MetricFrame), the MAE of each ethnicity, gender and age-bin group and the gap between the worst
and the best group (groups of at least ``min_group_size`` images; bootstrap interval), next to the
clean gap. Writes REPORT_DIR/robustness.json and robustness.csv; ``python -m agefair.audit`` puts
them in report.html (``python -m agefair.audit --robustness`` runs both). Predictions are cached per
checkpoint, data, images and corruption, so a second run only recomputes the metrics.

Exit code 0 when every robustness rule of the fairness file holds (``robustness.rules``), 1 when
one fails, 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path

from agefair.cli.args import ArgumentParser, add_data_args, positive_int, prepare_from_args
from agefair.cli.console import print_result
from agefair.cli.outputs import check_output_dir, publishing_robustness
from agefair.core.config import (
    CONFIG_DIR,
    load_fairness_config,
)
from agefair.core.errors import run_cli
from agefair.fairness.auditing.robustness import (
    run_robustness,
    write_outputs,
)
from agefair.fairness.stats.corruptions import CORRUPTIONS, SEVERITIES
from agefair.models.runs import select_variants


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m agefair.robustness", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="runs", metavar="RUNS_DIR", help="trained runs (default: runs/)")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR", help="output folder (default: reports/)")
    p.add_argument("--thresholds", metavar="FILE", help=f"fairness config (default: {CONFIG_DIR / 'fairness.yaml'})")
    p.add_argument("--variant", nargs="+", metavar="NAME", help="variants (default: every one found)")
    p.add_argument("--corruption", nargs="+", choices=list(CORRUPTIONS), metavar="NAME",
                   help=f"corruptions (default: the fairness file's; all: {', '.join(CORRUPTIONS)})")
    p.add_argument("--severities", nargs="+", type=int, choices=SEVERITIES, metavar="S",
                   help="severities 1-5 (default: the fairness file's, 1 2 3 4 5)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="a stratified, seeded subset of N images of the split")
    p.add_argument("--split", default="test", choices=["test", "val"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_data_args(p)
    args = p.parse_args(argv)
    check_output_dir(args.out)
    fair = load_fairness_config(args.thresholds)
    runs_dir = Path(args.runs)
    variants = select_variants(runs_dir, args.variant)
    prepared, data_cfg = prepare_from_args(args)
    result = run_robustness(prepared, data_cfg, fair, runs_dir, variants, args.split, args.device, not args.quiet,
                            args.limit, args.severities, args.corruption,
                            str(args.thresholds or CONFIG_DIR / "fairness.yaml"))
    out = Path(args.out)
    with publishing_robustness(out) as gen:  # both files appear at once (docs/audit.md)
        names = [p.name for p in write_outputs(result, gen)]
    return print_result(result, *(out / n for n in names))




if __name__ == "__main__":
    run_cli(main)
