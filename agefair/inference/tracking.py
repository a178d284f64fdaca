"""Face tracks across video frames: IoU association of detections, box motion between detections,
and a smoothed age per track.

Boxes are ``(left, top, right, bottom)`` floats in pixels of the full frame.

Between detections a track's box is moved by one of three trackers (``TRACKERS``):

- ``flow``: pyramidal Lucas-Kanade optical flow (cv2.calcOpticalFlowPyrLK) of corner points inside
  the box, checked forwards and backwards; the box moves by the points' median shift and scales by
  the median change of their pairwise distances (the MedianFlow method, whose OpenCV class is only
  in opencv-contrib, not in the headless wheel). A track whose points are lost is marked lost.
- ``mil``: OpenCV's TrackerMIL (the only classic tracker in the headless wheel that needs no model
  file); much slower (measured by benchmarks/video.py).
- ``none``: the box stays where it was last detected; only detection moves it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

Box = tuple[float, float, float, float]
TRACKERS = ("flow", "mil", "none")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def associate(track_boxes: Sequence[Box], det_boxes: Sequence[Box], min_iou: float
              ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Match tracks to detections maximising total IoU (Hungarian method); pairs below ``min_iou`` are
    not matches. Returns (track index, detection index) pairs, unmatched tracks, unmatched detections."""
    pairs: list[tuple[int, int]] = []
    if track_boxes and det_boxes:
        overlap = np.array([[iou(t, d) for d in det_boxes] for t in track_boxes])
        rows, cols = linear_sum_assignment(-overlap)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] >= min_iou]
    matched_t = {t for t, _ in pairs}
    matched_d = {d for _, d in pairs}
    return (pairs, [i for i in range(len(track_boxes)) if i not in matched_t],
            [j for j in range(len(det_boxes)) if j not in matched_d])


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    left, top, right, bottom = box
    return (min(max(left, 0.0), width), min(max(top, 0.0), height),
            min(max(right, 0.0), width), min(max(bottom, 0.0), height))


# --------------------------------------------------------------------------- box motion

class FlowMotion:
    """Moves one box from frame to frame with forward-backward-checked Lucas-Kanade flow."""

    MAX_POINTS = 40
    MIN_POINTS = 6  # fewer good points than this: the track is lost
    FB_MAX_ERROR = 1.5  # px: a point whose backward flow misses its start by more is dropped
    LK = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))

    def __init__(self, gray: np.ndarray, box: Box):
        self.points = self._seed(gray, box)

    def _seed(self, gray: np.ndarray, box: Box) -> np.ndarray | None:
        """Corner points in the inner 80 % of the box (the edges often hold background)."""
        left, top, right, bottom = box
        mx, my = 0.1 * (right - left), 0.1 * (bottom - top)
        h, w = gray.shape
        x0, y0 = int(max(0, left + mx)), int(max(0, top + my))
        x1, y1 = int(min(w, right - mx)), int(min(h, bottom - my))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        pts = cv2.goodFeaturesToTrack(gray[y0:y1, x0:x1], self.MAX_POINTS, 0.01, 3)
        if pts is None or len(pts) < self.MIN_POINTS:
            return None
        return (pts.reshape(-1, 2) + np.float32([x0, y0])).astype(np.float32)

    def reset(self, gray: np.ndarray, box: Box) -> None:
        self.points = self._seed(gray, box)

    def step(self, prev: np.ndarray, gray: np.ndarray, box: Box) -> Box | None:
        """The box in ``gray`` (None: lost), given it was ``box`` in ``prev``."""
        if self.points is None:
            self.points = self._seed(prev, box)
            if self.points is None:
                return None
        p0 = self.points.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **self.LK)
        if p1 is None:
            return None
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **self.LK)
        fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.FB_MAX_ERROR)
        if good.sum() < self.MIN_POINTS:
            return None
        a, b = p0.reshape(-1, 2)[good], p1.reshape(-1, 2)[good]
        dx, dy = np.median(b - a, axis=0)
        i, j = np.triu_indices(len(a), k=1)
        d0 = np.linalg.norm(a[i] - a[j], axis=1)
        d1 = np.linalg.norm(b[i] - b[j], axis=1)
        keep = d0 > 2
        scale = float(np.median(d1[keep] / d0[keep])) if keep.any() else 1.0
        left, top, right, bottom = box
        cx, cy = (left + right) / 2 + dx, (top + bottom) / 2 + dy
        hw, hh = (right - left) / 2 * scale, (bottom - top) / 2 * scale
        self.points = b.astype(np.float32)
        if len(self.points) < self.MAX_POINTS // 2:  # top up the points as they drift off or fail
            fresh = self._seed(gray, (cx - hw, cy - hh, cx + hw, cy + hh))
            if fresh is not None:
                self.points = fresh
        return (float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh))


class MilMotion:
    """OpenCV's TrackerMIL for one box (works on the BGR frame)."""

    def __init__(self, frame: np.ndarray, box: Box):
        self.reset(frame, box)

    def reset(self, frame: np.ndarray, box: Box) -> None:
        left, top, right, bottom = box
        self.tracker = cv2.TrackerMIL_create()
        self.tracker.init(frame, (int(left), int(top), max(1, int(right - left)), max(1, int(bottom - top))))

    def step(self, frame: np.ndarray) -> Box | None:
        ok, (x, y, w, h) = self.tracker.update(frame)
        return (float(x), float(y), float(x + w), float(y + h)) if ok else None


# --------------------------------------------------------------------------- tracks

@dataclass
class Track:
    id: int
    box: Box
    first_frame: int
    smooth: int  # how many recent age estimates the displayed age is the median of
    last_detected: int = 0  # frame of the last matching detection
    missed: int = 0  # detections in a row that did not find this face
    lost: bool = False  # the tracker lost it since the last detection
    last_age_frame: int | None = None
    estimates: int = 0
    motion: FlowMotion | MilMotion | None = None
    ages: deque = field(default_factory=deque)
    spreads: deque = field(default_factory=deque)  # the age distribution's spread of each estimate
    lo: float | None = None  # the conformal interval of the displayed age (set where the model has one)
    hi: float | None = None

    def add_age(self, age: float, frame: int, spread: float = float("nan")) -> None:
        self.ages.append(float(age))
        self.spreads.append(float(spread))
        while len(self.ages) > self.smooth:
            self.ages.popleft()
            self.spreads.popleft()
        self.last_age_frame = frame
        self.estimates += 1

    @property
    def spread(self) -> float:
        """The running median of the last estimates' spreads (NaN without)."""
        return float(np.median(self.spreads)) if self.spreads else float("nan")

    @property
    def age(self) -> float | None:
        """The running median of the last ``smooth`` estimates (robust to one bad crop)."""
        return float(np.median(self.ages)) if self.ages else None

    def age_due(self, frame: int, every: int) -> bool:
        return self.last_age_frame is None or frame - self.last_age_frame >= every
