"""A table audited at production scale: 1,000,000 rows x 3 models, 1,000 resamples.

Generates a UTKFace-like table (ages 1-116 skewed young, per-ethnicity age mixes: White mean ~38,
Black ~33, Asian ~26, Indian ~31, Others ~23; gender 0/1) with one ``pred_*`` column per model
(group-dependent bias and noise), writes it as CSV (or Parquet) to a temporary folder (or ``--out``)
and runs the command a user runs, ``python -m agefair.audit --table FILE`` (configs/fairness.yaml:
1,000 resamples, 1,000 permutations, ``bootstrap: auto``), in a child process. Prints its wall time,
its peak memory (ru_maxrss of the child), the report's size and each model's computation time.

    python benchmarks/table_audit.py [--rows 1000000] [--models 3] [--format csv|parquet] [--out DIR]
                                     [--partitions 16 [--compare-whole] [--dask-workers 2]]

``--partitions N`` writes the table as a Parquet dataset of N files (a folder, audited as ``--table FOLDER``);
``--compare-whole`` also audits the same rows as one Parquet file and checks that every number of the two
summary.json files is equal (paths, file hashes, read counts and timings aside). ``--dask-workers N`` also
audits the dataset with ``--engine dask --workers N`` (a LocalCluster) and checks its numbers are equal too.
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

import numpy as np
import pandas as pd

from agefair.fairness.results.result import audit_numbers

ETHNICITY = ["White", "Black", "Asian", "Indian", "Others"]
SHARE = [0.42, 0.19, 0.15, 0.17, 0.07]
MEAN_AGE = {"White": 38, "Black": 33, "Asian": 26, "Indian": 31, "Others": 23}
ROOT = Path(__file__).resolve().parents[1]


def synthetic_table(rows: int, models: int, seed: int = 0, first_id: int = 0) -> pd.DataFrame:
    """One row per face: id (face<first_id>, face<first_id + 1> ...), age, gender, ethnicity and pred_<model>
    columns."""
    rng = np.random.default_rng(seed)
    eth = rng.choice(ETHNICITY, rows, p=SHARE)
    mean = pd.Series(eth).map(MEAN_AGE).to_numpy(float)
    shape = 2.0  # gamma(2, mean/2): skewed young, a long tail of old faces
    age = np.clip(np.round(rng.gamma(shape, mean / shape)), 1, 116).astype(int)
    frame = pd.DataFrame({"id": np.char.add("face", np.arange(first_id, first_id + rows).astype(str)), "age": age,
                          "gender": rng.integers(0, 2, rows), "ethnicity": eth})
    for k in range(models):
        name = "baseline" if k == 0 else f"variant{k}"
        noise = rng.normal(0, 4 + 0.05 * age + (1.5 if k == 1 else 0) * (eth == "Others"), rows)
        bias = -0.08 * (age - 35) + (1.0 * (eth == "Black") if k == 2 else 0.0)
        frame[f"pred_{name}"] = np.round(np.clip(age + bias + noise, 0, 120), 2)
    return frame


def write_partitions(frame: pd.DataFrame, folder: Path, parts: int) -> None:
    """The rows, in order, as ``parts`` Parquet files part-00.parquet ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[rows].to_parquet(folder / f"part-{k:02d}.parquet", index=False)


def audit_command(table: Path, out: Path, thresholds: Path | None, extra: tuple[str, ...] = ()
                  ) -> tuple[float, float, int]:
    """``python -m agefair.audit --table TABLE [EXTRA]``, as a user runs it: (wall seconds, this child's peak RSS
    in MiB, exit code). The peak is the audit process's own (a Dask cluster's workers are its children)."""
    cmd = [sys.executable, "-m", "agefair.audit", "--table", str(table), "--out", str(out), "--quiet", *extra]
    if thresholds is not None:
        cmd += ["--thresholds", str(thresholds)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest of every child so far
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        err.seek(0)
        if code not in (0, 1):
            raise SystemExit(f"audit failed ({code}): {err.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, code


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="folder for the table and the report (default: a temp folder)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="the table's file format")
    p.add_argument("--thresholds", type=Path, help="fairness config (default: configs/fairness.yaml, 1,000 resamples)")
    p.add_argument("--partitions", type=int, default=0, help="write a Parquet dataset of this many files")
    p.add_argument("--compare-whole", action="store_true",
                   help="with --partitions: audit the rows as one Parquet file too and check the numbers are equal")
    p.add_argument("--dask-workers", type=int, default=0,
                   help="with --partitions: audit the dataset on a Dask LocalCluster of this many workers too")
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="agefair-table-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    frame = synthetic_table(a.rows, a.models)
    tables = []  # (table, the audit's extra arguments, its report folder)
    if a.partitions:
        write_partitions(frame, out / "dataset", a.partitions)
        tables.append((out / "dataset", (), out / "report-dataset"))
        if a.compare_whole:
            frame.to_parquet(out / "table.parquet", index=False)
            tables.append((out / "table.parquet", (), out / "report-table"))
        if a.dask_workers:
            tables.append((out / "dataset", ("--engine", "dask", "--workers", str(a.dask_workers)),
                           out / "report-dask"))
    else:
        table = out / f"table.{a.format}"
        frame.to_csv(table, index=False) if a.format == "csv" else frame.to_parquet(table)
        tables.append((table, (), out / f"report-{table.stem}"))
    del frame
    first = tables[0][0]
    size = sum(f.stat().st_size for f in ([first] if first.is_file() else first.iterdir()))
    print(f"generated {a.rows:,} rows x {a.models} models in {time.perf_counter() - t0:.0f} s: {first} "
          f"({size / 2**20:.0f} MiB)", flush=True)
    summaries = []
    for table, extra, report in tables:
        seconds, peak, code = audit_command(table, report, a.thresholds, extra)
        summary = json.loads((report / "summary.json").read_text())
        summaries.append(summary)
        fair = summary["provenance"]["audit_settings"]
        print(f"python -m agefair.audit --table {table.name} {' '.join(extra)}: {seconds:.0f} s wall, "
              f"peak RSS {peak:.0f} MiB, engine {summary['provenance'].get('engine')}, "
              f"exit {code}; n_boot {fair['n_boot']}, n_perm {fair['comparisons']['n_perm']}, bootstrap "
              f"{fair['bootstrap']}; report.html {(report / 'report.html').stat().st_size / 2**20:.1f} MiB, "
              f"summary.json {(report / 'summary.json').stat().st_size / 2**20:.1f} MiB", flush=True)
        for name, entry in summary["variants"].items():
            print(f"  {name}: metrics, gates, standardised MAE, AAR: {entry['timings']['metrics_s']:.0f} s")
    if len(summaries) > 1:
        same = all(audit_numbers(summaries[0]) == audit_numbers(s) for s in summaries[1:])
        print(f"every number of summary.json equal across the {len(summaries)} audits "
              f"({', '.join(' '.join([t.name, *e]) for t, e, _ in tables)}): {same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
