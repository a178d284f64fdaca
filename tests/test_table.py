"""agefair.data.table: a table of labels and predictions read without images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.errors import AgefairError
from agefair.data.table import read_table

CFG = DataConfig()


def _write(tmp_path, frame: pd.DataFrame, name: str = "t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _one_line(path, match: str, **kw):
    with pytest.raises(AgefairError) as info:
        read_table(path, data_cfg=CFG, **kw)
    text = str(info.value)
    assert "\n" not in text and str(path) in text and match in text, text
    return text


def test_exact_ages_every_row_problem_counted(tmp_path):
    path = _write(tmp_path, pd.DataFrame({
        "id": ["a", "b", "c", "c", "d", "e", "f", "", "g", "g"],
        "age": ["30", "x", "40", "40", "200", "25", "7", "9", "50", "50"],
        "gender": ["M", "F", "F", "F", "M", "", "F", "M", "M", "F"],
        "pred_m1": ["31", "2", "41", "41", "3", "9", "abc", "1", "2", "2"],
        "pred_m2": [1, 2, 3, 3, 4, 5, 300, 1, 2, 2]}))
    t = read_table(path, data_cfg=CFG)
    assert t.labels == "exact" and t.format == "wide" and t.attributes == ["gender"]
    assert t.manifest["file"].tolist() == ["a", "c", "f"]
    assert t.manifest["age"].tolist() == [30, 40, 7] and set(t.manifest["split"]) == {"all"}
    d = t.quality["dropped"]
    assert (d["bad_age"], d["missing_attribute"], d["missing_id"], d["duplicate_agreeing"],
            d["duplicate_conflicting"]) == (2, 1, 1, 1, 2)
    assert t.quality["rows"] == 10 and t.quality["kept"] == 3
    np.testing.assert_array_equal(t.predictions["m1"], [31, 41, np.nan])
    np.testing.assert_array_equal(t.predictions["m2"], [1, 3, np.nan])
    assert t.quality["predictions"]["m1"]["not_a_number"] == 1 and t.quality["predictions"]["m2"]["out_of_range"] == 1
    assert set(t.groupings) == {"age_bin", "gender", "age_bin x gender"} and len(t.data_hash) == 64


def test_pred_specs_name_models(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"file": ["a", "b"], "age": [20, 30], "eth": ["x", "y"],
                                          "score": [21, 29], "pred_z": [1, 2]}))
    t = read_table(path, data_cfg=CFG, preds=["score=mine", "pred_z"])
    assert list(t.predictions) == ["mine", "z"] and t.attributes == ["eth"]


def test_age_groups(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"file": ["a", "b", "c", "d"], "age_group": ["20-29", "70+", "teen", "3-9"],
                                          "race": ["x", "y", "x", "y"], "pred_m": [25, 80, 15, 1]}))
    t = read_table(path, data_cfg=CFG)
    assert t.labels == "interval" and t.quality["dropped"]["bad_age_group"] == 1
    m = t.manifest
    assert m["age_group"].tolist() == ["20-29", "70+", "3-9"] and m["age_hi"].tolist()[:2] == [30, np.inf]
    assert "age_group" in t.groupings


def _long_frame(labels: str) -> pd.DataFrame:
    rows = []
    for variant, shift in (("baseline", 1.0), ("lds", -2.0)):
        for i in range(6):
            r = {"file": f"img{i}.jpg", "variant": variant, "pred": 20 + i + shift,
                 "gender": "Male" if i % 2 else "Female", "ethnicity": "White" if i < 3 else "Black", "row": i}
            if labels == "exact":
                r |= {"age": 20 + i, "age_bin": "20-29"}
            else:
                r |= {"age_group": "20-29", "age_lo": 20.0, "age_hi": 30.0}
            rows.append(r)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("labels", ["exact", "interval"])
def test_long_predictions_csv_round_trip(tmp_path, labels):
    long = _long_frame(labels)
    t = read_table(_write(tmp_path, long, "predictions.csv"), data_cfg=CFG)
    assert t.format == "long" and t.labels == labels and t.attributes == ["gender", "ethnicity"]
    assert t.manifest["file"].tolist() == [f"img{i}.jpg" for i in range(6)] and list(t.predictions) == ["baseline", "lds"]
    for variant, f in long.groupby("variant"):
        np.testing.assert_allclose(t.predictions[variant], f.sort_values("file")["pred"].to_numpy())
    if labels == "exact":
        np.testing.assert_array_equal(t.manifest["age"], np.arange(20, 26))
    only = read_table(tmp_path / "predictions.csv", data_cfg=CFG, preds=["lds"])
    assert list(only.predictions) == ["lds"]


def test_long_table_conflicting_labels_dropped(tmp_path):
    long = _long_frame("exact")
    long.loc[(long["variant"] == "lds") & (long["file"] == "img0.jpg"), "age"] = 50
    t = read_table(_write(tmp_path, long, "predictions.csv"), data_cfg=CFG)
    assert "img0.jpg" not in set(t.manifest["file"]) and t.quality["dropped"]["duplicate_conflicting"] == 2


def test_subject_column_kept(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"file": ["a", "b"], "age": [20, 30], "who": ["p1", ""], "g": ["x", "y"],
                                          "pred_m": [1, 2]}))
    t = read_table(path, data_cfg=CFG, dataset_cfg=DatasetConfig(columns={"subject": "who"}))
    assert t.manifest["subject"].tolist()[0] == "p1" and t.attributes == ["g"]


def test_bad_tables_are_one_line(tmp_path):
    ok = pd.DataFrame({"file": ["a", "b"], "age": [20, 30], "g": ["x", "y"], "pred_m": [1, 2]})
    _one_line(_write(tmp_path, ok, "a.csv"), "no column 'nope'", preds=["nope"])
    _one_line(_write(tmp_path, ok.drop(columns="pred_m"), "b.csv"), "no prediction column")
    _one_line(_write(tmp_path, ok.assign(other=[1, 2]), "c.csv"), "both named 'm'", preds=["pred_m", "other=m"])
    _one_line(_write(tmp_path, ok.drop(columns="age"), "d.csv"), "no 'age' or 'age_group' column")
    _one_line(_write(tmp_path, ok.assign(age=["x", "y"]), "e.csv"), "no usable row")
    _one_line(_write(tmp_path, ok.rename(columns={"file": "who"}), "f.csv"), "no id column")
    (tmp_path / "latin.csv").write_bytes("file,age,pred_m\ncaf\xe9,3,4\n".encode("latin-1"))
    _one_line(tmp_path / "latin.csv", "not UTF-8")
    (tmp_path / "empty.csv").write_bytes(b"")
    _one_line(tmp_path / "empty.csv", "empty")
    (tmp_path / "rep.csv").write_text("file,age,age,pred_m\na,1,1,1\n")
    _one_line(tmp_path / "rep.csv", "more than once")
    (tmp_path / "no-tables").mkdir()  # a folder is read as partitions (tests/test_table_source.py): it needs one
    _one_line(tmp_path / "no-tables", "no .parquet, .pq or .csv file in the folder")


def test_a_column_of_too_many_values_is_no_attribute(tmp_path):
    n = 500
    frame = pd.DataFrame({"file": [f"f{i}" for i in range(n)], "age": np.arange(n) % 80 + 1,
                          "g": ["a", "b"] * (n // 2), "note": [f"seen at {i}" for i in range(n)],
                          "pred_m": np.arange(n) % 80 + 3})
    path = _write(tmp_path, frame)
    text = _one_line(path, "column 'note' has 500 distinct values, too many for a sensitive attribute")
    assert "ignore:" in text
    t = read_table(path, data_cfg=CFG, dataset_cfg=DatasetConfig(ignore=["note"]))
    assert t.attributes == ["g"]
    named = read_table(path, data_cfg=CFG, dataset_cfg=DatasetConfig(columns={"attributes": ["g", "note"]}))
    assert named.attributes == ["g", "note"]  # named in the config: the user's choice


def test_many_rows_is_not_an_error(tmp_path):
    n = 50_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"file": np.arange(n).astype(str), "age": rng.integers(1, 90, n),
                          "g": rng.choice(["a", "b"], n), "pred_m": rng.normal(40, 10, n).round(2)})
    t = read_table(_write(tmp_path, frame), data_cfg=CFG)
    assert len(t.manifest) == n


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"file": ["a", "b", "c"], "age": [20.0, np.nan, 40.0], "g": ["x", "y", None],
                          "pred_m": [21.0, 30.0, np.nan]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    t = read_table(path, data_cfg=CFG)
    assert t.manifest["file"].tolist() == ["a"] and t.quality["dropped"]["bad_age"] == 1
    assert t.quality["dropped"]["missing_attribute"] == 1
    (tmp_path / "bad.parquet").write_text("not parquet")
    _one_line(tmp_path / "bad.parquet", "not a readable Parquet file")
