"""``python -m agefair.audit --table FILE``: a table of labels and predictions audited without images,
checked against the image-dataset audit of the same labels and predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from bad_input_helpers import cli, one_line_error
from conftest import make_utk_folder

SETTINGS = {"n_boot": 200, "min_group_size": 5, "gallery_k": 0, "rules": [
    {"metric": "mae", "max": 1000}, {"metric": "mae", "grouping": "ethnicity", "statistic": "worst_group", "max": 1000},
    {"metric": "dist", "max": 1000}]}
UTK_GROUPINGS = {"intersections": [["gender", "ethnicity"], ["age_bin", "ethnicity"]]}  # UTKFace's audit groupings


def predictions_csv(path, files, ages, bias, sd, seed):
    rng = np.random.default_rng(seed)
    pd.DataFrame({"file": files, "predicted_age": np.clip(ages + rng.normal(bias, sd, len(ages)), 0, 116)}
                 ).to_csv(path, index=False)


@pytest.fixture(scope="module")
def image_audit(tmp_path_factory):
    """An image-dataset audit of two models' predictions (no trained variant): the reference numbers."""
    root = tmp_path_factory.mktemp("table")
    files = make_utk_folder(root / "data", n=600, seed=11)
    ages = np.array([int(f.split("_")[0]) for f in files], float)
    for name, bias, sd, seed in (("a", 0.0, 4.0, 1), ("b", 2.0, 6.0, 2)):
        predictions_csv(root / f"{name}.csv", files, ages, bias, sd, seed)
    (root / "fair.yaml").write_text(yaml.safe_dump(SETTINGS))
    (root / "utk.yaml").write_text(yaml.safe_dump(UTK_GROUPINGS))
    return root


def run_image_audit(root, capsys):
    argv = ["--data", str(root / "data"), "--work", str(root / "work"), "--out", str(root / "images"),
            "--thresholds", str(root / "fair.yaml"), "--quiet"]
    for name in ("a", "b"):
        argv += ["--predictions", str(root / f"{name}.csv"), "--name", name]
    code, out, err = cli("audit", argv, capsys)
    assert code == 0, err
    return json.loads((root / "images" / "summary.json").read_text())


def run_table(root, table, capsys, *extra, out="tab"):
    argv = ["--table", str(table), "--thresholds", str(root / "fair.yaml"), "--out", str(root / out), "--quiet", *extra]
    return cli("audit", argv, capsys)


def numbers(summary: dict) -> dict:
    """What must not depend on where the predictions came from: every model's audit, the comparisons,
    the verdict and the threshold checks."""
    audits = {v: e["audit"] for v, e in summary["variants"].items()}
    return {"audits": audits, "comparisons": summary.get("comparisons"), "verdict": summary["verdict"],
            "thresholds": summary["thresholds"], "leaderboard": summary["leaderboard"]}


def assert_same(a, b, path="summary"):
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_a_table_audit_gives_the_numbers_of_the_image_audit(image_audit, capsys):
    reference = run_image_audit(image_audit, capsys)
    long = image_audit / "images" / "predictions.csv"  # the same labels and predictions, as a long table
    code, out, err = run_table(image_audit, long, capsys, "--dataset-config", str(image_audit / "utk.yaml"))
    assert code == 0, err
    table = json.loads((image_audit / "tab" / "summary.json").read_text())
    assert table["dataset"]["kind"] == "table" and table["split"] == "all"
    assert table["dataset"]["images_in_split"] == reference["dataset"]["images_in_split"]
    assert_same(numbers(reference)["audits"], numbers(table)["audits"])
    assert_same(numbers(reference)["comparisons"], numbers(table)["comparisons"])
    for key in ("verdict", "thresholds", "leaderboard"):
        assert_same(numbers(reference)[key], numbers(table)[key])

    # the same table in the wide layout: one pred_<model> column each, in a Parquet file
    frame = pd.read_csv(long)
    wide = frame.pivot(index="file", columns="variant", values="pred").add_prefix("pred_").reset_index()
    wide = frame.drop_duplicates("file")[["file", "age", "gender", "ethnicity"]].merge(wide, on="file")
    wide.to_parquet(image_audit / "wide.parquet")
    code, out, err = run_table(image_audit, image_audit / "wide.parquet", capsys, "--dataset-config",
                               str(image_audit / "utk.yaml"), out="wide")
    assert code == 0, err
    assert_same(numbers(reference)["audits"], numbers(json.loads((image_audit / "wide" / "summary.json").read_text()))["audits"])


def test_the_report_says_what_a_table_audit_skips(image_audit, capsys):
    long = image_audit / "images" / "predictions.csv"
    if not long.exists():
        run_image_audit(image_audit, capsys)
    code, out, err = run_table(image_audit, long, capsys, out="skips")
    assert code == 0, err
    html = (image_audit / "skips" / "report.html").read_text()
    assert 'id="skipped"' in html and "a table has no images" in html
    summary = json.loads((image_audit / "skips" / "summary.json").read_text())
    assert summary["provenance"]["reproduce"].startswith("python -m agefair.audit --table ")
    assert "--pred pred_a=a" in summary["provenance"]["reproduce"]


def test_a_table_with_age_groups_is_audited_with_interval_metrics(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 400
    lo = rng.choice([0, 10, 20, 30, 40, 50, 60, 70], n)
    groups = [f"{a}-{a + 9}" if a < 70 else "70+" for a in lo]
    table = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "age_group": groups,
                          "ethnicity": rng.choice(["north", "south"], n),
                          "pred_x": lo + rng.uniform(-5, 15, n), "pred_y": lo + rng.uniform(0, 10, n)})
    table.to_csv(tmp_path / "groups.csv", index=False)
    (tmp_path / "fair.yaml").write_text(yaml.safe_dump(SETTINGS))
    code, out, err = cli("audit", ["--table", str(tmp_path / "groups.csv"), "--thresholds", str(tmp_path / "fair.yaml"),
                                   "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dataset"]["labels"] == "interval" and set(summary["variants"]) == {"x", "y"}
    y = summary["variants"]["y"]["audit"]
    assert y["overall"]["in_group"]["value"] == pytest.approx(1.0)  # y always inside the labelled group
    assert set(y["groupings"]) >= {"ethnicity", "age_group"}


def test_intervals_kept_in_a_table_are_audited_for_coverage(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 2000
    age = rng.uniform(1, 80, n)
    pred = age + rng.normal(0, 5, n)
    table = pd.DataFrame({"file": [f"f{i}" for i in range(n)], "age": age.round(1), "ethnicity": rng.choice(["p", "q"], n),
                          "pred_m": pred, "lo_m": pred - 8.2, "hi_m": pred + 8.2, "coverage_m": 0.9})
    table.to_csv(tmp_path / "iv.csv", index=False)
    (tmp_path / "fair.yaml").write_text(yaml.safe_dump(SETTINGS))
    code, out, err = cli("audit", ["--table", str(tmp_path / "iv.csv"), "--thresholds", str(tmp_path / "fair.yaml"),
                                   "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 0, err
    iv = json.loads((tmp_path / "out" / "summary.json").read_text())["variants"]["m"]["audit"]["intervals"]
    report = iv["methods"]["marginal"]
    assert report["target"] == pytest.approx(0.9) and abs(report["overall"]["coverage"]["exact"]["value"] - 0.9) < 0.03
    assert set(report["groupings"]) >= {"ethnicity"} and "lo_m" not in json.dumps(iv["calibration"])


@pytest.mark.parametrize("table, extra, needles", [
    ("good", ["--runs", "runs"], ["--table", "--runs"]),
    ("good", ["--predictions", "x.csv"], ["--predictions"]),
    ("good", ["--split", "test"], ["--split test"]),
    ("good", ["--pred", "nope"], ["nope"]),
    ("good", ["--pred", "pred_a=z", "--pred", "pred_b=z"], ["z"]),
    ("good", ["--reference", "nobody"], ["nobody"]),
    ("missing", [], ["not found"]),
    ("binary", [], ["binary"]),
    ("nopred", [], ["no prediction column"]),
    ("nolabel", [], ["age"]),
    ("allbad", [], ["no usable row"]),
    ("badparquet", [], ["parquet"]),
    ("badcoverage", [], ["coverage_a"]),
])
def test_bad_tables_and_flags_are_one_line_errors(tmp_path, capsys, table, extra, needles):
    good = pd.DataFrame({"file": [f"f{i}" for i in range(40)], "age": range(40), "g": ["x", "y"] * 20,
                         "pred_a": range(40), "pred_b": range(1, 41)})
    files = {"good": good, "nopred": good.drop(columns=["pred_a", "pred_b"]), "nolabel": good.drop(columns=["age"]),
             "allbad": good.assign(age="old"), "badcoverage": good.assign(lo_a=0, hi_a=9, coverage_a=[0.9, 0.8] * 20)}
    path = tmp_path / f"{table}.csv"
    if table in files:
        files[table].to_csv(path, index=False)
    elif table == "binary":
        path.write_bytes(b"file,age\x00\x01")
    elif table == "badparquet":
        path = tmp_path / "t.parquet"
        path.write_bytes(b"PAR1 not really")
    code, out, err = cli("audit", ["--table", str(path), "--out", str(tmp_path / "out"), *extra], capsys)
    one_line_error(code, err, *needles)
    assert not (tmp_path / "out" / "summary.json").exists()
