"""agefair.data.table_source: a table as one file, a folder of partitions (Parquet dataset, hive or not) or a
glob; every bad partition one line naming its file; what was read is counted."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import cli, one_line_error
from equality_helpers import differences, two_model_table

from agefair import audit
from agefair.core.config import DataConfig
from agefair.core.errors import AgefairError
from agefair.data.table import read_table
from agefair.data.table_source import BATCH_ROWS, read_partitions
from agefair.fairness.results.result import audit_numbers

pytest.importorskip("pyarrow")
CFG = DataConfig()


_frame = two_model_table


def _write_parts(frame: pd.DataFrame, folder, parts: int, fmt: str = "parquet") -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        path = folder / f"part-{k:02d}.{fmt}"
        piece = frame.iloc[chunk]
        piece.to_parquet(path, index=False) if fmt == "parquet" else piece.to_csv(path, index=False)
        paths.append(path)
    return paths


def _same_table(a, b) -> None:
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    assert a.predictions.keys() == b.predictions.keys()
    for k in a.predictions:
        np.testing.assert_array_equal(a.predictions[k], b.predictions[k])
    assert a.quality["dropped"] == b.quality["dropped"] and a.quality["kept"] == b.quality["kept"]


def test_folder_glob_and_file_read_the_same_rows(tmp_path):
    frame = _frame(5_000)
    frame.loc[7, "age"] = 300  # a bad row in a middle partition, counted as in one file
    frame.to_parquet(tmp_path / "one.parquet", index=False)
    _write_parts(frame, tmp_path / "ds", 16)
    pd.DataFrame(columns=frame.columns).astype(frame.dtypes).to_parquet(tmp_path / "ds" / "part-99.parquet")
    (tmp_path / "ds" / "_SUCCESS").write_text("")  # marker files are not partitions
    _write_parts(frame, tmp_path / "csv", 4, fmt="csv")
    one = read_table(tmp_path / "one.parquet", data_cfg=CFG)
    folder = read_table(tmp_path / "ds", data_cfg=CFG)
    globbed = read_table(str(tmp_path / "csv" / "part-*.csv"), data_cfg=CFG)
    _same_table(one, folder)
    _same_table(one, globbed)
    assert one.quality["dropped"]["bad_age"] == 1
    assert folder.quality["source"] == {"kind": "folder", "format": "parquet", "partitions": 17, "empty": 1,
                                        "rows": 5_000, "batches": 16, "hive_columns": []}
    assert globbed.quality["source"]["partitions"] == 4 and globbed.quality["source"]["format"] == "csv"
    assert one.quality["source"]["kind"] == "file"
    assert len({one.data_hash, folder.data_hash, globbed.data_hash}) == 3


def test_parquet_is_read_in_row_batches(tmp_path):
    frame = _frame(BATCH_ROWS * 2 + 10)
    frame.to_parquet(tmp_path / "big.parquet", index=False, row_group_size=BATCH_ROWS // 2)
    rows, counts, _, _ = read_partitions(tmp_path / "big.parquet")
    assert counts.batches >= 3 and counts.rows == len(frame)
    pd.testing.assert_frame_equal(rows, frame)


def test_hive_folder_names_are_columns(tmp_path):
    frame = _frame(2_000)
    for (g, e), part in frame.groupby(["gender", "ethnicity"]):
        folder = tmp_path / "hive" / f"gender={g}" / f"ethnicity={e}"
        folder.mkdir(parents=True)
        part.drop(columns=["gender", "ethnicity"]).to_parquet(folder / "data.parquet", index=False)
    t = read_table(tmp_path / "hive", data_cfg=CFG)
    assert t.quality["source"]["hive_columns"] == ["gender", "ethnicity"]
    assert t.quality["source"]["partitions"] == 6 and set(t.attributes) == {"gender", "ethnicity"}
    got = t.manifest.set_index("file").sort_index()
    want = frame.set_index("id").sort_index()
    assert (got["gender"] == want["gender"]).all() and (got["ethnicity"] == want["ethnicity"]).all()


def _one_line(spec, match: str) -> str:
    with pytest.raises(AgefairError) as info:
        read_table(spec, data_cfg=CFG)
    text = str(info.value)
    assert "\n" not in text and match in text, text
    return text


def test_bad_partitions_are_one_line_naming_the_file(tmp_path):
    frame = _frame(400)
    paths = _write_parts(frame, tmp_path / "corrupt", 4)
    paths[2].write_bytes(paths[2].read_bytes()[:100])  # truncated mid-file
    assert str(paths[2]) in _one_line(tmp_path / "corrupt", "not a readable Parquet file")
    paths = _write_parts(frame, tmp_path / "schema", 4)
    frame.iloc[:10].drop(columns="gender").to_parquet(paths[3], index=False)
    assert str(paths[3]) in _one_line(tmp_path / "schema", "columns differ from the first partition's")
    _write_parts(frame, tmp_path / "mixed", 2)
    frame.to_csv(tmp_path / "mixed" / "z.csv", index=False)
    _one_line(tmp_path / "mixed", "mixes CSV and Parquet")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("x")
    _one_line(tmp_path / "nothing", "no .parquet, .pq or .csv file in the folder")
    _one_line(str(tmp_path / "nope-*.parquet"), "no .parquet, .pq or .csv file matches")
    both = tmp_path / "both" / "gender=m"
    both.mkdir(parents=True)
    frame.to_parquet(both / "p.parquet", index=False)
    _one_line(tmp_path / "both", "both in the file and in its folder name")
    uneven = tmp_path / "uneven"
    (uneven / "gender=m").mkdir(parents=True)
    frame.drop(columns="gender").to_parquet(uneven / "gender=m" / "p.parquet", index=False)
    frame.to_parquet(uneven / "q.parquet", index=False)
    _one_line(uneven, "a hive dataset has the same keys at every level")
    odd = tmp_path / "odd"
    _write_parts(frame, odd / "table.parquet", 2)  # a folder named like a file (Spark's layout) is descended
    assert read_table(odd, data_cfg=CFG).quality["source"]["partitions"] == 2
    os.mkfifo(odd / "table.parquet" / "part-09.parquet")  # a pipe among the partitions: refused, never skipped
    _one_line(odd, "part-09.parquet: a FIFO (named pipe), not a table")
    empty = tmp_path / "empty"
    empty.mkdir()
    pd.DataFrame(columns=frame.columns).astype(frame.dtypes).to_parquet(empty / "e.parquet")
    _one_line(empty, "no usable row (the table has no rows)")


def test_bad_partition_exits_2_with_one_line(tmp_path, capsys):
    paths = _write_parts(_frame(400), tmp_path / "ds", 3)
    paths[1].write_text("not parquet")
    code, out, err = cli("audit", ["--table", str(tmp_path / "ds"), "--out", str(tmp_path / "out"), "--quiet"], capsys)
    one_line_error(code, err, f"{paths[1]}: not a readable Parquet file")
    assert not (tmp_path / "out").exists()


def _audit_each(tmp_path, specs, fairness_yaml: str) -> list[dict]:
    """summary.json of ``python -m agefair.audit --table SPEC`` for each spec, with that fairness config."""
    fair = tmp_path / "fairness.yaml"
    fair.write_text(fairness_yaml)
    summaries = []
    for spec in specs:
        out = tmp_path / f"out-{spec.stem}"
        assert audit.main(["--table", str(spec), "--out", str(out), "--thresholds", str(fair), "--quiet"]) in (0, 1)
        summaries.append(json.loads((out / "summary.json").read_text()))
    return summaries


def test_a_table_audited_whole_or_in_16_parquet_files_gives_the_same_numbers(tmp_path):
    n = 100_000
    frame = _frame(n, seed=3)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _write_parts(frame, tmp_path / "ds", 16)
    # fewer resamples: the equality does not depend on their number
    whole, parts = _audit_each(tmp_path, (tmp_path / "whole.parquet", tmp_path / "ds"),
                               "n_boot: 100\ncomparisons: {n_perm: 100}\nconformal: {enabled: false}\n")
    assert audit_numbers(whole) == audit_numbers(parts)  # to the last digit: the same rows in the same order
    assert whole["data"]["quality"]["manifest_hash"] == parts["data"]["quality"]["manifest_hash"]
    assert parts["data"]["quality"]["source"]["partitions"] == 16
    assert whole["data"]["quality"]["files_scanned"] == parts["data"]["quality"]["files_scanned"] == n


_close = differences


def test_the_poisson_bootstrap_follows_the_rows_not_their_order(tmp_path):
    """bootstrap: poisson draws each row's weights from its id: the same rows in another order (a hive
    dataset partitioned by ethnicity) give the same numbers up to the order of floating-point sums."""
    frame = _frame(6_000, seed=5)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    for e, part in frame.groupby("ethnicity"):
        (tmp_path / "hive" / f"ethnicity={e}").mkdir(parents=True)
        part.drop(columns="ethnicity").to_parquet(tmp_path / "hive" / f"ethnicity={e}" / "p.parquet", index=False)
    summaries = _audit_each(tmp_path, (tmp_path / "whole.parquet", tmp_path / "hive"),
                            "n_boot: 200\nbootstrap: poisson\ncomparisons: {n_perm: 200}\n")
    assert summaries[0]["provenance"]["audit_settings"]["bootstrap"] == "poisson"
    assert _close(audit_numbers(summaries[0]), audit_numbers(summaries[1])) == []
