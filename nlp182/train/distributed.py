"""Distributed data parallel through ``torchrun``: the same script runs on one process or N.

``torchrun --nproc_per_node=N script.py`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; the
Trainer calls ``init_distributed`` which joins the process group (NCCL on CUDA, gloo on CPU) and
then wraps the model in ``torch.nn.parallel.DistributedDataParallel``. Without those variables
everything is a single process and no group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from nlp182.device import select_device


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: its rank, the number of processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that logs and writes files."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun; otherwise a one-process context.

    On CUDA each process takes the GPU numbered by its ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not dist.is_initialized():
        return DistContext(0, 1, 0, select_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = select_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, chosen)


def distributed_loader(
    dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """A DataLoader whose ``batch_size`` is per process; each process reads its own shard.

    With one process it is a plain (seeded, when shuffling) DataLoader, so a script written with it
    runs unchanged under ``python`` or ``torchrun``. The global batch is ``batch_size * world_size``.
    The shard is this process's by the process group, or before the group exists (the Trainer
    joins it later) by torchrun's ``RANK`` and ``WORLD_SIZE``: a loader built first is split too.
    """
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    else:
        world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last)


def all_reduce_mean(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average a dict of floats over all processes (identity on one process)."""
    if not ctx.is_distributed or not values:
        return values
    keys = sorted(values)
    buffer = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, buffer.tolist(), strict=True)}
