"""``python -m agefair.run``: the whole job in one command.

Data-quality report and EDA, then every variant trained (resuming whatever is already trained),
then the audit; prints where the report is. Exit code: the audit's (0 thresholds hold, 1 a
threshold failed, 2 bad input).
"""

from __future__ import annotations

from pathlib import Path

from agefair import audit, eda, train
from agefair.cli.args import ArgumentParser, positive_int
from agefair.cli.outputs import check_output_dir
from agefair.core.config import PRESETS
from agefair.core.errors import run_cli


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m agefair.run", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="training preset (default: cpu)")
    p.add_argument("--data", metavar="DIR", help="image folder (default: $AGEFAIR_DATA, else data/UTKFace)")
    p.add_argument("--runs", default="runs", metavar="RUNS_DIR")
    p.add_argument("--out", default="reports", metavar="REPORT_DIR")
    p.add_argument("--epochs", type=positive_int, help="override the preset's epoch count")
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on N training images (quick look)")
    p.add_argument("--thresholds", metavar="FILE")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    check_output_dir(args.runs, "--runs")
    check_output_dir(args.out)

    common = (["--data", args.data] if args.data else []) + (["--quiet"] if args.quiet else [])
    print("== 1/3 data quality and EDA")
    eda.main(common + ["--out", args.out])
    print("\n== 2/3 training every variant (resumes finished or interrupted runs)")
    train_args = ["--variant", "all", "--preset", args.preset, "--out", args.runs, "--resume", "--device", args.device]
    train_args += (["--epochs", str(args.epochs)] if args.epochs is not None else []) + \
        (["--limit", str(args.limit)] if args.limit is not None else [])
    train.main(train_args + common)
    print("\n== 3/3 audit")
    audit_args = ["--runs", args.runs, "--out", args.out, "--device", args.device]
    audit_args += ["--thresholds", args.thresholds] if args.thresholds else []
    code = audit.main(audit_args + common)
    print(f"\nreport: {Path(args.out, 'report.html').absolute()}")
    return code


if __name__ == "__main__":
    run_cli(main)
