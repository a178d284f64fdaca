"""Video input and output for agefair.inference.video: opening a file or webcam with OpenCV's FFmpeg
reader (its logs kept off stderr, a bad source one line) and drawing the tracked faces and ages."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from agefair.core.errors import AgefairError
from agefair.inference.tracking import Track

COLOURS = [(80, 200, 60), (40, 160, 255), (230, 120, 40), (200, 60, 200), (60, 220, 220), (120, 120, 255)]


def draw_tracks(frame: np.ndarray, tracks: list[Track]) -> None:
    """Boxes and ages drawn into ``frame`` (BGR) in place."""
    for t in tracks:
        colour = COLOURS[(t.id - 1) % len(COLOURS)]
        left, top, right, bottom = (int(round(v)) for v in t.box)
        cv2.rectangle(frame, (left, top), (right, bottom), colour, 2)
        label = f"#{t.id} age {t.age:.0f}" if t.age is not None else f"#{t.id}"
        if t.age is not None and t.lo is not None:
            label += f" [{t.lo:.0f}-{t.hi:.0f}]"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
        y = top - 4 if top - th - base - 4 >= 0 else bottom + th + 4
        cv2.rectangle(frame, (left, y - th - base), (left + tw + 4, y + base - 2), colour, cv2.FILLED)
        cv2.putText(frame, label, (left + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)


def quiet_opencv() -> None:
    """OpenCV's and FFmpeg's warnings off stderr: a bad source must be one line, not a log."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    # AV_LOG_QUIET; OpenCV reads it when its FFmpeg backend starts (the first capture or writer)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """Native code's writes to file descriptor 2 dropped (FFmpeg logs through its own C calls,
    which the setting above cannot reach once its backend has started in this process)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_source(source: str) -> tuple[cv2.VideoCapture, np.ndarray, str]:
    """The capture, its first frame and a name for messages; a bad source is an AgefairError."""
    quiet_opencv()
    path = Path(source)
    if source.isdigit() and not path.exists():
        index = int(source)
        name = f"webcam {index}"
        with stderr_silenced():
            cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise AgefairError(f"{name}: cannot open (no such camera, or it is in use)")
    else:
        name = str(path)
        if not path.exists():
            raise AgefairError(f"{path}: no such file (SOURCE is a video file or a webcam index like 0)")
        if path.is_dir():
            raise AgefairError(f"{path}: is a folder, not a video file")
        with stderr_silenced():
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise AgefairError(f"{path}: not a readable video (OpenCV/FFmpeg cannot open it)")
    with stderr_silenced():
        ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise AgefairError(f"{name}: no frame could be read")
    return cap, frame, name
