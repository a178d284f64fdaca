"""What the tests that audit the same rows two ways share: a labelled table of two models, and the paths
where two summaries differ beyond rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd


def two_model_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: id f0.., age 1-89, gender m/f, ethnicity A/B/C (50/30/20%), pred_a and pred_b."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 90, n)
    return pd.DataFrame({"id": [f"f{i}" for i in range(n)], "age": age, "gender": rng.choice(["m", "f"], n),
                         "ethnicity": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
                         "pred_a": np.round(age + rng.normal(0, 5, n), 2),
                         "pred_b": np.round(age + rng.normal(1, 6, n), 2)})


def differences(a, b, path: str = "", rel: float = 1e-9) -> list[str]:
    """Paths where two summaries differ: floats beyond ``rel`` relative, anything else unequal."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}/{k}", rel)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, (int, float)):
        return [] if abs(a - b) <= rel * max(1.0, abs(a)) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
