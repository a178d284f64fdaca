"""Shared fixtures: small synthetic UTKFace-style folders, and the real shared UTKFace folder.

Synthetic images are tiny JPEG "faces" (a gradient plus seeded noise) named like UTKFace's
``{age}_{gender}_{race}_{timestamp}.jpg.chip.jpg``; everything is deterministic for a given seed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_UTKFACE = "../shared/datasets/utkface/images"


# --------------------------------------------------------------------------- image helpers

def face_array(rng: np.random.Generator, size: tuple[int, int] = (200, 200)) -> np.ndarray:
    """An HxWx3 uint8 image: a random colour gradient plus noise (unique per rng draw)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    slope = rng.uniform(-0.6, 0.6, size=(2, 3)).astype(np.float32)
    arr = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    arr += rng.normal(0, 12, size=(h, w, 3)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def jpeg_bytes(rng: np.random.Generator, size: tuple[int, int] = (200, 200), mode: str = "RGB") -> bytes:
    img = Image.fromarray(face_array(rng, size), mode="RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def utk_name(age: int, gender: int, race: int, timestamp: int | str) -> str:
    return f"{age}_{gender}_{race}_{timestamp}.jpg.chip.jpg"


def make_utk_folder(path: Path, n: int = 40, seed: int = 0, ts_start: int = 20170101000000000) -> list[str]:
    """Write ``n`` distinct synthetic UTKFace images into ``path``; returns their file names (sorted).

    Labels cycle over both genders and all 5 races and spread over ages 1-90, so every
    (gender, race) pair appears and ages cover every default age bin (0-9 ... 70+).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 91, size=n)
    ages[: min(n, 9)] = [1, 9, 10, 25, 40, 55, 69, 70, 90][: min(n, 9)]  # hit the bin edges
    names = []
    for i in range(n):
        gender, race = i % 2, (i // 2) % 5
        name = utk_name(int(ages[i]), gender, race, ts_start + i)
        (path / name).write_bytes(jpeg_bytes(rng))
        names.append(name)
    return sorted(names)


# --------------------------------------------------------------------------- bad folder

@dataclass
class BadFolder:
    path: Path
    good: list[str]  # the plain good images
    # problem type -> file names that must be flagged with it
    flagged: dict[str, list[str]] = field(default_factory=dict)
    # the one malformed/odd file of each kind, by role
    files: dict[str, str] = field(default_factory=dict)

    @property
    def all_files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir())


def build_bad_folder(path: Path, n_good: int = 40, seed: int = 1) -> BadFolder:
    path = Path(path)
    good = make_utk_folder(path, n=n_good, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    ts = iter(range(20170201000000000, 20170201000001000))
    files: dict[str, str] = {}

    def put(role: str, name: str, data: bytes) -> str:
        (path / name).write_bytes(data)
        files[role] = name
        return name

    put("malformed", "39_1_20170116174525125.jpg.chip.jpg", jpeg_bytes(rng))  # race field missing
    put("irregular", f"24_0_1_{next(ts)} .jpg.chip.jpg", jpeg_bytes(rng))  # space before .jpg: kept
    put("zero_byte", utk_name(30, 0, 1, next(ts)), b"")
    whole = jpeg_bytes(rng)
    put("truncated", utk_name(31, 1, 2, next(ts)), whole[: len(whole) // 2])
    put("text", utk_name(32, 0, 3, next(ts)), b"this is not an image, just some text\n" * 20)
    put("grayscale", utk_name(33, 1, 4, next(ts)), jpeg_bytes(rng, mode="L"))
    put("odd_size", utk_name(34, 0, 0, next(ts)), jpeg_bytes(rng, size=(150, 120)))
    put("out_of_range", utk_name(130, 0, 0, next(ts)), jpeg_bytes(rng))
    conflict = jpeg_bytes(rng)
    put("conflict_a", utk_name(20, 0, 1, next(ts)), conflict)
    put("conflict_b", utk_name(45, 0, 1, next(ts)), conflict)  # same bytes, different age
    agree = jpeg_bytes(rng)
    put("agree_a", utk_name(50, 1, 2, next(ts)), agree)
    put("agree_b", utk_name(50, 1, 2, next(ts)), agree)  # same bytes, same labels

    flagged = {
        "malformed_name": [files["malformed"]],
        "irregular_name": [files["irregular"]],
        "zero_byte": [files["zero_byte"]],
        "unreadable": [files["truncated"], files["text"]],
        "age_out_of_range": [files["out_of_range"]],
        "non_rgb": [files["grayscale"]],
        "unexpected_size": [files["odd_size"]],
        "duplicate_conflicting": [files["conflict_a"], files["conflict_b"]],
        "duplicate_agreeing": [files["agree_a"], files["agree_b"]],
    }
    return BadFolder(path=path, good=good, flagged={k: sorted(v) for k, v in flagged.items()}, files=files)


@pytest.fixture
def bad_folder(tmp_path) -> BadFolder:
    """~40 good images plus one file of each problem kind (see build_bad_folder)."""
    return build_bad_folder(tmp_path / "bad")


@pytest.fixture
def good_folder(tmp_path) -> Path:
    path = tmp_path / "good"
    make_utk_folder(path, n=30, seed=3)
    return path


# --------------------------------------------------------------------------- the real data

def _utkface_path() -> Path:
    raw = Path(os.environ.get("AGEFAIR_DATA") or DEFAULT_UTKFACE)
    return (raw if raw.is_absolute() else REPO_ROOT / raw).resolve()


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    """The shared UTKFace folder ($AGEFAIR_DATA, else ../shared/datasets/utkface/images from the repo root).

    Missing: a failure when $CI is set (CI must never silently skip the real-data tests), else a skip.
    """
    path = _utkface_path()
    if not path.is_dir() or not any(path.iterdir()):
        msg = (f"UTKFace folder {path} is missing or empty: set AGEFAIR_DATA to the 'Aligned & Cropped "
               f"Faces' folder (default {DEFAULT_UTKFACE} relative to {REPO_ROOT})")
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


pytest_plugins = ["pytester"]  # used by test_fixtures.py to check utkface_dir's fail/skip behaviour


def corrupt_tiff_bytes() -> bytes:
    """A small RGB TIFF whose StripOffsets tag (273) is retyped LONG -> ASCII.

    PIL opens it, then ``load()`` raises TypeError (not OSError/ValueError): found by fuzzing open_rgb.
    """
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (1, 2, 3)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack("<H", data[entry:entry + 2])[0] == 273:
            data[entry + 2:entry + 4] = struct.pack("<H", 2)
            return bytes(data)
    raise AssertionError("no StripOffsets tag in the TIFF Pillow wrote")
