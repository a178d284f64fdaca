"""The real UTKFace folder (one full scan per session; every other run reuses its cache)."""

import shutil
import time

import pandas as pd
import pytest

from agefair.core.config import DataConfig
from agefair.data import scan as scan_mod
from agefair.data.prepare import dataset_work_dir, prepare
from agefair.data.split import SPLITS, split_paths

pytestmark = pytest.mark.utkface


@pytest.fixture(scope="module")
def prepared_twice(utkface_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("utk_work")
    t0 = time.perf_counter()
    first = prepare(utkface_dir, DataConfig(), work_root=root, progress=False)
    t_first = time.perf_counter() - t0
    cache = first.work_dir / "scan.csv"
    stamps = {p: p.stat().st_mtime_ns for p in (cache, *split_paths(first.work_dir, 0))}

    def no_read(*a, **k):
        raise AssertionError("second prepare re-read an image although nothing changed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_mod, "scan_file", no_read)
        t0 = time.perf_counter()
        second = prepare(utkface_dir, DataConfig(), work_root=root, progress=False)
        t_second = time.perf_counter() - t0
    return {"first": first, "second": second, "root": root, "stamps": stamps, "t_first": t_first,
            "t_second": t_second}


def test_second_run_reuses_cache(prepared_twice):
    first, second = prepared_twice["first"], prepared_twice["second"]
    for path, mtime in prepared_twice["stamps"].items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was rewritten"
    pd.testing.assert_frame_equal(first.manifest, second.manifest)
    assert first.quality_report == second.quality_report
    assert first.split_meta == second.split_meta
    assert prepared_twice["t_second"] < prepared_twice["t_first"]


def test_quality_numbers(prepared_twice):
    p = prepared_twice["first"]
    report = p.quality_report
    assert report["counts"]["malformed_name"] == 3
    assert report["counts"]["irregular_name"] == 2
    assert report["files_kept"] + report["files_dropped"] == report["files_scanned"]
    assert report["files_kept"] == len(p.manifest)
    assert report["files_scanned"] > 20000
    assert p.manifest["sha256"].is_unique


def test_split_numbers(prepared_twice):
    m = prepared_twice["first"].manifest
    assert m["split"].notna().all()
    assert (m.groupby("sha256")["split"].nunique() == 1).all()
    frac = m["split"].value_counts(normalize=True)
    for name, want in zip(SPLITS, (0.70, 0.15, 0.15)):
        assert frac[name] == pytest.approx(want, abs=0.01), name
    # no content in two splits, even among the dropped duplicates' kept copies
    per_split = {s: set(m.loc[m["split"] == s, "sha256"]) for s in SPLITS}
    assert not (per_split["train"] & per_split["val"] or per_split["train"] & per_split["test"]
                or per_split["val"] & per_split["test"])


def test_split_csv_reproducible(prepared_twice, utkface_dir, tmp_path):
    first = prepared_twice["first"]
    # another work root, seeded with the scan cache only (so the images are not read a second time)
    other = dataset_work_dir(utkface_dir, tmp_path)
    shutil.copy2(first.work_dir / "scan.csv", other / "scan.csv")
    assert not split_paths(other, 0)[0].exists()
    again = prepare(utkface_dir, DataConfig(), work_root=tmp_path, progress=False)
    assert again.work_dir == other
    a, b = split_paths(first.work_dir, 0)[0], split_paths(other, 0)[0]
    assert a.read_bytes() == b.read_bytes()
