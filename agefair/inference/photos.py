"""Ages of the faces in photos and face crops: the library behind ``python -m agefair.predict``.

Each image is read safely (a corrupt file gets a row saying so). Aligned face crops like UTKFace's are
predicted whole; in other pictures faces are detected (face_recognition's HOG or CNN detector), each is
cropped with UTKFace's measured framing (agefair.data.faces) and resized to the model's input size. One
row per face: file, face index, box (left,top,right,bottom, or "whole image" for crops), predicted age;
files with no face or that cannot be read get one row saying so. Boxes are pixels of the upright picture
(after its EXIF orientation is applied). With the model's conformal calibration (agefair.inference.estimator),
each age gets its marginal interval: ``34 [29-41]`` in the table, columns lo, hi and coverage in CSV and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from agefair.core.errors import AgefairError
from agefair.core.io import neutralise_cell, special_file_reason, write_text_atomic
from agefair.core.paths import IMAGE_SUFFIXES
from agefair.data.align import aligned_crop
from agefair.data.faces import crop_verdict, detect_faces, utk_crop
from agefair.data.files import walk
from agefair.data.images import ImageReadError, open_rgb
from agefair.inference.estimator import AgeEstimator, predict_with_intervals

WHOLE_IMAGE = "whole image"
NO_FACE = "no face found"
COLUMNS = ["file", "face", "box", "age", "lo", "hi", "coverage", "status"]


@dataclass
class Row:
    file: str
    face: int | None = None
    box: tuple[int, int, int, int] | str | None = None  # a box, WHOLE_IMAGE, or None (no face / unreadable)
    age: float | None = None
    status: str = "ok"
    lo: float | None = None  # the marginal conformal interval [lo, hi], when the model has a calibration
    hi: float | None = None
    coverage: float | None = None  # its target coverage (e.g. 0.9)

    def box_text(self) -> str:
        if self.box is None:
            return ""
        return self.box if isinstance(self.box, str) else ",".join(str(v) for v in self.box)

    def age_text(self) -> str:
        """``34.2``, or with an interval ``34 [29-41]`` (a decimal would claim more than the interval allows)."""
        if self.age is None:
            return ""
        return f"{self.age:.1f}" if self.lo is None else f"{self.age:.0f} [{self.lo:.0f}-{self.hi:.0f}]"

    def as_text(self) -> list[str]:
        """The CSV cells (COLUMNS)."""
        def num(x, digits=1):
            return "" if x is None else f"{x:.{digits}f}"
        return [self.file, "" if self.face is None else str(self.face), self.box_text(), num(self.age), num(self.lo),
                num(self.hi), "" if self.coverage is None else f"{self.coverage:g}", self.status]

    def as_table(self) -> list[str]:
        return [self.file, "" if self.face is None else str(self.face), self.box_text(), self.age_text(), self.status]

    def as_json(self) -> dict:
        box = list(self.box) if isinstance(self.box, tuple) else self.box
        def r1(x):
            return None if x is None else round(x, 1)

        return {"file": self.file, "face": self.face, "box": box, "age": r1(self.age), "lo": r1(self.lo),
                "hi": r1(self.hi), "coverage": self.coverage, "status": self.status}


def is_image_name(name: str) -> bool:
    """An image suffix of agefair.core.paths.IMAGE_SUFFIXES, any case (UTKFace's ``.jpg.chip.jpg`` included)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def collect_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Image files from files and folders (recursive, sorted), without repeats; and notes for stderr.

    A named file is taken whatever its suffix (it is the user's explicit choice); a missing path, a
    broken symbolic link or a link loop is kept so that it is reported as unreadable like any other
    file. A named FIFO, socket or device is a one-line error (opening it could block forever). In a
    folder, the walker (agefair.data.files.walk) skips what is not a regular file and each is named
    in a note; nothing of it is opened.
    """
    files: list[Path] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.realpath(p)  # never raises, unlike Path.resolve on a link loop
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        why = special_file_reason(p)
        if why == "a folder":
            found = walk(p)
            images = [p / rel for rel in found.files if is_image_name(rel)]
            for rel, reason in found.skipped:
                notes.append(f"{p / rel}: skipped: {reason}")
            if not images:
                notes.append(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            for q in images:
                add(q)
        elif why in ("a FIFO (named pipe)", "a socket", "a device", "not a regular file"):
            raise AgefairError(f"{p}: {why}, not an image file")
        else:
            add(p)
    return files, notes


class FaceBatcher:
    """Collects face crops and predicts their ages in batches of ``batch``, filling in each crop's row."""

    def __init__(self, estimator: AgeEstimator, batch: int):
        self.estimator = estimator
        self.size = estimator.size
        self.batch = batch
        self.pending: list[tuple[Row, np.ndarray]] = []

    def add(self, row: Row, face: np.ndarray) -> None:
        self.pending.append((row, face))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        est = predict_with_intervals(self.estimator, np.stack([f for _, f in self.pending]))
        for k, (row, _) in enumerate(self.pending):
            row.age = float(est.ages[k])
            if est.lo is not None:
                row.lo, row.hi, row.coverage = float(est.lo[k]), float(est.hi[k]), est.coverage
        self.pending = []


@dataclass(frozen=True)
class Detection:
    """How faces are found in a picture."""

    mode: str = "auto"  # auto: square crops like UTKFace's whole, detection elsewhere; always; never
    detector: str = "hog"  # agefair.data.faces.DETECTORS
    upsample: int = 1
    max_side: int = 800  # larger pictures are shrunk for detection (boxes are mapped back)
    align: bool = True  # detected faces aligned by their landmarks like UTKFace's chips (agefair.data.align)


@dataclass
class PhotoResult:
    rows: list[Row]  # one per face, or one per file without a face / unreadable
    n_faces: int = 0
    n_no_face: int = 0
    unreadable: list[str] = field(default_factory=list)  # "path: why"


def predict_files(files: list[Path], estimator: AgeEstimator, *, detection: Detection = Detection(), batch: int = 64,
                  on_first_read: Callable[[], None] | None = None) -> PhotoResult:
    """Ages of the faces in ``files``, in order; a corrupt or missing file gets one row saying so.

    ``on_first_read`` is called once, when the first file has been read (so that a command announces its
    model only once something is readable). A progress bar goes to stderr where it is a terminal."""
    batcher = FaceBatcher(estimator, batch)
    result = PhotoResult([])
    announced = False
    bar = tqdm(files, desc="predicting", unit="file", disable=None, file=sys.stderr, leave=False)
    for path in bar:
        try:
            img, _ = open_rgb(path)
        except ImageReadError as exc:
            msg = str(exc).removeprefix(f"{path}: ")
            result.unreadable.append(f"{path}: {msg}")
            result.rows.append(Row(str(path), status=f"unreadable: {msg}"))
            continue
        if not announced and on_first_read is not None:
            on_first_read()
        announced = True
        add_faces(img, str(path), batcher, detection, result)
    batcher.flush()
    bar.close()
    return result


def add_faces(img: Image.Image, name: str, batcher: FaceBatcher, detection: Detection, result: PhotoResult) -> None:
    """The rows of one upright picture: its faces (queued in ``batcher`` for their ages) or a no-face row."""
    rgb = np.asarray(img, dtype=np.uint8)
    if detection.mode == "never":
        is_crop, boxes = True, []
    else:
        boxes = detect_faces(rgb, model=detection.detector, upsample=detection.upsample, max_side=detection.max_side)
        is_crop = detection.mode == "auto" and crop_verdict(rgb, detection.detector, boxes=boxes)[0]
    if is_crop:
        row = Row(name, face=0, box=WHOLE_IMAGE)
        if detection.mode == "auto" and not boxes:
            row.status = "ok (no face detected; read as an aligned crop)"
        result.rows.append(row)
        batcher.add(row, whole_image(img, batcher.size))
        result.n_faces += 1
    elif not boxes:
        result.rows.append(Row(name, status=NO_FACE))
        result.n_no_face += 1
    else:
        for i, box in enumerate(boxes):
            row = Row(name, face=i, box=box)
            result.rows.append(row)
            if detection.align:
                face, aligned = aligned_crop(rgb, box, batcher.size, detector=detection.detector)
                row.status = "ok" if aligned else "ok (no landmarks: box crop, not aligned)"
            else:
                face = utk_crop(rgb, box, batcher.size, detector=detection.detector)
            batcher.add(row, face)
            result.n_faces += 1


def whole_image(img: Image.Image, size: int) -> np.ndarray:
    """The image as the model's input, resized exactly like training images (agefair load_face)."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def format_rows(rows: list[Row], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([r.as_json() for r in rows], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([neutralise_cell(c) for c in r.as_text()] for r in rows)  # no formula from a file name
        return buf.getvalue()
    header = ["file", "face", "box", "age", "status"]
    if any(r.lo is not None for r in rows):
        header[3] = f"age [{next(r.coverage for r in rows if r.lo is not None):.0%} interval]"
    table = [header] + [r.as_table() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
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
