"""agefair.fairness.stats.corruptions: every corruption at every severity on small synthetic faces (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import train_helpers  # noqa: F401  (one torch thread)

from agefair.core.config import CORRUPTION_NAMES
from agefair.fairness.stats.corruptions import (
    CORRUPTIONS,
    EYES_CENTRE,
    EYES_SIZE,
    MOUTH_CENTRE,
    MOUTH_SIZE,
    SEVERITIES,
    corrupt,
    motion_kernels,
    patch_box,
)

N, S = 6, 48


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """N x 3 x 48 x 48 uint8: smooth gradients, mid-grey level, mild noise (like train_helpers.face_image)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    imgs = []
    for i in range(N):
        base = 60 + 25 * i
        arr = base + 60 * xx[..., None] * rng.uniform(0.5, 1, 3) + 40 * yy[..., None] * rng.uniform(0.5, 1, 3)
        arr = arr + rng.normal(0, 6, (S, S, 3))
        imgs.append(np.clip(arr, 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


IDS = np.arange(100, 100 + N)


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def test_registry_matches_the_config_names():
    assert tuple(CORRUPTIONS) == CORRUPTION_NAMES
    for c in CORRUPTIONS.values():
        assert len(c.params) == len(SEVERITIES) == 5 and c.title and c.unit


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_each_corruption_is_deterministic_and_grows_with_severity(faces, name):
    diffs = []
    for s in SEVERITIES:
        out = corrupt(faces, name, s, IDS, seed=0)
        assert out.dtype == torch.uint8 and out.shape == faces.shape
        assert torch.equal(out, corrupt(faces, name, s, IDS, seed=0)), "same inputs, same output"
        diffs.append(mad(out, faces))
    assert diffs[0] > 0.3, f"severity 1 of {name} barely changes the image ({diffs[0]:.2f})"
    assert all(b >= a - 0.05 for a, b in zip(diffs, diffs[1:])), (name, diffs)
    assert diffs[-1] > diffs[0]


def test_input_batch_is_never_modified(faces):
    before = faces.clone()
    for name in CORRUPTION_NAMES:
        corrupt(faces, name, 5, IDS)
    assert torch.equal(faces, before)


@pytest.mark.parametrize("name", [n for n, c in CORRUPTIONS.items() if c.random])
def test_random_corruptions_are_per_image_and_seeded(faces, name):
    whole = corrupt(faces, name, 3, IDS, seed=0)
    parts = torch.cat([corrupt(faces[:2], name, 3, IDS[:2], seed=0), corrupt(faces[2:], name, 3, IDS[2:], seed=0)])
    assert torch.equal(whole, parts), "an image's corruption must not depend on its batch"
    assert not torch.equal(whole, corrupt(faces, name, 3, IDS, seed=1)), "another seed, another draw"
    assert not torch.equal(whole, corrupt(faces, name, 3, IDS + 1, seed=0)), "another image id, another draw"
    same_face = faces[:1].repeat(2, 1, 1, 1)
    two = corrupt(same_face, name, 3, np.array([1, 2]))
    assert not torch.equal(two[0], two[1]), "two images get independent draws"


def test_lighting_corruptions_do_what_they_say(faces):
    f = faces.float()
    assert corrupt(faces, "darker", 3, IDS).float().mean() < 0.5 * f.mean()
    assert corrupt(faces, "brighter", 3, IDS).float().mean() > 1.3 * f.mean()
    low = corrupt(faces, "low_contrast", 3, IDS).float()
    assert low.std(dim=(1, 2, 3)).lt(0.5 * f.std(dim=(1, 2, 3))).all()
    assert torch.allclose(low.mean(dim=(1, 2, 3)), f.mean(dim=(1, 2, 3)), atol=6)  # towards each image's mean
    g = corrupt(faces, "gamma", 3, IDS).float()  # x ** 2.5: dark pixels lose far more than bright ones
    dark, bright = f < 100, f > 200
    assert (g[dark] / f[dark].clamp(min=1)).mean() < 0.5 * (g[bright] / f[bright]).mean()
    warm = corrupt(faces, "colour_cast", 5, IDS).float()
    assert (warm[:, 0].mean() / warm[:, 2].mean()) > 1.5 * (f[:, 0].mean() / f[:, 2].mean())


def test_blur_and_low_resolution_remove_detail(faces):
    def detail(x):  # mean absolute horizontal gradient
        return float((x.float()[..., 1:] - x.float()[..., :-1]).abs().mean())
    for name in ("gaussian_blur", "motion_blur", "low_resolution"):
        assert detail(corrupt(faces, name, 5, IDS)) < 0.5 * detail(faces), name
    noisy = corrupt(faces, "gaussian_noise", 3, IDS)
    assert abs(float((noisy.float() - faces.float()).std()) - 0.12 * 255) < 0.15 * 0.12 * 255  # SD 0.12, some clipped


def test_motion_kernels_are_streaks_of_the_asked_length_in_any_direction():
    angles = np.array([0.0, 37.0, 90.0, 135.0])
    for length in (1.9, 3.4, 9.6):  # severities 1, 2 and 5 at 48 px
        k = motion_kernels(len(angles), length, angles)[:, 0]
        assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(len(angles)))
        c = (k.shape[-1] - 1) / 2
        yy, xx = torch.meshgrid(torch.arange(k.shape[-1]) - c, torch.arange(k.shape[-1]) - c, indexing="ij")
        for i, a in enumerate(np.deg2rad(angles)):
            along = xx * math.cos(a) - yy * math.sin(a)
            across = xx * math.sin(a) + yy * math.cos(a)
            sd_along = float((k[i] * along ** 2).sum().sqrt())
            sd_across = float((k[i] * across ** 2).sum().sqrt())
            # a uniform streak of length L has SD L / sqrt(12); bilinear splatting adds a little
            assert length / 12 ** 0.5 <= sd_along <= length / 12 ** 0.5 + 0.25, (length, angles[i], sd_along)
            assert sd_across < 0.45, (length, angles[i], sd_across)
    horizontal = motion_kernels(1, 5.0, np.array([0.0]))[0, 0]
    assert torch.count_nonzero(horizontal.sum(dim=1)) == 1  # one row only


@pytest.mark.parametrize("name, centre, sizes", [("occlude_eyes", EYES_CENTRE, EYES_SIZE),
                                                 ("occlude_mouth", MOUTH_CENTRE, MOUTH_SIZE)])
def test_occlusion_covers_the_eyes_or_the_mouth(faces, name, centre, sizes):
    """UTKFace crops are aligned: the eyes at (0.30, 0.28) and (0.70, 0.28), the lips at (0.5, 0.68)."""
    targets = [(0.30, 0.28), (0.70, 0.28)] if name == "occlude_eyes" else [(0.40, 0.68), (0.60, 0.68)]
    area = []
    for s in SEVERITIES:
        out = corrupt(faces, name, s, IDS)
        black = (out == 0).all(dim=1)  # N x H x W
        top, bottom, left, right = patch_box(S, S, centre, sizes[s - 1])
        assert black[:, top:bottom, left:right].all()
        assert torch.equal(out[:, :, :top], faces[:, :, :top]) and torch.equal(out[:, :, bottom:], faces[:, :, bottom:])
        for x, y in targets:
            assert black[:, int(y * S), int(x * S)].all(), (s, x, y)
        area.append((bottom - top) * (right - left))
    assert area == sorted(area) and area[0] < area[-1]


def test_bad_arguments_are_refused(faces):
    with pytest.raises(ValueError, match="uint8"):
        corrupt(faces.float(), "jpeg", 1, IDS)
    with pytest.raises(ValueError, match="severity"):
        corrupt(faces, "jpeg", 6, IDS)
    with pytest.raises(KeyError):
        corrupt(faces, "fog", 1, IDS)
