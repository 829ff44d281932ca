"""A small explicit training loop for in-memory tensors (digits, shapes), with the learning-rate
schedules the ensembles need: constant, cosine annealing, and the cyclic cosine of snapshot ensembles.

The data sets of the vision core fit in memory, so batches are slices of tensors already on the
device; each epoch reshuffles with a seeded generator so runs repeat exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nlp182.device import select_device
from nlp182.errors import InvalidInputError, ShapeError

log = logging.getLogger(__name__)

LossFn = Callable[..., torch.Tensor]
SCHEDULES = ("constant", "cosine", "cyclic")


@dataclass
class FitConfig:
    """Settings of :func:`fit`: SGD with Nesterov momentum, weight decay and an LR schedule."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # constant | cosine | cyclic (restarts every epochs / cycles epochs)
    cycles: int = 1
    seed: int = 0
    device: str = "auto"
    progress: bool = False


def schedule_factor(step: int, total_steps: int, schedule: str = "cosine", cycles: int = 1) -> float:
    """Multiplier of the base LR at ``step`` (0-based) of ``total_steps``.

    ``cosine``: ``(1 + cos(pi t / T)) / 2``. ``cyclic`` (Huang et al. 2017): the same within each of
    ``cycles`` equal cycles, restarting at 1, so the model settles into a new minimum at the end of
    every cycle, where a snapshot is taken.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "cyclic":
        period = math.ceil(total_steps / cycles)
        return 0.5 * (1.0 + math.cos(math.pi * (step % period) / period))
    raise InvalidInputError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | Sequence[torch.Tensor],
    config: FitConfig | None = None,
    loss_fn: LossFn | None = None,
    on_step: Callable[[nn.Module], None] | None = None,
    on_cycle_end: Callable[[nn.Module, int], None] | None = None,
) -> list[float]:
    """Train ``model`` on ``inputs`` ``(N, ...)`` and ``targets`` (one tensor ``(N, ...)`` or several).

    ``loss_fn(output, *target_batches)`` defaults to cross-entropy. ``on_step(model)`` runs after
    every optimiser step (e.g. an EMA update); ``on_cycle_end(model, cycle)`` at the end of each LR
    cycle (every ``epochs / cycles`` epochs). Only trainable parameters are optimised. Returns the
    mean training loss of each epoch.
    """
    config = config or FitConfig()
    if config.epochs < 1 or config.batch_size < 1 or config.cycles < 1 or config.epochs % config.cycles:
        raise InvalidInputError(f"need epochs >= 1, batch_size >= 1 and cycles dividing epochs; got {config}")
    target_list = [targets] if isinstance(targets, torch.Tensor) else list(targets)
    if any(len(t) != len(inputs) for t in target_list):
        raise ShapeError(f"inputs have {len(inputs)} rows but targets have {[len(t) for t in target_list]}")
    device = select_device(config.device)
    model.to(device)
    inputs = inputs.to(device)
    target_list = [t.to(device) for t in target_list]
    loss_fn = loss_fn or F.cross_entropy
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(inputs) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedule_factor(s, total, config.schedule, config.cycles)
    )
    generator = torch.Generator().manual_seed(config.seed)
    epochs_per_cycle = config.epochs // config.cycles
    history = []
    for epoch in tqdm(range(config.epochs), desc="fit", disable=not config.progress):
        model.train()
        order = torch.randperm(len(inputs), generator=generator).to(device)
        running = 0.0
        for start in range(0, len(inputs), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = loss_fn(model(inputs[idx]), *(t[idx] for t in target_list))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if on_step is not None:
                on_step(model)
            running += float(loss.detach()) * len(idx)
        history.append(running / len(inputs))
        log.debug("epoch %d loss %.4f lr %.4g", epoch + 1, history[-1], scheduler.get_last_lr()[0])
        if on_cycle_end is not None and (epoch + 1) % epochs_per_cycle == 0:
            on_cycle_end(model, (epoch + 1) // epochs_per_cycle - 1)
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Outputs of ``model`` in eval mode for ``inputs`` ``(N, ...)``, batched, returned on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    outs = [
        model(inputs[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(inputs), batch_size)
    ]
    return torch.cat(outs)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` ``(N, K)`` whose argmax equals ``targets`` ``(N,)``."""
    if logits.dim() != 2 or len(logits) != len(targets):
        raise ShapeError(
            f"logits must be (N, K) with N == len(targets); got {tuple(logits.shape)}, {len(targets)}"
        )
    return float((logits.argmax(dim=1) == targets.to(logits.device)).double().mean())
