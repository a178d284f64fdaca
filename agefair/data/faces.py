"""Faces in ordinary photos, cropped the way UTKFace's aligned 200x200 chips are framed.

The age models only ever saw UTKFace chips: a face, roughly frontal, filling most of a square
image. A photo has to be turned into the same kind of picture before prediction, so a face box
found by a detector is expanded to the square region a UTKFace chip would cover, then resized
exactly as training resizes (PIL bilinear with antialiasing, like ``load_face``).

Boxes are ``(left, top, right, bottom)`` in pixels of the full-resolution image, right and bottom
exclusive.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFile

from agefair.core.errors import AgefairError

Box = tuple[int, int, int, int]
DETECTORS = ("hog", "cnn")

# --- UTKFace framing, measured (not guessed) ------------------------------------------------------
# How a detector's box sits inside a UTKFace chip: the chip's side is BOX_TO_CHIP times the box
# side, and the chip's centre is the box centre moved by CENTRE_SHIFT box sides (x right, y down).
#
# Measured with detect_faces on 20 shared UTKFace chips (every 1066th file of the sorted 21,328:
# ages 1-100, both genders, all five races). Each chip was resized to several scales spread evenly
# over one step of the detector's image pyramid (dlib's steps are 6/5) and padded with edge
# replication, so the face sits in a larger picture as in a photo. The sweep matters: detector
# boxes come in discrete sizes, so on the chips at their native 200 px alone HOG (upsample 1)
# returns the same 155 px box on 13 of 19 faces (box/chip 0.775, shift 0.068) and a framing taken
# from that would be ~13 % too wide for faces of most other sizes.
#   HOG, upsample 1, 8 scales 0.60-0.70 x 200 px, 148 of 160 faces found:
#     box side / chip side: median 0.874 (quartiles 0.84-0.92, geometric mean 0.876);
#     (chip centre - box centre) / box side: median x 0.017, y 0.019.
#   CNN (dlib MMOD), upsample 0, 4 scales 0.80-0.96 x 200 px, 80 of 80 found:
#     box side / chip side: median 0.850 (quartiles 0.82-0.94, geometric mean 0.862);
#     (chip centre - box centre) / box side: median x 0.044, y 0.079 (its boxes sit higher).
BOX_TO_CHIP = {"hog": 1 / 0.874, "cnn": 1 / 0.850}
CENTRE_SHIFT = {"hog": (0.017, 0.019), "cnn": (0.044, 0.079)}

# Where a chip leaves the photo: UTKFace's own chips are black there (black wedges where the source
# photo ended are visible in 3 of the 20 chips above), so black is the default.
PAD_MODES = ("black", "edge")


def _face_recognition():
    """face_recognition, imported without its side effects on the rest of the process."""
    if "face_recognition" in sys.modules:
        return sys.modules["face_recognition"]
    # Importing face_recognition sets PIL's ImageFile.LOAD_TRUNCATED_IMAGES = True for the whole
    # process, which would make agefair.data.images.open_rgb accept truncated files as whole: undo it.
    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import face_recognition
    except ImportError as exc:
        raise AgefairError(f"face detection needs the face_recognition package (pip install face_recognition "
                           f"dlib-bin): {exc}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return face_recognition


def detect_faces(rgb: np.ndarray, model: str = "hog", upsample: int = 1, max_side: int = 800) -> list[Box]:
    """Face boxes ``(left, top, right, bottom)`` in ``rgb`` (HxWx3 uint8), sorted left to right.

    Images whose longer side exceeds ``max_side`` are downscaled (antialiased) for detection and the
    boxes mapped back to full resolution. ``upsample`` doubles the image that many times inside the
    detector: HOG's smallest face is ~80 px at upsample 0, ~40 px at 1 (in the downscaled image).
    """
    if model not in DETECTORS:
        raise AgefairError(f"unknown face detector {model!r}; choose one of {', '.join(DETECTORS)}")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"detect_faces needs an HxWx3 RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    scale = 1.0
    small = rgb
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=None))
    fr = _face_recognition()
    sh, sw = small.shape[:2]
    boxes = []
    for top, right, bottom, left in fr.face_locations(small, number_of_times_to_upsample=upsample, model=model):
        # exact scale factors of each axis (the rounded small size), clipped to the full image
        fx, fy = w / sw, h / sh
        box = (max(0, round(left * fx)), max(0, round(top * fy)), min(w, round(right * fx)), min(h, round(bottom * fy)))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
    return sorted(boxes, key=lambda b: (b[0], b[1]))


def chip_region(box: Sequence[float], detector: str = "hog") -> tuple[float, float, float]:
    """The square a UTKFace chip would cover around a detected ``box``: (centre x, centre y, side)."""
    if detector not in BOX_TO_CHIP:
        raise AgefairError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    left, top, right, bottom = (float(v) for v in box)
    bw, bh = right - left, bottom - top
    if bw <= 0 or bh <= 0:
        raise ValueError(f"empty face box {tuple(box)}")
    side = (bw + bh) / 2  # detector boxes are (nearly) square
    sx, sy = CENTRE_SHIFT[detector]
    return (left + right) / 2 + sx * side, (top + bottom) / 2 + sy * side, side * BOX_TO_CHIP[detector]


def utk_crop(rgb: np.ndarray, box: Sequence[float], out_size: int, detector: str = "hog",
             pad: str = "black") -> np.ndarray:
    """The UTKFace-style chip around ``box`` as (out_size, out_size, 3) uint8.

    The box is expanded to a square with the measured UTKFace framing (BOX_TO_CHIP, CENTRE_SHIFT);
    where that square leaves the image it is filled with black (as UTKFace's chips are) or, with
    ``pad="edge"``, with the nearest edge pixels; it is then resized like training images.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    rgb = np.asarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    cx, cy, side = chip_region(box, detector)
    n = max(1, round(side))
    x0, y0 = round(cx - n / 2), round(cy - n / 2)
    x1, y1 = x0 + n, y0 + n
    # the part inside the image, then pad what is outside
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"face box {tuple(box)} is outside the {w}x{h} image")
    crop = rgb[iy0:iy1, ix0:ix1]
    widths = ((iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1), (0, 0))
    if any(a or b for a, b in widths):
        crop = np.pad(crop, widths, mode="edge") if pad == "edge" else np.pad(crop, widths, mode="constant")
    img = Image.fromarray(np.ascontiguousarray(crop))
    if img.size != (out_size, out_size):
        img = img.resize((out_size, out_size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


# --- is this picture already a crop? --------------------------------------------------------------
CROP_MIN_SIDE, CROP_MAX_SIDE = 100, 400  # UTKFace chips are 200 px; other aligned-crop sets 100-256
CROP_SQUARE_TOLERANCE = 0.02  # |w - h| / max(w, h)
# A face box of a chip: box side / image side within this range (measured 0.71-1.10 above) ...
CROP_BOX_RANGE = (0.6, 1.15)
# ... and its centre within this fraction of the image side from the image centre (measured: HOG
# up to ~0.13, CNN up to ~0.17; medians ~0.02 and ~0.07).
CROP_CENTRE_TOLERANCE = 0.2
# Squares of UTKFace-like size in which the detector finds no face at all are still taken as chips:
# HOG misses some real chips (babies, tilted or half-profile faces: 1 of the 20 measured above).
CROP_NO_FACE_SIDES = (150, 256)


def crop_verdict(rgb: np.ndarray, detector: str = "hog", boxes: list[Box] | None = None) -> tuple[bool, str]:
    """(whether ``rgb`` looks like an aligned face crop, the reason). See ``looks_like_crop``."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    if abs(w - h) > CROP_SQUARE_TOLERANCE * side:
        return False, "not square"
    if not CROP_MIN_SIDE <= side <= CROP_MAX_SIDE:
        return False, f"{w}x{h} is not a crop size ({CROP_MIN_SIDE}-{CROP_MAX_SIDE} px)"
    if boxes is None:
        boxes = detect_faces(rgb, model=detector, upsample=1 if detector == "hog" else 0)
    if not boxes:
        if CROP_NO_FACE_SIDES[0] <= side <= CROP_NO_FACE_SIDES[1]:
            return True, "square chip size, no face detected"
        return False, "no face detected"
    lo, hi = CROP_BOX_RANGE
    for left, top, right, bottom in boxes:
        rel = ((right - left) + (bottom - top)) / 2 / side
        off = max(abs((left + right) / 2 - w / 2), abs((top + bottom) / 2 - h / 2)) / side
        if lo <= rel <= hi and off <= CROP_CENTRE_TOLERANCE:
            return True, "one face filling the square"
    return False, "faces do not fill the picture"


def looks_like_crop(rgb: np.ndarray, detector: str = "hog") -> bool:
    """Whether ``rgb`` is already an aligned face crop like UTKFace's (for ``--detect auto``).

    The rule: square (sides within 2 %), 100-400 px, and either the detector finds a face whose
    box is 0.6-1.15 of the side with its centre within 0.2 side of the image centre (a chip's
    box is ~0.85-0.87 of it, nearly centred), or it finds no face at all and the side is 150-256 px
    (the detector misses some genuine chips). Anything else is treated as a photo to search for faces.
    """
    return crop_verdict(rgb, detector)[0]
