"""Bad input class 1: what is not a regular file (FIFOs, sockets, devices, broken and looping symbolic links).

One walker (agefair.data.files.walk, over agefair.core.io.special_file_reason) serves the UTKFace scan,
the labels-CSV image check and predict's file collection: such entries are skipped, named (the
data-quality report's ``not_regular_file``; a note line in predict) and never opened. A FIFO given
directly as an input file is a one-line error. Every test that could hang on a FIFO has a timeout.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from bad_input_helpers import cli, make_csv_dataset, one_line_error, snapshot, write_checkpoint
from conftest import make_utk_folder

from agefair.core.config import DataConfig
from agefair.data.files import walk
from agefair.data.prepare import prepare


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("model") / "model.pt")


def add_specials(folder: Path, monkeypatch) -> dict[str, str]:
    """A FIFO, a socket, a link to a device, a broken link, a link loop and a link to a parent folder in
    ``folder``: name -> the reason the walker gives."""
    os.mkfifo(folder / "pipe_1_0_0_20170101000000001.jpg.chip.jpg")
    monkeypatch.chdir(folder)  # a socket path must be short: bind it by its relative name
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock_1_0_0_2.jpg.chip.jpg")
    sock.close()
    os.symlink("/dev/null", folder / "dev_1_0_0_3.jpg.chip.jpg")
    os.symlink(folder / "gone.jpg", folder / "broken_1_0_0_4.jpg.chip.jpg")
    os.symlink("loop_1_0_0_5.jpg.chip.jpg", folder / "loop_1_0_0_5.jpg.chip.jpg")
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")  # a link back up the tree: not followed
    return {"pipe_1_0_0_20170101000000001.jpg.chip.jpg": "a FIFO (named pipe)",
            "sock_1_0_0_2.jpg.chip.jpg": "a socket", "dev_1_0_0_3.jpg.chip.jpg": "a device",
            "broken_1_0_0_4.jpg.chip.jpg": "broken symbolic link", "loop_1_0_0_5.jpg.chip.jpg": "symbolic link loop"}


@pytest.mark.timeout(60)
def test_walker_skips_and_names_what_is_not_a_regular_file(tmp_path, monkeypatch):
    names = make_utk_folder(tmp_path / "d", n=3)
    specials = add_specials(tmp_path / "d", monkeypatch)
    found = walk(tmp_path / "d")
    assert found.files == names
    assert dict(found.skipped) == specials


@pytest.mark.timeout(60)
def test_fifo_in_a_utkface_folder_does_not_hang_eda(tmp_path, capsys):
    """The FIFO is named in the data-quality report as not_regular_file; eda finishes (exit 0)."""
    data = tmp_path / "faces"
    make_utk_folder(data, n=40)
    os.mkfifo(data / "30_0_0_20170101999999999.jpg.chip.jpg")
    code, out, err = cli("eda", ["--data", str(data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "r"),
                                 "--no-png", "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "data_quality.json").read_text())
    assert report["counts"]["not_regular_file"] == 1
    assert report["files_kept"] == 40
    [row] = [p for p in report["problems"] if p["problem"] == "not_regular_file"]
    assert row["file"] == "30_0_0_20170101999999999.jpg.chip.jpg" and row["detail"] == "a FIFO (named pipe)"
    assert "not_regular_file" in (tmp_path / "r" / "data_quality.txt").read_text()


@pytest.mark.timeout(60)
def test_sockets_devices_and_bad_links_in_a_data_folder_are_dropped_and_named(tmp_path, monkeypatch):
    data = tmp_path / "faces"
    make_utk_folder(data, n=40)
    specials = add_specials(data, monkeypatch)
    p = prepare(data, DataConfig(), work_root=tmp_path / "w", progress=False)
    problems = p.quality.problems
    flagged = problems[problems["problem"] == "not_regular_file"]
    assert dict(zip(flagged["file"], flagged["detail"])) == specials
    assert len(p.manifest) == 40 and p.quality_report["files_scanned"] == 45
    again = prepare(data, DataConfig(), work_root=tmp_path / "w", progress=False)  # through the scan cache
    assert again.quality.counts["not_regular_file"] == 5


@pytest.mark.timeout(60)
def test_labels_csv_naming_a_fifo_or_a_loop_drops_the_row(tmp_path):
    csv, _ = make_csv_dataset(tmp_path / "ds", n=12, extra_rows=[{"file": "img/pipe.jpg", "age": "30", "group": "a"},
                                                                 {"file": "img/loop.jpg", "age": "30", "group": "a"}])
    os.mkfifo(tmp_path / "ds" / "img" / "pipe.jpg")
    os.symlink("loop.jpg", tmp_path / "ds" / "img" / "loop.jpg")
    p = prepare(csv, DataConfig(), work_root=tmp_path / "w", progress=False)
    problems = p.quality.problems
    flagged = problems[problems["problem"] == "not_regular_file"]
    assert sorted(flagged["file"]) == ["img/loop.jpg", "img/pipe.jpg"]
    assert any("FIFO" in d for d in flagged["detail"]) and any("loop" in d for d in flagged["detail"])
    assert len(p.manifest) == 12


@pytest.mark.timeout(60)
def test_predict_on_a_folder_notes_what_it_skipped(tmp_path, model_file, capsys):
    make_utk_folder(tmp_path / "pics", n=2)
    os.mkfifo(tmp_path / "pics" / "pipe.jpg")
    os.symlink("loop.jpg", tmp_path / "pics" / "loop.jpg")
    code, out, err = cli("predict", [str(tmp_path / "pics"), "--model", str(model_file), "--detect", "never",
                                     "--format", "csv"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"agefair: {tmp_path / 'pics' / 'pipe.jpg'}: skipped: a FIFO (named pipe)" in err
    assert f"agefair: {tmp_path / 'pics' / 'loop.jpg'}: skipped: symbolic link loop" in err
    assert len(out.strip().splitlines()) == 3  # header + the two images


@pytest.mark.timeout(60)
def test_predict_fifo_given_directly_is_one_line_error(tmp_path, model_file, capsys):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "out.csv").write_text("old\n")
    before = snapshot(tmp_path)
    code, _, err = cli("predict", [str(tmp_path / "pipe.jpg"), "--model", str(model_file), "--out",
                                   str(tmp_path / "out.csv")], capsys)
    one_line_error(code, err, str(tmp_path / "pipe.jpg"), "FIFO")
    assert snapshot(tmp_path) == before


@pytest.mark.timeout(60)
def test_predict_symlink_loop_given_directly_is_no_traceback(tmp_path, model_file, capsys):
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    code, _, err = cli("predict", [str(tmp_path / "loop.jpg"), "--model", str(model_file)], capsys)
    one_line_error(code, err, "loop.jpg", "no image could be read")
    names = make_utk_folder(tmp_path / "pics", n=1)
    code, out, err = cli("predict", [str(tmp_path / "loop.jpg"), str(tmp_path / "pics" / names[0]), "--model",
                                     str(model_file), "--detect", "never", "--format", "csv"], capsys)
    assert code == 0 and "Traceback" not in err
    assert "unreadable" in out and "1 unreadable" in err
