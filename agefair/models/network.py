"""Age models: a torchvision backbone, ImageNet normalisation inside the model, and one of two heads.

- ``regression``: one output, the age in years (trained with L1 / smooth-L1).
- ``expectation``: one logit per integer age 0..max_age, trained with cross-entropy; the prediction is
  the softmax's expected value (Paplham & Franc, CVPR 2024, found this beats plain regression).

Inputs are float images in [0, 1], NCHW; ``to_input`` turns the datasets' uint8 batches into that.
With ``model.flip_tta`` the model averages, in eval mode, each image's output with its mirror image's
(test-time augmentation); everything that predicts calls ``forward``, so every prediction does it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torchvision import models

from agefair.core.config import ModelConfig
from agefair.core.errors import AgefairError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (constructor, ImageNet weights enum member, feature width)
BACKBONES: dict[str, tuple[Callable[..., nn.Module], object, int]] = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
    "resnet34": (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1, 512),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2, 2048),
}


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class AgeModel(nn.Module):
    def __init__(self, cfg: ModelConfig, backbone: nn.Module, features: int):
        super().__init__()
        self.head_kind = cfg.head
        self.max_age = cfg.max_age
        self.flip_tta = cfg.flip_tta
        self.normalize = Normalize()
        self.backbone = backbone
        out = 1 if cfg.head == "regression" else cfg.max_age + 1
        self.head = nn.Linear(features, out)
        self.register_buffer("ages", torch.arange(cfg.max_age + 1, dtype=torch.float32))
        if cfg.head == "regression":
            nn.init.zeros_(self.head.weight)
            nn.init.constant_(self.head.bias, 33.0)  # UTKFace's mean age: start near the answer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw head output: (N, 1) age for regression, (N, max_age+1) logits for expectation. In eval mode
        with ``flip_tta``: the average with the mirror image's output (the expectation head's as the log of
        the two softmax distributions' mean, so ``expected_age`` and ``spread`` are the mixture's)."""
        out = self.head(self.backbone(self.normalize(x)))
        if not self.flip_tta or self.training:
            return out
        mirrored = self.head(self.backbone(self.normalize(x.flip(-1))))
        if self.head_kind == "regression":
            return (out + mirrored) / 2
        pair = torch.stack([torch.log_softmax(out.float(), 1), torch.log_softmax(mirrored.float(), 1)])
        return torch.logsumexp(pair, 0) - math.log(2.0)

    def expected_age(self, out: torch.Tensor) -> torch.Tensor:
        """Predicted age in years, (N,), from ``forward``'s output."""
        if self.head_kind == "regression":
            return out[:, 0].float()
        return torch.softmax(out.float(), dim=1) @ self.ages

    def spread(self, out: torch.Tensor) -> torch.Tensor:
        """The standard deviation in years of the predicted age distribution, (N,), from ``forward``'s
        output (the expectation head; NaN for regression, which predicts no distribution). The scaled
        conformal score (agefair.models.conformal) widens intervals where it is large."""
        if self.head_kind == "regression":
            return torch.full((out.shape[0],), float("nan"), device=out.device)
        p = torch.softmax(out.float(), dim=1)
        mu = p @ self.ages
        return torch.sqrt(torch.clamp(p @ self.ages**2 - mu**2, min=0.0))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.expected_age(self(x))

    def predict_with_spread(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(x)
        return self.expected_age(out), self.spread(out)

    @property
    def target_layer(self) -> nn.Module:
        """The last convolutional block (for Grad-CAM)."""
        return self.backbone.layer4[-1]


def to_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float [0, 1]."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch


def create_model(cfg: ModelConfig) -> AgeModel:
    if cfg.backbone not in BACKBONES:
        raise AgefairError(f"unknown backbone {cfg.backbone!r}; choose one of {', '.join(BACKBONES)}")
    ctor, weights, features = BACKBONES[cfg.backbone]
    backbone = ctor(weights=None)
    if cfg.pretrained == "imagenet":
        try:
            state = weights.get_state_dict(progress=True)
        except Exception as exc:  # URLError, HTTPError, SSL errors, a corrupt cached file...
            reason = str(getattr(exc, "reason", exc)).splitlines()[0][:160]
            raise AgefairError(
                f"cannot load ImageNet weights for {cfg.backbone} ({weights.url}): {reason}. "
                f"Without internet, put the file in {torch.hub.get_dir()}/checkpoints/ or use --pretrained none"
            ) from None
        backbone.load_state_dict(state)
    backbone.fc = nn.Identity()
    return AgeModel(cfg, backbone, features)
