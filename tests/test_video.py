"""``python -m agefair.video``: tracking, age re-use, FPS report, annotated output, bad sources.

Clips are written with OpenCV into tmp_path: a textured synthetic background, and for the
detection tests a shared UTKFace chip moving across it (nothing derived from UTKFace is written
outside tmp_path). The model is a tiny random resnet18 at 32 px.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.errors import run_cli
from agefair.data.faces import chip_region
from agefair.inference.estimator import load_estimator
from agefair.inference.tracking import FlowMotion, Track, associate, iou
from agefair.inference.video import VideoSettings, process_video
from agefair.models.checkpoint import save_checkpoint
from agefair.models.network import create_model
from agefair.video import main

SIZE = 32
W, H = 320, 240
CHIP = "26_0_0_20170117200030565.jpg.chip.jpg"  # HOG finds this face (see tests/test_predict.py)
CHIP_SIDE = 150
FPS_LINE = re.compile(r"agefair: (\d+) frames \((\d+)x(\d+)\) in [\d.]+ s: ([\d.]+) FPS end to end")
AGE_LINE = re.compile(r"age model: (\d+) batched calls for (\d+) faces, over (\d+) face-frames")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The video CLI sets torch's (process-wide) thread count: restore it for the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE, pretrained="none"))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint({"model": create_model(cfg.model).state_dict(), "config": cfg.model_dump(mode="json"),
                     "meta": {}, "val_mae": 9.0}, path)
    return path


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.clip(80 + 0.2 * xx[..., None] + 0.15 * yy[..., None] + rng.normal(0, 6, (H, W, 3)), 0, 255)
    return img.astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def face_position(t: int) -> tuple[int, int]:
    """Top-left corner of the chip at frame t: 3 px right and 1 px down per frame."""
    return 20 + 3 * t, 30 + t


@pytest.fixture(scope="module")
def face_clip(utkface_dir, tmp_path_factory) -> tuple[Path, list[tuple[int, int, int, int]]]:
    """40 frames, 320x240, one UTKFace chip (150 px) moving; and the chip's rect per frame."""
    path = utkface_dir / CHIP
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared UTKFace folder")
    chip = cv2.cvtColor(np.asarray(Image.open(path).convert("RGB").resize((CHIP_SIDE, CHIP_SIDE), Image.BILINEAR)),
                        cv2.COLOR_RGB2BGR)
    bg = background()
    frames, rects = [], []
    for t in range(40):
        x, y = face_position(t)
        frame = bg.copy()
        frame[y:y + CHIP_SIDE, x:x + CHIP_SIDE] = chip
        frames.append(frame)
        rects.append((x, y, x + CHIP_SIDE, y + CHIP_SIDE))
    return write_clip(tmp_path_factory.mktemp("clip") / "face.mp4", frames), rects


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


class CountingEstimator:
    """Wraps an estimator and records the batch size of every call."""

    def __init__(self, inner):
        self.inner, self.size, self.description, self.calls = inner, inner.size, inner.description, []
        self.calibration, self.calibration_note = inner.calibration, inner.calibration_note

    def predict(self, faces):
        return self.predict_with_spread(faces)[0]

    def predict_with_spread(self, faces):
        self.calls.append(len(faces))
        return self.inner.predict_with_spread(faces)


# --------------------------------------------------------------------------- the CLI on a face clip

def test_video_cli_tracks_a_face_and_writes_the_annotated_clip(face_clip, checkpoint, tmp_path, capsys):
    clip, _ = face_clip
    out = tmp_path / "out" / "annotated.mp4"
    code, stdout, err = run([str(clip), "--model", str(checkpoint), "--out", str(out), "--max-frames", "30",
                             "--detect-every", "5", "--age-every", "10"], capsys)
    assert code == 0, err
    assert f"model {checkpoint} (given with --model; resnet18@32, torch" in err
    assert torch.get_num_threads() == 1  # --threads default
    m = FPS_LINE.search(stdout)
    assert m, stdout
    assert (int(m[1]), int(m[2]), int(m[3])) == (30, W, H) and float(m[4]) > 0
    assert re.search(r"ms per frame: decode [\d.]+, track [\d.]+, detect [\d.]+, age [\d.]+, draw [\d.]+, "
                     r"write [\d.]+; total [\d.]+", stdout), stdout
    calls, faces, face_frames = (int(v) for v in AGE_LINE.search(stdout).groups())
    assert face_frames >= 28  # the face is shown on (nearly) every frame
    assert faces == calls == 3  # one face, estimated on frames 0, 10, 20: not on every frame
    assert "agefair: track 1: from frame 0, 3 estimates, age" in stdout and "agefair: track 2:" not in stdout

    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    assert n == 30 and shape == (H, W, 3)
    assert not list(out.parent.glob(".*.tmp*"))  # written through a temporary file, renamed


def test_tracking_reuses_ages_and_follows_the_face(face_clip, checkpoint):
    clip, rects = face_clip
    est = CountingEstimator(load_estimator(checkpoint))
    seen: list[list[Track]] = []
    settings = VideoSettings(detect_every=8, age_every=12, smooth=3)
    result = process_video(str(clip), est, settings, on_frame=lambda i, tracks: seen.append(
        [(t.id, t.box, t.age) for t in tracks]), progress=False)
    assert result.frames == 40 and len(seen) == 40
    assert est.calls[0] == 1  # the warm-up call before the clock starts
    pipeline_calls = est.calls[1:]
    assert len(pipeline_calls) == result.pipeline.model_calls == 4  # frames 0, 12, 24, 36
    assert sum(pipeline_calls) < 40  # far fewer crops than faces x frames
    assert result.pipeline.detections == 5  # frames 0, 8, 16, 24, 32: the flow tracker lost nothing
    for rect, tracks in zip(rects, seen):
        assert [tid for tid, _, _ in tracks] == [1]  # one track all along
        _, box, age = tracks[0]
        cx, cy, side = chip_region(box)
        assert iou((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), rect) > 0.6
        assert age is not None and 0 <= age <= 116
    # the shown age is the running median of the last 3 estimates
    (track,) = result.pipeline.all_tracks()
    assert track.estimates == 4 and len(track.ages) == 3 and track.age == pytest.approx(np.median(track.ages))


# --------------------------------------------------------------------------- no face, no data needed

def test_clip_without_faces(checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(3)
    frames = [np.clip(background(1).astype(int) + rng.integers(-3, 4, (H, W, 3)), 0, 255).astype(np.uint8)
              for _ in range(12)]
    clip = write_clip(tmp_path / "empty.avi", frames)
    code, stdout, err = run([str(clip), "--model", str(checkpoint), "--detect-every", "5"], capsys)
    assert code == 0, err
    m = FPS_LINE.search(stdout)
    assert m and int(m[1]) == 12, stdout
    assert "detection on 3 of 12 frames" in stdout  # frames 0, 5, 10
    assert "age model: 0 batched calls for 0 faces, over 0 face-frames" in stdout
    assert "agefair: track 1:" not in stdout


@pytest.mark.parametrize("make_source", [
    lambda tmp: str(tmp / "missing.mp4"),
    lambda tmp: str(tmp),  # a folder
    lambda tmp: (tmp / "text.mp4").write_text("not a video\n") and str(tmp / "text.mp4"),
    lambda tmp: "7",  # no such webcam
], ids=["missing", "folder", "not-a-video", "no-webcam"])
def test_bad_source_is_one_line_exit_2(make_source, tmp_path, checkpoint, capfd):
    source = make_source(tmp_path)
    with pytest.raises(SystemExit) as exc:
        run_cli(main, [source, "--model", str(checkpoint)])
    out, err = capfd.readouterr()  # capfd: OpenCV and FFmpeg write to the file descriptor directly
    assert exc.value.code == 2
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("agefair: error:") and "Traceback" not in err


def test_bad_options_are_one_line_exit_2(face_clip, checkpoint, tmp_path, capsys):
    clip, _ = face_clip
    (tmp_path / "file").write_text("a file, not a folder")
    for extra in (["--out", str(tmp_path / "a.txt")], ["--detect-every", "0"], ["--max-frames", "0"],
                  ["--model", str(tmp_path / "nope.pt")], ["--threads", "0"]):
        code, out, err = run([str(clip), "--model", str(checkpoint), *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("agefair: error:"), (extra, err)
    # an output folder that cannot be made (under a file): refused before any work (agefair/cli/outputs.py)
    target = tmp_path / "file" / "out.mp4"
    code, out, err = run([str(clip), "--model", str(checkpoint), "--out", str(target), "--max-frames", "2"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and out == ""
    assert err.startswith(f"agefair: error: --out {target}") and "is a file, not a folder" in err
    assert not target.parent.is_dir()


# --------------------------------------------------------------------------- tracking pieces

def test_associate_matches_by_iou():
    tracks = [(0, 0, 10, 10), (100, 100, 150, 150), (300, 300, 320, 320)]
    dets = [(102, 98, 151, 149), (1, 1, 11, 11), (500, 500, 520, 520)]
    pairs, lost, new = associate(tracks, dets, 0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)] and lost == [2] and new == [2]
    assert associate([], dets, 0.3) == ([], [], [0, 1, 2])
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_flow_motion_follows_a_shift_and_loses_a_blank():
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (5, 5), 0)
    moved = np.roll(base, (3, 5), axis=(0, 1))  # 5 px right, 3 px down
    box = (100.0, 60.0, 180.0, 140.0)
    motion = FlowMotion(base, box)
    new = motion.step(base, moved, box)
    assert new is not None
    assert np.allclose(new, (105, 63, 185, 143), atol=0.6), new
    blank = np.full_like(base, 128)
    assert FlowMotion(base, box).step(base, blank, box) is None
