"""A table audited at production scale: 1,000,000 rows x 3 models, 1,000 resamples (issue 15).

Generates a UTKFace-like table (ages 1-116 skewed young, per-ethnicity age mixes: White mean ~38,
Black ~33, Asian ~26, Indian ~31, Others ~23; gender 0/1) with one ``pred_*`` column per model
(group-dependent bias and noise), writes it as CSV and Parquet to a temporary folder (or ``--out``),
reads it with agefair.data.table.read_table and runs what the audit runs on it, with the settings of
configs/fairness.yaml: per model the grouped metrics (agefair.fairness.metrics.audit_variant), the
age-standardised MAE, AAR and error slopes, the age gates; then the paired comparisons and verdict,
the label-noise suspects and the power table. Prints seconds per stage, the total and the peak memory
(ru_maxrss; ``--tracemalloc`` adds Python's traced peak, slower).

    python benchmarks/table_audit.py [--rows 1000000] [--models 3] [--n-boot 1000] [--bootstrap poisson]
                                     [--out DIR] [--tracemalloc]

The budget (issue 15): under 5 minutes and 4 GiB peak on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.config import DataConfig, load_fairness_config
from agefair.data.labels import age_bin
from agefair.data.table import read_table
from agefair.fairness.age_adjusted import age_accuracy, standardised_groupings
from agefair.fairness.decisions import comparisons, pick_reference, verdict
from agefair.fairness.gates import gate_summaries
from agefair.fairness.label_noise import label_noise_suspects
from agefair.fairness.metrics import AuditSettings, attribute_groupings, audit_variant
from agefair.fairness.power import group_power

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


def prediction_frames(table, data_cfg: DataConfig) -> dict[str, pd.DataFrame]:
    """The audit's per-model frames (file, variant, age, pred, attributes, age_bin, row) of a read table."""
    m = table.manifest
    base = m[["file", "age", *table.attributes]].assign(age_bin=age_bin(m["age"].to_numpy(), data_cfg.age_bins),
                                                        row=np.arange(len(m)))
    out = {}
    for name, p in table.predictions.items():
        keep = np.isfinite(p)
        out[name] = base[keep].assign(variant=name, pred=p[keep]).reset_index(drop=True)
    return out


class Stages:
    def __init__(self):
        self.t = time.perf_counter()
        self.rows: list[tuple[str, float]] = []

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.rows.append((name, now - self.t))
        print(f"  {name}: {now - self.t:.1f} s", flush=True)
        self.t = now


# long: the benchmark's stages in order, each timed
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--bootstrap", choices=["vectorized", "poisson"], default="poisson")
    p.add_argument("--out", type=Path, default=None, help="folder for the generated table (default: a temp folder)")
    p.add_argument("--tracemalloc", action="store_true")
    a = p.parse_args()
    if a.tracemalloc:
        tracemalloc.start()
    fair = load_fairness_config(ROOT / "configs" / "fairness.yaml")
    data_cfg = DataConfig()
    s = AuditSettings(n_boot=a.n_boot, ci_level=fair.ci_level, seed=fair.seed, min_group_size=fair.min_group_size,
                      bootstrap=a.bootstrap)
    out = a.out or Path(tempfile.mkdtemp(prefix="agefair-table-"))
    out.mkdir(parents=True, exist_ok=True)
    st = Stages()
    frame = synthetic_table(a.rows, a.models)
    st.done(f"generate {a.rows:,} rows x {a.models} models")
    frame.to_csv(out / "table.csv", index=False)
    frame.to_parquet(out / "table.parquet")
    del frame
    st.done("write CSV + Parquet")
    read_table(out / "table.csv", data_cfg=data_cfg)
    st.done("read_table CSV")
    table = read_table(out / "table.parquet", data_cfg=data_cfg)
    st.done("read_table Parquet")
    preds = prediction_frames(table, data_cfg)
    groupings = table.groupings
    audits = {}
    for name, pred in preds.items():
        audits[name] = audit_variant(pred, s, groupings)
        st.done(f"{name}: grouped metrics")
        audits[name]["standardised"] = standardised_groupings(pred, groupings, s)
        st.done(f"{name}: age-standardised")
        audits[name].update(age_accuracy(pred, groupings, s))
        st.done(f"{name}: AAR + error slopes")
        audits[name]["gates"] = gate_summaries(pred, groupings=groupings, gates=fair.gates, settings=s)
        st.done(f"{name}: age gates")
    ref = pick_reference(list(preds), fair.reference)
    comps, aligned = comparisons(preds, groupings=groupings, settings=s, config=fair.comparisons, reference=ref,
                                 gates=fair.gates)
    st.done(f"comparisons ({len(comps.overall) + len(comps.groups) + len(comps.gates)} rows)")
    said = verdict(aligned, list(preds), comps, groupings=groupings, settings=s)
    st.done(f"verdict ({len(said.best)} criteria)")
    single = {g: aligned[groupings[g][0]].to_numpy() for g in attribute_groupings(groupings)}
    noise = label_noise_suspects(preds={m: aligned[m].to_numpy(float) for m in preds},
                                 age=aligned["age"].to_numpy(float), groupings=single,
                                 min_group_size=fair.min_group_size)
    st.done(f"label noise ({len(noise.suspects)} suspects)")
    group_power(audits, fair.rules, level=fair.ci_level, power=fair.comparisons.power,
                min_group_size=fair.min_group_size)
    st.done("power")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traced = f", tracemalloc peak {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MiB" if a.tracemalloc else ""
    audit_s = sum(t for name, t in st.rows if not name.startswith(("generate", "write")))
    print(f"{a.rows:,} rows, {a.models} models, n_boot {a.n_boot}, n_perm {fair.comparisons.n_perm}, "
          f"bootstrap {a.bootstrap}: audit (read + compute) {audit_s:.1f} s; total {sum(t for _, t in st.rows):.1f} s; "
          f"peak RSS {peak:.0f} MiB{traced}")


if __name__ == "__main__":
    main()
