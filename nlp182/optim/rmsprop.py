"""RMSProp: divide by the root of a moving average of squared gradients.

``s ← α s + (1 − α) g²`` and ``w ← w − lr g / (√s + ε)``. The centered variant also tracks the
mean gradient ``m`` and divides by the standard deviation ``√(s − m²) + ε``. With momentum μ the
scaled step feeds a velocity ``b ← μ b + g / (√s + ε)`` and ``w ← w − lr b``. Coordinates with big
gradients take small steps and vice versa: an ellipsoidal valley is rescaled toward a round one.
Same conventions as ``torch.optim.RMSprop``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlp182.errors import InvalidInputError
from nlp182.optim.tensor_lists import ForeachOptimizer, check_hyper, grads_of, real_views, step_count


class RMSprop(ForeachOptimizer):
    """RMSProp with optional centering, momentum and L2 weight decay; ``maximize`` climbs, as in torch."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,  # positional from here on as in torch's RMSprop
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
    ) -> None:
        check_hyper("lr", float(lr))
        if not 0.0 <= alpha <= 1.0:  # 1 keeps the average at zero, as torch allows
            raise InvalidInputError(f"alpha must be in [0, 1], got {alpha}")
        check_hyper("eps", eps)
        check_hyper("weight_decay", weight_decay)
        check_hyper("momentum", momentum)
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered, "maximize": maximize}
        super().__init__(params, defaults, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        lr, alpha, eps, momentum = float(group["lr"]), group["alpha"], group["eps"], group["momentum"]
        for param in params:
            state = self.state[param]
            if not state:
                state["step"] = 0
                state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                if momentum > 0:
                    state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                if group["centered"]:
                    state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            step_count(state)
        grads = real_views(grads_of(params, group["weight_decay"], group["maximize"]))
        square_avgs = real_views([self.state[p]["square_avg"] for p in params])
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        if group["centered"]:
            grad_avgs = real_views([self.state[p]["grad_avg"] for p in params])
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            avg = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            bufs = real_views([self.state[p]["momentum_buffer"] for p in params])
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_addcdiv_(bufs, grads, avg)
            torch._foreach_add_(real_views(params), bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(real_views(params), grads, avg, value=-lr)
