"""The bad-input suite (issue 6): what users feed agefair, one named test per kind of bad input.

Each test runs the command a user would run (in-process through ``run_cli``, as ``python -m`` does,
or as a subprocess where the case needs one: another user, a shell-level ``python -m``) and checks
the contract: a command that cannot do its job prints ONE line ``agefair: error: ...`` naming the
file and the problem, exits non-zero and prints no traceback; a bad file inside a data folder does
not stop the run (the scan drops it and the data-quality report names it: a documented, reported
skip); nothing already written is lost.

Issue bullet -> test here; lower-level tests elsewhere that the case also has:

- zero-byte JPEG ............... test_zero_byte_jpeg (test_images::test_zero_byte)
- truncated JPEG ............... test_truncated_jpeg (test_images::test_truncated_jpeg)
- corrupt JPEG ................. test_corrupt_jpeg (test_images::test_corrupt_tiff_is_image_read_error)
- text file named .jpg ......... test_text_file_named_jpg (test_images::test_text_named_jpg)
- PNG with alpha ............... test_png_with_alpha (test_images::test_rgba_png_alpha_on_white)
- grayscale .................... test_grayscale_image (test_images::test_grayscale)
- CMYK ......................... test_cmyk_jpeg (test_images::test_cmyk_jpeg)
- 16-bit ....................... test_16bit_png (test_images::test_16bit_png_rescaled)
- decompression bomb ........... test_decompression_bomb (test_images::test_decompression_bomb_default)
- spaces / non-ASCII names ..... test_names_with_spaces_and_non_ascii
- malformed UTKFace names ...... test_malformed_utkface_names (test_labels::test_parse_malformed)
- ages out of range ............ test_ages_out_of_range (test_quality::test_unknown_codes_and_max_age,
                                 test_gradcam::test_explain_errors_in_process[bad_age])
- empty folder ................. test_empty_folder (test_eda_cli::test_eda_empty_folder,
                                 test_predict::test_empty_folder_is_one_line_exit_2)
- missing folder ............... test_missing_folder (test_eda_cli::test_eda_missing_folder,
                                 test_audit_cli::test_bad_input_exits_2_with_one_line[missing_runs])
- folder without read permission test_folder_without_read_permission (as root: without the capabilities
                                 that bypass file permissions, so the chmod really applies)
- YAML: unknown key ............ test_yaml_config_unknown_key (test_config_train::test_bad_override_names_the_file_and_key)
- YAML: wrong type ............. test_yaml_config_wrong_type (test_config_train::test_cli_reports_a_bad_config_in_one_line)
- YAML: negative lr ............ test_yaml_config_negative_lr
- thresholds: unknown metric ... test_thresholds_file_unknown_metric
                                 (test_audit_cli::test_bad_input_exits_2_with_one_line[bad_thresholds])
- checkpoint of another backbone test_checkpoint_from_another_backbone (test_checkpoint::test_weights_of_another_backbone)
- not a checkpoint ............. test_file_that_is_not_a_checkpoint (test_checkpoint::test_not_a_checkpoint,
                                 test_gradcam::test_explain_cli_not_a_checkpoint)
- pickle crafted to run code ... test_pickle_crafted_to_run_code (test_checkpoint::test_code_in_a_checkpoint_never_runs)
- runs folder, a variant missing test_runs_folder_with_one_variant_missing
                                 (test_audit_cli::test_variant_selection_and_missing_variant)
- disk full writing a checkpoint test_disk_full_while_writing_checkpoint, test_disk_full_on_a_real_full_tmpfs
                                 (test_checkpoint::test_save_is_atomic_when_the_disk_fills)
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bad_input_helpers import cli
from conftest import jpeg_bytes, make_utk_folder, utk_name
from PIL import Image
from train_helpers import REPO_ROOT, make_train_folder, subprocess_env, train_settings, write_override  # noqa: F401

from agefair.core.config import ModelConfig, TrainConfig
from agefair.models.checkpoint import load_checkpoint, save_checkpoint
from agefair.models.network import create_model

SIZE = 32


# --------------------------------------------------------------------------- helpers

def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code not in (0, None), "expected a non-zero exit"
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("agefair: error: "), lines[0]
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def write_checkpoint(path: Path, backbone: str = "resnet18", weights_backbone: str | None = None) -> Path:
    """A model.pt shaped like agefair.train's (random weights); ``weights_backbone``: weights of another model."""
    cfg = TrainConfig(model=ModelConfig(backbone=backbone, image_size=SIZE))
    torch.manual_seed(0)
    model = create_model(cfg.model.model_copy(update={"backbone": weights_backbone or backbone}))
    save_checkpoint({"model": model.state_dict(), "config": cfg.model_dump(mode="json"), "meta": {}, "epoch": 1,
                     "val_mae": 9.0, "history": [{"epoch": 1, "val_mae": 9.0}]}, path)
    return path


class RunsCode:
    """Unpickling this runs a shell command, as a malicious 'checkpoint' would."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    """96 synthetic UTKFace-named faces, every age bin x gender x ethnicity stratum split 2/1/1."""
    root = tmp_path_factory.mktemp("data")
    make_train_folder(root / "faces")
    return root / "faces"


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def corrupt_jpeg_bytes(rng: np.random.Generator) -> bytes:
    """A JPEG whose first Huffman table is overwritten with random bytes: the decoder gives up."""
    data = bytearray(jpeg_bytes(rng))
    dht = data.index(b"\xff\xc4")
    data[dht + 4:dht + 40] = rng.integers(0, 256, 36, dtype=np.uint8).tobytes()
    return bytes(data)


NON_ASCII_DIR = "sub folder ñ 顔"
NON_ASCII_PHOTO = "photo of me é 顔.jpg"


@pytest.fixture(scope="module")
def folder_report(tmp_path_factory) -> dict:
    """A data folder of 30 good faces plus one file of each bad kind, scanned once by ``python -m agefair.eda``."""
    root = tmp_path_factory.mktemp("bad inputs ü")  # spaces and non-ASCII in the data path too
    folder = root / "faces é"
    make_utk_folder(folder, n=30, seed=5)
    rng = np.random.default_rng(6)
    ts = iter(range(20170301000000000, 20170301000001000))
    files: dict[str, str] = {}

    def put(role: str, data: bytes, name: str | None = None, age: int = 30) -> None:
        name = name or utk_name(age, 0, 1, next(ts))
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        files[role] = name

    whole = jpeg_bytes(rng)
    put("zero_byte", b"")
    put("truncated", whole[: len(whole) // 2])
    put("corrupt", corrupt_jpeg_bytes(rng))
    put("text", b"this is a text file, not a JPEG\n" * 10)
    rgba = np.dstack([np.asarray(Image.open(io.BytesIO(jpeg_bytes(rng)))), np.full((200, 200), 128, np.uint8)])
    put("alpha", png_bytes(Image.fromarray(rgba)))  # RGBA
    put("grayscale", jpeg_bytes(rng, mode="L"))
    put("cmyk", jpeg_bytes(rng, mode="CMYK"))
    put("16bit", png_bytes(Image.fromarray((np.arange(200 * 200).reshape(200, 200) * 37 % 65536).astype(np.uint16))))
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, format="PNG")  # 100 Mpx in a few kB
    put("bomb", bomb.getvalue())
    put("non_ascii_kept", jpeg_bytes(rng), name=f"{NON_ASCII_DIR}/{utk_name(41, 1, 2, next(ts))}")
    put("non_ascii_photo", jpeg_bytes(rng), name=NON_ASCII_PHOTO)
    for i, name in enumerate(["39_1_20170116174525125.jpg.chip.jpg", "abc_1_2_20170116174525126.jpg.chip.jpg",
                              "25_0_1.jpg", "25_0_1_2017010100000001.png"]):
        put(f"malformed{i}", jpeg_bytes(rng), name=name)
    put("age_117", jpeg_bytes(rng), age=117)
    put("age_999", jpeg_bytes(rng), age=999)

    out = root / "report"
    proc = subprocess.run([sys.executable, "-m", "agefair.eda", "--data", str(folder), "--out", str(out),
                           "--work", str(root / "work"), "--no-png", "--quiet"], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    import json

    quality = json.loads((out / "data_quality.json").read_text(encoding="utf-8")) if proc.returncode == 0 else {}
    return {"folder": folder, "files": files, "proc": proc, "quality": quality}


def flagged(report: dict, role: str) -> list[dict]:
    """The data-quality rows (problem, action, detail) of the file playing ``role``."""
    proc = report["proc"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    name = report["files"][role]
    return [p for p in report["quality"]["problems"] if p["file"] == name]


def assert_dropped(report: dict, role: str, problem: str, *words: str) -> None:
    rows = flagged(report, role)
    assert [r["problem"] for r in rows] == [problem], rows
    assert rows[0]["action"].startswith("dropped")
    for w in words:
        assert w in rows[0]["detail"], rows[0]
    assert report["files"][role] in report["proc"].stdout or report["quality"]["counts"][problem] > 10


def predict_one(path: Path, model: Path, capsys) -> tuple[int, str, str]:
    return cli("predict", [str(path), "--model", str(model), "--detect", "never", "--format", "csv"], capsys)


def assert_unreadable_single_file(report: dict, role: str, model: Path, capsys, *words: str) -> None:
    """``agefair.predict`` on the file alone: one line naming it and the problem, exit 2."""
    path = report["folder"] / report["files"][role]
    code, out, err = predict_one(path, model, capsys)
    line = one_line_error(code, err, str(path), *words)
    assert code == 2 and out == "", line


def assert_converted(report: dict, role: str, model: Path, capsys, mode: str) -> None:
    rows = flagged(report, role)
    assert [r["problem"] for r in rows] == ["non_rgb"], rows
    assert rows[0]["action"].startswith("kept") and mode in rows[0]["detail"], rows[0]
    path = report["folder"] / report["files"][role]
    code, out, err = predict_one(path, model, capsys)
    assert code == 0 and "Traceback" not in err, err
    line = out.strip().splitlines()[1]
    assert line.startswith(str(path)) and line.endswith(",ok"), line
    from agefair.data.image_cache import load_face

    face = load_face(path, SIZE)
    assert face.shape == (SIZE, SIZE, 3) and face.dtype == np.uint8


# --------------------------------------------------------------------------- image files

def test_zero_byte_jpeg(folder_report, model_file, capsys):
    assert_dropped(folder_report, "zero_byte", "zero_byte")
    assert_unreadable_single_file(folder_report, "zero_byte", model_file, capsys, "empty file")


def test_truncated_jpeg(folder_report, model_file, capsys):
    assert_dropped(folder_report, "truncated", "unreadable", "truncated")
    assert_unreadable_single_file(folder_report, "truncated", model_file, capsys, "truncated")


def test_corrupt_jpeg(folder_report, model_file, capsys):
    """A broken Huffman table. (Garbage inside the compressed scan data decodes to damaged pixels without
    an error in libjpeg, as in every viewer; such a file is kept.)"""
    assert_dropped(folder_report, "corrupt", "unreadable", "broken data stream")
    assert_unreadable_single_file(folder_report, "corrupt", model_file, capsys, "broken data stream")


def test_text_file_named_jpg(folder_report, model_file, capsys):
    assert_dropped(folder_report, "text", "unreadable", "not an image")
    assert_unreadable_single_file(folder_report, "text", model_file, capsys, "not an image")


def test_png_with_alpha(folder_report, model_file, capsys):
    assert_converted(folder_report, "alpha", model_file, capsys, "RGBA")


def test_grayscale_image(folder_report, model_file, capsys):
    assert_converted(folder_report, "grayscale", model_file, capsys, "L")


def test_cmyk_jpeg(folder_report, model_file, capsys):
    assert_converted(folder_report, "cmyk", model_file, capsys, "CMYK")


def test_16bit_png(folder_report, model_file, capsys):
    assert_converted(folder_report, "16bit", model_file, capsys, "I;16")


def test_decompression_bomb(folder_report, model_file, capsys):
    assert_dropped(folder_report, "bomb", "unreadable", "refused")
    assert_unreadable_single_file(folder_report, "bomb", model_file, capsys, "refused")


def test_names_with_spaces_and_non_ascii(folder_report, model_file, capsys):
    """Spaces and non-ASCII characters in the data path, a sub-folder and file names all survive the scan,
    its cache, the reports and ``agefair.predict``'s output."""
    assert flagged(folder_report, "non_ascii_kept") == []  # a valid UTKFace name in 'sub folder ñ 顔/': kept
    q = folder_report["quality"]
    assert q["files_kept"] == 30 + 1 + 4  # good + non-ASCII sub-folder + 4 converted modes
    rows = flagged(folder_report, "non_ascii_photo")
    assert [r["problem"] for r in rows] == ["malformed_name"]  # not a UTKFace name: dropped, and named
    assert NON_ASCII_PHOTO in folder_report["proc"].stdout
    path = folder_report["folder"] / folder_report["files"]["non_ascii_photo"]
    code, out, err = predict_one(path, model_file, capsys)
    assert code == 0 and out.strip().splitlines()[1].startswith(str(path))


def test_malformed_utkface_names(folder_report):
    for i in range(4):
        assert_dropped(folder_report, f"malformed{i}", "malformed_name")


def test_ages_out_of_range(folder_report, model_file, tmp_path, capsys):
    assert_dropped(folder_report, "age_117", "age_out_of_range")
    assert_dropped(folder_report, "age_999", "age_out_of_range")
    # a true age given on the command line is checked too
    face = folder_report["folder"] / folder_report["files"]["grayscale"]
    code, _, err = cli("explain", [str(face), "--model", str(model_file), "--age", "500",
                                   "--out", str(tmp_path / "o.png")], capsys)
    one_line_error(code, err, "500")
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- folders

def test_empty_folder(tmp_path, model_file, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    runs = tmp_path / "runs"
    shutil.copytree(model_file.parent, runs / "baseline")
    for module, argv in [("robustness", ["--runs", str(runs)]), ("audit", ["--runs", str(runs)]),
                         ("train", ["--variant", "baseline", "--preset", "cpu", "--out", str(tmp_path / "r")])]:
        code, _, err = cli(module, argv + ["--data", str(empty), "--work", str(tmp_path / "w"), "--quiet"], capsys)
        one_line_error(code, err, str(empty), "is empty")
    empty_runs = tmp_path / "no-runs"
    empty_runs.mkdir()
    code, _, err = cli("robustness", ["--runs", str(empty_runs), "--data", str(empty)], capsys)
    one_line_error(code, err, str(empty_runs), "no trained variant")


def test_missing_folder(tmp_path, model_file, capsys):
    missing = tmp_path / "no" / "such folder"
    runs = tmp_path / "runs"
    shutil.copytree(model_file.parent, runs / "baseline")
    for module, argv in [("robustness", ["--runs", str(runs)]), ("audit", ["--runs", str(runs)]),
                         ("train", ["--variant", "baseline", "--preset", "cpu", "--out", str(tmp_path / "r")])]:
        code, _, err = cli(module, argv + ["--data", str(missing), "--work", str(tmp_path / "w"), "--quiet"], capsys)
        one_line_error(code, err, str(missing), "does not exist")
    code, _, err = cli("robustness", ["--runs", str(missing)], capsys)
    one_line_error(code, err, str(missing), "does not exist")
    assert not missing.exists()


def _drop_read_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability
    bounding set, so a root process obeys file permissions like any user (prctl PR_CAPBSET_DROP)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _permission_respecting(probe_dir: Path) -> dict:
    """subprocess.run arguments under which file permissions apply: none for a normal user; for root
    (which reads anything) a child without the two capabilities that bypass them. Skips, with the
    reason, where neither works."""
    kwargs = {"preexec_fn": _drop_read_override} if os.geteuid() == 0 else {}
    try:
        probe = subprocess.run([sys.executable, "-c", f"import os; os.listdir({str(probe_dir)!r})"],
                               capture_output=True, text=True, timeout=60, **kwargs)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot start a process that obeys file permissions here: {exc}")
    if probe.returncode == 0:
        pytest.skip("this process reads folders without read permission (privileged): nothing to test")
    return kwargs


def test_folder_without_read_permission(tmp_path):
    """chmod 000 on the data folder. As root, which reads anything, the command runs without the
    capabilities that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the
    permission really applies."""
    folder = tmp_path / "faces"
    make_utk_folder(folder, n=3)
    folder.chmod(0)
    try:
        kwargs = _permission_respecting(folder)
        proc = subprocess.run([sys.executable, "-m", "agefair.eda", "--data", str(folder), "--out",
                               str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--no-png", "--quiet"],
                              cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
                              **kwargs)
        one_line_error(proc.returncode, proc.stderr, str(folder), "cannot be read: permission denied")
        assert proc.returncode == 2 and not (tmp_path / "out").exists()
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------- configuration files

def _train_with_config(tmp_path, train_data, text: str, capsys) -> tuple[Path, int, str]:
    cfg = tmp_path / "override.yaml"
    cfg.write_text(text)
    code, _, err = cli("train", ["--variant", "baseline", "--preset", "cpu", "--config", str(cfg), "--data",
                                 str(train_data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "runs"),
                                 "--quiet"], capsys)
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    return cfg, code, err


def test_yaml_config_unknown_key(tmp_path, train_data, capsys):
    cfg, code, err = _train_with_config(tmp_path, train_data, "optim:\n  learning_rate: 0.1\n", capsys)
    one_line_error(code, err, f"{cfg}: optim.learning_rate: unknown key")


def test_yaml_config_wrong_type(tmp_path, train_data, capsys):
    cfg, code, err = _train_with_config(tmp_path, train_data, "train:\n  batch_size: large\n", capsys)
    one_line_error(code, err, f"{cfg}: train.batch_size: ", "integer")


def test_yaml_config_negative_lr(tmp_path, train_data, capsys):
    cfg, code, err = _train_with_config(tmp_path, train_data, "optim:\n  lr: -0.01\n", capsys)
    one_line_error(code, err, f"{cfg}: optim.lr: ", "greater than 0")


def test_thresholds_file_unknown_metric(tmp_path, model_file, train_data, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(model_file.parent, runs / "baseline")
    cases = [("rules:\n  - metric: happiness\n    max: 1\n", "rules.0.metric"),
             ("robustness:\n  rules:\n    - metric: happiness\n      max: 1\n", "robustness.rules.0.metric"),
             ("robustness:\n  corruptions: [fog]\n", "robustness.corruptions.0")]
    for i, (text, key) in enumerate(cases):
        bad = tmp_path / f"fairness{i}.yaml"
        bad.write_text(text)
        for module in ("audit", "robustness"):
            code, _, err = cli(module, ["--runs", str(runs), "--thresholds", str(bad), "--data", str(train_data),
                                        "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out"), "--quiet"],
                               capsys)
            one_line_error(code, err, f"{bad}: {key}: ")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- checkpoints and runs

def _every_model_command(model: Path, face: Path, tmp_path: Path, train_data: Path, capsys) -> list[str]:
    """Feed ``model`` to predict, explain, audit and robustness; each must refuse it in one line naming it."""
    runs = tmp_path / "runs"
    (runs / "baseline").mkdir(parents=True, exist_ok=True)
    shutil.copy(model, runs / "baseline" / "model.pt")
    data = ["--data", str(train_data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out"), "--quiet"]
    lines = []
    for module, argv, named in [
            ("predict", [str(face), "--model", str(model), "--detect", "never"], model),
            ("explain", [str(face), "--model", str(model), "--out", str(tmp_path / "o.png")], model),
            ("audit", ["--runs", str(runs), "--no-gallery", *data], runs / "baseline" / "model.pt"),
            ("robustness", ["--runs", str(runs), "--corruption", "jpeg", "--severities", "1", *data],
             runs / "baseline" / "model.pt")]:
        code, _, err = cli(module, argv, capsys)
        lines.append(one_line_error(code, err, str(named)))
    assert not (tmp_path / "o.png").exists()
    return lines


@pytest.fixture
def face(train_data) -> Path:
    return sorted(train_data.iterdir())[0]


def test_checkpoint_from_another_backbone(tmp_path, train_data, face, capsys):
    other = write_checkpoint(tmp_path / "resnet34-weights.pt", backbone="resnet18", weights_backbone="resnet34")
    for line in _every_model_command(other, face, tmp_path, train_data, capsys):
        assert "do not fit a resnet18" in line and "another model" in line


@pytest.mark.parametrize("content", [b"hello\n", b"\x89PNG\r\n\x1a\n not a model", b""], ids=["text", "png", "empty"])
def test_file_that_is_not_a_checkpoint(tmp_path, train_data, face, capsys, content):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(content)
    for line in _every_model_command(fake, face, tmp_path, train_data, capsys):
        assert "checkpoint" in line


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_crafted_to_run_code(tmp_path, train_data, face, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"config": TrainConfig().model_dump(mode="json"), "model": RunsCode(marker)}, evil)
    for line in _every_model_command(evil, face, tmp_path, train_data, capsys):
        assert "refused" in line and "not loaded" in line
    assert not marker.exists(), "loading the crafted pickle ran its code"


def test_runs_folder_with_one_variant_missing(tmp_path, model_file, train_data, capsys):
    """runs/ holds baseline (finished), weighted (interrupted: last.pt, no model.pt); lds was never trained.

    Audit and robustness audit what is there and name what they left out; asking for a missing variant
    is a one-line error."""
    runs = tmp_path / "runs"
    shutil.copytree(model_file.parent, runs / "baseline")
    (runs / "weighted").mkdir()
    shutil.copy(model_file, runs / "weighted" / "last.pt")
    th = tmp_path / "fairness.yaml"
    th.write_text(yaml.safe_dump({"n_boot": 20, "min_group_size": 2, "rules": [{"metric": "mae", "max": 1000}],
                                  "robustness": {"n_boot": 0}}))
    common = ["--runs", str(runs), "--data", str(train_data), "--work", str(tmp_path / "w"), "--thresholds", str(th),
              "--out", str(tmp_path / "out"), "--quiet"]
    for module, extra in [("audit", ["--no-gallery"]), ("robustness", ["--corruption", "jpeg", "--severities", "1"])]:
        code, out, err = cli(module, common + extra, capsys)
        assert code == 0, err
        assert f"{runs / 'weighted'} has no model.pt" in err and "Traceback" not in err
        for variant in ("weighted", "lds"):
            code, _, err = cli(module, common + extra + ["--variant", "baseline", variant], capsys)
            one_line_error(code, err, f"no trained model for {variant}", "found: baseline")
    import json

    assert list(json.loads((tmp_path / "out" / "summary.json").read_text())["variants"]) == ["baseline"]
    assert list(json.loads((tmp_path / "out" / "robustness.json").read_text())["variants"]) == ["baseline"]


# --------------------------------------------------------------------------- disk full

def _train_two_epochs(tmp_path, train_data, out: Path, capsys) -> tuple[int, str, str]:
    cfg = write_override(tmp_path / "small.yaml")
    return cli("train", ["--variant", "baseline", "--preset", "cpu", "--config", str(cfg), "--data", str(train_data),
                         "--work", str(tmp_path / "w"), "--out", str(out), "--epochs", "2", "--quiet"], capsys)


def _check_epoch_one_kept(run: Path, err: str, code: int, *words: str) -> None:
    line = one_line_error(code, err, "cannot save the checkpoint", *words)
    assert str(run) in line and "unchanged" in line
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the previous checkpoints are intact
    assert load_checkpoint(run / "model.pt")["epoch"] == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")], \
        "temporary files left behind"


def test_disk_full_while_writing_checkpoint(tmp_path, train_data, monkeypatch, capsys):
    """The third checkpoint write (epoch 2) fills the disk half-way through; training stops with one line."""
    real_save = torch.save
    calls = []

    def fills_the_disk(obj, f, *args, **kwargs):
        calls.append(f)
        real_save(obj, f, *args, **kwargs)
        if len(calls) >= 3:
            with open(f, "r+b") as fh:  # half a file, as a full disk leaves it
                fh.truncate(os.path.getsize(f) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", fills_the_disk)
    code, out, err = _train_two_epochs(tmp_path, train_data, tmp_path / "runs", capsys)
    monkeypatch.undo()
    assert len(calls) == 3 and "epoch 1/2" in out
    _check_epoch_one_kept(tmp_path / "runs" / "baseline", err, code, os.strerror(errno.ENOSPC))


def test_disk_full_on_a_real_full_tmpfs(tmp_path, train_data, capsys):
    """The same on a real full disk: a tmpfs that holds epoch 1's model.pt and last.pt but not another copy.

    Needs mount rights (root in a container that allows tmpfs mounts); skipped, with the reason, elsewhere."""
    mnt = tmp_path / "tiny-disk"
    mnt.mkdir()
    params = sum(p.numel() for p in create_model(ModelConfig(backbone="resnet18", image_size=SIZE)).parameters())
    size = int(4.5 * 4 * params)  # model.pt ~ 4 bytes/param, last.pt ~ 3x that (AdamW moments)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}); "
                    "test_disk_full_while_writing_checkpoint simulates the full disk instead")
    try:
        code, out, err = _train_two_epochs(tmp_path, train_data, mnt / "runs", capsys)
        _check_epoch_one_kept(mnt / "runs" / "baseline", err, code, "no space left on the disk")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
