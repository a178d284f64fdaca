"""Bad input classes 2-5: text files (one reader), labels CSVs, predictions files, CSV injection.

- one reader for every text file (agefair.core.io.read_text / read_csv_text): --config, --thresholds,
  --data-config, --dataset-config, labels CSVs and predictions CSVs all refuse a Latin-1 file, a binary
  file, an empty file, a folder and a FIFO with the same one-line message;
- labels CSVs: a repeated header column is an error naming it; one stray value in ``age`` keeps exact
  ages (the row is dropped and counted); image paths outside the CSV's folder are dropped and counted
  unless the dataset config allows them;
- predictions files: the labels themselves are refused, and so is a file matching fewer images than
  min_group_size;
- output CSVs: text cells that a spreadsheet would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from bad_input_helpers import cli, lenient_thresholds, make_csv_dataset, one_line_error, snapshot, write_checkpoint
from conftest import jpeg_bytes, make_utk_folder

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.io import write_csv_atomic
from agefair.data.csv_dataset import age_column_kind
from agefair.data.prepare import prepare

LATIN1 = "file,age,group\ncafé.jpg,30,a\n".encode("latin-1")
KINDS = {
    "latin1": (lambda p: p.write_bytes(LATIN1), "not UTF-8 text (byte 0xe9 at offset 18)"),
    "binary": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
               "binary file, not a text"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "folder": (lambda p: p.mkdir(), "a folder, not a"),
    "fifo": (lambda p: os.mkfifo(p), "a FIFO (named pipe), not a"),
}


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    """A labels-CSV dataset of 24 images, a good predictions file, lenient thresholds and a UTKFace folder."""
    root = tmp_path_factory.mktemp("ds")
    _, labels = make_csv_dataset(root / "data", n=24)
    pd.DataFrame({"file": labels["file"], "pred": labels["age"].astype(float) + 2.5}).to_csv(root / "pred.csv",
                                                                                             index=False)
    lenient_thresholds(root / "lenient.yaml")
    make_utk_folder(root / "utk", n=40)
    return root


def command_for(input_kind: str, bad: Path, ds: Path, out: Path) -> tuple[str, list[str]]:
    common = ["--work", str(ds / "work"), "--quiet"]
    audit = ["--out", str(out), "--split", "all", *common]
    return {
        "config": ("train", ["--variant", "baseline", "--config", str(bad), "--data", str(ds / "utk"), "--out",
                             str(out), *common]),
        "thresholds": ("audit", ["--thresholds", str(bad), "--data", str(ds / "data" / "labels.csv"), "--predictions",
                                 str(ds / "pred.csv"), *audit]),
        "data_config": ("eda", ["--data-config", str(bad), "--data", str(ds / "utk"), "--out", str(out), *common]),
        "dataset_config": ("audit", ["--dataset-config", str(bad), "--data", str(ds / "data" / "labels.csv"),
                                     "--thresholds", str(ds / "lenient.yaml"), "--predictions", str(ds / "pred.csv"),
                                     *audit]),
        "labels": ("audit", ["--data", str(bad), "--thresholds", str(ds / "lenient.yaml"), "--predictions",
                             str(ds / "pred.csv"), *audit]),
        "predictions": ("audit", ["--data", str(ds / "data" / "labels.csv"), "--thresholds", str(ds / "lenient.yaml"),
                                  "--predictions", str(bad), *audit]),
    }[input_kind]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("input_kind", ["config", "thresholds", "data_config", "dataset_config", "labels",
                                        "predictions"])
def test_every_text_input_gets_the_same_checks(input_kind, kind, ds, tmp_path, capsys):
    if input_kind == "labels" and kind == "folder":
        pytest.skip("a folder given as --data is a data folder, not a bad labels file")
    make, needle = KINDS[kind]
    bad = tmp_path / ("bad.csv" if input_kind in ("labels", "predictions") else "bad.yaml")
    make(bad)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")  # already written: must survive
    before = snapshot(out)
    module, argv = command_for(input_kind, bad, ds, out)
    code, _, err = cli(module, argv, capsys)
    one_line_error(code, err, str(bad), needle)
    assert snapshot(out) == before


def audit_csv(ds: Path, csv_path: Path, tmp_path: Path, capsys, *extra: str, thresholds: Path | None = None):
    return cli("audit", ["--data", str(csv_path), "--thresholds", str(thresholds or ds / "lenient.yaml"), "--out",
                         str(tmp_path / "out"), "--split", "all", "--work", str(tmp_path / "w"), "--quiet", *extra],
               capsys)


# --------------------------------------------------------------------------- labels CSVs

@pytest.mark.timeout(60)
def test_repeated_header_column_is_an_error_naming_it(ds, tmp_path, capsys):
    bad = tmp_path / "labels.csv"
    bad.write_text("file,age,sex,sex\nimg/0.jpg,30,f,m\n")
    code, _, err = audit_csv(ds, bad, tmp_path, capsys, "--predictions", str(ds / "pred.csv"))
    line = one_line_error(code, err, str(bad), "column 'sex' appears more than once")
    assert "sex.1" not in line


def test_one_stray_age_keeps_exact_ages_and_drops_the_row(tmp_path):
    csv_path, _ = make_csv_dataset(tmp_path / "d", n=12, extra_rows=[{"file": "img/0.jpg", "age": "unknown",
                                                                       "group": "a"}])
    p = prepare(csv_path, DataConfig(), work_root=tmp_path / "w", progress=False)
    assert p.labels == "exact"
    bad = p.quality.problems[p.quality.problems["problem"] == "bad_age"]
    assert list(bad["detail"]) == ["line 14: age 'unknown' not a number in 0..116"]
    assert len(p.manifest) == 12


@pytest.mark.parametrize("values, kind", [
    (["20", "30", "n/a"], "exact"), (["20", "30", "20-29"], "exact"), (["20-29", "70+", "30-39", "5"], "interval"),
    (["x", "y"], "exact"), ([], "exact"),
])
def test_age_column_is_decided_by_the_column_as_a_whole(values, kind):
    assert age_column_kind(pd.Series(values, dtype=str)) == kind


def test_image_paths_outside_the_csv_folder_are_dropped_and_counted(tmp_path):
    root = tmp_path / "d"
    (tmp_path / "secret.jpg").write_bytes(jpeg_bytes(np.random.default_rng(5), size=(40, 40)))
    outside = ["../secret.jpg", str(tmp_path / "secret.jpg"), "img/../../secret.jpg", "C:/x/secret.jpg"]
    csv_path, _ = make_csv_dataset(root, n=12, extra_rows=[{"file": f, "age": "40", "group": "b"} for f in outside])
    p = prepare(csv_path, DataConfig(), work_root=tmp_path / "w", progress=False)
    flagged = p.quality.problems[p.quality.problems["problem"] == "outside_folder"]
    assert sorted(flagged["file"]) == sorted(outside)
    assert p.quality_report["counts"]["outside_folder"] == 4
    assert not any("secret" in f for f in p.manifest["file"])
    # read only when the dataset config says so
    allowed = prepare(csv_path, DataConfig(), work_root=tmp_path / "w2", progress=False,
                      dataset_cfg=DatasetConfig(allow_paths_outside=True))
    assert "../secret.jpg" in set(allowed.manifest["file"]) or "img/../../secret.jpg" in set(allowed.manifest["file"])
    assert allowed.quality_report["counts"]["outside_folder"] == 0


# --------------------------------------------------------------------------- predictions files

@pytest.mark.timeout(60)
def test_labels_file_given_as_predictions_is_refused(ds, tmp_path, capsys):
    labels = ds / "data" / "labels.csv"
    code, _, err = audit_csv(ds, labels, tmp_path, capsys, "--predictions", str(labels))
    one_line_error(code, err, str(labels), "the audited labels file itself")
    copy = tmp_path / "copy.csv"
    shutil.copy(labels, copy)
    code, _, err = audit_csv(ds, labels, tmp_path, capsys, "--predictions", str(copy))
    one_line_error(code, err, str(copy), "every one of its 24 matched predictions (column 'age') equals")
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_predictions_matching_fewer_than_min_group_size_are_refused(ds, tmp_path, capsys):
    few = tmp_path / "few.csv"
    pd.read_csv(ds / "pred.csv").head(3).to_csv(few, index=False)
    strict = lenient_thresholds(tmp_path / "t.yaml", min_group_size=10)
    code, _, err = audit_csv(ds, ds / "data" / "labels.csv", tmp_path, capsys, "--predictions", str(few),
                             thresholds=strict)
    one_line_error(code, err, str(few), "only 3 of its rows match", "min_group_size 10")


# --------------------------------------------------------------------------- CSV injection

def test_write_csv_atomic_neutralises_formula_cells(tmp_path):
    frame = pd.DataFrame({"text": ["=HYPERLINK(\"http://x\")", "+1+2", "-cmd", "@SUM(A1)", "\tx", "\rx", "-3.5", "ok"],
                          "number": [-1.5, -2, 3, 0, 1, 2, 3, 4]})
    write_csv_atomic(tmp_path / "o.csv", frame)
    rows = list(csv.reader((tmp_path / "o.csv").open(newline="")))
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'+1+2", "'-cmd", "'@SUM(A1)", "'\tx", "'\rx",
                                        "-3.5", "ok"]
    assert [r[1] for r in rows[1:]] == ["-1.5", "-2.0", "3.0", "0.0", "1.0", "2.0", "3.0", "4.0"]


@pytest.mark.timeout(120)
def test_audit_predictions_csv_neutralises_names_and_attribute_values(tmp_path, capsys):
    evil = ("=HYPERLINK(\"http://evil\",\"x\")", "@SUM(1+1)")
    csv_path, labels = make_csv_dataset(tmp_path / "d", n=24, attribute_values=evil)
    (tmp_path / "d" / "+cmd.jpg").write_bytes(jpeg_bytes(np.random.default_rng(99), size=(40, 40)))
    labels.loc[len(labels)] = {"file": "+cmd.jpg", "age": "33", "group": evil[0]}
    labels.to_csv(csv_path, index=False)
    pd.DataFrame({"file": labels["file"], "pred": labels["age"].astype(float) + 1}).to_csv(tmp_path / "p.csv",
                                                                                           index=False)
    thresholds = lenient_thresholds(tmp_path / "t.yaml")
    code, out, err = cli("audit", ["--data", str(csv_path), "--thresholds", str(thresholds), "--predictions",
                                   str(tmp_path / "p.csv"), "--out", str(tmp_path / "r"), "--split", "all", "--work",
                                   str(tmp_path / "w"), "--quiet"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "r" / "predictions.csv").open(newline="")))
    assert {r["group"] for r in rows} == {"'" + v for v in evil}
    assert any(r["file"] == "'+cmd.jpg" for r in rows)
    assert not any(cell[:1] in "=+@" for r in rows for cell in r.values())
    assert all(float(r["age"]) >= 0 for r in rows)


@pytest.mark.timeout(60)
def test_predict_csv_output_neutralises_file_names(tmp_path, capsys, monkeypatch):
    model = write_checkpoint(tmp_path / "model.pt")
    names = make_utk_folder(tmp_path / "src", n=1)
    monkeypatch.chdir(tmp_path)
    shutil.copy(tmp_path / "src" / names[0], tmp_path / "=HYPERLINK(1).jpg")
    code, out, err = cli("predict", ["=HYPERLINK(1).jpg", "--model", str(model), "--detect", "never", "--format",
                                     "csv"], capsys)
    assert code == 0, err
    assert out.splitlines()[1].startswith("'=HYPERLINK(1).jpg,0,whole image,")


def test_dataset_config_option_is_documented():
    text = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text()
    assert "allow_paths_outside" in text
    assert yaml.safe_load("allow_paths_outside: yes") == {"allow_paths_outside": True}
