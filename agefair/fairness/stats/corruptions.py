"""Image corruptions for the robustness audit: lighting, blur, noise, compression, resolution, occlusion.

Each corruption has five severities (1 mild ... 5 severe) and works on a whole batch of uint8
images, NCHW. The robustness audit applies them to the model's input image (the face after the
resize to the model's input size, e.g. 48x48 for the cpu preset), as ImageNet-C (Hendrycks &
Dietterich, ICLR 2019) does: the clean condition is then exactly what the audit predicted, and the
cost is that of the model's input size. Spatial parameters (blur, streak length, downscale factor,
occlusion patch) are fractions of the image side, so a severity means the same for any input size;
noise and JPEG act per pixel and per 8x8 block of the input, so at 48 px they are harsher than the
same settings applied to a 200 px photo before it is shrunk.

Deterministic: the two random corruptions (Gaussian noise, motion-blur direction) draw from one
generator per image, seeded by (seed, corruption, severity, image id), so an image gets the same
corruption whatever batch or ``--limit`` it is processed in.

Occlusion patches sit at fixed relative positions: UTKFace's crops are aligned, so a fixed box
covers the same part of nearly every face. Measured on the mean of 1,000 shared crops: the eye line
at 0.28 of the height with the eyes at 0.30 and 0.70 of the width, the lips at 0.68 of the height.
Tilted faces shift by a few per cent; on unaligned photos the boxes would miss.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from agefair.core.config import CORRUPTION_NAMES

SEVERITIES = (1, 2, 3, 4, 5)

Fn = Callable[[torch.Tensor, float, np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    name: str
    title: str
    unit: str  # what the parameter means
    params: tuple[float, ...]  # one per severity 1..5
    fn: Fn  # (uint8 NCHW batch, parameter, per-image seeds) -> uint8 NCHW batch
    random: bool = False
    version: int = 1  # bump when the definition changes: cached robustness predictions are keyed by it

    def param(self, severity: int) -> float:
        return self.params[severity - 1]


# --------------------------------------------------------------------------- helpers

def _float(x: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(x, torch.float32, scale=True)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


def _generators(seeds: np.ndarray) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def image_seeds(seed: int, corruption: str, severity: int, ids: np.ndarray) -> np.ndarray:
    """One 63-bit seed per image from (seed, corruption, severity, image id): independent of batching."""
    key = zlib.crc32(corruption.encode())
    return np.array([np.random.SeedSequence([seed, key, severity, int(i)]).generate_state(2, np.uint64)[0]
                     & np.uint64(2**63 - 1) for i in ids], dtype=np.int64)


# --------------------------------------------------------------------------- lighting

def darker(x: torch.Tensor, factor: float, seeds: np.ndarray) -> torch.Tensor:
    """Under-exposure: every pixel times ``factor`` < 1."""
    return _uint8(TF.adjust_brightness(_float(x), factor))


def brighter(x: torch.Tensor, factor: float, seeds: np.ndarray) -> torch.Tensor:
    """Over-exposure: every pixel times ``factor`` > 1, highlights clip to white."""
    return _uint8(TF.adjust_brightness(_float(x), factor))


def low_contrast(x: torch.Tensor, factor: float, seeds: np.ndarray) -> torch.Tensor:
    """Blend towards each image's mean grey level (``factor`` = remaining contrast)."""
    return _uint8(TF.adjust_contrast(_float(x), factor))


def gamma(x: torch.Tensor, g: float, seeds: np.ndarray) -> torch.Tensor:
    """Gamma ``g`` > 1: shadows and mid-tones sink (an under-exposed face in shade), highlights stay."""
    return _uint8(TF.adjust_gamma(_float(x), g))


def colour_cast(x: torch.Tensor, s: float, seeds: np.ndarray) -> torch.Tensor:
    """Warm white-balance error (tungsten light): red gain 1 + s, blue gain 1 - s."""
    gains = torch.tensor([1.0 + s, 1.0, 1.0 - s]).view(1, 3, 1, 1)
    return _uint8(_float(x) * gains)


# --------------------------------------------------------------------------- blur, noise, compression

def gaussian_blur(x: torch.Tensor, rel_sigma: float, seeds: np.ndarray) -> torch.Tensor:
    """Defocus: Gaussian blur with sigma = ``rel_sigma`` x image side."""
    sigma = rel_sigma * x.shape[-1]
    k = 2 * math.ceil(3 * sigma) + 1
    return _uint8(TF.gaussian_blur(_float(x), [k, k], [sigma, sigma]))


def motion_kernels(n: int, length: float, angles_deg: np.ndarray) -> torch.Tensor:
    """(n, 1, k, k) normalised streak kernels ``length`` pixels long (any real length) at the given angles.

    Points along the streak are splatted bilinearly onto the pixel grid, so short and oblique streaks
    blur too (a rounded line of 2 pixels would collapse to 1 at most angles)."""
    k = 2 * math.ceil(length / 2) + 1
    c = (k - 1) / 2
    t = torch.linspace(-length / 2, length / 2, max(8, int(8 * length)))
    ang = torch.as_tensor(np.deg2rad(np.asarray(angles_deg, dtype=np.float64)), dtype=torch.float32)
    xs = c + t[None, :] * torch.cos(ang)[:, None]
    ys = c - t[None, :] * torch.sin(ang)[:, None]
    x0, y0 = xs.floor(), ys.floor()
    ker = torch.zeros(n, k * k)
    for dx in (0, 1):
        for dy in (0, 1):
            w = (1 - (xs - x0 - dx).abs()) * (1 - (ys - y0 - dy).abs())
            xi, yi = (x0 + dx).long(), (y0 + dy).long()
            inside = (xi >= 0) & (xi < k) & (yi >= 0) & (yi < k)
            ker.scatter_add_(1, (yi.clamp(0, k - 1) * k + xi.clamp(0, k - 1)), w * inside)
    ker = ker / ker.sum(1, keepdim=True)
    return ker.view(n, 1, k, k)


def motion_blur(x: torch.Tensor, rel_length: float, seeds: np.ndarray) -> torch.Tensor:
    """Camera shake: a straight streak of ``rel_length`` x image side, in a random direction per image."""
    n, c, h, w = x.shape
    length = rel_length * w
    angles = np.array([np.random.default_rng(int(s)).uniform(0.0, 180.0) for s in seeds])
    ker = motion_kernels(n, length, angles)
    k = ker.shape[-1]
    pad = k // 2
    xf = F.pad(_float(x), (pad, pad, pad, pad), mode="reflect").reshape(1, n * c, h + 2 * pad, w + 2 * pad)
    out = F.conv2d(xf, ker.repeat_interleave(c, dim=0), groups=n * c)
    return _uint8(out.view(n, c, h, w))


def gaussian_noise(x: torch.Tensor, sigma: float, seeds: np.ndarray) -> torch.Tensor:
    """Sensor noise: independent Gaussian noise of standard deviation ``sigma`` (in [0, 1] units) per pixel."""
    noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in _generators(seeds)])
    return _uint8(_float(x) + sigma * noise)


def jpeg(x: torch.Tensor, quality: float, seeds: np.ndarray) -> torch.Tensor:
    """Re-save as a JPEG of ``quality`` with PIL (4:2:0 chroma subsampling, PIL's default)."""
    out = torch.empty_like(x)
    for i, img in enumerate(x.permute(0, 2, 3, 1).numpy()):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as dec:
            out[i] = torch.from_numpy(np.array(dec.convert("RGB"))).permute(2, 0, 1)
    return out


def low_resolution(x: torch.Tensor, factor: float, seeds: np.ndarray) -> torch.Tensor:
    """Too few pixels on the face: downscale (antialiased) by ``factor``, then upscale back (bilinear)."""
    h, w = x.shape[-2:]
    small = TF.resize(x, [max(2, round(h * factor)), max(2, round(w * factor))],
                      interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.resize(small, [h, w], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


# --------------------------------------------------------------------------- occlusion

# (centre x, centre y) of the patch as fractions of the crop, and its (width, height) per severity.
EYES_CENTRE = (0.50, 0.28)
EYES_SIZE = ((0.55, 0.10), (0.62, 0.13), (0.70, 0.16), (0.80, 0.20), (0.90, 0.24))
MOUTH_CENTRE = (0.50, 0.68)
MOUTH_SIZE = ((0.30, 0.10), (0.36, 0.13), (0.42, 0.16), (0.48, 0.19), (0.54, 0.22))


def patch_box(h: int, w: int, centre: tuple[float, float], size: tuple[float, float]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of a patch given in fractions of the image."""
    cx, cy = centre
    pw, ph = size
    return (max(0, round((cy - ph / 2) * h)), min(h, round((cy + ph / 2) * h)),
            max(0, round((cx - pw / 2) * w)), min(w, round((cx + pw / 2) * w)))


def _occlude(centre: tuple[float, float], sizes: tuple[tuple[float, float], ...]) -> Fn:
    def fn(x: torch.Tensor, severity: float, seeds: np.ndarray) -> torch.Tensor:
        top, bottom, left, right = patch_box(x.shape[-2], x.shape[-1], centre, sizes[int(severity) - 1])
        out = x.clone()
        out[:, :, top:bottom, left:right] = 0  # a black bar (sunglasses, a censor bar, a dark mask)
        return out
    return fn


occlude_eyes = _occlude(EYES_CENTRE, EYES_SIZE)
occlude_mouth = _occlude(MOUTH_CENTRE, MOUTH_SIZE)


# --------------------------------------------------------------------------- registry

CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in [
    Corruption("darker", "darker exposure", "brightness factor", (0.7, 0.55, 0.4, 0.3, 0.2), darker),
    Corruption("brighter", "brighter exposure", "brightness factor", (1.3, 1.6, 1.9, 2.2, 2.6), brighter),
    Corruption("low_contrast", "low contrast", "contrast factor", (0.7, 0.5, 0.35, 0.2, 0.1), low_contrast),
    Corruption("gamma", "gamma (dark shadows)", "gamma", (1.5, 2.0, 2.5, 3.0, 4.0), gamma),
    Corruption("colour_cast", "colour cast (warm)", "s: red gain 1+s, blue 1-s", (0.08, 0.16, 0.24, 0.32, 0.40), colour_cast),
    Corruption("gaussian_blur", "Gaussian blur", "sigma / image side", (0.01, 0.02, 0.03, 0.04, 0.06), gaussian_blur),
    Corruption("motion_blur", "motion blur", "streak length / image side", (0.04, 0.07, 0.10, 0.14, 0.20),
               motion_blur, random=True, version=2),
    Corruption("gaussian_noise", "Gaussian noise", "noise SD (0-1 scale)", (0.04, 0.08, 0.12, 0.18, 0.26),
               gaussian_noise, random=True),
    Corruption("jpeg", "JPEG compression", "JPEG quality", (25, 18, 15, 10, 7), jpeg),
    Corruption("low_resolution", "low resolution", "downscale factor", (0.75, 0.5, 0.4, 0.3, 0.2), low_resolution),
    Corruption("occlude_eyes", "occlusion: eyes", "severity (patch size)", (1, 2, 3, 4, 5), occlude_eyes),
    Corruption("occlude_mouth", "occlusion: mouth", "severity (patch size)", (1, 2, 3, 4, 5), occlude_mouth),
]}
assert tuple(CORRUPTIONS) == CORRUPTION_NAMES, "keep agefair.core.config.CORRUPTION_NAMES in step with CORRUPTIONS"


def corrupt(images: torch.Tensor, name: str, severity: int, ids: np.ndarray, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8, N x 3 x H x W) under corruption ``name`` at ``severity`` (1-5).

    ``ids`` (one integer per image, e.g. its manifest row) and ``seed`` fix the random draws.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 N x 3 x H x W batch, got {images.dtype} {tuple(images.shape)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    c = CORRUPTIONS[name]
    seeds = image_seeds(seed, name, severity, ids) if c.random else np.zeros(len(images), dtype=np.int64)
    with torch.no_grad():
        return c.fn(images, c.param(severity), seeds)


