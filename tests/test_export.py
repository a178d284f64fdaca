"""ONNX export (``python -m agefair.export``) and the onnxruntime path of ``agefair.predict``.

Tiny random resnet18 models at 32 px, one per head, saved like agefair.train saves them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import make_utk_folder

from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import run_cli
from agefair.export import main as export_main
from agefair.inference.estimator import OnnxEstimator, TorchEstimator, load_estimator, predict_with_intervals
from agefair.inference.onnx import PARITY_TOLERANCE
from agefair.models.calibration import fit_run_calibration, save_run_calibration
from agefair.models.checkpoint import file_sha256, save_checkpoint
from agefair.models.network import create_model
from agefair.models.runs import calibration_file
from agefair.predict import main as predict_main

SIZE = 32


def write_checkpoint(path: Path, head: str, flip_tta: bool = False) -> Path:
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE, head=head, pretrained="none",
                                        flip_tta=flip_tta))
    torch.manual_seed(0)
    model = create_model(cfg.model)
    if head == "regression":  # the regression head starts at a constant 33: give it a slope
        torch.nn.init.normal_(model.head.weight, std=0.5)
    save_checkpoint({"model": model.state_dict(), "config": cfg.model_dump(mode="json"), "meta": {},
                     "val_mae": 9.0}, path)
    return path


def write_calibration(ckpt: Path, head: str) -> None:
    """A calibration.json beside the checkpoint, fitted on synthetic validation rows (export copies it)."""
    rng = np.random.default_rng(1)
    y = rng.uniform(1, 80, 400)
    sigma = rng.uniform(2, 8, 400)
    cal = fit_run_calibration(y=y, pred=y + rng.normal(0, sigma), sigma=sigma, groups={},
                              settings=ConformalSettings(mondrian=[]), head=head, max_age=116,
                              checkpoint_sha256=file_sha256(ckpt), manifest_hash=None)
    save_run_calibration(cal, calibration_file(ckpt))


def run(main, argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module", params=["expectation", "regression", "expectation+flip_tta"])
def exported(request, tmp_path_factory) -> tuple[Path, Path, str]:
    """(checkpoint, its ONNX export, head), exported through the CLI; flip_tta: the mirror image averaged in
    (the exported graph does it too)."""
    head, _, tta = request.param.partition("+")
    folder = tmp_path_factory.mktemp(f"export-{head}{tta}")
    ckpt = write_checkpoint(folder / "model.pt", head, flip_tta=bool(tta))
    write_calibration(ckpt, head)
    onnx_path = folder / "model.onnx"
    with pytest.raises(SystemExit) as exc:
        run_cli(export_main, ["--model", str(ckpt), "--onnx", str(onnx_path)])
    assert exc.value.code == 0
    return ckpt, onnx_path, head


def test_onnx_matches_torch_on_a_batch(exported):
    ckpt, onnx_path, head = exported
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "image" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["agefair.backbone"] == "resnet18" and meta["agefair.head"] == head
    assert meta["agefair.image_size"] == str(SIZE)
    assert not list(onnx_path.parent.glob("*.data")) and not list(onnx_path.parent.glob(".*.tmp*"))

    torch_est, onnx_est = TorchEstimator(ckpt), load_estimator(onnx_path)
    assert isinstance(onnx_est, OnnxEstimator) and onnx_est.size == SIZE
    rng = np.random.default_rng(0)
    for n in (7, 2, 1):  # the batch axis is dynamic
        faces = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
        expected, got = torch_est.predict(faces), onnx_est.predict(faces)
        assert got.shape == (n,) and got.dtype == np.float32
        assert np.abs(got - expected).max() <= PARITY_TOLERANCE, (got, expected)
    faces = rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    assert np.ptp(torch_est.predict(faces)) > 0.1  # the ages differ per face: the comparison means something
    if torch_est.model.flip_tta:  # both average each face with its mirror image
        mirrored = np.ascontiguousarray(faces[:, :, ::-1])
        assert np.abs(onnx_est.predict(faces) - onnx_est.predict(mirrored)).max() <= PARITY_TOLERANCE


def test_predict_with_onnx_gives_the_same_rows(exported, tmp_path, capsys):
    ckpt, onnx_path, _ = exported
    folder = tmp_path / "crops"
    make_utk_folder(folder, n=6, seed=5)
    results = {}
    for model in (ckpt, onnx_path):
        code, out, err = run(predict_main, [str(folder), "--model", str(model), "--detect", "never",
                                            "--format", "json"], capsys)
        assert code == 0, err
        results[model.suffix] = json.loads(out)
    pt, ox = results[".pt"], results[".onnx"]
    assert len(pt) == len(ox) == 6
    for a, b in zip(pt, ox):
        assert (a["file"], a["face"], a["box"], a["status"]) == (b["file"], b["face"], b["box"], b["status"])
        assert abs(a["age"] - b["age"]) <= 0.1 + 1e-9  # printed to 0.1 year: equal, or one rounding step apart
        # the same conformal intervals: the ONNX model's copy of the calibration, and its spread output
        assert a["coverage"] == b["coverage"] == 0.9
        assert a["lo"] < a["age"] < a["hi"] or a["lo"] == 0
        assert abs(a["lo"] - b["lo"]) <= 0.1 + 1e-9 and abs(a["hi"] - b["hi"]) <= 0.1 + 1e-9
    assert len({r["age"] for r in pt}) > 1


def test_export_copies_the_calibration_and_onnx_gives_torch_intervals(exported):
    ckpt, onnx_path, head = exported
    copy = onnx_path.with_name("model.calibration.json")
    assert json.loads(copy.read_text()) == json.loads(calibration_file(ckpt).read_text())
    torch_est, onnx_est = TorchEstimator(ckpt), load_estimator(onnx_path)
    assert onnx_est.calibration is not None and onnx_est.calibration.marginal.score == (
        "scaled" if head == "expectation" else "abs")
    faces = np.random.default_rng(3).integers(0, 256, (9, SIZE, SIZE, 3), dtype=np.uint8)
    a, b = predict_with_intervals(torch_est, faces), predict_with_intervals(onnx_est, faces)
    assert a.lo is not None and b.lo is not None
    assert np.abs(a.lo - b.lo).max() <= 0.05 and np.abs(a.hi - b.hi).max() <= 0.05
    widths = a.hi - a.lo
    if head == "expectation":  # scaled: widths follow each face's spread
        assert np.ptp(widths) > 0
    else:  # abs: one width for all (unless clipped at 0)
        unclipped = a.lo > 0
        assert np.ptp(widths[unclipped]) < 1e-6


def test_a_stale_calibration_gives_no_intervals(tmp_path):
    ckpt = write_checkpoint(tmp_path / "model.pt", "expectation")
    write_calibration(ckpt, "expectation")
    write_checkpoint(ckpt, "regression")  # retrained: the calibration is of the old weights
    est = TorchEstimator(ckpt)
    assert est.calibration is None and "another checkpoint" in est.calibration_note


def test_export_and_onnx_errors_are_one_line(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "m.pt", "expectation")
    for argv in (["--model", str(ckpt), "--onnx", str(tmp_path / "m.txt")],
                 ["--model", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "m.onnx")]):
        code, out, err = run(export_main, argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("agefair: error:"), err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    face = tmp_path / "crops"
    make_utk_folder(face, n=1)
    for model in (bad, tmp_path / "missing.onnx"):
        code, out, err = run(predict_main, [str(face), "--model", str(model), "--detect", "never"], capsys)
        assert code == 2 and out == "", err
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"agefair: error: {model}:"), err
