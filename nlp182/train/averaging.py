"""An exponential moving average of a model's weights, for evaluation and for the kept weights.

One extra copy of the weights: ``shadow <- d * shadow + (1 - d) * current`` after every optimizer
step (Polyak averaging with a horizon of about ``1 / (1 - d)`` steps). Late in training, SGD's
weights wander around a minimum; their average sits nearer its centre, scores better and moves
less from one evaluation to the next. The Trainer keeps one when ``TrainerConfig.ema_decay`` is
set; :mod:`nlp182.vision` re-exports it for the course's ensembles.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nlp182.errors import InvalidInputError


class ExponentialMovingAverage:
    """One extra copy of the weights: ``shadow <- decay * shadow + (1 - decay) * current`` per step.

    Parameters and floating-point buffers (batch-norm running statistics) are averaged alike, so
    the averaged network's normalisation matches its averaged weights; integer buffers (counters)
    are copied. With ``warmup``, update ``n`` (from 1) uses ``min(decay, (1 + n) / (10 + n))``, as
    TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` does: early on, when the weights still
    move fast, the average forgets the random initialisation within a few steps instead of
    ``1 / (1 - decay)``. ``copy_to`` writes the average into a model; :meth:`averaged_model` returns
    a new model holding it.
    """

    def __init__(self, model: nn.Module, decay: float = 0.99, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise InvalidInputError(f"EMA decay must be in [0, 1); got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = {name: value.detach().to(_average_dtype(value.dtype), copy=True)
                       for name, value in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if not self.warmup:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward ``model``'s current weights.

        The average follows the model's device and dtype: a model moved to the GPU after the
        average was taken (``fit`` moves it), or cast with ``.double()``, moves the average there at
        the next update. Half-precision weights (float16, bfloat16) are averaged in float32: a
        step of ``1 - decay`` of a small change is below their rounding, and a bfloat16 average at
        decay 0.999 did not move at all while its weight went from 1 to 3.
        """
        decay = self.current_decay()
        for name, value in model.state_dict().items():
            dtype = _average_dtype(value.dtype)
            if self.shadow[name].device != value.device or self.shadow[name].dtype != dtype:
                self.shadow[name] = self.shadow[name].to(device=value.device, dtype=dtype)
            if value.is_floating_point():
                self.shadow[name].lerp_(value.detach().to(dtype), 1.0 - decay)
            else:
                self.shadow[name].copy_(value)
        self.num_updates += 1

    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s parameters and buffers with the averaged ones (rounded to the
        model's dtype)."""
        model.load_state_dict(self.shadow)

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` carrying the averaged weights."""
        averaged = copy.deepcopy(model)
        self.copy_to(averaged)
        return averaged

    def state_dict(self) -> dict[str, object]:
        """The average and its update count (a checkpoint's ``ema`` entry)."""
        return {"shadow": dict(self.shadow), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`'s output; tensors move to where the average lives."""
        shadow = state["shadow"]
        if not isinstance(shadow, dict) or set(shadow) != set(self.shadow):
            raise InvalidInputError("the checkpoint's EMA does not hold this model's weights")
        self.shadow = {k: v.to(self.shadow[k].device) for k, v in shadow.items()}
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]


def _average_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a weight of ``dtype`` is averaged in: float32 for the half-precision ones."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
