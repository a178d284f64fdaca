"""Data-parallel training across processes: torchrun's environment, the sharded epoch sampler, reductions.

One code path serves both cases. Without torchrun (no ``WORLD_SIZE`` in the environment) the context is a
single process and every helper here is a no-op; under ``torchrun --nproc_per_node N -m agefair.train`` each
process joins the process group (NCCL on GPUs, gloo on CPUs), trains a shard of every epoch, and rank 0
alone writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from agefair.core.errors import AgefairError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (float64, so reductions don't round)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self._reduce_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm running statistics drift apart per rank)."""
        if not self.active:
            return
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)

    def _reduce_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join torchrun's process group if this process was launched by it.

    Returns the context and the device string this process should use (``cuda:LOCAL_RANK`` on GPUs).
    """
    if "WORLD_SIZE" not in os.environ:
        return DistContext(), device
    rank, world, local = (int(os.environ.get(k, "0")) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise AgefairError("--device cuda asked for, but torch sees no CUDA GPU")
        if local >= torch.cuda.device_count():
            raise AgefairError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are visible; "
                               f"use --nproc_per_node <= {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        if use_cuda:  # binding the GPU up front: NCCL then needs no guess of which device each rank uses
            dist.init_process_group(backend="nccl", device_id=torch.device(device))
        else:
            dist.init_process_group(backend="gloo")
    return DistContext(rank, world, local), device


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def epoch_indices(n: int, weights: np.ndarray | None, seed: int) -> np.ndarray:
    """The whole job's draw for one epoch, identical in every process: a permutation of ``range(n)``,
    or, with ``weights``, ``n`` draws with replacement proportional to them (oversampling)."""
    gen = torch.Generator().manual_seed(seed)
    if weights is None:
        return torch.randperm(n, generator=gen).numpy()
    w = torch.as_tensor(weights, dtype=torch.double)
    return torch.multinomial(w, n, replacement=True, generator=gen).numpy()


class ShardedEpochSampler(Sampler[int]):
    """This process's share of one epoch's draw.

    The draw is made for the whole job (so oversampling and shuffling mean the same with 1 or N
    processes), padded by wrapping around to a multiple of ``world_size`` so every process runs the
    same number of steps, and dealt out round-robin: process r gets draws r, r + N, r + 2N, ...
    """

    def __init__(self, n: int, weights: np.ndarray | None, seed: int, rank: int = 0, world_size: int = 1):
        draw = epoch_indices(n, weights, seed)
        pad = (-len(draw)) % world_size
        if pad:
            draw = np.concatenate([draw, draw[:pad]])
        self.indices = draw[rank::world_size].tolist()
        self.oversampling = weights is not None

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_rows(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Evaluation shard: every row exactly once across processes (no padding, so no double counting)."""
    return rows[rank::world_size]
