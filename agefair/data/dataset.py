"""Torch dataset over the image cache.

It returns uint8 CHW tensors; the training loop augments whole batches (agefair.training.augment), and
the model itself applies ImageNet mean/std normalisation (agefair.models.network.Normalize), so training,
evaluation, inference and ONNX export share one preprocessing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class FaceDataset(Dataset):
    """Rows ``indices`` of an (N, H, W, 3) uint8 image array with their ages.

    Returns (image uint8 CHW, age float32, row index) so callers can map predictions back to files.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray, ages: np.ndarray):
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.ages = np.asarray(ages, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        row = int(self.indices[i])
        img = torch.from_numpy(np.array(self.images[row], copy=True)).permute(2, 0, 1)  # memmap rows are read-only
        return img, torch.tensor(self.ages[i]), row
