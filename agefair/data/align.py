"""Faces aligned the way UTKFace's chips are: by facial landmarks, not by the detector's box alone.

UTKFace's 200x200 chips are landmark-aligned: eyes level, at the same place in every chip. A face in a
photo can be turned in the picture plane, and a crop from the detector's box (agefair.data.faces.utk_crop)
keeps that rotation. ``aligned_crop`` finds face_recognition's 5-point landmarks (both corners of each eye
and the base of the nose) inside the detected box, estimates the similarity transform (rotation, scale,
shift) that puts the eye centres and the nose where they sit in the chips (``CHIP_LANDMARKS``, measured
on the shared chips by ``benchmarks/chip_landmarks.py``), warps the photo into a 200x200 chip (black
outside the picture, as UTKFace's chips are) and resizes it like training images. Where the landmarks
give no valid transform (none found, or degenerate points) it falls back to the box crop, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from agefair.data.faces import _face_recognition, utk_crop

CHIP = 200  # UTKFace's chip side in pixels: faces are warped to it, then resized like training images
# Left eye centre, right eye centre (as seen in the image: the left one has the smaller x) and the base of
# the nose, as fractions of the chip side: the mean of face_recognition's 5-point landmarks over the 966 of
# 1,000 sampled shared UTKFace chips with one detected face (python benchmarks/chip_landmarks.py, 2026-12-02;
# spread between chips: sd 0.014-0.020 of the side).
CHIP_LANDMARKS = np.array([[0.299, 0.303], [0.684, 0.304], [0.490, 0.588]])


def landmarks5(rgb: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
    """(3, 2) pixel positions of the two eye centres (left first) and the nose base of the face in ``box``
    (left, top, right, bottom), or None when face_recognition finds none."""
    left, top, right, bottom = (int(round(v)) for v in box)
    found = _face_recognition().face_landmarks(np.ascontiguousarray(rgb, dtype=np.uint8),
                                               face_locations=[(top, right, bottom, left)], model="small")
    if not found or not all(k in found[0] for k in ("left_eye", "right_eye", "nose_tip")):
        return None
    eyes = sorted((np.mean(found[0][k], axis=0) for k in ("left_eye", "right_eye")), key=lambda p: p[0])
    return np.array([eyes[0], eyes[1], np.mean(found[0]["nose_tip"], axis=0)], dtype=np.float64)


def warp_to_chip(rgb: np.ndarray, points: np.ndarray, out_size: int) -> np.ndarray | None:
    """The face whose landmarks are ``points`` warped into a chip, resized to ``out_size`` (None: degenerate)."""
    matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), (CHIP_LANDMARKS * CHIP).astype(np.float32),
                                            method=cv2.LMEDS)
    if matrix is None or not np.all(np.isfinite(matrix)):
        return None
    chip = cv2.warpAffine(np.ascontiguousarray(rgb, dtype=np.uint8), matrix, (CHIP, CHIP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    img = Image.fromarray(chip)
    if out_size != CHIP:
        img = img.resize((out_size, out_size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def aligned_crop(rgb: np.ndarray, box: Sequence[float], out_size: int, detector: str = "hog"
                 ) -> tuple[np.ndarray, bool]:
    """(the face in ``box`` as an (out_size, out_size, 3) chip, whether it was aligned by its landmarks;
    False: no landmarks were found and the box crop is used)."""
    points = landmarks5(rgb, box)
    face = warp_to_chip(rgb, points, out_size) if points is not None else None
    if face is None:
        return utk_crop(rgb, box, out_size, detector=detector), False
    return face, True

