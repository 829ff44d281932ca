"""Data-parallel word2vec across processes: ``torchrun --nproc-per-node N nlp182 train w2v ...``.

Every process holds the whole model and trains its share of each corpus chunk (every N-th span
with the C kernel, every N-th slice of sentences with the batched and fused kernels). After every
``SYNC_TOKENS`` tokens of each process, the processes add up their changes to the embedding
tables (:func:`add_updates_`), as Hogwild threads share theirs: averaging the tables instead
(periodic model averaging) divides each process's updates by N. The learning rate follows the
position of a span in the whole corpus, so the schedule is the one of a single process. Gloo on
CPUs, NCCL on GPUs.
Launched without ``torchrun`` (no ``WORLD_SIZE`` above 1 in the environment) nothing changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.distributed as dist

#: Tokens each process trains between two exchanges of the processes' updates.
SYNC_TOKENS = 80_000


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (or set up the same way)."""
    return dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched (gloo, or nccl on CUDA); returns ``(rank, size)``,
    ``(0, 1)`` for a single process."""
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def stop() -> None:
    """Leave the process group, if this process joined one (a no-op otherwise).

    Call it once the last updates are exchanged: a process that exits with gloo's threads still running
    aborts ("terminate called without an active exception"), which failed torchrun runs at random.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a rank other than 0 of a launched group (only rank 0 writes files)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def main_first(work: Callable[[], object]) -> None:
    """Run ``work`` on rank 0 while the others wait (filling a cache they then read)."""
    if not (dist.is_available() and dist.is_initialized()):
        work()
        return
    if dist.get_rank() == 0:
        work()
    dist.barrier()


def total(value: float, device: torch.device) -> float:
    """The sum of ``value`` over the processes (``device``: where the group's tensors live)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    summed = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return float(summed.item())


def snapshot(*tensors: torch.Tensor) -> list[torch.Tensor] | None:
    """Copies of ``tensors`` (any shape, e.g. ``(V, D)`` tables) to measure what this process
    changes in them (None for one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return [tensor.detach().clone() for tensor in tensors]


def add_updates_(tensors: tuple[torch.Tensor, ...], before: list[torch.Tensor] | None) -> None:
    """Give every process the start ``before`` plus the sum of every process's change since, in
    place; ``tensors`` and ``before`` are matching lists of tables of any shape, e.g. ``(V, D)``."""
    if before is None:
        return
    for tensor, start in zip(tensors, before, strict=True):
        tensor.sub_(start)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.add_(start)


def sync_slices(count: int, chunk_tokens: int, size: int) -> list[tuple[int, int]]:
    """``(first, last)`` slices of this process's ``count`` examples (or centres) of a chunk of
    ``chunk_tokens`` tokens (the whole chunk, every process's share): the rounds after each of which
    the ``size`` processes add up their updates. Every process gets as many rounds (about
    ``SYNC_TOKENS`` tokens of its share each); a single process gets one."""
    rounds = 1 if size == 1 else max(1, math.ceil(chunk_tokens / (size * SYNC_TOKENS)))
    return [(count * round_ // rounds, count * (round_ + 1) // rounds) for round_ in range(rounds)]
