import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import make_utk_folder

from agefair.core.config import DataConfig, SplitConfig
from agefair.core.errors import AgefairError
from agefair.data import split as split_mod
from agefair.data.prepare import prepare
from agefair.data.quality import manifest_hash
from agefair.data.split import SPLITS, load_or_make_split, make_split, split_paths

ETH = np.array(["White", "Black", "Asian", "Indian", "Others"])


def synthetic_manifest(n: int, seed: int = 0, dup_groups: int = 0) -> pd.DataFrame:
    """A manifest without images; ``dup_groups`` groups of 2-4 rows share one sha256 and their labels."""
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 91, n)
    idx = np.arange(n)
    frame = pd.DataFrame({
        "file": [f"{a}_{i % 2}_{(i // 2) % 5}_{20170000000000000 + i}.jpg.chip.jpg" for i, a in zip(idx, ages)],
        "age": ages,
        "gender": np.where(idx % 2, "female", "male"),
        "ethnicity": ETH[(idx // 2) % 5],
        "sha256": [f"{i:064x}" for i in idx],
    })
    rows = []
    for g in range(dup_groups):
        src = frame.iloc[g * 7 % n]
        for k in range(1 + g % 3 + 1):  # 2..4 copies in all
            r = src.copy()
            r["file"] = src["file"].replace(".jpg.chip.jpg", f"{k}.jpg.chip.jpg")
            rows.append(r)
    if rows:
        frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def _fractions(split: pd.Series) -> dict:
    return split.value_counts(normalize=True).reindex(SPLITS, fill_value=0).to_dict()


def _assert_grouped(manifest, split):
    per_hash = pd.DataFrame({"sha256": manifest["sha256"].values, "split": split.values}).groupby("sha256")["split"]
    assert (per_hash.nunique() == 1).all(), "a sha256 landed in two splits"


def test_make_split_groups_duplicates():
    m = synthetic_manifest(600, seed=0, dup_groups=40)
    assert m["sha256"].duplicated().sum() > 60  # really has duplicate groups
    split = make_split(m, DataConfig(), seed=0)
    assert split.index.equals(m.index)
    assert split.notna().all() and set(split) == set(SPLITS)
    _assert_grouped(m, split)
    # a group counts once: every row of it follows the group's first file by name
    for seed in range(5):
        _assert_grouped(m, make_split(m, DataConfig(), seed=seed))


def test_make_split_fractions_large():
    m = synthetic_manifest(4000, seed=1)
    frac = _fractions(make_split(m, DataConfig(), seed=0))
    assert frac["train"] == pytest.approx(0.70, abs=0.01)
    assert frac["val"] == pytest.approx(0.15, abs=0.01)
    assert frac["test"] == pytest.approx(0.15, abs=0.01)


def test_make_split_custom_fractions():
    m = synthetic_manifest(4000, seed=2)
    cfg = DataConfig(split=SplitConfig(train=0.5, val=0.2, test=0.3))
    frac = _fractions(make_split(m, cfg, seed=0))
    assert frac["train"] == pytest.approx(0.5, abs=0.015)
    assert frac["val"] == pytest.approx(0.2, abs=0.015)
    assert frac["test"] == pytest.approx(0.3, abs=0.015)


def test_make_split_stratified():
    m = synthetic_manifest(4000, seed=3)
    split = make_split(m, DataConfig(), seed=0)
    for col in ("gender", "ethnicity"):
        table = pd.crosstab(m[col], split, normalize="index")
        assert (table["train"] - 0.70).abs().max() < 0.02, col


def test_make_split_seeded():
    m = synthetic_manifest(600, seed=4, dup_groups=20)
    a = make_split(m, DataConfig(), seed=0)
    b = make_split(m, DataConfig(), seed=0)
    c = make_split(m, DataConfig(), seed=1)
    pd.testing.assert_series_equal(a, b)
    assert (a != c).sum() > 50
    # the row order of the manifest does not matter, only its content
    shuffled = m.sample(frac=1, random_state=9)
    pd.testing.assert_series_equal(make_split(shuffled, DataConfig(), seed=0).sort_index(), a)


def test_tiny_strata_stay_in_train():
    m = synthetic_manifest(10, seed=5)  # 10 rows over 10 (gender, ethnicity) pairs: one row per stratum
    assert (make_split(m, DataConfig(), seed=0) == "train").all()


# --------------------------------------------------------------------------- a folder of ~300 images

@pytest.fixture(scope="module")
def folder300(tmp_path_factory):
    d = tmp_path_factory.mktemp("split") / "images"
    names = make_utk_folder(d, n=290, seed=11)
    # a few agreeing duplicate groups (kept once each by keep_first) and a conflicting one
    for i, name in enumerate(names[:6]):
        age, g, r, _ = name.split("_", 3)
        shutil.copyfile(d / name, d / f"{age}_{g}_{r}_{30170000000000000 + i}.jpg.chip.jpg")
    age, g, r, _ = names[10].split("_", 3)
    shutil.copyfile(d / names[10], d / f"{int(age) + 5}_{g}_{r}_30170000000000099.jpg.chip.jpg")
    return d


KEEP_FIRST = DataConfig(duplicates="keep_first")


def test_folder_split(folder300, tmp_path):
    p = prepare(folder300, KEEP_FIRST, work_root=tmp_path, progress=False)
    assert p.quality.n_files == 297
    assert len(p.manifest) == 290
    assert p.quality.counts["duplicate_agreeing"] == 12
    assert p.quality.counts["duplicate_conflicting"] == 2
    m = p.manifest
    assert m["split"].notna().all()
    _assert_grouped(m, m["split"])
    frac = _fractions(m["split"])
    # ~80 strata of ~4 images: per-stratum rounding costs a few percent at this size
    assert frac["train"] == pytest.approx(0.70, abs=0.05)
    assert frac["val"] == pytest.approx(0.15, abs=0.03)
    assert frac["test"] == pytest.approx(0.15, abs=0.03)
    csv_path, meta_path = split_paths(p.work_dir, 0)
    saved = pd.read_csv(csv_path)
    assert list(saved.columns) == ["file", "sha256", "split"]
    assert len(saved) == len(m)
    meta = json.loads(meta_path.read_text())
    assert meta["manifest_hash"] == p.data_hash
    assert meta["counts"]["total"] == m["split"].value_counts().reindex(SPLITS).to_dict()


def test_folder_split_seed(folder300, tmp_path):
    a = prepare(folder300, KEEP_FIRST, work_root=tmp_path / "a", progress=False)
    b = prepare(folder300, KEEP_FIRST, work_root=tmp_path / "b", progress=False)
    c = prepare(folder300, KEEP_FIRST, seed=3, work_root=tmp_path / "a", progress=False)
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    assert split_paths(a.work_dir, 0)[0].read_bytes() == split_paths(b.work_dir, 0)[0].read_bytes()
    assert split_paths(c.work_dir, 3)[0].exists()
    assert (a.manifest["split"] != c.manifest["split"]).sum() > 20


def test_load_or_make_split_reuses(tmp_path, monkeypatch):
    m = synthetic_manifest(400, seed=6)
    h = manifest_hash(m)
    cfg = DataConfig()
    first, meta1 = load_or_make_split(m, h, cfg, tmp_path)
    csv_path, meta_path = split_paths(tmp_path, 0)
    mtimes = (csv_path.stat().st_mtime_ns, meta_path.stat().st_mtime_ns)

    def boom(*a, **k):
        raise AssertionError("make_split called although a saved split exists")

    monkeypatch.setattr(split_mod, "make_split", boom)
    second, meta2 = load_or_make_split(m, h, cfg, tmp_path)
    pd.testing.assert_frame_equal(first, second)
    assert meta1 == meta2
    assert (csv_path.stat().st_mtime_ns, meta_path.stat().st_mtime_ns) == mtimes
    # a hand-edited CSV is what is used: it really is the saved file being read
    saved = pd.read_csv(csv_path)
    saved.loc[saved["file"] == m["file"][0], "split"] = "test" if first["split"][0] != "test" else "val"
    saved.to_csv(csv_path, index=False)
    third, _ = load_or_make_split(m, h, cfg, tmp_path)
    assert third["split"][0] != first["split"][0]


def test_load_or_make_split_refuses_changed_data(tmp_path):
    m = synthetic_manifest(400, seed=7)
    cfg = DataConfig()
    first, _ = load_or_make_split(m, manifest_hash(m), cfg, tmp_path)
    changed = m.copy()
    changed.loc[0, "age"] = int(changed.loc[0, "age"]) + 1
    with pytest.raises(AgefairError, match="--resplit") as ei:
        load_or_make_split(changed, manifest_hash(changed), cfg, tmp_path)
    assert "\n" not in str(ei.value)
    assert "split-seed0.csv" in str(ei.value)
    # another seed is another file: no conflict
    load_or_make_split(changed, manifest_hash(changed), cfg, tmp_path, seed=5)
    # resplit replaces the saved split
    new, meta = load_or_make_split(changed, manifest_hash(changed), cfg, tmp_path, resplit=True)
    assert meta["manifest_hash"] == manifest_hash(changed)
    assert json.loads(split_paths(tmp_path, 0)[1].read_text())["manifest_hash"] == manifest_hash(changed)
    again, _ = load_or_make_split(changed, manifest_hash(changed), cfg, tmp_path)
    pd.testing.assert_frame_equal(new, again)


def test_load_or_make_split_refuses_changed_fractions(tmp_path):
    m = synthetic_manifest(200, seed=8)
    load_or_make_split(m, manifest_hash(m), DataConfig(), tmp_path)
    other = DataConfig(split=SplitConfig(train=0.8, val=0.1, test=0.1))
    with pytest.raises(AgefairError, match="--resplit"):
        load_or_make_split(m, manifest_hash(m), other, tmp_path)
    out, meta = load_or_make_split(m, manifest_hash(m), other, tmp_path, resplit=True)
    assert meta["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}


def test_prepare_refuses_changed_folder(good_folder, tmp_path):
    work = tmp_path / "work"
    first = prepare(good_folder, DataConfig(), work_root=work, progress=False)
    # relabel one image: rename it with another age
    victim = sorted(good_folder.iterdir())[0]
    age, rest = victim.name.split("_", 1)
    victim.rename(victim.with_name(f"{int(age) + 1}_{rest}"))
    with pytest.raises(AgefairError, match="--resplit"):
        prepare(good_folder, DataConfig(), work_root=work, progress=False)
    again = prepare(good_folder, DataConfig(), work_root=work, resplit=True, progress=False)
    assert again.data_hash != first.data_hash
    assert again.split_meta["manifest_hash"] == again.data_hash
    assert len(again.manifest) == len(first.manifest)
