"""The train/validation/test split: stratified, duplicate-safe, seeded, saved and reused.

Files are split as groups of identical content (sha256), so copies of one image never land in two
splits. Groups are stratified by age bin x gender x ethnicity (a CSV dataset: its age bin or age
group x its sensitive attributes): inside each stratum they are shuffled
with the seed and cut by the configured fractions. The split is saved as a CSV with a JSON
sidecar that records the data's manifest hash; a later command whose data no longer matches is
refused with a message instead of silently making a new split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from agefair.core.config import DataConfig
from agefair.core.errors import AgefairError
from agefair.core.io import atomic_path, write_json_atomic
from agefair.data.labels import age_bin

SPLITS = ("train", "val", "test")
UTKFACE_ATTRIBUTES = ["gender", "ethnicity"]


def strata_columns(manifest: pd.DataFrame, cfg: DataConfig, attributes: list[str] | None = None) -> pd.DataFrame:
    """The columns the split is stratified and counted by: the age bin of exact ages (or the age group of
    age-group labels), then the sensitive attributes (default: UTKFace's gender and ethnicity)."""
    attributes = UTKFACE_ATTRIBUTES if attributes is None else list(attributes)
    if "age" in manifest.columns:
        age = pd.Series(age_bin(manifest["age"], cfg.age_bins), index=manifest.index, name="age_bin")
    else:
        age = manifest["age_group"].rename("age_group")
    return pd.concat([age, manifest[attributes]], axis=1)


def make_split(manifest: pd.DataFrame, cfg: DataConfig, seed: int, attributes: list[str] | None = None) -> pd.Series:
    """Split name for each manifest row (index-aligned)."""
    frac = {"train": cfg.split.train, "val": cfg.split.val, "test": cfg.split.test}
    groups = manifest.sort_values("file").drop_duplicates("sha256")
    strata = strata_columns(groups, cfg, attributes).astype(str).agg("|".join, axis=1)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for _, members in groups.groupby(strata, sort=True):
        hashes = members["sha256"].to_numpy()[rng.permutation(len(members))]
        n = len(hashes)
        n_val = int(round(n * frac["val"]))
        n_test = int(round(n * frac["test"]))
        if n_val + n_test > n - 1 and n > 0:  # a stratum of 1-2 groups stays in train
            n_val = n_test = 0
        for h, name in zip(hashes, ["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)):
            assignment[h] = name
    return manifest["sha256"].map(assignment)


def split_counts(manifest: pd.DataFrame, split: pd.Series, cfg: DataConfig, attributes: list[str] | None = None) -> dict:
    """Images per split, overall and by age bin (or age group) and each attribute (default: gender, ethnicity)."""
    frame = strata_columns(manifest, cfg, attributes).assign(split=split.values)
    out = {"total": frame["split"].value_counts().reindex(SPLITS, fill_value=0).to_dict()}
    for col in frame.columns.drop("split"):
        table = pd.crosstab(frame[col], frame["split"]).reindex(columns=SPLITS, fill_value=0)
        out[col] = {str(k): {s: int(v) for s, v in row.items()} for k, row in table.iterrows()}
    return out


def split_paths(work_dir: Path, seed: int) -> tuple[Path, Path]:
    return work_dir / f"split-seed{seed}.csv", work_dir / f"split-seed{seed}.json"


def load_or_make_split(manifest: pd.DataFrame, data_hash: str, cfg: DataConfig, work_dir: Path,
                       seed: int | None = None, resplit: bool = False,
                       attributes: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The manifest with a ``split`` column, and the split's metadata.

    Reuses ``work_dir/split-seed{seed}.csv`` when it was made for this data and these fractions;
    raises AgefairError when it was made for other data (unless ``resplit``).
    """
    seed = cfg.split.seed if seed is None else seed
    csv_path, meta_path = split_paths(work_dir, seed)
    fractions = {"train": cfg.split.train, "val": cfg.split.val, "test": cfg.split.test}
    if csv_path.exists() and meta_path.exists() and not resplit:
        meta = json.loads(meta_path.read_text())
        if meta.get("manifest_hash") != data_hash:
            raise AgefairError(
                f"{csv_path} was made for different data (manifest {meta.get('manifest_hash', '?')[:12]}, "
                f"now {data_hash[:12]}): the images or their labels changed; pass --resplit to make a new split"
            )
        if meta.get("fractions") != fractions or meta.get("age_bins") != list(cfg.age_bins):
            raise AgefairError(
                f"{csv_path} was made with fractions {meta.get('fractions')} and age bins {meta.get('age_bins')}, "
                f"the config now says {fractions} and {list(cfg.age_bins)}; pass --resplit to make a new split"
            )
        saved = pd.read_csv(csv_path)
        merged = manifest.merge(saved[["file", "split"]], on="file", how="left")
        if merged["split"].isna().any():
            raise AgefairError(f"{csv_path} does not cover every kept file; pass --resplit to make a new split")
        return merged, meta

    split = make_split(manifest, cfg, seed, attributes)
    out = manifest.assign(split=split.values)
    meta = {
        "seed": seed,
        "fractions": fractions,
        "age_bins": list(cfg.age_bins),
        "stratified_by": list(strata_columns(manifest.head(0), cfg, attributes).columns),
        "grouped_by": "sha256",
        "manifest_hash": data_hash,
        "counts": split_counts(manifest, split, cfg, attributes),
    }
    with atomic_path(csv_path) as tmp:
        out[["file", "sha256", "split"]].to_csv(tmp, index=False)
    write_json_atomic(meta_path, meta)
    return out, meta


def counts_text(meta: dict) -> str:
    """Split counts as a small text table."""
    c = meta["counts"]
    lines = [f"Split (seed {meta['seed']}): " + ", ".join(f"{s} {c['total'][s]}" for s in SPLITS)]
    for col in [k for k in c if k != "total"]:
        lines.append(f"  {col:<10} " + "".join(f"{s:>8}" for s in SPLITS))
        for k, row in c[col].items():
            lines.append(f"  {k:<10} " + "".join(f"{row[s]:>8}" for s in SPLITS))
    return "\n".join(lines)


def stratified_limit(manifest: pd.DataFrame, rows: np.ndarray, limit: int, cfg: DataConfig, seed: int) -> np.ndarray:
    """``limit`` of ``rows``, stratified by age bin (falls back to a plain random draw for tiny limits)."""
    if limit >= len(rows):
        return rows
    strata = age_bin(manifest["age"].to_numpy()[rows], cfg.age_bins)
    try:
        keep, _ = train_test_split(rows, train_size=limit, stratify=strata, random_state=seed)
    except ValueError:
        keep = np.random.default_rng(seed).choice(rows, size=limit, replace=False)
    return np.sort(keep)

class HasManifest(Protocol):
    """Anything with a split manifest (agefair.data.prepare.PreparedData, which imports this module)."""

    manifest: pd.DataFrame


def split_rows(prepared: HasManifest, split: str) -> np.ndarray:
    """Manifest rows of ``split`` (train, val, test, or all)."""
    if split == "all":
        return np.arange(len(prepared.manifest))
    return np.flatnonzero(prepared.manifest["split"].to_numpy() == split)
