"""Bad input classes 6-7: the command line and checkpoints.

Every command parses with agefair.cli.args.ArgumentParser: bad usage is ONE line ``agefair: error: ...``
(no usage block), exit 2; ``--help`` still prints the usage and exits 0. Counts are positive integers
(``--epochs 0`` is an error, not the preset's count), ``train --resume --overwrite`` is an error, and an
image given to ``video`` as its SOURCE is an error, not a one-frame video. A checkpoint whose stored
config lacks what the model is built from (the input size...) is refused, not completed with defaults.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_helpers import cli, one_line_error, snapshot, write_checkpoint
from conftest import make_utk_folder
from train_helpers import REPO_ROOT, subprocess_env

from agefair.models.checkpoint import MODEL_FIELDS

COMMANDS = ["train", "audit", "eda", "predict", "video", "export", "explain", "robustness", "tune", "run"]


@pytest.mark.parametrize("module", COMMANDS)
def test_bad_option_is_one_line_without_usage(module, capsys):
    code, out, err = cli(module, ["--no-such-option"], capsys)
    one_line_error(code, err)
    assert "usage:" not in err and out == ""


@pytest.mark.parametrize("module", COMMANDS)
def test_help_still_prints_usage_and_exits_0(module, capsys):
    code, out, err = cli(module, ["--help"], capsys)
    assert code == 0 and out.startswith("usage: python -m agefair.") and err == ""


def test_every_command_uses_the_one_parser():
    for module in COMMANDS:
        text = (REPO_ROOT / "agefair" / f"{module}.py").read_text()
        assert "argparse.ArgumentParser(" not in text, module
        assert re.search(r"\bArgumentParser\(prog=", text), module


@pytest.mark.parametrize("module, argv, needle", [
    ("train", ["--variant", "baseline", "--resume", "--overwrite"],
     "argument --overwrite: not allowed with argument --resume"),
    ("train", ["--variant", "baseline", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    ("train", ["--variant", "baseline", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    ("run", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    ("run", ["--limit", "0"], "argument --limit: must be at least 1, got 0"),
    ("run", ["--epochs", "-3"], "argument --epochs: must be at least 1, got -3"),
    ("tune", ["--limit", "0"], "argument --limit: must be at least 1, got 0"),
    ("tune", ["--epochs", "x"], "argument --epochs: expected a whole number, got 'x'"),
    ("robustness", ["--limit", "0"], "argument --limit: must be at least 1, got 0"),
])
def test_bad_values_are_one_line_errors(module, argv, needle, capsys):
    code, _, err = cli(module, argv, capsys)
    one_line_error(code, err, needle)


def test_one_line_through_python_m(tmp_path):
    """The real ``python -m agefair.run --epochs 0``: one line, exit 2, nothing run or written."""
    done = subprocess.run([sys.executable, "-m", "agefair.run", "--epochs", "0", "--out", str(tmp_path / "r")],
                          cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    one_line_error(done.returncode, done.stderr, "--epochs: must be at least 1, got 0")
    assert done.stdout == "" and not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["photo.jpg", "photo.PNG", "face.jpg.chip.jpg"])
def test_video_on_an_image_file_is_one_line_error(name, tmp_path, capsys):
    names = make_utk_folder(tmp_path, n=1)
    image = tmp_path / name
    (tmp_path / names[0]).rename(image)
    (tmp_path / "out.mp4").write_bytes(b"old video")
    before = snapshot(tmp_path)
    code, _, err = cli("video", [str(image), "--model", str(tmp_path / "nosuch.pt"), "--out",
                                 str(tmp_path / "out.mp4")], capsys)
    one_line_error(code, err, str(image), "an image file, not a video")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("missing", MODEL_FIELDS)
def test_checkpoint_without_a_model_field_is_refused(missing, tmp_path, capsys):
    model = write_checkpoint(tmp_path / "model.pt", drop=(missing,))
    names = make_utk_folder(tmp_path / "pics", n=1)
    code, _, err = cli("predict", [str(tmp_path / "pics" / names[0]), "--model", str(model), "--detect", "never"],
                       capsys)
    one_line_error(code, err, str(model), f"stored config lacks model.{missing}", "refused")


def test_checkpoint_without_a_model_section_is_refused(tmp_path, capsys):
    import torch

    from agefair.models.checkpoint import save_checkpoint

    save_checkpoint({"model": {}, "config": {"train": {}}}, tmp_path / "m.pt")
    code, _, err = cli("export", ["--model", str(tmp_path / "m.pt"), "--onnx", str(tmp_path / "m.onnx")], capsys)
    one_line_error(code, err, "m.pt", "no model section")
    assert not Path(tmp_path / "m.onnx").exists() and torch.load(tmp_path / "m.pt")["config"] == {"train": {}}
