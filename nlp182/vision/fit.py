"""Train a vision model on in-memory tensors (digits, shapes) through the shared Trainer.

:func:`fit` is the vision core's front door to :class:`nlp182.train.Trainer`: it slices seeded
shuffles of tensors already on the device into batches, builds ``nlp182.optim.SGD`` (Nesterov
momentum) over the model's weight-decay groups (matrices decay, biases and norm parameters do not)
and one of the schedules the ensembles need, stepped per batch: constant, cosine annealing, or the
cyclic cosine of snapshot ensembles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.device import select_device
from nlp182.errors import InvalidInputError, ShapeError
from nlp182.optim import SGD, Cosine, CyclicCosine, weight_decay_groups
from nlp182.settings import check_settings, seed_setting, setting
from nlp182.train import Trainer, TrainerConfig
from nlp182.vision.normalization import batch_spans

LossFn = Callable[..., torch.Tensor]
SCHEDULES = ("constant", "cosine", "cyclic")


@dataclass
class FitConfig:
    """Settings of :func:`fit`: SGD with Nesterov momentum, weight decay and an LR schedule."""

    epochs: int = setting(20, positive=True, help="passes over the training data")
    batch_size: int = setting(64, positive=True, help="examples per training step")
    lr: float = setting(0.05, positive=True, help="learning rate")
    momentum: float = setting(0.9, minimum=0, below=1, help="Nesterov momentum of SGD (0 turns it off)")
    weight_decay: float = setting(5e-4, minimum=0, help="L2 penalty on the weights")
    schedule: str = setting(
        "cosine", choices=SCHEDULES,
        help="learning-rate schedule: constant, cosine, or cyclic (restarts, see --cycles)",
    )
    cycles: int = setting(
        1, positive=True,
        help="learning-rate cycles of the cyclic schedule (must divide --epochs)",
    )
    seed: int = seed_setting(0, help="random seed; the same seed repeats a run exactly")
    device: str = setting("auto", help="where to compute: auto (a GPU when there is one), cpu, cuda or mps")
    progress: bool = setting(False, help="show a progress bar while training")

    def __post_init__(self) -> None:
        check_settings(self)


class TensorBatches:
    """Minibatches ``(inputs[idx], *targets[idx])`` of tensors in memory, reshuffled every pass.

    A last batch of one example joins the one before it (:func:`batch_spans`). The order comes
    from ``generator`` (exposed so the Trainer can save and replay it on resume);
    the index is moved to the tensors' device, so batches never leave it.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, seed: int = 0) -> None:
        self.tensors = list(tensors)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(batch_spans(len(self.tensors[0]), self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.tensors[0]), generator=self.generator).to(self.tensors[0].device)
        for start, stop in batch_spans(len(order), self.batch_size):
            idx = order[start:stop]
            yield tuple(t[idx] for t in self.tensors)


def make_schedule(optimizer: torch.optim.Optimizer, config: FitConfig, total_steps: int) -> Any:
    """The per-step ``nlp182.optim`` schedule ``config.schedule`` names (``None`` for constant; the
    config has refused any name outside :data:`SCHEDULES`)."""
    if config.schedule == "cosine":
        return Cosine(optimizer, total_steps)
    if config.schedule == "cyclic":
        return CyclicCosine(optimizer, total_steps, config.cycles)
    return None


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
    if len(inputs) == 0:  # else the schedule's zero steps were named as the fault
        raise InvalidInputError("fit was given no training examples (inputs has 0 rows)")
    device = select_device(config.device)
    batches = TensorBatches([t.to(device) for t in (inputs, *target_list)], config.batch_size, config.seed)
    optimizer = SGD(weight_decay_groups(model, config.weight_decay), lr=config.lr,
                    momentum=config.momentum, nesterov=config.momentum > 0)
    criterion = loss_fn or F.cross_entropy
    epochs_per_cycle = config.epochs // config.cycles

    def cycle_end(trained: nn.Module, record: dict[str, Any]) -> None:
        if on_cycle_end is not None and record["epoch"] % epochs_per_cycle == 0:
            on_cycle_end(trained, record["epoch"] // epochs_per_cycle - 1)

    trainer = Trainer(
        model,
        optimizer,
        lambda net, batch: criterion(net(batch[0]), *batch[1:]),
        TrainerConfig(epochs=config.epochs, device=str(device), amp=False, seed=config.seed,
                      progress=config.progress),
        scheduler=make_schedule(optimizer, config, len(batches) * config.epochs),
        scheduler_interval="step",
        on_step=on_step,
        on_epoch_end=cycle_end,
    )
    return [record["train_loss"] for record in trainer.fit(batches)]


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
