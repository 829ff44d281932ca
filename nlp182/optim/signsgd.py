"""signSGD: one-bit gradients, ``w ← w − lr sign(g)`` (Bernstein et al., 2018).

Only the sign of each coordinate survives, which bounds every update to ``lr`` per coordinate
(monster gradients cannot blow up a step) and compresses what workers must exchange to one bit.
With ``momentum`` β it is Signum: ``m ← β m + (1 − β) g`` and ``w ← w − lr sign(m)``. Weight decay
is added to the gradient before the sign is taken. torch.optim has no counterpart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlp182.optim.tensor_lists import ForeachOptimizer, check_hyper, grads_of


class SignSGD(ForeachOptimizer):
    """Sign gradient descent, with optional Signum momentum and L2 weight decay."""

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        check_hyper("lr", lr)
        check_hyper("momentum", momentum, 0.0, 1.0)
        check_hyper("weight_decay", weight_decay)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        grads = grads_of(params, group["weight_decay"])
        if group["momentum"] > 0:
            bufs = []
            for param in params:
                if "momentum_buffer" not in self.state[param]:
                    self.state[param]["momentum_buffer"] = torch.zeros_like(param)
                bufs.append(self.state[param]["momentum_buffer"])
            torch._foreach_lerp_(bufs, grads, 1 - group["momentum"])
            grads = bufs
        signs = torch._foreach_sign(grads)
        torch._foreach_add_(params, signs, alpha=-group["lr"])
