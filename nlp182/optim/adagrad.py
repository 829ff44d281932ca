"""Adagrad: divide by the root of the cumulative sum of squared gradients.

``G ← G + g²`` and ``w ← w − lr_t g / (√G + ε)`` with ``lr_t = lr / (1 + (t − 1) lr_decay)``.
Because ``G`` only grows, the effective step shrinks roughly like ``1/√t`` — good for sparse
features, too aggressive for long non-convex training (RMSProp's moving average fixes that).
Same conventions as ``torch.optim.Adagrad``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlp182.optim.tensor_lists import ForeachOptimizer, check_hyper, grads_of, real_views, step_count


class Adagrad(ForeachOptimizer):
    """Adagrad with learning-rate decay, an initial accumulator value and L2 weight decay.

    ``maximize`` climbs the objective, as in torch. Sparse gradients (``nn.Embedding(sparse=True)``,
    as GloVe trains with Adagrad) update only their rows' sums and weights, as torch's do, without
    weight decay.
    """

    supports_sparse = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,  # positional, as in torch's Adagrad
        *,
        maximize: bool = False,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyper("lr", float(lr))
        check_hyper("lr_decay", lr_decay)
        check_hyper("weight_decay", weight_decay)
        check_hyper("initial_accumulator_value", initial_accumulator_value)
        check_hyper("eps", eps)
        defaults = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "eps": eps, "maximize": maximize}
        super().__init__(params, defaults, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)

    def _rate(self, param: torch.Tensor, group: dict[str, Any]) -> float:
        """This step's ``lr_t`` for ``param`` (its state made on its first step)."""
        state = self.state[param]
        if not state:
            state["step"] = 0
            start = group["initial_accumulator_value"]  # per real coordinate: both parts of a complex
            state["sum"] = torch.full_like(param, complex(start, start) if param.is_complex() else start,
                                           memory_format=torch.preserve_format)
        return float(group["lr"]) / (1 + (step_count(state) - 1) * group["lr_decay"])

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        minus_clr = [-self._rate(param, group) for param in params]
        copied = group["weight_decay"] != 0 or group["maximize"]
        grads = real_views(grads_of(params, group["weight_decay"], group["maximize"]))
        sums = real_views([self.state[p]["sum"] for p in params])
        params = real_views(params)
        torch._foreach_addcmul_(sums, grads, grads, value=1)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, group["eps"])
        if copied:  # grads are already our own copies: scale them in place
            torch._foreach_mul_(grads, minus_clr)
            numerator = grads
        else:
            numerator = torch._foreach_mul(grads, minus_clr)
        torch._foreach_addcdiv_(params, numerator, std)

    def _step_sparse(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        """The same rule on the rows a sparse gradient holds."""
        rate = self._rate(param, group)
        grad = grad.coalesce()
        values, sums = grad.values(), self.state[param]["sum"]
        sums.add_(_on_rows_of(grad, values.pow(2)))
        std = sums.sparse_mask(grad).coalesce().values().sqrt_().add_(group["eps"])
        param.add_(_on_rows_of(grad, values / std), alpha=-rate)


def _on_rows_of(grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A sparse tensor of ``values`` at the entries of the coalesced sparse ``grad`` (its indices
    are valid: no check needed)."""
    return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, check_invariants=False)
