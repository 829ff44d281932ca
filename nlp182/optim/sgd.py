"""SGD with momentum (heavy ball), dampening and Nesterov momentum.

With ``momentum`` μ and ``dampening`` τ the velocity is ``v ← μ v + (1 − τ) g`` (the first step
sets ``v = g``), and the update is ``w ← w − lr v``. Nesterov evaluates the velocity one step
ahead: ``w ← w − lr (g + μ v)``. Read as a damped oscillator (a heavy ball), ``μ`` is how much of
its speed the ball keeps each step: the friction is ``1 − μ``. Dampening scales how much of the new
gradient enters the velocity. Same conventions as ``torch.optim.SGD``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlp182.errors import InvalidInputError
from nlp182.optim.tensor_lists import ForeachOptimizer, check_hyper, grads_of


class SGD(ForeachOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, dampening and L2 weight decay.

    ``maximize`` climbs the objective (the gradient's sign flipped before everything else), as in torch.
    Sparse gradients (``nn.Embedding(sparse=True)``) step as in torch, without weight decay.
    """

    supports_sparse = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyper("lr", float(lr))
        check_hyper("momentum", momentum)
        check_hyper("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InvalidInputError("Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        lr, momentum, dampening = float(group["lr"]), group["momentum"], group["dampening"]
        grads = grads_of(params, group["weight_decay"], group["maximize"])
        if momentum == 0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        bufs = [self.state[p].get("momentum_buffer") for p in params]
        if all(b is not None for b in bufs):
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads, alpha=1 - dampening)
        else:
            for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                if bufs[i] is None:
                    bufs[i] = self.state[param]["momentum_buffer"] = grad.detach().clone()
                else:
                    bufs[i].mul_(momentum).add_(grad, alpha=1 - dampening)
        if group["nesterov"]:
            # w − lr (g + μ v) in one update, as torch rounds it; g + μ v out of place, so the
            # caller's .grad is left untouched.
            torch._foreach_add_(params, torch._foreach_add(grads, bufs, alpha=momentum), alpha=-lr)
        else:
            torch._foreach_add_(params, bufs, alpha=-lr)

    def _step_sparse(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        """The same rule for a sparse gradient (``nn.Embedding(sparse=True)``): the momentum buffer
        stays sparse, as in torch."""
        momentum = group["momentum"]
        if momentum != 0:
            buf = self.state[param].get("momentum_buffer")
            if buf is None:
                buf = self.state[param]["momentum_buffer"] = grad.detach().clone()
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
            grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
        param.add_(grad, alpha=-float(group["lr"]))
