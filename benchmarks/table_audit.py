"""A table audited at production scale: 1,000,000 rows x 3 models, 1,000 resamples (issue 15).

Generates a UTKFace-like table (ages 1-116 skewed young, per-ethnicity age mixes: White mean ~38,
Black ~33, Asian ~26, Indian ~31, Others ~23; gender 0/1) with one ``pred_*`` column per model
(group-dependent bias and noise), writes it as CSV (or Parquet) to a temporary folder (or ``--out``)
and runs the command a user runs, ``python -m agefair.audit --table FILE`` (configs/fairness.yaml:
1,000 resamples, 1,000 permutations, ``bootstrap: auto``), in a child process. Prints its wall time,
its peak memory (ru_maxrss of the child), the report's size and each model's computation time.

    python benchmarks/table_audit.py [--rows 1000000] [--models 3] [--format csv|parquet] [--out DIR]

The budget (issue 15): under 5 minutes and 4 GiB peak on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ETHNICITY = ["White", "Black", "Asian", "Indian", "Others"]
SHARE = [0.42, 0.19, 0.15, 0.17, 0.07]
MEAN_AGE = {"White": 38, "Black": 33, "Asian": 26, "Indian": 31, "Others": 23}
ROOT = Path(__file__).resolve().parents[1]


def synthetic_table(rows: int, models: int, seed: int = 0) -> pd.DataFrame:
    """One row per face: id, age, gender, ethnicity and pred_<model> columns."""
    rng = np.random.default_rng(seed)
    eth = rng.choice(ETHNICITY, rows, p=SHARE)
    mean = pd.Series(eth).map(MEAN_AGE).to_numpy(float)
    shape = 2.0  # gamma(2, mean/2): skewed young, a long tail of old faces
    age = np.clip(np.round(rng.gamma(shape, mean / shape)), 1, 116).astype(int)
    frame = pd.DataFrame({"id": np.char.add("face", np.arange(rows).astype(str)), "age": age,
                          "gender": rng.integers(0, 2, rows), "ethnicity": eth})
    for k in range(models):
        name = "baseline" if k == 0 else f"variant{k}"
        noise = rng.normal(0, 4 + 0.05 * age + (1.5 if k == 1 else 0) * (eth == "Others"), rows)
        bias = -0.08 * (age - 35) + (1.0 * (eth == "Black") if k == 2 else 0.0)
        frame[f"pred_{name}"] = np.round(np.clip(age + bias + noise, 0, 120), 2)
    return frame


def audit_command(table: Path, out: Path, thresholds: Path | None) -> tuple[float, float, int]:
    """``python -m agefair.audit --table TABLE``, as a user runs it: (wall seconds, the child's peak RSS in MiB,
    exit code)."""
    cmd = [sys.executable, "-m", "agefair.audit", "--table", str(table), "--out", str(out), "--quiet"]
    if thresholds is not None:
        cmd += ["--thresholds", str(thresholds)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"audit failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="folder for the table and the report (default: a temp folder)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="the table's file format")
    p.add_argument("--thresholds", type=Path, help="fairness config (default: configs/fairness.yaml, 1,000 resamples)")
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="agefair-table-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    frame = synthetic_table(a.rows, a.models)
    table = out / f"table.{a.format}"
    frame.to_csv(table, index=False) if a.format == "csv" else frame.to_parquet(table)
    del frame
    print(f"generated {a.rows:,} rows x {a.models} models in {time.perf_counter() - t0:.0f} s: {table} "
          f"({table.stat().st_size / 2**20:.0f} MiB)", flush=True)
    seconds, peak, code = audit_command(table, out / "report", a.thresholds)
    summary = json.loads((out / "report" / "summary.json").read_text())
    fair = summary["provenance"]["audit_settings"]
    report = (out / "report" / "report.html").stat().st_size / 2**20
    print(f"python -m agefair.audit --table {table.name}: {seconds:.0f} s wall, peak RSS {peak:.0f} MiB, exit {code}; "
          f"n_boot {fair['n_boot']}, n_perm {fair['comparisons']['n_perm']}, bootstrap {fair['bootstrap']}; "
          f"report.html {report:.1f} MiB, summary.json "
          f"{(out / 'report' / 'summary.json').stat().st_size / 2**20:.1f} MiB")
    for name, entry in summary["variants"].items():
        print(f"  {name}: metrics, gates, standardised MAE, AAR: {entry['timings']['metrics_s']:.0f} s")


if __name__ == "__main__":
    main()
