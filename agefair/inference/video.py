"""Ages of the faces in a video, in real time: the library behind ``python -m agefair.video SOURCE``
(whose docstring describes the per-frame pipeline and the options). ``FacePipeline`` tracks faces,
detects every few frames and batches the due age estimates; ``process_video`` runs it over a source
(agefair.inference.video_io opens it and draws) and returns the per-stage timings (``VideoResult``).
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from agefair.core.errors import AgefairError
from agefair.core.io import atomic_path
from agefair.data.align import aligned_crop
from agefair.data.faces import _face_recognition, detect_faces, utk_crop
from agefair.inference.estimator import AgeEstimator, load_estimator
from agefair.inference.tracking import (
    TRACKERS,
    FlowMotion,
    MilMotion,
    Track,
    associate,
    clip_box,
)
from agefair.inference.video_io import draw_tracks, open_source
from agefair.models.runs import model_or_best_run

STAGES = ("decode", "track", "detect", "age", "draw", "write")


OUT_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}  # the codecs opencv-python's FFmpeg build can write


MIN_BOX_SIDE = 8  # px: a tracked box smaller than this (e.g. clipped at the frame edge) is lost


DEFAULT_THREADS = 1


@dataclass(frozen=True)
class VideoSettings:
    detect_every: int = 10  # frames between detections (sooner when a track is lost)
    detect_width: int = 320  # frames are shrunk to this width for detection
    upsample: int = 0  # HOG upsampling; at 0 the smallest face found is ~80 px at detect_width
    age_every: int = 15  # frames between age estimates of one track
    smooth: int = 5  # the shown age is the median of a track's last N estimates
    tracker: str = "flow"
    min_iou: float = 0.3  # a detection continues a track when their boxes overlap this much
    max_missed: int = 1  # detections in a row that may miss a tracked face before its track ends
    align: bool = True  # faces aligned by their landmarks like UTKFace's chips (agefair.data.align)


class StageTimes:
    """Wall time per stage, summed over frames."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class FacePipeline:
    """Tracks faces and estimates their ages frame by frame (frames are BGR uint8, as OpenCV reads them)."""

    def __init__(self, estimator: AgeEstimator, settings: VideoSettings = VideoSettings(),
                 times: StageTimes | None = None):
        if settings.tracker not in TRACKERS:
            raise AgefairError(f"unknown tracker {settings.tracker!r}; choose one of {', '.join(TRACKERS)}")
        self.estimator = estimator
        self.s = settings
        self.times = times or StageTimes()
        self.tracks: list[Track] = []
        self.ended: list[Track] = []  # tracks that ended, for the summary
        self.frame_index = 0
        self.next_id = 1
        self.prev_gray: np.ndarray | None = None
        self.last_detect: int | None = None
        self.detections = 0  # frames on which the detector ran
        self.model_calls = 0  # batched estimator calls
        self.faces_estimated = 0  # face crops sent to the estimator
        self.face_frames = 0  # sum over frames of the faces shown

    # ----------------------------------------------------------------- per frame
    def process(self, frame: np.ndarray) -> list[Track]:
        """The tracks visible in ``frame`` (each with ``box`` and, once estimated, ``age``)."""
        i = self.frame_index
        with self.times("track"):
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if self.s.tracker == "flow" else None
            any_lost = self._move(frame, gray)
        if self.last_detect is None or i - self.last_detect >= self.s.detect_every or any_lost:
            with self.times("detect"):
                self._detect(frame, gray, i)
        with self.times("age"):
            self._estimate(frame, i)
        self.prev_gray = gray
        self.frame_index += 1
        visible = [t for t in self.tracks if not t.lost]
        self.face_frames += len(visible)
        return visible

    def _move(self, frame: np.ndarray, gray: np.ndarray | None) -> bool:
        h, w = frame.shape[:2]
        any_lost = False
        for t in self.tracks:
            if self.s.tracker == "none" or t.motion is None:
                continue
            if self.s.tracker == "flow":
                box = t.motion.step(self.prev_gray, gray, t.box) if self.prev_gray is not None else t.box
            else:
                box = t.motion.step(frame)
            box = clip_box(box, w, h) if box is not None else None
            if box is None or min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_SIDE:
                t.lost = any_lost = True
            else:
                t.box = box
        return any_lost

    def _start_motion(self, frame: np.ndarray, gray: np.ndarray | None, t: Track) -> None:
        if self.s.tracker == "flow":
            if t.motion is None:
                t.motion = FlowMotion(gray, t.box)
            else:
                t.motion.reset(gray, t.box)
        elif self.s.tracker == "mil":
            t.motion = MilMotion(frame, t.box)

    def _detect(self, frame: np.ndarray, gray: np.ndarray | None, i: int) -> None:
        self.last_detect = i
        self.detections += 1
        h, w = frame.shape[:2]
        scale = min(1.0, self.s.detect_width / w)
        small = frame if scale == 1.0 else cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                      interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        found = detect_faces(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), model="hog", upsample=self.s.upsample,
                             max_side=0)
        fx, fy = w / sw, h / sh
        boxes = [(left * fx, top * fy, right * fx, bottom * fy) for left, top, right, bottom in found]
        pairs, unmatched_tracks, unmatched_dets = associate([t.box for t in self.tracks], boxes, self.s.min_iou)
        for ti, di in pairs:
            t = self.tracks[ti]
            t.box, t.missed, t.lost, t.last_detected = boxes[di], 0, False, i
            self._start_motion(frame, gray, t)
        ended = set()
        for ti in unmatched_tracks:
            t = self.tracks[ti]
            t.missed += 1
            if t.lost or t.missed > self.s.max_missed:
                ended.add(ti)
        self.ended += [t for k, t in enumerate(self.tracks) if k in ended]
        self.tracks = [t for k, t in enumerate(self.tracks) if k not in ended]
        for di in unmatched_dets:
            t = Track(id=self.next_id, box=boxes[di], first_frame=i, smooth=self.s.smooth, last_detected=i)
            self.next_id += 1
            self._start_motion(frame, gray, t)
            self.tracks.append(t)

    def _estimate(self, frame: np.ndarray, i: int) -> None:
        due = [t for t in self.tracks if not t.lost and t.age_due(i, self.s.age_every)]
        if not due:
            return
        size = self.estimator.size
        if self.s.align:  # landmarks on the RGB frame, then the chip warp (agefair.data.align)
            rgb = np.ascontiguousarray(frame[..., ::-1])
            crops = np.stack([aligned_crop(rgb, t.box, size)[0] for t in due])
        else:  # utk_crop is channel-agnostic: crop the BGR frame, then flip to RGB
            crops = np.stack([utk_crop(frame, t.box, size, detector="hog")[..., ::-1] for t in due])
        ages, spreads = self.estimator.predict_with_spread(np.ascontiguousarray(crops))
        self.model_calls += 1
        self.faces_estimated += len(due)
        for t, age, spread in zip(due, ages, spreads):
            t.add_age(float(age), i, float(spread))
        cal = self.estimator.calibration
        if cal is not None:  # the displayed (median) age's interval
            iv = cal.intervals(pred=[t.age for t in due], sigma=[t.spread for t in due])
            for k, t in enumerate(due):
                t.lo, t.hi = float(iv.lo[k]), float(iv.hi[k])

    def all_tracks(self) -> list[Track]:
        return sorted(self.ended + self.tracks, key=lambda t: t.id)


def open_with_model(source: str, model: str | Path | None, runs_dir: str | Path, threads: int | None = None
                    ) -> tuple[tuple[cv2.VideoCapture, np.ndarray, str], AgeEstimator, Path, str]:
    """open_source(source), then the age model: ``model``, else the best run of ``runs_dir``
    (agefair.models.runs.model_or_best_run). The source is opened first, so that a typo fails before
    the slower model load; the capture is released when the model cannot be loaded.
    Returns the opened source, the estimator, the model's path and why it was chosen."""
    opened = open_source(source)
    try:
        model_path, why = model_or_best_run(model, runs_dir)
        estimator = load_estimator(model_path, threads=threads)
    except BaseException:
        opened[0].release()
        raise
    return opened, estimator, model_path, why


@dataclass
class VideoResult:
    frames: int
    seconds: float  # wall time of the frame loop (model loading and opening excluded)
    size: tuple[int, int]
    pipeline: FacePipeline
    frame_seconds: list[float] = field(default_factory=list)  # wall time of each frame
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def process_video(source: str, estimator: AgeEstimator, settings: VideoSettings = VideoSettings(),
                  out: str | Path | None = None, max_frames: int | None = None,
                  on_frame: Callable[[int, list[Track]], None] | None = None,
                  progress: bool = True, opened: tuple[cv2.VideoCapture, np.ndarray, str] | None = None
                  ) -> VideoResult:
    """Run the pipeline over ``source`` (or the ``opened`` result of open_source(source)).

    ``on_frame(index, tracks)`` sees each frame's tracks. The detector's import and one model call
    happen before the clock starts (they are start-up costs, not per-frame ones).
    """
    cap, first, name = opened or open_source(source)
    h, w = first.shape[:2]
    try:
        _face_recognition()
        estimator.predict(np.zeros((1, estimator.size, estimator.size, 3), np.uint8))
    except BaseException:
        cap.release()
        raise
    times = StageTimes()
    pipeline = FacePipeline(estimator, settings, times)
    out_ctx = nullcontext(None)
    if out is not None:
        out = Path(out)
        if out.suffix.lower() not in OUT_CODECS:
            cap.release()
            raise AgefairError(f"--out {out}: the name must end in {' or '.join(OUT_CODECS)}")
        out_ctx = atomic_path(out, suffix=".tmp" + out.suffix.lower())
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if math.isfinite(fps_in) and 1 <= fps_in <= 240 else 30.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    total = min(count, max_frames) if count > 0 and max_frames else (max_frames or (count if count > 0 else None))
    try:
        with out_ctx as tmp:
            writer = None
            if tmp is not None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*OUT_CODECS[out.suffix.lower()]),
                                         fps_in, (w, h))
                if not writer.isOpened():
                    raise AgefairError(f"{out}: cannot write a video there (OpenCV could not open a "
                                       f"{OUT_CODECS[out.suffix.lower()]} writer)")
            bar = tqdm(total=total, desc="frames", unit="frame", disable=None if progress else True,
                       file=sys.stderr, leave=False)
            n, seconds, frame_seconds, interrupted = run_frames(cap, first, pipeline, writer, max_frames, on_frame,
                                                                bar)
            bar.close()
            if writer is not None:
                writer.release()
    except OSError as exc:  # the output's folder cannot be made, or the temporary file renamed
        raise AgefairError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        cap.release()
    return VideoResult(n, seconds, (w, h), pipeline, frame_seconds, interrupted)


def run_frames(cap: cv2.VideoCapture, first: np.ndarray, pipeline: FacePipeline, writer: cv2.VideoWriter | None,
               max_frames: int | None, on_frame: Callable[[int, list[Track]], None] | None, bar: tqdm
               ) -> tuple[int, float, list[float], bool]:
    """The frame loop, from the already decoded ``first`` frame: frames processed, wall seconds,
    each frame's seconds, and whether Ctrl-C stopped it."""
    times = pipeline.times
    frame_seconds: list[float] = []
    interrupted = False
    frame: np.ndarray | None = first
    n = 0
    start = time.perf_counter()
    try:
        while max_frames is None or n < max_frames:
            t0 = time.perf_counter()
            if frame is None:
                with times("decode"):
                    ok, frame = cap.read()
                if not ok or frame is None:
                    break
            tracks = pipeline.process(frame)
            with times("draw"):
                draw_tracks(frame, tracks)
            if writer is not None:
                with times("write"):
                    writer.write(frame)
            if on_frame is not None:
                on_frame(n, tracks)
            frame = None
            n += 1
            frame_seconds.append(time.perf_counter() - t0)
            bar.update()
    except KeyboardInterrupt:
        interrupted = True
    return n, time.perf_counter() - start, frame_seconds, interrupted


def stage_report(result: VideoResult) -> list[str]:
    """Lines with the measured FPS and per-stage time per frame."""
    p = result.pipeline
    n = max(result.frames, 1)
    secs = p.times.seconds
    # the first frame is decoded while the source is opened, outside the loop: per-frame decode
    # is the mean over the frames decoded in the loop
    decode_n = max(result.frames - 1, 1)
    per = {s: secs.get(s, 0.0) / (decode_n if s == "decode" else n) * 1000 for s in STAGES if s in secs}
    lines = [f"{result.frames} frames ({result.size[0]}x{result.size[1]}) in {result.seconds:.2f} s: "
             f"{result.fps:.1f} FPS end to end" + (" (interrupted)" if result.interrupted else "")]
    lines.append("ms per frame: " + ", ".join(f"{s} {v:.2f}" for s, v in per.items())
                 + f"; total {1000 * result.seconds / n:.2f}")
    if result.frame_seconds:
        ft = np.array(result.frame_seconds) * 1000
        lines.append(f"frame time: median {np.median(ft):.1f} ms, 95th percentile {np.percentile(ft, 95):.1f} ms, "
                     f"max {ft.max():.1f} ms")
    det_ms = secs.get("detect", 0.0) / max(p.detections, 1) * 1000
    lines.append(f"detection on {p.detections} of {result.frames} frames ({det_ms:.1f} ms each); age model: "
                 f"{p.model_calls} batched calls for {p.faces_estimated} faces, over {p.face_frames} face-frames")
    for t in p.all_tracks():
        age = f"age {t.age:.1f}" if t.age is not None else "no age yet"
        if t.age is not None and t.lo is not None:
            age += f" [{t.lo:.0f}-{t.hi:.0f}]"
        lines.append(f"track {t.id}: from frame {t.first_frame}, {t.estimates} estimates, {age}")
    return lines
