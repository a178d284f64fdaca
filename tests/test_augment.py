"""BatchAugment: per-image random flip, rotation and colour jitter on a whole batch."""

from __future__ import annotations

import torch

from agefair.core.config import AugmentSection
from agefair.training.augment import BatchAugment

OFF = dict(hflip=False, rotation=0.0, brightness=0.0, contrast=0.0, saturation=0.0)


def batch(n=32, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_everything_off_is_identity():
    x = batch()
    assert torch.equal(BatchAugment(AugmentSection(**OFF))(x), x)


def test_flip_flips_about_half_the_images_and_nothing_else():
    x = batch(200)
    y = BatchAugment(AugmentSection(**{**OFF, "hflip": True}))(x, torch.Generator().manual_seed(1))
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))]
    same = [torch.equal(y[i], x[i]) for i in range(len(x))]
    assert all(f or s for f, s in zip(flipped, same))
    assert 70 < sum(flipped) < 130


def test_rotation_is_per_image_and_bounded():
    # A centred bright square keeps its mass under small rotations; different images get different angles.
    x = torch.zeros(16, 3, 33, 33)
    x[:, :, 8:25, 8:25] = 1.0
    y = BatchAugment(AugmentSection(**{**OFF, "rotation": 15.0}))(x, torch.Generator().manual_seed(2))
    assert y.shape == x.shape
    mass = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert torch.all((mass > 0.9) & (mass < 1.1))
    assert len({round(float(v), 4) for v in y[:, 0, 8, 8]}) > 4  # corners differ: angles differ


def test_colour_jitter_ranges_and_clamping():
    x = torch.full((64, 3, 8, 8), 0.5)
    y = BatchAugment(AugmentSection(**{**OFF, "brightness": 0.2}))(x, torch.Generator().manual_seed(3))
    factors = y[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6 and factors.std() > 0.05
    y = BatchAugment(AugmentSection(**{**OFF, "brightness": 1.0, "contrast": 1.0, "saturation": 1.0}))(batch(64))
    assert y.min() >= 0 and y.max() <= 1


def test_saturation_zero_factor_range_keeps_gray_images_gray():
    gray = torch.rand(8, 1, 10, 10).expand(8, 3, 10, 10).contiguous()
    y = BatchAugment(AugmentSection(**{**OFF, "saturation": 0.5, "contrast": 0.5}))(gray)
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6) and torch.allclose(y[:, 1], y[:, 2], atol=1e-6)


def test_same_generator_seed_same_output():
    x = batch()
    aug = BatchAugment(AugmentSection())
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def square_batch(n=64, size=33):
    x = torch.zeros(n, 3, size, size)
    x[:, :, 12:21, 12:21] = 1.0  # a centred 9x9 square
    return x


def test_scale_zooms_each_image_within_its_range():
    x = square_batch()
    y = BatchAugment(AugmentSection(**{**OFF, "scale": 0.2}))(x, torch.Generator().manual_seed(4))
    area = y[:, 0].sum((1, 2)) / x[:, 0].sum((1, 2))  # zoom z scales the square's area by z^2
    assert torch.all((area > 0.8**2 - 0.08) & (area < 1.2**2 + 0.08))
    assert float(area.min()) < 0.85 and float(area.max()) > 1.15  # both ways
    centre = (y[:, 0] * torch.arange(33.0)).sum((1, 2)) / y[:, 0].sum((1, 2))
    assert torch.allclose(centre, torch.full_like(centre, 16.0), atol=0.05)  # about the centre


def test_translate_shifts_each_image_by_at_most_its_share():
    x = square_batch()
    y = BatchAugment(AugmentSection(**{**OFF, "translate": 0.1}))(x, torch.Generator().manual_seed(5))
    w = y[:, 0]
    cx = (w * torch.arange(33.0)).sum((1, 2)) / w.sum((1, 2))
    cy = (w * torch.arange(33.0)[:, None]).sum((1, 2)) / w.sum((1, 2))
    shift = torch.stack([cx, cy], 1) - 16.0
    assert float(shift.abs().max()) <= 0.1 * 33 + 0.2
    assert float(shift.abs().max()) > 0.6 * 0.1 * 33  # the range is used
    assert float(torch.corrcoef(shift.T)[0, 1].abs()) < 0.5  # x and y drawn independently
    assert torch.allclose(w.sum((1, 2)), x[:, 0].sum((1, 2)), rtol=0.02)  # a shift keeps the square whole


def test_scale_and_translate_off_leave_the_rotation_draws_unchanged():
    x = batch()
    rot = AugmentSection(**{**OFF, "rotation": 15.0})
    same = AugmentSection(**{**OFF, "rotation": 15.0, "scale": 0.0, "translate": 0.0})
    assert torch.equal(BatchAugment(rot)(x, torch.Generator().manual_seed(6)),
                       BatchAugment(same)(x, torch.Generator().manual_seed(6)))
