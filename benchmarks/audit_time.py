"""How long the audit's computation takes with predictions cached: metrics, age gates, comparisons, verdict.

Generates synthetic predictions of UTKFace's test-split size (3,100 rows; UTKFace-like ages, genders and
ethnicities) for four models (``baseline`` and three variants, one a year worse on one ethnicity) and
times, per model, agefair.fairness.stats.metrics.audit_variant + the age gates + the age-standardised MAE, AAR
and error slopes, the label-noise suspects, then the paired comparisons
of every model against baseline and the credibly-best verdict, with fairness.yaml's settings
(1,000 resamples, 1,000 permutations). Prints seconds per part and the peak memory (RSS).

    python benchmarks/audit_time.py [--rows 3100] [--models 4] [--n-boot 1000] [--subjects]

The budget (issue 14): under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agefair.core.config import FairnessConfig
from agefair.data.labels import age_bin
from agefair.fairness.auditing.age_adjusted import age_accuracy, standardised_groupings
from agefair.fairness.auditing.decisions import comparisons, verdict
from agefair.fairness.auditing.noise_audit import label_noise
from agefair.fairness.stats.gates import gate_summaries
from agefair.fairness.stats.metrics import GROUPINGS, AuditSettings, audit_variant

ETHNICITY = ["White", "Black", "Asian", "Indian", "Others"]


def synthetic(rows: int, models: int, seed: int = 0, subjects: bool = False) -> dict[str, pd.DataFrame]:
    """UTKFace-like test rows and each model's predictions (the prediction frames the audit builds)."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.gamma(2.2, 15, rows)), 1, 116).astype(int)
    base = pd.DataFrame({"file": [f"{i}.jpg" for i in range(rows)], "age": age,
                         "gender": rng.choice(["male", "female"], rows),
                         "ethnicity": rng.choice(ETHNICITY, rows, p=[0.42, 0.19, 0.15, 0.17, 0.07]),
                         "age_bin": age_bin(age, [0, 10, 20, 30, 40, 50, 60, 70]), "row": np.arange(rows)})
    if subjects:
        base["subject"] = rng.integers(0, rows // 3, rows)
    out = {}
    for k in range(models):
        name = "baseline" if k == 0 else f"variant{k}"
        noise = rng.normal(0, 4 + 0.02 * age, rows) + (1.0 * (base["ethnicity"] == "Black") if k == 1 else 0)
        out[name] = base.assign(variant=name, pred=np.round(age + noise, 4))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=3100)
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--subjects", action="store_true", help="resample subjects (about 3 images each)")
    a = p.parse_args()
    fair = FairnessConfig(n_boot=a.n_boot)
    s = AuditSettings(n_boot=fair.n_boot, ci_level=fair.ci_level, seed=fair.seed, min_group_size=fair.min_group_size)
    groupings = {k: v for k, v in GROUPINGS.items() if k != "shot"}
    preds = synthetic(a.rows, a.models, subjects=a.subjects)
    t0 = time.perf_counter()
    for pred in preds.values():
        audit_variant(pred, s, groupings)
        gate_summaries(pred, groupings=groupings, gates=fair.gates, settings=s)
        standardised_groupings(pred, groupings, s)
        age_accuracy(pred, groupings, s)
    label_noise(preds, groupings=groupings, data_dir=Path("."), settings=fair.label_noise,
                min_group_size=fair.min_group_size, thumbnails=False)
    t1 = time.perf_counter()
    comps, frame = comparisons(preds, groupings=groupings, settings=s, config=fair.comparisons,
                               reference="baseline", gates=fair.gates)
    t2 = time.perf_counter()
    said = verdict(frame, list(preds), comps, groupings=groupings, settings=s)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_rows = len(comps.overall) + len(comps.groups) + len(comps.gates)
    print(f"{a.rows} rows, {a.models} models, n_boot {a.n_boot}, n_perm {fair.comparisons.n_perm}"
          f"{', subjects' if a.subjects else ''}")
    print(f"metrics + gates + standardised/AAR/slopes + label noise {t1 - t0:.1f} s; comparisons ({n_rows} rows) {t2 - t1:.1f} s; verdict "
          f"({len(said.best)} criteria) {t3 - t2:.1f} s; total {t3 - t0:.1f} s; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
