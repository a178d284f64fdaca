"""Real-time video benchmark: end-to-end FPS and per-stage time of ``agefair.video`` on a synthetic clip.

    python benchmarks/video.py [--model CKPT | --random BACKBONE@SIZE] [--onnx] [--faces 1|2]
                               [--frames 300] [--tracker flow|mil|none] [--out annotated.mp4] [--threads N]

Builds a 640x480, 30 fps clip (MPEG-4 part 2, in a temporary folder, deleted afterwards) from
shared UTKFace chips ($AGEFAIR_DATA, default ../shared/datasets/utkface/images) pasted on a
textured background: one face (200 px chip) moving on a smooth path, and with ``--faces 2`` a
second one (170 px). Then runs the video pipeline on it exactly as ``python -m agefair.video``
does (decode, track, detect, age, draw; plus write with --out) and prints the measured FPS, the time
per frame of each stage, the frame-time spread and how well the tracks followed the pasted faces
(share of frames where a track's UTKFace-framed square overlaps the pasted chip with IoU > 0.5).

``--random resnet50@128`` times a randomly initialised model of that architecture (built with
agefair.models.network.create_model and saved as a checkpoint): its ages are meaningless, its speed is the
real model's. ``--onnx`` exports the model (agefair.export) and runs it with onnxruntime.
Run it on a quiet machine: other jobs on the CPU lower every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agefair.core.config import ModelConfig, TrainConfig  # noqa: E402
from agefair.core.errors import AgefairError, run_cli  # noqa: E402
from agefair.data.faces import chip_region, detect_faces  # noqa: E402
from agefair.data.images import ImageReadError, open_rgb  # noqa: E402
from agefair.inference.estimator import load_estimator  # noqa: E402
from agefair.inference.tracking import TRACKERS, iou  # noqa: E402
from agefair.inference.video import DEFAULT_THREADS, VideoSettings, process_video, stage_report  # noqa: E402
from agefair.models.checkpoint import save_checkpoint  # noqa: E402

W, H, FPS = 640, 480, 30.0
DEFAULT_DATA = "../shared/datasets/utkface/images"
# Chips HOG finds (used by tests/test_predict.py too); others are searched for if these are missing.
CHIP_NAMES = ["26_0_0_20170117200030565.jpg.chip.jpg", "59_1_1_20170113012852120.jpg.chip.jpg"]
SIDES = [200, 170]


def data_dir() -> Path:
    raw = os.environ.get("AGEFAIR_DATA") or DEFAULT_DATA
    path = Path(raw)
    if not path.is_absolute() and not path.is_dir():
        path = REPO / raw
    if not path.is_dir() or not any(path.iterdir()):
        raise AgefairError(f"UTKFace folder {path} is missing or empty: set AGEFAIR_DATA to the shared "
                           f"'Aligned & Cropped Faces' folder (default {DEFAULT_DATA})")
    return path


def pick_chips(folder: Path, n: int) -> list[Path]:
    named = [folder / name for name in CHIP_NAMES[:n]]
    if all(p.is_file() for p in named):
        return named
    found: list[Path] = []
    for p in sorted(folder.iterdir())[:200]:
        try:
            rgb = np.asarray(open_rgb(p)[0])
        except ImageReadError:
            continue
        if len(detect_faces(rgb)) == 1:
            found.append(p)
            if len(found) == n:
                return found
    raise AgefairError(f"{folder}: fewer than {n} chips with a face HOG finds among the first 200 files")


def background(seed: int) -> np.ndarray:
    """A static textured scene: gradient, noise and a few rectangles (gives optical flow texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = 70 + 0.12 * xx[..., None] + 0.1 * yy[..., None] + rng.normal(0, 5, (H, W, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, W - 60)), int(rng.integers(0, H - 60))
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 120)), y + int(rng.integers(20, 120))), colour, -1)
    return img


def face_path(k: int, t: int) -> tuple[int, int]:
    """Centre of face k at frame t: smooth loops, up to ~5 px per frame."""
    if k == 0:
        return (round(190 + 70 * np.sin(2 * np.pi * t / 120)), round(240 + 60 * np.sin(2 * np.pi * t / 90)))
    return (round(480 + 40 * np.cos(2 * np.pi * t / 100)), round(240 + 70 * np.cos(2 * np.pi * t / 140)))


def make_clip(path: Path, chips: list[Path], frames: int, seed: int = 0) -> list[list[tuple[int, int, int, int]]]:
    """Write the clip (BGR frames, mp4v); returns each frame's pasted chip rects."""
    bg = background(seed)
    faces = [cv2.cvtColor(np.asarray(Image.open(p).convert("RGB").resize((s, s), Image.BILINEAR)), cv2.COLOR_RGB2BGR)
             for p, s in zip(chips, SIDES)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise AgefairError(f"{path}: OpenCV cannot write an mp4v video")
    truth = []
    for t in range(frames):
        frame = cv2.cvtColor(bg, cv2.COLOR_RGB2BGR)
        rects = []
        for k, face in enumerate(faces):
            s = face.shape[0]
            cx, cy = face_path(k, t)
            x0, y0 = cx - s // 2, cy - s // 2
            frame[y0:y0 + s, x0:x0 + s] = face
            rects.append((x0, y0, x0 + s, y0 + s))
        writer.write(frame)
        truth.append(rects)
    writer.release()
    return truth


def random_checkpoint(spec: str, folder: Path) -> Path:
    """A checkpoint of a randomly initialised BACKBONE@SIZE model (seed 0)."""
    try:
        backbone, size = spec.split("@")
        cfg = TrainConfig(model=ModelConfig(backbone=backbone, image_size=int(size), pretrained="none"))
    except ValueError as exc:
        raise AgefairError(f"--random {spec}: expected BACKBONE@SIZE like resnet50@128 ({exc})") from None
    from agefair.models.network import create_model

    torch.manual_seed(0)
    model = create_model(cfg.model)
    path = folder / f"random-{backbone}-{size}.pt"
    save_checkpoint({"model": model.state_dict(), "config": cfg.model_dump(mode="json"), "meta": {}}, path)
    return path


def main(argv: list[str] | None = None) -> int:
    d = VideoSettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="runs/baseline/model.pt", metavar="CKPT",
                   help="checkpoint or .onnx (default: runs/baseline/model.pt, a cpu-preset ResNet-18@48)")
    p.add_argument("--random", metavar="BACKBONE@SIZE", help="time a randomly initialised model instead, e.g. resnet50@128")
    p.add_argument("--onnx", action="store_true", help="export the model to ONNX and run it with onnxruntime")
    p.add_argument("--faces", type=int, choices=(1, 2), default=1)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="background seed (default: 0)")
    p.add_argument("--tracker", choices=TRACKERS, default=d.tracker)
    p.add_argument("--detect-every", type=int, default=d.detect_every)
    p.add_argument("--detect-width", type=int, default=d.detect_width)
    p.add_argument("--age-every", type=int, default=d.age_every)
    p.add_argument("--out", metavar="FILE", help="also write the annotated video (adds the write stage)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help=f"the age model's CPU threads (default: {DEFAULT_THREADS}, as python -m agefair.video)")
    args = p.parse_args(argv)
    if args.frames < 2:
        raise AgefairError("--frames must be at least 2")

    chips = pick_chips(data_dir(), args.faces)
    settings = VideoSettings(detect_every=args.detect_every, detect_width=args.detect_width,
                             age_every=args.age_every, tracker=args.tracker)
    with tempfile.TemporaryDirectory(prefix="agefair-video-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        clip = tmp / "clip.mp4"
        truth = make_clip(clip, chips, args.frames, args.seed)
        print(f"clip: {args.frames} frames {W}x{H} at {FPS:.0f} fps, {args.faces} face(s) "
              f"({', '.join(f'{c.name} at {s} px' for c, s in zip(chips, SIDES))}), "
              f"built in {time.perf_counter() - start:.1f} s")

        model = random_checkpoint(args.random, tmp) if args.random else Path(args.model)
        if args.onnx:
            from agefair.export import main as export_main

            onnx_path = tmp / (model.stem + ".onnx")
            export_main(["--model", str(model), "--onnx", str(onnx_path)])
            model = onnx_path
        estimator = load_estimator(model, threads=args.threads)
        label = f"randomly initialised {estimator.description}" if args.random else estimator.description
        print(f"model: {model} ({label}); age model threads {args.threads}, {os.cpu_count()} CPUs, "
              f"OpenCV threads {cv2.getNumThreads()}")
        print(f"settings: tracker {settings.tracker}, detect every {settings.detect_every} frames at width "
              f"{settings.detect_width}, age every {settings.age_every} frames, median of {settings.smooth}")

        boxes_per_frame: list[list[tuple]] = []
        result = process_video(str(clip), estimator, settings, out=args.out,
                               on_frame=lambda i, tracks: boxes_per_frame.append([t.box for t in tracks]))
    for line in stage_report(result):
        print(line)
    for k in range(args.faces):
        best = []
        for rects, boxes in zip(truth, boxes_per_frame):
            squares = [(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2) for cx, cy, s in map(chip_region, boxes)]
            best.append(max((iou(q, rects[k]) for q in squares), default=0.0))
        best = np.array(best)
        followed = best > 0.5
        print(f"face {k + 1}: followed on {followed.sum()} of {len(best)} frames (IoU > 0.5 between the track's "
              f"UTKFace-framed square and the pasted chip); mean IoU there {best[followed].mean() if followed.any() else 0:.2f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
