"""``python -m agefair.predict PATH...``: predict the age of every face in photos or face crops.

Each image is read safely (a corrupt file is reported and skipped). Aligned face crops like
UTKFace's are predicted whole; in other pictures faces are detected (face_recognition's HOG or CNN
detector), each is cropped with UTKFace's measured framing (agefair.faces) and resized to the
model's input size. One row per face: file, face index, box (left,top,right,bottom, or "whole
image" for crops), predicted age; files with no face or that cannot be read get one row saying so.
Boxes are pixels of the upright picture (after its EXIF orientation is applied). ``--model`` takes
a checkpoint (.pt, run with torch) or an ONNX model written by agefair.export (.onnx, onnxruntime).

Exit code 0 when at least one file was read, 2 when none could be (or on bad usage or model).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from agefair.checkpoint import load_checkpoint
from agefair.estimator import load_estimator
from agefair.errors import AgefairError, run_cli
from agefair.faces import DETECTORS, crop_verdict, detect_faces, utk_crop
from agefair.images import ImageReadError, open_rgb
from agefair.io_utils import write_text_atomic
from agefair.paths import IMAGE_SUFFIXES

WHOLE_IMAGE = "whole image"
NO_FACE = "no face found"
COLUMNS = ["file", "face", "box", "age", "status"]


@dataclass
class Row:
    file: str
    face: int | None = None
    box: tuple[int, int, int, int] | str | None = None  # a box, WHOLE_IMAGE, or None (no face / unreadable)
    age: float | None = None
    status: str = "ok"

    def box_text(self) -> str:
        if self.box is None:
            return ""
        return self.box if isinstance(self.box, str) else ",".join(str(v) for v in self.box)

    def age_text(self) -> str:
        return "" if self.age is None else f"{self.age:.1f}"

    def as_text(self) -> list[str]:
        return [self.file, "" if self.face is None else str(self.face), self.box_text(), self.age_text(), self.status]

    def as_json(self) -> dict:
        box = list(self.box) if isinstance(self.box, tuple) else self.box
        return {"file": self.file, "face": self.face, "box": box,
                "age": None if self.age is None else round(self.age, 1), "status": self.status}


# --------------------------------------------------------------------------- inputs

def is_image_name(name: str) -> bool:
    """An image suffix of agefair.paths.IMAGE_SUFFIXES, any case (UTKFace's ``.jpg.chip.jpg`` included)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def collect_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Image files from files and folders (recursive, sorted), without repeats; and notes for stderr.

    A named file is taken whatever its suffix (it is the user's explicit choice); a missing path is
    kept so that it is reported as unreadable like any other file.
    """
    files: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_image_name(q.name))
            if not found:
                notes.append(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            for q in found:
                add(q)
        else:
            add(p)
    return files, notes


# --------------------------------------------------------------------------- the model

def pick_best_run(runs_dir: Path) -> tuple[Path, str]:
    """The runs_dir/*/model.pt with the lowest stored val_mae, and a sentence saying why."""
    candidates = sorted(runs_dir.glob("*/model.pt"))
    if not candidates:
        raise AgefairError(f"no trained model in {runs_dir}/ (no */model.pt); train one with "
                           f"python -m agefair.train or pass --model CKPT")
    scored: list[tuple[float, Path]] = []
    skipped: list[str] = []
    for path in candidates:
        try:
            mae = load_checkpoint(path).get("val_mae")
        except AgefairError as exc:
            skipped.append(f"{path.parent.name} ({str(exc).removeprefix(f'{path}: ')})")
            continue
        if not isinstance(mae, (int, float)) or not math.isfinite(mae):
            skipped.append(f"{path.parent.name} (no validation MAE stored)")
            continue
        scored.append((float(mae), path))
    if not scored:
        raise AgefairError(f"no usable model in {runs_dir}/: {'; '.join(skipped)}; pass --model CKPT")
    scored.sort(key=lambda t: (t[0], str(t[1])))
    mae, best = scored[0]
    others = ", ".join(f"{p.parent.name} {m:.2f}" for m, p in scored[1:])
    why = (f"lowest validation MAE in {runs_dir}/: {mae:.2f}" + (f" (others: {others})" if others else " (only run)")
           + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return best, why


class Predictor:
    """Batches face crops and predicts their ages with a checkpoint or an exported ONNX model."""

    def __init__(self, model_path: Path, batch: int):
        self.estimator = load_estimator(model_path)
        self.size = self.estimator.size
        self.batch = batch
        self.pending: list[tuple[Row, np.ndarray]] = []

    def add(self, row: Row, face: np.ndarray) -> None:
        self.pending.append((row, face))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        ages = self.estimator.predict(np.stack([f for _, f in self.pending]))
        for (row, _), age in zip(self.pending, ages):
            row.age = float(age)
        self.pending = []


def whole_image(img: Image.Image, size: int) -> np.ndarray:
    """The image as the model's input, resized exactly like training images (agefair load_face)."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


# --------------------------------------------------------------------------- output

def format_rows(rows: list[Row], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([r.as_json() for r in rows], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(r.as_text() for r in rows)
        return buf.getvalue()
    table = [COLUMNS] + [r.as_text() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    right = {1, 3}  # face index and age are right-aligned
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in table]
    return "\n".join(lines) + "\n"


def write_output(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_text_atomic(out, text)
    except OSError as exc:
        raise AgefairError(f"{out}: cannot write: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agefair.predict",
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
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    p.add_argument("--out", metavar="FILE", help="write the output here (atomically) instead of to stdout")
    p.add_argument("--batch", type=int, default=64, metavar="N", help="faces per model batch (default: 64)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    if args.model:
        checkpoint, why = Path(args.model), "given with --model"
    else:
        checkpoint, why = pick_best_run(Path(args.runs))
    predictor = Predictor(checkpoint, args.batch)
    size = predictor.size

    rows: list[Row] = []
    unreadable: list[str] = []
    n_faces = n_no_face = 0
    announced = False
    bar = tqdm(files, desc="predicting", unit="file", disable=None, file=sys.stderr, leave=False)
    for path in bar:
        name = str(path)
        try:
            img, _ = open_rgb(path)
        except ImageReadError as exc:
            msg = str(exc).removeprefix(f"{path}: ")
            unreadable.append(f"{path}: {msg}")
            rows.append(Row(name, status=f"unreadable: {msg}"))
            continue
        if not announced:  # only once something is read: with nothing readable the error stays one line
            for note in notes:
                print(f"agefair: {note}", file=sys.stderr)
            print(f"agefair: model {checkpoint} ({why})", file=sys.stderr)
            announced = True
        rgb = np.asarray(img, dtype=np.uint8)
        if args.detect == "never":
            is_crop, boxes = True, []
        else:
            boxes = detect_faces(rgb, model=args.detector, upsample=upsample, max_side=args.max_side)
            is_crop = args.detect == "auto" and crop_verdict(rgb, args.detector, boxes=boxes)[0]
        if is_crop:
            row = Row(name, face=0, box=WHOLE_IMAGE)
            if args.detect == "auto" and not boxes:
                row.status = "ok (no face detected; read as an aligned crop)"
            rows.append(row)
            predictor.add(row, whole_image(img, size))
            n_faces += 1
        elif not boxes:
            rows.append(Row(name, status=NO_FACE))
            n_no_face += 1
        else:
            for i, box in enumerate(boxes):
                row = Row(name, face=i, box=box)
                rows.append(row)
                predictor.add(row, utk_crop(rgb, box, size, detector=args.detector))
                n_faces += 1
    predictor.flush()
    bar.close()

    if len(unreadable) == len(files):
        more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
        raise AgefairError(f"no image could be read: {unreadable[0]}{more}")
    write_output(format_rows(rows, args.format), args.out)
    print(f"agefair: {len(files)} files, {n_faces} faces, {n_no_face} without a face, {len(unreadable)} unreadable"
          + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
