"""``python -m agefair.predict PATH...``: predict the age of every face in photos or face crops.

Each image is read safely (a corrupt file is reported and skipped). Aligned face crops like
UTKFace's are predicted whole; in other pictures faces are detected (face_recognition's HOG or CNN
detector), each is cropped with UTKFace's measured framing (agefair.data.faces) and resized to the
model's input size. One row per face: file, face index, box (left,top,right,bottom, or "whole
image" for crops), predicted age; files with no face or that cannot be read get one row saying so.
Boxes are pixels of the upright picture (after its EXIF orientation is applied). With the run's
calibration.json (or an ONNX model's .calibration.json) each age gets its conformal interval:
``34 [29-41]``, and columns lo, hi, coverage in CSV and JSON. ``--model`` takes
a checkpoint (.pt, run with torch) or an ONNX model written by agefair.export (.onnx, onnxruntime).

Exit code 0 when at least one file was read, 2 when none could be (or on bad usage or model).
"""

from __future__ import annotations

import argparse
import sys

from agefair.cli.args import ArgumentParser
from agefair.cli.outputs import check_output_file
from agefair.core.errors import AgefairError, run_cli
from agefair.data.faces import DETECTORS
from agefair.inference.estimator import load_estimator
from agefair.inference.photos import (
    Detection,
    collect_files,
    format_rows,
    predict_files,
    write_output,
)
from agefair.models.runs import model_or_best_run


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m agefair.predict",
                                description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("paths", nargs="+", metavar="PATH", help="images, or folders searched recursively for images")
    p.add_argument("--model", metavar="CKPT", help="checkpoint (.pt) or ONNX model from agefair.export (.onnx, run with onnxruntime) "
                                                      "(default: the run in --runs with the lowest validation MAE)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="where to look for runs/*/model.pt (default: runs)")
    p.add_argument("--detect", choices=("auto", "always", "never"), default="auto",
                   help="auto: square face crops like UTKFace's are used whole, faces are detected in other "
                        "pictures; always: detect in every image; never: every image is one face, no detection "
                        "(much faster for folders of crops) (default: auto)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="face detector: hog (fast, frontal faces) or cnn (better on turned faces; slow without a GPU)")
    p.add_argument("--upsample", type=int, metavar="N",
                   help="times the detector doubles the image to find small faces (default: 1 for hog, 0 for cnn)")
    p.add_argument("--max-side", type=int, default=800, metavar="PX",
                   help="pictures larger than this are shrunk for detection; boxes are mapped back (default: 800)")
    p.add_argument("--no-align", action="store_true",
                   help="crop detected faces from the detector's box only (default: align them by their eye and nose "
                        "landmarks, like UTKFace's chips)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    p.add_argument("--out", metavar="FILE", help="write the output here (atomically) instead of to stdout")
    p.add_argument("--batch", type=int, default=64, metavar="N", help="faces per model batch (default: 64)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out:
        check_output_file(args.out)
    if args.batch < 1:
        raise AgefairError(f"--batch must be at least 1, got {args.batch}")
    if args.max_side < 64:
        raise AgefairError(f"--max-side must be at least 64, got {args.max_side}")
    upsample = args.upsample if args.upsample is not None else (1 if args.detector == "hog" else 0)
    if not 0 <= upsample <= 3:
        raise AgefairError(f"--upsample must be between 0 and 3, got {upsample}")

    files, notes = collect_files(args.paths)
    if not files:
        raise AgefairError(f"no image files in {', '.join(args.paths)}")
    checkpoint, why = model_or_best_run(args.model, args.runs)
    estimator = load_estimator(checkpoint)

    def announce() -> None:  # only once something is read: with nothing readable the error stays one line
        for note in notes:
            print(f"agefair: {note}", file=sys.stderr)
        print(f"agefair: model {checkpoint} ({why}); {estimator.calibration_note}", file=sys.stderr)

    detection = Detection(args.detect, args.detector, upsample, args.max_side, align=not args.no_align)
    result = predict_files(files, estimator, detection=detection, batch=args.batch, on_first_read=announce)
    if len(result.unreadable) == len(files):
        more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
        raise AgefairError(f"no image could be read: {result.unreadable[0]}{more}")
    write_output(format_rows(result.rows, args.format), args.out)
    print(f"agefair: {len(files)} files, {result.n_faces} faces, {result.n_no_face} without a face, "
          f"{len(result.unreadable)} unreadable" + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
