"""An exponential moving average (EMA) of a model's weights, the copy a run evaluates and saves.

Every ``EVERY`` optimiser steps each floating-point tensor of the model's state (weights and BatchNorm
running statistics) moves a fraction ``1 - decay ** EVERY`` of the way to the live model's
(``torch._foreach_lerp_``), which is ``decay`` per step; integer buffers (BatchNorm's batch counter) are
copied. Updating every step would cost a quarter of a cpu-preset epoch on 2 cores (the lerp reads and
writes every weight); every 8th step costs an eighth of that (torchvision's reference updates every
32nd). As in torchvision's reference scripts (``--model-ema``), validation, the best checkpoint and
therefore every later prediction use the average; ``last.pt`` keeps both the live weights (to go on
training) and the average (to go on averaging).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

EVERY = 8  # optimiser steps between updates


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.steps = 0
        self._pairs = self._tensor_pairs(model)

    def _tensor_pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list, list]:
        """The (average, live) float tensors and the (average, live) other tensors, in state_dict order."""
        mine, theirs = self.module.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        if mine.keys() != theirs.keys():
            raise ValueError("the EMA copy and the model have different state")
        floats = [k for k, v in mine.items() if v.dtype.is_floating_point]
        others = [k for k, v in mine.items() if not v.dtype.is_floating_point]
        return ([mine[k].data for k in floats], [theirs[k].data for k in floats],
                [mine[k].data for k in others], [theirs[k].data for k in others])

    def step(self) -> None:
        """Call after each optimiser step: every ``EVERY``-th one moves the average toward the live model."""
        self.steps += 1
        if self.steps % EVERY == 0:
            self.update(self.decay**EVERY)

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """Move the average a fraction ``1 - decay`` of the way to the live model."""
        avg_f, live_f, avg_o, live_o = self._pairs
        torch._foreach_lerp_(avg_f, live_f, 1.0 - decay)
        for a, b in zip(avg_o, live_o):
            a.copy_(b)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.steps = int(state["steps"])
