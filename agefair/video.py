"""``python -m agefair.video SOURCE``: ages of the faces in a video file or webcam stream, in real time.

Per frame: decode; move each face track's box with a cheap tracker (agefair.inference.tracking: optical flow
by default); every ``--detect-every`` frames, or at once when a track is lost, detect faces with
face_recognition's HOG on a copy of the frame shrunk to ``--detect-width`` and match detections to
tracks by IoU; estimate ages only for new tracks and then every ``--age-every`` frames per track,
all due faces in one batch, with UTKFace's framing (agefair.data.faces.utk_crop); show each track's
running median age; draw boxes and ages; write the annotated video with ``--out``. At the end it
prints the measured frames per second and the time per frame of each stage.

SOURCE is a video file (anything OpenCV's FFmpeg reader decodes) or a webcam index (0, 1, ...).
``--model`` is a checkpoint (.pt) or an exported ONNX model (.onnx, run with onnxruntime).
Ctrl-C stops a webcam stream cleanly (the output file and the figures cover the frames so far).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agefair.cli.args import ArgumentParser
from agefair.cli.outputs import check_output_file
from agefair.core.errors import AgefairError, run_cli
from agefair.core.paths import IMAGE_SUFFIXES
from agefair.inference.tracking import (
    TRACKERS,
)
from agefair.inference.video import (
    DEFAULT_THREADS,
    OUT_CODECS,
    VideoSettings,
    open_with_model,
    process_video,
    stage_report,
)


def positive(name: str, value: int, least: int = 1) -> int:
    if value < least:
        raise AgefairError(f"{name} must be at least {least}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = VideoSettings()
    p = ArgumentParser(prog="python -m agefair.video",
                                description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("source", metavar="SOURCE", help="a video file, or a webcam index (0, 1, ...)")
    p.add_argument("--model", metavar="CKPT", help="checkpoint (.pt) or ONNX model (.onnx) "
                                                   "(default: the run in --runs with the lowest validation MAE)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="where to look for runs/*/model.pt (default: runs)")
    p.add_argument("--out", metavar="FILE", help="write the annotated video here (.mp4: MPEG-4 part 2; .avi: MJPEG)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (default: the whole video)")
    p.add_argument("--detect-every", type=int, default=d.detect_every, metavar="K",
                   help=f"run face detection every K frames, and whenever a track is lost (default: {d.detect_every})")
    p.add_argument("--detect-width", type=int, default=d.detect_width, metavar="W",
                   help=f"shrink frames to this width for detection; the smallest face found is about 80 px at "
                        f"this width with --upsample 0 (default: {d.detect_width})")
    p.add_argument("--upsample", type=int, default=d.upsample, metavar="N",
                   help=f"HOG upsampling: each step halves the smallest face found and costs ~4x the time "
                        f"(default: {d.upsample})")
    p.add_argument("--age-every", type=int, default=d.age_every, metavar="M",
                   help=f"re-estimate each face's age every M frames (default: {d.age_every})")
    p.add_argument("--smooth", type=int, default=d.smooth, metavar="N",
                   help=f"show the median of each face's last N age estimates (default: {d.smooth})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help=f"CPU threads of the age model (torch or onnxruntime) (default: {DEFAULT_THREADS}: its "
                        f"batches are one or two faces, and on a CPU shared with other work torch's multi-threaded "
                        f"ops stall when a core is taken; see README)")
    p.add_argument("--tracker", choices=TRACKERS, default=d.tracker,
                   help="how boxes follow faces between detections: flow (optical flow, default), mil (OpenCV's "
                        "TrackerMIL, slow), none (boxes move only at detections)")
    p.add_argument("--no-align", action="store_true",
                   help="crop faces from their boxes only (default: align them by their eye and nose landmarks, like "
                        "UTKFace's chips)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = VideoSettings(detect_every=positive("--detect-every", args.detect_every),
                             detect_width=positive("--detect-width", args.detect_width, 64),
                             upsample=args.upsample, age_every=positive("--age-every", args.age_every),
                             smooth=positive("--smooth", args.smooth), tracker=args.tracker, align=not args.no_align)
    if not 0 <= args.upsample <= 3:
        raise AgefairError(f"--upsample must be between 0 and 3, got {args.upsample}")
    if args.max_frames is not None:
        positive("--max-frames", args.max_frames)
    if args.out and Path(args.out).suffix.lower() not in OUT_CODECS:
        raise AgefairError(f"--out {args.out}: the name must end in {' or '.join(OUT_CODECS)}")
    if args.out:
        check_output_file(args.out)
    threads = positive("--threads", args.threads)
    if not args.source.strip().isdigit() and args.source.lower().endswith(IMAGE_SUFFIXES):
        raise AgefairError(f"{args.source}: an image file, not a video (ages of photos: python -m agefair.predict "
                           f"{args.source})")
    opened, estimator, model_path, why = open_with_model(args.source, args.model, args.runs, threads)
    print(f"agefair: model {model_path} ({why}; {estimator.description}); {estimator.calibration_note}", file=sys.stderr)
    result = process_video(args.source, estimator, settings, args.out, args.max_frames, opened=opened)
    for line in stage_report(result):
        print(f"agefair: {line}")
    if args.out:
        print(f"agefair: annotated video written to {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
