"""Torch datasets over the image cache, and the reference train-time augmentation.

Datasets return uint8 CHW tensors; the model itself scales to [0, 1] and applies ImageNet
mean/std normalisation (agefair.model.Normalize), so training, evaluation, inference and ONNX
export share one preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = True
    rotation: float = 15.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0


def train_transform(cfg: AugmentConfig) -> v2.Transform:
    """Random flip, rotation and colour jitter on uint8 CHW tensors (train split only)."""
    ops: list[v2.Transform] = []
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.rotation > 0:
        ops.append(v2.RandomRotation(cfg.rotation, interpolation=v2.InterpolationMode.BILINEAR))
    if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
        ops.append(v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    return v2.Compose(ops)


class FaceDataset(Dataset):
    """Rows ``indices`` of an (N, H, W, 3) uint8 image array with their ages.

    Returns (image uint8 CHW, age float32, row index) so callers can map predictions back to files.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray, ages: np.ndarray,
                 transform: v2.Transform | None = None):
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.ages = np.asarray(ages, dtype=np.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        row = int(self.indices[i])
        img = torch.from_numpy(np.array(self.images[row], copy=True)).permute(2, 0, 1)  # memmap rows are read-only
        if self.transform is not None:
            img = self.transform(img)
        return img, torch.tensor(self.ages[i]), row
