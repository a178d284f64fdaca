"""``python -m agefair.eda`` end to end, as a user runs it (subprocess)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def run_eda(*args, timeout=120):
    env = dict(os.environ)
    env.pop("AGEFAIR_DATA", None)
    env.pop("AGEFAIR_WORK", None)
    return subprocess.run([sys.executable, "-m", "agefair.eda", *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("agefair: error:"), lines[0]
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def test_eda_on_bad_folder(bad_folder, tmp_path):
    out = tmp_path / "out"
    proc = run_eda("--data", bad_folder.path, "--out", out, "--work", tmp_path / "work", "--no-png", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for files in bad_folder.flagged.values():
        for f in files:
            assert f in proc.stdout, f
    for name in ("data_quality.json", "data_quality.txt", "eda.html", "eda_counts.json", "split.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.png"))  # --no-png
    html = (out / "eda.html").read_text()
    assert "<html" in html and bad_folder.files["text"] in html

    quality = json.loads((out / "data_quality.json").read_text())
    n_kept = len(bad_folder.good) + 4  # + agreeing duplicate (one copy), grayscale, odd size, irregular name
    assert quality["files_kept"] == n_kept
    assert quality["files_scanned"] == len(bad_folder.all_files)
    for problem, files in bad_folder.flagged.items():
        assert quality["counts"][problem] == len(files), problem

    counts = json.loads((out / "eda_counts.json").read_text())
    assert counts["n"] == n_kept
    assert sum(counts["gender"].values()) == n_kept
    assert sum(counts["ethnicity"].values()) == n_kept
    assert sum(counts["age"].values()) == n_kept
    assert sum(sum(row.values()) for row in counts["age_bin_by_ethnicity"].values()) == n_kept

    split = json.loads((out / "split.json").read_text())
    assert sum(split["counts"]["total"].values()) == n_kept
    assert split["manifest_hash"] == quality["manifest_hash"]
    assert (tmp_path / "work").is_dir() and list((tmp_path / "work").glob("*/scan.csv"))


def test_eda_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_eda("--data", empty, "--out", tmp_path / "out", "--work", tmp_path / "work", "--no-png", "--quiet")
    assert_one_line_error(proc, empty)
    assert not (tmp_path / "out" / "eda.html").exists()


def test_eda_missing_folder(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    proc = run_eda("--data", missing, "--out", tmp_path / "out", "--work", tmp_path / "work", "--no-png", "--quiet")
    assert_one_line_error(proc, missing, "does not exist")


def test_eda_folder_without_usable_image(tmp_path):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    (d / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(b"")
    proc = run_eda("--data", d, "--out", tmp_path / "out", "--work", tmp_path / "work", "--no-png", "--quiet")
    assert_one_line_error(proc, d, "usable")


@pytest.mark.parametrize("yaml_text, key", [
    ("max_age: 116\nmax_agee: 3\n", "max_agee"),  # unknown key
    ("split:\n  train: 0.7\n  vall: 0.15\n", "split.vall"),  # unknown nested key
    ("max_age: old\n", "max_age"),  # wrong type
    ("split:\n  train: 0.8\n  val: 0.15\n  test: 0.15\n", "split"),  # fractions sum to 1.1
])
def test_eda_bad_config(good_folder, tmp_path, yaml_text, key):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml_text)
    proc = run_eda("--data", good_folder, "--data-config", cfg, "--out", tmp_path / "out", "--work",
                   tmp_path / "work", "--no-png", "--quiet")
    line = assert_one_line_error(proc, cfg)
    assert f": {key}: " in line, line
    if key == "split":
        assert "must be 1" in line
    if key.endswith(("agee", "vall")):
        assert "unknown key" in line
