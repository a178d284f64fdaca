"""audit --save-state / --state: every model's grouped-metric state (per finest cell: counts and metric sums,
at the point and per keyed bootstrap replicate) saved, merged by addition and audited without the rows; the
states of a table's parts merged give the whole table's audit; every bad state is one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import cli, one_line_error
from equality_helpers import differences

from agefair import audit
from agefair.fairness.engine.cell_state import CellState
from agefair.fairness.results.state_files import STATE_JSON, load_state

FAIR = "n_boot: 200\ncomparisons: {n_perm: 100}\n"
KEYS = ("overall", "groupings", "age_bin_spread", "labels", "attributes")


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 90, n)
    eth = rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1])
    return pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "age": age, "gender": rng.choice(["m", "f"], n),
                         "ethnicity": eth, "pred_a": np.round(age + rng.normal(0, 5, n), 2),
                         "pred_b": np.round(age + rng.normal(0.5, 6, n) + 2 * (eth == "C"), 2)})


def _run(tmp_path, *args) -> int:
    fair = tmp_path / "fairness.yaml"
    fair.write_text(FAIR)
    return audit.main([*map(str, args), "--thresholds", str(fair), "--quiet"])


_close = differences


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 9,000-row table audited whole and in three parts, each with --save-state."""
    tmp = tmp_path_factory.mktemp("state")
    frame = _table(9_000)
    frame.to_parquet(tmp / "whole.parquet", index=False)
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(tmp / f"part{k}.parquet", index=False)
    for name in ("whole", "part0", "part1", "part2"):
        assert _run(tmp, "--table", tmp / f"{name}.parquet", "--out", tmp / f"out-{name}",
                    "--save-state", tmp / f"state-{name}") in (0, 1)
    return tmp


def _grouped(doc: dict, name: str) -> dict:
    return {k: doc[k] for k in KEYS if k in doc}


def test_merged_states_of_the_parts_give_the_whole_tables_grouped_metrics(saved, capsys):
    whole = json.loads((saved / "out-whole" / "summary.json").read_text())
    assert whole["provenance"]["audit_settings"]["bootstrap"] == "poisson"  # --save-state draws keyed weights
    for order in (("part0", "part1", "part2"), ("part2", "part0", "part1")):
        out = saved / f"out-merged-{order[0]}"
        assert _run(saved, "--state", *(saved / f"state-{p}" for p in order), "--out", out) == 0
        merged = json.loads((out / "state_audit.json").read_text())
        assert merged["rows"] == 9_000 and len(merged["sources"]) == 3
        assert merged["models"]["a"]["rows"] == whole["variants"]["a"]["coverage"]["predicted"]
        for name in ("a", "b"):
            assert _close(_grouped(whole["variants"][name]["audit"], name),
                          _grouped(merged["models"][name]["audit"], name)) == []
    printed = capsys.readouterr().out
    assert "audited 3 saved state(s), 3 source(s), 9,000 rows" in printed and "wrote " in printed


def test_a_state_holds_cells_not_rows(saved):
    meta = json.loads((saved / "state-whole" / STATE_JSON).read_text())
    assert meta["format"] == "agefair-audit-state" and meta["version"] == 1 and meta["bootstrap"] == "poisson"
    assert [m["name"] for m in meta["models"]] == ["a", "b"] and meta["models"][0]["rows"] > 8_500
    cells = pd.read_parquet(saved / "state-whole" / "cells-0.parquet")
    assert len(cells) < 100 and "id" not in cells.columns  # age bins x gender x ethnicity, no row ids
    blob = b"".join(p.read_bytes() for p in (saved / "state-whole").iterdir())
    assert b"r0-1" not in blob  # no row id anywhere in the folder
    state = load_state(saved / "state-whole").states["a"]
    assert state.boot.shape == (200, len(cells), 5) and state.n_rows == meta["models"][0]["rows"]


def test_cell_states_merge_cells_only_one_of_them_holds():
    a = CellState.of_rows(pd.DataFrame({"g": ["x", "x", "y"]}), {"v": np.array([1.0, 2.0, 3.0])}, n_boot=4, seed=0,
                          scheme="poisson", keys=np.arange(3, dtype=np.uint64))
    b = CellState.of_rows(pd.DataFrame({"g": ["z", "y"]}), {"v": np.array([5.0, 7.0])}, n_boot=4, seed=0,
                          scheme="poisson", keys=np.arange(3, 5, dtype=np.uint64))
    m = a.merge(b)
    assert list(m.labels["g"]) == ["x", "y", "z"]
    np.testing.assert_array_equal(m.point, [[2, 3], [2, 10], [1, 5]])
    np.testing.assert_array_equal(m.grouped([]).point, [[5, 18]])
    with pytest.raises(ValueError, match="4 and 2 bootstrap replicates"):
        a.merge(CellState.of_rows(pd.DataFrame({"g": ["x"]}), {"v": np.ones(1)}, n_boot=2, seed=0))


def test_a_state_audit_keeps_the_reports_already_in_its_folder(saved):
    out = saved / "out-whole"
    before = (out / "summary.json").read_text()
    assert _run(saved, "--state", saved / "state-whole", "--out", out) == 0
    assert (out / "summary.json").read_text() == before and (out / "state_audit.json").is_file()


def _broken(saved, tmp_path, name: str):
    import shutil

    folder = tmp_path / name
    shutil.copytree(saved / "state-part0", folder)
    return folder


def test_bad_states_are_one_line(saved, tmp_path, capsys):
    def state_line(*folders, needle):
        code, _, err = cli("audit", ["--state", *map(str, folders), "--out", str(tmp_path / "o")], capsys)
        one_line_error(code, err, needle)
        assert not (tmp_path / "o").exists()

    state_line(tmp_path / "nowhere", needle="not a state folder")
    (tmp_path / "empty").mkdir()
    state_line(tmp_path / "empty", needle=f"{tmp_path / 'empty' / STATE_JSON}: missing")
    bad = _broken(saved, tmp_path, "version")
    meta = json.loads((bad / STATE_JSON).read_text())
    (bad / STATE_JSON).write_text(json.dumps(meta | {"version": 9}))
    state_line(bad, needle="state format version 9")
    bad = _broken(saved, tmp_path, "notjson")
    (bad / STATE_JSON).write_text("{oops")
    state_line(bad, needle="not a readable state")
    bad = _broken(saved, tmp_path, "truncated")
    (bad / "boot-1.npy").write_bytes((bad / "boot-1.npy").read_bytes()[:500])
    state_line(bad, needle="model b's files are not readable")
    bad = _broken(saved, tmp_path, "missing")
    (bad / "sums-0.npy").unlink()
    state_line(bad, needle="sums-0.npy: missing from the state folder")
    bad = _broken(saved, tmp_path, "shape")
    np.save(bad / "sums-0.npy", np.zeros((3, 2)))
    state_line(bad, needle="do not fit")
    bad = _broken(saved, tmp_path, "seed")
    (bad / STATE_JSON).write_text(json.dumps(json.loads((bad / STATE_JSON).read_text()) | {"seed": 5}))
    state_line(saved / "state-part1", bad, needle="seed 5 differs from the first state's 0")
    state_line(saved / "state-part0", saved / "state-part0", needle="holds rows already merged")


def test_bad_state_flags_are_one_line(saved, tmp_path, capsys):
    table = saved / "part0.parquet"
    code, _, err = cli("audit", ["--state", str(saved / "state-part0"), "--table", str(table)], capsys)
    one_line_error(code, err, "--state audits saved states without rows: leave out --table")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, err = cli("audit", ["--table", str(table), "--out", str(tmp_path / "o"), "--save-state",
                                 str(tmp_path / "mine")], capsys)
    one_line_error(code, err, "--save-state would replace a folder that holds other files")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not (tmp_path / "o").exists()
    fair = tmp_path / "multinomial.yaml"
    fair.write_text("bootstrap: vectorized\n")
    code, _, err = cli("audit", ["--table", str(table), "--out", str(tmp_path / "o"), "--save-state",
                                 str(tmp_path / "s"), "--thresholds", str(fair)], capsys)
    one_line_error(code, err, "--save-state needs the keyed (Poisson) bootstrap")


def _messy(n: int) -> pd.DataFrame:
    """A table with bad rows and repeated ids, some in other batches than their first copy."""
    frame = _table(n, seed=7)
    frame.loc[5, "age"] = 500  # bad_age
    frame.loc[6, "ethnicity"] = ""  # missing_attribute
    frame.loc[7, "pred_a"] = -3  # out of range for a only
    agreeing = frame.iloc[[10, 11, 4_000]].copy()  # copies agreeing, after the first batch
    conflicting = frame.iloc[[20, 3_500]].copy().assign(pred_b=1.0)  # copies that differ: every copy dropped
    return pd.concat([frame, agreeing, conflicting], ignore_index=True)


def test_a_table_streamed_into_its_state_gives_the_full_audits_grouped_metrics(tmp_path, monkeypatch, capsys):
    import agefair.data.table_source as source

    frame = _messy(12_000)
    (tmp_path / "ds").mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(tmp_path / "ds" / f"p{k}.parquet", index=False)
    assert _run(tmp_path, "--table", tmp_path / "ds", "--out", tmp_path / "full", "--save-state", tmp_path / "s1") in (0, 1)
    monkeypatch.setattr(source, "BATCH_ROWS", 1_500)  # 9 row batches
    assert _run(tmp_path, "--table", tmp_path / "ds", "--state-only", "--out", tmp_path / "stream",
                "--save-state", tmp_path / "s2") == 0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    streamed = json.loads((tmp_path / "stream" / "state_audit.json").read_text())
    for name in ("a", "b"):
        assert streamed["models"][name]["rows"] == full["variants"][name]["coverage"]["predicted"]
        assert _close(_grouped(full["variants"][name]["audit"], name),
                      _grouped(streamed["models"][name]["audit"], name)) == []
    source_info = streamed["sources"][0]
    assert source_info["read"]["batches"] == 9 and source_info["read"]["partitions"] == 3
    assert source_info["dropped"] == {"bad_age": 1, "missing_attribute": 1, "duplicate_agreeing": 3,
                                      "duplicate_conflicting": 4}
    assert source_info["rows"] == full["data"]["quality"]["files_kept"]
    assert not (tmp_path / "stream" / "summary.json").exists()
    code, _, err = cli("audit", ["--state", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "o")],
                       capsys)  # the same table, in memory and streamed: its rows merged twice
    one_line_error(code, err, "holds rows already merged")


def test_state_only_flags_are_one_line(saved, tmp_path, capsys):
    table = str(saved / "part0.parquet")
    for args, needle in ((["--state-only"], "--state-only reads a table batch by batch into its state: give --table"),
                         (["--table", table, "--state-only", "--engine", "dask"], "leave out --engine dask"),
                         (["--state", str(saved / "state-part0"), "--state-only"], "give one of them")):
        code, _, err = cli("audit", [*args, "--out", str(tmp_path / "o")], capsys)
        one_line_error(code, err, needle)
    long = tmp_path / "predictions.csv"
    pd.DataFrame({"file": ["a", "b"], "variant": ["m", "m"], "age": [20, 30], "pred": [21, 29]}).to_csv(long, index=False)
    code, _, err = cli("audit", ["--table", str(long), "--state-only", "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "a previous audit's predictions table (variant, pred) is audited whole")
    assert not (tmp_path / "o").exists()


def test_a_bad_partition_while_streaming_is_one_line_and_an_empty_one_is_counted(tmp_path, capsys):
    frame = _table(3_000, seed=2)
    (tmp_path / "ds").mkdir()
    frame.iloc[:0].to_parquet(tmp_path / "ds" / "a-empty.parquet", index=False)
    frame.to_parquet(tmp_path / "ds" / "b.parquet", index=False)
    (tmp_path / "ds" / "c.parquet").write_bytes(b"junk")
    args = ["--table", str(tmp_path / "ds"), "--state-only", "--out", str(tmp_path / "o")]
    code, _, err = cli("audit", args, capsys)
    one_line_error(code, err, f"{tmp_path / 'ds' / 'c.parquet'}: not a readable Parquet file")
    assert not (tmp_path / "o").exists()
    (tmp_path / "ds" / "c.parquet").unlink()
    assert _run(tmp_path, *args) == 0
    read = json.loads((tmp_path / "o" / "state_audit.json").read_text())["sources"][0]["read"]
    assert read["partitions"] == 2 and read["empty"] == 1 and read["rows"] == 3_000
