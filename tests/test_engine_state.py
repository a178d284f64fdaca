"""The keyed engine as mergeable state (agefair.fairness.engine.state, .keyed_kernel, .executor): the fused
draw gives the same weights as keyed_draws, its sums those of the materialised product; blocks of units
mapped and merged by addition give the same bits wherever they run (in process or on Dask); a task whose
worker dies is retried, one that keeps failing is one line."""

from __future__ import annotations

import json
import os

import numba
import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import cli, one_line_error
from equality_helpers import two_model_table
from scipy import sparse

from agefair import audit
from agefair.core.errors import AgefairError
from agefair.fairness.engine import executor
from agefair.fairness.engine.keyed_draws import (
    BOOT_STREAM,
    POISSON_TABLE,
    SWAP_STREAM,
    _blocks,
    keyed_poisson,
    keyed_swaps,
    unit_keys,
)
from agefair.fairness.engine.keyed_kernel import keyed_block_sums
from agefair.fairness.engine.state import blocks_of, keyed_sums, map_block
from agefair.fairness.results.result import audit_numbers


def _design(n: int, cells: int = 30, values: int = 3, seed: int = 0) -> sparse.csr_matrix:
    """(n x cells * (1 + values)) per-unit sums: each unit in one cell, a count and ``values`` values."""
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, cells, n)
    k = 1 + values
    v = np.column_stack([np.ones(n), rng.normal(5, 3, (n, values))])
    return sparse.csr_matrix((v.ravel(), (np.repeat(np.arange(n), k), (cell[:, None] * k + np.arange(k)).ravel())),
                             shape=(n, cells * k))


def test_the_fused_draw_gives_keyed_draws_weights_and_swaps_bit_for_bit():
    keys = unit_keys([f"row{i}" for i in range(3_000)])
    eye = sparse.identity(len(keys), format="csr")
    cut = sum(int(np.isnan(POISSON_TABLE[(h >> np.uint64(48)).astype(np.intp)]).sum())
              for _, h in _blocks(keys, 11, BOOT_STREAM, 7, 40))
    assert cut > 0  # the draws include buckets a CDF threshold cuts (resolved with more bits)
    np.testing.assert_array_equal(keyed_block_sums(eye, keys, 11, BOOT_STREAM, 7, 40), keyed_poisson(keys, 11, 7, 40))
    np.testing.assert_array_equal(keyed_block_sums(eye, keys, 11, SWAP_STREAM, 7, 40, swap=True),
                                  keyed_swaps(keys, 11, 7, 40))


def test_fused_sums_equal_the_product_of_the_weights_and_do_not_depend_on_threads():
    x = _design(20_000)
    keys = unit_keys(np.arange(20_000))
    got = keyed_block_sums(x, keys, 3, BOOT_STREAM, 0, 37)  # 37: groups of 16 replicates and a remainder
    np.testing.assert_allclose(got, (x.T @ keyed_poisson(keys, 3, 0, 37).T).T, rtol=1e-12)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = keyed_block_sums(x, keys, 3, BOOT_STREAM, 0, 37)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got, one)


def test_keyed_sums_are_the_blocks_mapped_and_added_in_order():
    x, keys = _design(10_000), unit_keys(np.arange(10_000))
    total = keyed_sums(x, keys, seed=5, n=50, block=3_000)
    parts = [map_block(xb, kb, seed=5, stream=BOOT_STREAM, n=50, swap=False) for xb, kb in blocks_of(x, keys, 3_000)]
    assert len(parts) == 4
    np.testing.assert_array_equal(total, ((parts[0] + parts[1]) + parts[2]) + parts[3])
    whole = keyed_sums(x, keys, seed=5, n=50, block=10_000)  # one block: equal to rounding only
    np.testing.assert_allclose(total, whole, rtol=1e-12)
    # a unit's draws follow its key: the units in another order give the same sums, to rounding
    order = np.random.default_rng(1).permutation(10_000)
    np.testing.assert_allclose(keyed_sums(x[order], keys[order], seed=5, n=50), whole, rtol=1e-12)


def _die_once(marker: str, value: int) -> int:
    """A task that kills its worker process the first time it runs (``marker`` not there yet)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return value * 2


def _always_fail(value: int) -> int:
    raise ValueError(f"bad block {value}")


@pytest.fixture(scope="module")
def dask_executor():
    with executor.dask_engine(workers=2) as ex:
        yield ex


def test_a_task_whose_worker_dies_is_retried(dask_executor, tmp_path):
    marker = str(tmp_path / "died")
    assert list(dask_executor.map(_die_once, [(marker, 1), (marker, 2)])) == [2, 4]
    assert os.path.exists(marker)


def test_a_task_that_keeps_failing_is_one_line(dask_executor):
    with pytest.raises(AgefairError, match=r"dask: block 1 of 1 failed after 2 retries \(ValueError: bad block 7\)"):
        list(dask_executor.map(_always_fail, [(7,)]))


def _table(n: int, seed: int = 3) -> pd.DataFrame:
    return two_model_table(n, seed)


def test_in_memory_16_parquet_files_and_dask_give_the_same_numbers(tmp_path):
    n = 100_000
    frame = _table(n)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    (tmp_path / "ds").mkdir()
    for k, rows in enumerate(np.array_split(np.arange(n), 16)):
        frame.iloc[rows].to_parquet(tmp_path / "ds" / f"part-{k:02d}.parquet", index=False)
    fair = tmp_path / "fairness.yaml"
    fair.write_text("n_boot: 100\nbootstrap: poisson\ncomparisons: {n_perm: 100}\n")
    runs = {"whole": [str(tmp_path / "whole.parquet")], "parts": [str(tmp_path / "ds")],
            "dask": [str(tmp_path / "ds"), "--engine", "dask", "--workers", "2"]}
    summaries = {}
    for name, args in runs.items():
        out = tmp_path / f"out-{name}"
        assert audit.main(["--table", *args, "--out", str(out), "--thresholds", str(fair), "--quiet"]) in (0, 1)
        summaries[name] = json.loads((out / "summary.json").read_text())
    assert audit_numbers(summaries["whole"]) == audit_numbers(summaries["parts"]) == audit_numbers(summaries["dask"])
    assert summaries["dask"]["provenance"]["engine"] == "dask (LocalCluster of 2, 2 workers)"
    assert summaries["whole"]["provenance"]["engine"] == "in-process"


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "2"], "--workers go with --engine dask"),
    (["--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
     "--workers starts a local cluster, --scheduler uses an existing one: give one of them"),
    (["--engine", "dask", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
])
def test_engine_flags_are_checked(tmp_path, capsys, args, message):
    _table(300).to_parquet(tmp_path / "t.parquet", index=False)
    code, _, err = cli("audit", ["--table", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1


def test_dask_with_the_multinomial_draw_or_no_scheduler_is_one_line(tmp_path, capsys):
    _table(300).to_parquet(tmp_path / "t.parquet", index=False)
    fair = tmp_path / "fairness.yaml"
    fair.write_text("bootstrap: vectorized\n")
    base = ["--table", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "o"), "--engine", "dask"]
    code, _, err = cli("audit", [*base, "--thresholds", str(fair)], capsys)
    one_line_error(code, err, "--engine dask needs the keyed (Poisson) bootstrap")
    code, _, err = cli("audit", [*base, "--scheduler", "tcp://127.0.0.1:9"], capsys)
    one_line_error(code, err, "tcp://127.0.0.1:9: no Dask scheduler answered")
    assert not (tmp_path / "o").exists()


def test_an_existing_scheduler_gives_the_in_process_numbers(dask_executor, tmp_path):
    _table(20_000, seed=4).to_parquet(tmp_path / "t.parquet", index=False)
    fair = tmp_path / "fairness.yaml"
    fair.write_text("n_boot: 50\nbootstrap: poisson\ncomparisons: {n_perm: 50}\n")
    address = dask_executor.client.scheduler.address
    summaries = []
    for k, extra in enumerate(([], ["--engine", "dask", "--scheduler", address])):
        out = tmp_path / f"out{k}"
        assert audit.main(["--table", str(tmp_path / "t.parquet"), "--out", str(out), "--thresholds", str(fair),
                           "--quiet", *extra]) in (0, 1)
        summaries.append(json.loads((out / "summary.json").read_text()))
    assert audit_numbers(summaries[0]) == audit_numbers(summaries[1])
    assert summaries[1]["provenance"]["engine"] == f"dask (scheduler {address}, 2 workers)"
