"""Faces aligned by their landmarks like UTKFace's chips (agefair.data.align), on real chips re-posed
into larger pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agefair.data.align import CHIP_LANDMARKS, aligned_crop, landmarks5
from agefair.data.faces import detect_faces, utk_crop
from agefair.data.images import open_rgb

SIZE = 64


@pytest.fixture(scope="module")
def chips(utkface_dir):
    """Chips whose face (and its landmarks) the detector finds, as RGB arrays."""
    found = []
    for path in sorted(utkface_dir.glob("*.jpg"))[200:400]:
        rgb = np.asarray(open_rgb(path)[0], dtype=np.uint8)
        boxes = detect_faces(rgb, upsample=1)
        if len(boxes) == 1 and landmarks5(rgb, boxes[0]) is not None:
            found.append(rgb)
        if len(found) == 6:
            return found
    pytest.fail("fewer than 6 chips with a detected face among 200")


def repose(rgb: np.ndarray, angle: float, scale: float = 1.4) -> np.ndarray:
    """The chip enlarged, rotated by ``angle`` degrees and pasted in the middle of a 560x560 grey picture."""
    face = Image.fromarray(rgb).resize((int(200 * scale),) * 2, Image.BILINEAR)
    mask = Image.new("L", face.size, 255).rotate(angle, expand=True)
    face = face.rotate(angle, expand=True, resample=Image.BILINEAR)
    scene = Image.new("RGB", (560, 560), (110, 110, 110))
    scene.paste(face, ((560 - face.size[0]) // 2, (560 - face.size[1]) // 2), mask)
    return np.asarray(scene, dtype=np.uint8)


def target(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.BILINEAR, reducing_gap=None), dtype=float)


def test_a_chip_aligned_again_stays_where_it_was(chips):
    for rgb in chips:
        (box,) = detect_faces(rgb, upsample=1)
        face, aligned = aligned_crop(rgb, box, SIZE)
        assert aligned and face.shape == (SIZE, SIZE, 3) and face.dtype == np.uint8
        inner = slice(SIZE // 5, SIZE - SIZE // 5)  # the face itself, away from the black borders a warp may add
        assert np.abs(face.astype(float)[inner, inner] - target(rgb)[inner, inner]).mean() < 25


def test_a_rotated_face_is_turned_upright_and_the_box_crop_is_not(chips):
    checked = 0
    for rgb in chips[:4]:
        for angle in (-25, 25):
            scene = repose(rgb, angle)
            boxes = detect_faces(scene, upsample=1)
            if not boxes:
                continue  # HOG misses some turned faces: the share found is measured in benchmarks/reposed_chips.py
            box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            face, aligned = aligned_crop(scene, box, SIZE)
            if not aligned:
                continue
            inner = slice(SIZE // 5, SIZE - SIZE // 5)
            err_aligned = np.abs(face.astype(float)[inner, inner] - target(rgb)[inner, inner]).mean()
            err_box = np.abs(utk_crop(scene, box, SIZE).astype(float)[inner, inner] - target(rgb)[inner, inner]).mean()
            assert err_aligned < err_box, (angle, err_aligned, err_box)
            checked += 1
    assert checked >= 4, f"only {checked} of 8 re-posed faces were found with landmarks"


def test_a_degenerate_transform_falls_back_to_the_box_crop(monkeypatch):
    import agefair.data.align as align

    flat = np.full((300, 300, 3), 120, np.uint8)
    monkeypatch.setattr(align, "landmarks5", lambda rgb, box: np.zeros((3, 2)))  # all three points in one place
    face, aligned = aligned_crop(flat, (100, 100, 200, 200), SIZE)
    assert not aligned and np.array_equal(face, utk_crop(flat, (100, 100, 200, 200), SIZE))


def test_the_chip_landmarks_are_a_plausible_face():
    (lx, ly), (rx, ry), (nx, ny) = CHIP_LANDMARKS
    assert lx < nx < rx and abs(ly - ry) < 0.01 and ny > ly + 0.1
