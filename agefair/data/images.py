"""Reading images safely: one-line errors, EXIF orientation, odd modes, decompression bombs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from agefair.core.errors import AgefairError

# Refuse images with more pixels than this (PIL's own default is ~89 Mpx and only warns).
MAX_PIXELS = 40_000_000


class ImageReadError(AgefairError):
    """An image file that cannot be used; the message names the file and the problem."""


def open_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, str]:
    """Decode ``path`` fully as an upright 8-bit RGB image; returns it and the file's original mode."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(
                        f"{path}: refused: {w}x{h} = {w * h:,} pixels is more than the {max_pixels:,} allowed"
                    )
                mode = img.mode
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img), mode
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: refused: decompression bomb (absurd pixel count)") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognised format)") from None
    except OSError as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg:
            msg = "truncated image data"
        raise ImageReadError(f"{path}: unreadable image: {msg}") from None
    except Exception as exc:  # PIL raises ValueError, SyntaxError, TypeError, struct.error... on corrupt files
        raise ImageReadError(f"{path}: corrupt image: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: alpha is composited on white, 16-bit is rescaled, CMYK converted."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
