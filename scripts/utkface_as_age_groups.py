"""Write a FairFace-style labels CSV of UTKFace's test split, to try age-group audits without FairFace.

    python scripts/utkface_as_age_groups.py --out /tmp/utk_groups/fairface_label_val.csv [--data DIR]

The CSV has FairFace's columns (file, age, gender, race, service_test): each test image's exact age
is replaced by the FairFace age group that holds it (0-2, 3-9, ..., 60-69, more than 70), gender
and race are UTKFace's labels under FairFace-like names, and ``file`` is the image's absolute path.
So ``python -m agefair.audit --data OUT --dataset-config fairface`` reads it exactly as it reads
FairFace's own label file, and evaluates agefair's variants on images they were never trained on
(the test split) with interval metrics. Nothing derived from UTKFace is committed: write it outside
the repository.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from agefair.core.config import load_data_config
from agefair.core.errors import AgefairError, run_cli
from agefair.core.io import atomic_path
from agefair.core.paths import resolve_data_dir
from agefair.data.prepare import prepare

FAIRFACE_EDGES = [0, 3, 10, 20, 30, 40, 50, 60, 70]
FAIRFACE_LABELS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the CSV to write (outside the repository)")
    p.add_argument("--data", help="UTKFace folder (default: $AGEFAIR_DATA, else data/UTKFace)")
    p.add_argument("--work", help="folder for derived files (default: $AGEFAIR_WORK, else .agefair)")
    args = p.parse_args(argv)
    data_dir = resolve_data_dir(args.data)
    prepared = prepare(data_dir, load_data_config(), work_root=args.work, progress=False)
    if prepared.kind != "utkface":
        raise AgefairError(f"{data_dir}: not a UTKFace folder")
    test = prepared.split("test")
    group = np.searchsorted(FAIRFACE_EDGES, test["age"].to_numpy(), side="right") - 1
    out = pd.DataFrame({"file": [str((data_dir / f).resolve()) for f in test["file"]],
                        "age": np.array(FAIRFACE_LABELS)[group],
                        "gender": test["gender"].map({"male": "Male", "female": "Female"}),
                        "race": test["ethnicity"], "service_test": "False"})
    with atomic_path(args.out) as tmp:
        out.to_csv(tmp, index=False)
    print(f"wrote {args.out}: {len(out)} test images of {data_dir} in FairFace's format")
    return 0


if __name__ == "__main__":
    run_cli(main)
