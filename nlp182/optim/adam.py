"""Adam and AdamW: momentum plus RMSProp scaling, with bias correction.

``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``; with bias correction the step is
``w ← w − lr m̂ / (√v̂ + ε)`` where ``m̂ = m / (1 − β₁ᵗ)`` and ``v̂ = v / (1 − β₂ᵗ)``. The correction
undoes the pull of the zero initialisation toward 0 in the first steps; ``bias_correction=False``
gives the uncorrected rule the course questions, whose first step is ``(1−β₁)/√(1−β₂)`` times the
corrected one (about 3.2 for the default betas). Adam adds weight decay to the gradient
(L2); AdamW decays the weights directly, ``w ← w (1 − lr λ)``, so the decay is not rescaled by
``√v̂`` (Loshchilov & Hutter). With bias correction on, both match ``torch.optim.Adam``/``AdamW``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from nlp182.optim.tensor_lists import ForeachOptimizer, check_hyper, grads_of, real_views, step_count


class Adam(ForeachOptimizer):
    """Adam with L2 weight decay (added to the gradient) and optional bias correction.

    ``amsgrad`` divides by the running maximum of ``v`` (Reddi et al., 2018) so the step size never
    grows back; ``maximize`` climbs the objective; ``decoupled_weight_decay=True`` is AdamW. All as
    in ``torch.optim.Adam``, whose positional order the arguments keep (``amsgrad`` sixth);
    ``bias_correction`` is by keyword only.
    """

    #: The class's default for ``decoupled_weight_decay`` (each group keeps its own).
    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        bias_correction: bool = True,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_hyper("lr", float(lr))
        check_hyper("betas[0]", float(betas[0]), 0.0, 1.0)
        check_hyper("betas[1]", float(betas[1]), 0.0, 1.0)
        check_hyper("eps", eps)
        check_hyper("weight_decay", weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "bias_correction": bias_correction, "amsgrad": amsgrad, "maximize": maximize,
                    "decoupled_weight_decay": bool(decoupled_weight_decay or self.decoupled_weight_decay)}
        super().__init__(params, defaults, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        lr, eps = float(group["lr"]), group["eps"]
        beta1, beta2 = (float(beta) for beta in group["betas"])  # tensors too, as torch takes them
        decay, amsgrad = group["weight_decay"], group["amsgrad"]
        steps = []
        for param in params:
            state = self.state[param]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            steps.append(step_count(state))
        if group["decoupled_weight_decay"]:
            if decay != 0:
                torch._foreach_mul_(params, 1 - lr * decay)
            grads = grads_of(params, 0.0, group["maximize"])
        else:
            grads = grads_of(params, decay, group["maximize"])
        exp_avgs = real_views([self.state[p]["exp_avg"] for p in params])
        exp_avg_sqs = real_views([self.state[p]["exp_avg_sq"] for p in params])
        grads = real_views(grads)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        if amsgrad:
            max_sqs = real_views([self.state[p]["max_exp_avg_sq"] for p in params])
            torch._foreach_maximum_(max_sqs, exp_avg_sqs)
            denom = torch._foreach_sqrt(max_sqs)
        else:
            denom = torch._foreach_sqrt(exp_avg_sqs)
        params = real_views(params)
        if group["bias_correction"]:
            step_sizes = [-lr / (1 - beta1**t) for t in steps]
            torch._foreach_div_(denom, [math.sqrt(1 - beta2**t) for t in steps])
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)
        else:
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denom, value=-lr)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w ← w (1 − lr λ)`` before the Adam step."""

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        bias_correction: bool = True,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, foreach=foreach, fused=fused,
            capturable=capturable, differentiable=differentiable, bias_correction=bias_correction,
            decoupled_weight_decay=True,
        )
