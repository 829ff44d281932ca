"""The course's training monitors: update/weight ratio, gradient norms and activation statistics.

"Track the ratio of weight updates to weight magnitudes; 0.01 is probably too high": after an
optimizer step, ``||Δw|| / ||w||`` per parameter tensor is reported and any tensor above
``UPDATE_RATIO_FLAG`` is flagged (and logged as a warning). The rule of thumb is about weight
matrices and kernels: vectors (biases, normalisation scales) are reported but not flagged, since a
bias a few steps from its zero start moves by a large share of its tiny norm in any sound run; a
tensor that was all zeros has no ratio (``None``). Gradient norms are taken after AMP unscaling and
before clipping, so they show the monster gradients clipping hides. Activation mean and standard
deviation per leaf module come from forward hooks that only record on monitored steps, over every
call of the step (each accumulated batch, each step of a recurrent cell).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

UPDATE_RATIO_FLAG = 1e-2


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` detached, widened to float32 when it is half precision (statistics in fp16 overflow)."""
    tensor = tensor.detach()
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class LayerMonitor:
    """Collect per-layer statistics around one optimizer step of ``model``.

    The activation hooks go on the model's leaf modules with ``attach`` (at construction unless
    ``attach=False``) and come off with ``remove``: a model carrying them cannot be pickled or saved
    whole, and each attach without a remove would record twice.
    """

    def __init__(self, model: nn.Module, flag_ratio: float = UPDATE_RATIO_FLAG, attach: bool = True) -> None:
        self.model = model
        self.flag_ratio = flag_ratio
        self.active = False
        self._activations: dict[str, tuple[int, float, float]] = {}  # count, mean, squared deviations
        self._before: dict[str, torch.Tensor] = {}
        self._grad_norms: dict[str, float] = {}
        self._handles: list[Any] = []
        if attach:
            self.attach()

    def attach(self) -> None:
        """Put the activation hooks on the model's leaf modules (once: attached hooks stay as they are)."""
        if self._handles:
            return
        self._handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in self.model.named_modules()
            if name and not any(True for _ in module.children())
        ]

    def _hook(self, name: str) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.active and isinstance(output, torch.Tensor) and output.is_floating_point():
                data = _wide(output).double()
                if data.numel():
                    self._activations[name] = _merged(self._activations.get(name, (0, 0.0, 0.0)), data)

        return record

    def set_active(self, active: bool) -> None:
        """Record activations in the following forward passes (only on monitored steps: hooks are cheap)."""
        self.active = active

    def before_step(self) -> None:
        """Snapshot gradient norms and weights; call after unscaling and before clipping/stepping."""
        self._before = {}
        self._grad_norms = {}
        for name, param in self.model.named_parameters():
            if param.grad is None:
                continue
            self._grad_norms[name] = float(_wide(param.grad).norm())
            self._before[name] = param.detach().clone()

    def after_step(self) -> dict[str, Any]:
        """Report ``update_ratio``, ``grad_norm``, ``act_mean``, ``act_std`` per layer, and the flagged."""
        ratios: dict[str, float | None] = {}
        params = dict(self.model.named_parameters())
        for name, old in self._before.items():
            size = float(_wide(old).norm())
            # a tensor at zero (a bias as initialised) has no scale to measure its update against
            ratios[name] = float(_wide(params[name] - old).norm()) / size if size > 0 else None
        # nan (a layer the step destroyed) is flagged too: it compares False with everything
        flagged = sorted(name for name, ratio in ratios.items()
                         if ratio is not None and not ratio <= self.flag_ratio and params[name].dim() >= 2)
        if flagged:
            log.warning("update/weight ratio above %.0e or not finite for %s (learning rate may be too high)",
                        self.flag_ratio, ", ".join(flagged))
        report = {
            "update_ratio": ratios,
            "grad_norm": dict(self._grad_norms),
            "act_mean": {name: mean for name, (_, mean, _) in self._activations.items()},
            "act_std": {name: _std(count, spread) for name, (count, _, spread) in self._activations.items()},
            "flagged": flagged,
        }
        self._before, self._activations = {}, {}
        self.active = False
        return report

    def remove(self) -> None:
        """Detach the forward hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _merged(moments: tuple[int, float, float], data: torch.Tensor) -> tuple[int, float, float]:
    """``(count, mean, sum of squared deviations)`` of the values so far and those of ``data``
    (Chan et al.'s merge): a sum of squares less the squared sum cancels when the mean is large
    beside the spread (a mean of 1e6 and a std of 1e-3 gave 0.016)."""
    count, mean, deviations = moments
    added, added_mean = data.numel(), float(data.mean())
    added_deviations = float(((data - added_mean) ** 2).sum())
    total = count + added
    delta = added_mean - mean
    return (total, mean + delta * added / total,
            deviations + added_deviations + delta * delta * count * added / total)


def _std(count: int, deviations: float) -> float:
    """The sample standard deviation (as ``torch.std``) of ``count`` values from the sum of their
    squared deviations; 0 for a single value."""
    return (deviations / (count - 1)) ** 0.5 if count >= 2 else 0.0

