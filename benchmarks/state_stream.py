"""A table too large to hold, audited into its state batch by batch: ``audit --table DATASET --state-only``.

Writes a UTKFace-like Parquet dataset of ``--rows`` rows x ``--models`` models in ``--partitions`` files, one
file at a time (benchmarks/table_audit.py's generator, ids unique across files), so the generator never
holds the rows either; then runs, in a child process as a user does,

    python -m agefair.audit --table DATASET --state-only --out REPORT --save-state STATE

with the shipped configs/fairness.yaml (1,000 keyed bootstrap replicates), and prints its wall time, its
peak memory (the child's own ru_maxrss), the rows per second, and the state's size.
``--compare-full`` also audits the dataset in memory (``--table DATASET --save-state``) and checks that
every grouped metric of the two agrees to 1e-9 (only for tables that fit in memory).

    python benchmarks/state_stream.py [--rows 20000000] [--models 3] [--partitions 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from table_audit import synthetic_table

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("overall", "groupings", "age_bin_spread")


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, the child's peak RSS in MiB) of ``python -m agefair.audit ARGS``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "agefair.audit", *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"audit {' '.join(args)} failed ({code})")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys() for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)):
        return [] if abs(a - b) <= 1e-9 * max(1.0, abs(a)) else [path]
    return [] if a == b else [path]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--partitions", type=int, default=40)
    p.add_argument("--out", type=Path, default=None, help="folder for the dataset, report and state (default: temp)")
    p.add_argument("--compare-full", action="store_true", help="audit the dataset in memory too and compare")
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="agefair-stream-"))
    ds = out / "dataset"
    ds.mkdir(parents=True, exist_ok=True)
    t0, per, first = time.perf_counter(), -(-a.rows // a.partitions), 0
    for k in range(a.partitions):
        n = min(per, a.rows - first)
        synthetic_table(n, a.models, seed=k, first_id=first).to_parquet(ds / f"part-{k:03d}.parquet", index=False)
        first += n
    size = sum(f.stat().st_size for f in ds.iterdir()) / 2**20
    print(f"generated {a.rows:,} rows x {a.models} models in {a.partitions} files ({size:.0f} MiB) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    seconds, peak = run(["--table", str(ds), "--state-only", "--quiet", "--out", str(out / "report-stream"),
                         "--save-state", str(out / "state-stream")])
    state = sum(f.stat().st_size for f in (out / "state-stream").iterdir()) / 2**20
    print(f"python -m agefair.audit --table dataset --state-only: {seconds:.0f} s wall, peak RSS {peak:.0f} MiB, "
          f"{a.rows / seconds:,.0f} rows/s ({seconds / a.rows * 1e6:.1f} s per million rows); state {state:.1f} MiB",
          flush=True)
    if a.compare_full:
        seconds, peak = run(["--table", str(ds), "--quiet", "--out", str(out / "report-full"),
                             "--save-state", str(out / "state-full")])
        print(f"python -m agefair.audit --table dataset (the whole audit, in memory): {seconds:.0f} s wall, "
              f"peak RSS {peak:.0f} MiB", flush=True)
        full = json.loads((out / "report-full" / "summary.json").read_text())
        streamed = json.loads((out / "report-stream" / "state_audit.json").read_text())
        diff = [d for m in full["variants"] for d in differences(
            {k: full["variants"][m]["audit"].get(k) for k in KEYS},
            {k: streamed["models"][m]["audit"].get(k) for k in KEYS})]
        print(f"every grouped metric of the two agrees to 1e-9: {not diff} {diff[:3]}")
        if diff:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
