"""agefair.data.faces (detection, UTKFace-style cropping) and the ``python -m agefair.predict`` CLI.

The model is a tiny untrained resnet18 at 48 px saved like agefair.train saves it; the photo is two
real UTKFace chips pasted into a synthetic 640x480 background (nothing derived from UTKFace is
written outside pytest's tmp_path).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError, run_cli
from agefair.data.faces import (
    BOX_TO_CHIP,
    CENTRE_SHIFT,
    chip_region,
    crop_verdict,
    detect_faces,
    looks_like_crop,
    utk_crop,
)
from agefair.data.image_cache import load_face
from agefair.data.images import open_rgb
from agefair.inference.estimator import TorchEstimator
from agefair.inference.photos import collect_files, whole_image
from agefair.models.calibration import fit_run_calibration, save_run_calibration
from agefair.models.checkpoint import file_sha256, save_checkpoint
from agefair.models.network import create_model
from agefair.models.runs import calibration_file, pick_best_run
from agefair.predict import main

SIZE = 48
# Two chips HOG finds at their native 200 px (from the measurement set in agefair/faces.py).
CHIP_NAMES = ["26_0_0_20170117200030565.jpg.chip.jpg", "59_1_1_20170113012852120.jpg.chip.jpg"]
# Where the chips go in the 640x480 photo: (left, top, right, bottom).
RECTS = [(50, 120, 220, 290), (360, 160, 580, 380)]
# Mean absolute difference (0-255) between a detected face's 48 px utk_crop and its own chip at
# 48 px: measured 20.5 and 27.1 (HOG's box sizes are discrete, so the framing is a few % off);
# between different faces ~50.
SAME_FACE_MAD = 35.0


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def state_dict() -> dict:
    torch.manual_seed(0)
    return create_model(ModelConfig(backbone="resnet18", image_size=SIZE)).state_dict()


def write_run(runs: Path, name: str, state: dict, val_mae: float | None = 9.0) -> Path:
    """A checkpoint shaped like agefair.train's model.pt."""
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE))
    obj = {"model": state, "config": cfg.model_dump(mode="json"), "meta": {}, "epoch": 1, "history": []}
    if val_mae is not None:
        obj["val_mae"] = val_mae
    path = runs / name / "model.pt"
    save_checkpoint(obj, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, state_dict) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root, "baseline", state_dict, 9.0)
    return root


@pytest.fixture(scope="module")
def chips(utkface_dir) -> list[Path]:
    """Two UTKFace chips with one HOG-detectable face each (the named ones, else the first found)."""
    named = [utkface_dir / n for n in CHIP_NAMES]
    if all(p.is_file() for p in named):
        return named
    found = []
    for p in sorted(utkface_dir.iterdir())[:40]:
        if len(detect_faces(np.asarray(open_rgb(p)[0]))) == 1:
            found.append(p)
            if len(found) == 2:
                return found
    pytest.fail(f"no two chips with a detectable face among the first 40 of {utkface_dir}")


def chip_array(path: Path) -> np.ndarray:
    return np.asarray(open_rgb(path)[0], dtype=np.uint8)


def make_photo(chips: list[Path], scale: int = 1) -> np.ndarray:
    """A 640x480 (times ``scale``) smooth noisy background with the chips pasted into RECTS."""
    rng = np.random.default_rng(0)
    h, w = 480 * scale, 640 * scale
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / scale
    bg = 90 + 0.1 * xx[..., None] + 0.08 * yy[..., None] + rng.normal(0, 6, (h, w, 3))
    photo = np.clip(bg, 0, 255).astype(np.uint8)
    for path, rect in zip(chips, RECTS):
        left, top, right, bottom = (v * scale for v in rect)
        chip = Image.open(path).convert("RGB").resize((right - left, bottom - top), Image.BILINEAR, reducing_gap=None)
        photo[top:bottom, left:right] = np.asarray(chip)
    return photo


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def small(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((SIZE, SIZE), Image.BILINEAR, reducing_gap=None), dtype=np.float64)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """The CLI in-process, through run_cli as ``python -m agefair.predict`` runs it."""
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


# --------------------------------------------------------------------------- (a) crop geometry

@pytest.mark.parametrize("detector", ["hog", "cnn"])
def test_utk_crop_geometry(detector):
    """A white box on grey: the crop is square, out_size, and the box sits where the framing says."""
    img = np.full((300, 400, 3), 100, np.uint8)
    box = (150, 90, 250, 190)  # 100 px square
    img[90:190, 150:250] = 255
    out = utk_crop(img, box, 200, detector=detector)
    assert out.shape == (200, 200, 3) and out.dtype == np.uint8

    cx, cy, side = chip_region(box, detector)
    assert side == pytest.approx(100 * BOX_TO_CHIP[detector])
    sx, sy = CENTRE_SHIFT[detector]
    assert (cx, cy) == pytest.approx((200 + 100 * sx, 140 + 100 * sy))

    ys, xs = np.nonzero(out[..., 0] > 180)
    k = 200 / side  # output pixels per image pixel
    assert xs.max() - xs.min() + 1 == pytest.approx(100 * k, abs=2)
    assert ys.max() - ys.min() + 1 == pytest.approx(100 * k, abs=2)
    # the box centre is left of / above the crop centre by the measured shift
    assert (xs.min() + xs.max() + 1) / 2 == pytest.approx(100 - 100 * sx * k, abs=1.5)
    assert (ys.min() + ys.max() + 1) / 2 == pytest.approx(100 - 100 * sy * k, abs=1.5)
    # output size follows out_size
    assert utk_crop(img, box, SIZE, detector=detector).shape == (SIZE, SIZE, 3)


def test_utk_crop_pads_outside_the_image():
    img = np.full((120, 160, 3), 200, np.uint8)
    box = (0, 0, 60, 60)  # in the corner: the chip leaves the image at the top and left
    black = utk_crop(img, box, 100)
    assert black.shape == (100, 100, 3)
    assert black[0, 0].max() == 0 and black[-1, -1].min() == 200
    edge = utk_crop(img, box, 100, pad="edge")
    assert (edge == 200).all()
    with pytest.raises(ValueError):
        utk_crop(img, (500, 500, 560, 560), 100)  # nowhere near the image


def test_looks_like_crop_rule():
    assert crop_verdict(np.zeros((200, 300, 3), np.uint8))[0] is False  # not square
    assert crop_verdict(np.zeros((600, 600, 3), np.uint8), boxes=[])[0] is False  # too big
    assert crop_verdict(np.zeros((200, 200, 3), np.uint8), boxes=[])[0] is True  # chip size, detector missed
    assert crop_verdict(np.zeros((120, 120, 3), np.uint8), boxes=[])[0] is False  # small and faceless
    assert crop_verdict(np.zeros((200, 200, 3), np.uint8), boxes=[(12, 13, 173, 173)])[0] is True
    assert crop_verdict(np.zeros((400, 400, 3), np.uint8), boxes=[(10, 10, 90, 90)])[0] is False  # small face
    assert crop_verdict(np.zeros((400, 400, 3), np.uint8), boxes=[(40, 40, 380, 380)])[0] is True


# --------------------------------------------------------------------------- (b) detection on a photo

def test_detects_pasted_faces_and_crops_them_like_utkface(chips):
    photo = make_photo(chips)
    boxes = detect_faces(photo)
    assert len(boxes) == 2, boxes
    originals = [chip_array(p) for p in chips]
    for rect, chip in zip(RECTS, originals):
        box = max(boxes, key=lambda b: iou(b, rect))
        cx, cy, side = chip_region(box)
        region = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        assert iou(region, rect) > 0.5, (region, rect)
        crop = utk_crop(photo, box, SIZE).astype(np.float64)
        same = np.abs(crop - small(chip)).mean()
        other = min(np.abs(crop - small(c)).mean() for c in originals if c is not chip)
        assert same < SAME_FACE_MAD, same
        assert same < 0.7 * other, (same, other)
    for chip in originals:  # the chips themselves are recognised as crops
        assert looks_like_crop(chip)
    assert not looks_like_crop(photo)
    # importing face_recognition turns on PIL's LOAD_TRUNCATED_IMAGES process-wide; faces.py undoes it
    from PIL import ImageFile
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_large_photo_is_detected_downscaled_and_mapped_back(chips):
    """A 1280x960 photo is detected at 640x480 (max_side=640); boxes come back at full resolution."""
    small_boxes = detect_faces(make_photo(chips), max_side=640)
    big_boxes = detect_faces(make_photo(chips, scale=2), max_side=640)
    assert len(big_boxes) == len(small_boxes) == 2
    for s, b in zip(small_boxes, big_boxes):
        assert np.allclose(np.array(b), 2 * np.array(s), atol=4), (s, b)


# --------------------------------------------------------------------------- (c) the CLI

@pytest.fixture
def mixed_folder(tmp_path, chips) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for p in chips:
        (folder / p.name).write_bytes(p.read_bytes())
    Image.fromarray(make_photo(chips)).save(folder / "sub" / "group.PNG")  # recursive, any case
    noise = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    data = chips[0].read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("not an image\n")  # ignored: not an image suffix
    return folder


def test_predict_cli_on_mixed_folder(mixed_folder, runs, chips, capsys, tmp_path):
    code, out, err = run([str(mixed_folder), "--runs", str(runs), "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(Path(r["file"]).name, []).append(r)
    assert sorted(by_file) == sorted([p.name for p in chips] + ["group.PNG", "noise.png", "corrupt.jpg"])

    faces = [r for r in rows if r["age"] is not None]
    assert len(faces) == 4, rows
    assert all(0 <= r["age"] <= 116 and math.isfinite(r["age"]) for r in faces)
    for p in chips:
        (r,) = by_file[p.name]
        assert r["box"] == "whole image" and r["face"] == 0 and r["status"].startswith("ok")
    group = by_file["group.PNG"]
    assert [r["face"] for r in group] == [0, 1]
    assert all(isinstance(r["box"], list) and len(r["box"]) == 4 for r in group)
    for rect in RECTS:
        assert max(iou(r["box"], rect) for r in group) > 0.4
    (noise,) = by_file["noise.png"]
    assert noise["status"] == "no face found" and noise["age"] is None
    (bad,) = by_file["corrupt.jpg"]
    assert bad["status"].startswith("unreadable:") and "\n" not in bad["status"] and bad["age"] is None
    assert "5 files, 4 faces, 1 without a face, 1 unreadable" in err
    assert "Traceback" not in err

    # csv to a file (atomic write), same rows
    target = tmp_path / "out" / "ages.csv"
    code, out, err = run([str(mixed_folder), "--runs", str(runs), "--format", "csv", "--out", str(target)], capsys)
    assert code == 0 and out == ""
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(table[0]) == ["file", "face", "box", "age", "lo", "hi", "coverage", "status"]
    assert len(table) == len(rows)
    assert [r["age"] for r in table] == ["" if r["age"] is None else f"{r['age']:.1f}" for r in rows]
    assert sum(r["box"] == "whole image" for r in table) == 2
    assert not list(target.parent.glob(".*.tmp"))


def test_whole_image_matches_training_resize(chips):
    img, _ = open_rgb(chips[0])
    assert np.array_equal(whole_image(img, SIZE), load_face(chips[0], SIZE))


def test_table_format_and_detect_never(chips, runs, capsys, tmp_path):
    noise = tmp_path / "flat.png"
    Image.new("RGB", (320, 240), (120, 130, 140)).save(noise)
    code, out, err = run([str(chips[0]), str(noise), "--runs", str(runs), "--detect", "never"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["file", "face", "box", "age", "status"]
    assert len(lines) == 3 and all("whole image" in line for line in lines[1:])
    assert "2 files, 2 faces, 0 without a face, 0 unreadable" in err


def test_ages_come_with_their_conformal_interval_when_the_run_has_a_calibration(chips, state_dict, tmp_path, capsys):
    ckpt = write_run(tmp_path / "runs", "baseline", state_dict)
    rng = np.random.default_rng(0)
    y, sigma = rng.uniform(1, 80, 300), rng.uniform(2, 6, 300)
    cal = fit_run_calibration(y=y, pred=y + rng.normal(0, sigma), sigma=sigma, groups={},
                              settings=ConformalSettings(coverage=0.8, mondrian=[]), head="expectation", max_age=116,
                              checkpoint_sha256=file_sha256(ckpt), manifest_hash=None)
    save_run_calibration(cal, calibration_file(ckpt))
    code, out, err = run([str(c) for c in chips[:3]] + ["--model", str(ckpt), "--detect", "never"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "age [80% interval]" in lines[0] and "80% intervals from" in err
    cells = [re.search(r"(\d+) \[(\d+)-(\d+)\]", line) for line in lines[1:]]
    assert all(cells) and all(int(m[2]) <= int(m[1]) <= int(m[3]) for m in cells), out
    code, out, err = run([str(chips[0]), "--model", str(ckpt), "--detect", "never", "--format", "json"], capsys)
    (row,) = json.loads(out)
    est = TorchEstimator(ckpt).predict_with_spread(np.stack([whole_image(open_rgb(chips[0])[0], SIZE)]))
    half = cal.marginal.quantile * max(float(est[1][0]), cal.marginal.sigma_floor)  # scaled: age ± q·σ̂
    assert row["coverage"] == 0.8 and row["lo"] == pytest.approx(max(row["age"] - half, 0), abs=0.11)
    assert row["hi"] == pytest.approx(row["age"] + half, abs=0.11)


# --------------------------------------------------------------------------- (d) nothing readable

def test_nothing_readable_is_one_line_exit_2(tmp_path, runs, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "b.png").write_bytes(b"")
    code, out, err = run([str(folder), "--runs", str(runs)], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("agefair: error: no image could be read")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv_tail", [["--model", "missing.pt"], ["--runs", "no-such-runs"]])
def test_bad_model_is_one_line_exit_2(chips, tmp_path, capsys, argv_tail, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run([str(chips[0]), *argv_tail], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("agefair: error:")


def test_empty_folder_is_one_line_exit_2(tmp_path, runs, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = run([str(tmp_path / "empty"), "--runs", str(runs)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_collect_files(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ["a.JPG", "e/b.jpg.chip.jpg", "e/c.webp", "readme.md"]:
        (tmp_path / "d" / name).write_bytes(b"x")
    files, notes = collect_files([str(tmp_path / "d"), str(tmp_path / "d" / "a.JPG")])
    assert [f.name for f in files] == ["a.JPG", "b.jpg.chip.jpg", "c.webp"] and notes == []


# --------------------------------------------------------------------------- (e) default model

def test_default_model_is_lowest_val_mae(tmp_path, state_dict, chips, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "baseline", state_dict, 9.0)
    write_run(runs, "weighted", state_dict, 7.25)
    write_run(runs, "lds", state_dict, 8.0)
    write_run(runs, "unfinished", state_dict, None)  # no val_mae stored: skipped
    (runs / "broken").mkdir()
    (runs / "broken" / "model.pt").write_bytes(b"not a checkpoint")  # skipped, not fatal
    best, why = pick_best_run(runs)
    assert best == runs / "weighted" / "model.pt"
    assert "7.25" in why and "broken" in why and "unfinished" in why

    code, out, err = run([str(chips[0]), "--runs", str(runs), "--format", "csv"], capsys)
    assert code == 0
    assert f"model {runs / 'weighted' / 'model.pt'} (lowest validation MAE" in err

    with pytest.raises(AgefairError, match="no trained model"):
        pick_best_run(tmp_path / "nothing-here")
