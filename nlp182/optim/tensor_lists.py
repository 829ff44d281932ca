"""Gathering parameters into per-device, per-dtype lists for the multi-tensor (``torch._foreach_*``) kernels.

A ``_foreach`` op takes lists of tensors that share a device and dtype and updates them all in one
call (one fused kernel launch on CUDA), which is why these optimizers cost about what torch.optim's
foreach implementations do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from nlp182.errors import InvalidInputError


def params_with_grad(
    params: Iterable[torch.Tensor], optimizer: str, sparse: bool = False
) -> list[torch.Tensor]:
    """The parameters that received a gradient in this step (others are skipped, as in torch); a
    sparse gradient is refused unless ``sparse``."""
    found = []
    for param in params:
        if param.grad is None:
            continue
        if param.grad.is_sparse and not sparse:
            raise InvalidInputError(f"{optimizer} does not support sparse gradients; use dense embeddings "
                                    "(nn.Embedding(sparse=False)) or torch.optim.SparseAdam")
        found.append(param)
    return found


def group_by_device_dtype(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Split ``params`` into lists that share device and dtype, keeping their order."""
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for param in params:
        groups.setdefault((param.device, param.dtype), []).append(param)
    return list(groups.values())


def grads_of(params: list[torch.Tensor], weight_decay: float, maximize: bool = False) -> list[torch.Tensor]:
    """Gradients of ``params`` (negated to ``maximize``), plus ``weight_decay * param`` (L2
    regularisation) when set, as in torch.optim.

    The caller's ``.grad`` tensors are never modified.
    """
    grads = [p.grad for p in params]  # type: ignore[misc]
    if maximize:
        grads = list(torch._foreach_neg(grads))  # type: ignore[arg-type]
        if weight_decay != 0:
            torch._foreach_add_(grads, params, alpha=weight_decay)
        return grads  # type: ignore[return-value]
    if weight_decay != 0:
        return list(torch._foreach_add(grads, params, alpha=weight_decay))
    return grads  # type: ignore[return-value]


def real_views(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Complex tensors as ``(..., 2)`` real views (updates write through), others as they are.

    Optimizers whose update is not linear in the gradient (squares, roots) treat the real and
    imaginary parts of a complex parameter as two real coordinates, as torch.optim does.
    """
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


def step_count(state: dict[str, Any]) -> float:
    """Advance and return the state's step; torch.optim saves it as a tensor, this package as an int."""
    state["step"] += 1
    return float(state["step"])


def check_hyper(name: str, value: float, low: float = 0.0, high: float | None = None) -> None:
    """Raise ``InvalidInputError`` unless ``low <= value`` (and ``value < high`` when given)."""
    if not (value >= low and (high is None or value < high)):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")


class ForeachOptimizer(torch.optim.Optimizer):
    """Base of the package's optimizers: ``step`` hands each group's parameters that have a
    gradient, split by device and dtype, to ``_update(params, group)`` as one multi-tensor list.

    State and group keys follow torch.optim's, so a ``state_dict`` saved by the matching
    torch.optim optimizer loads here; options it does not record take this optimizer's defaults.
    ``foreach`` and ``fused`` are taken as torch.optim takes them, so code written for it runs
    unchanged; they choose no other code here, where the multi-tensor kernels always run.
    ``capturable`` and ``differentiable`` are taken too, as ``False`` (torch's default): the
    updates are neither CUDA-graph safe nor differentiable, and ``True`` is refused.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        for flag, value in (("foreach", foreach), ("fused", fused)):
            if value is not None and not isinstance(value, bool):
                raise InvalidInputError(f"{flag} must be True, False or None, got {value!r}")
        for flag, value in (("capturable", capturable), ("differentiable", differentiable)):
            if value is not False:
                raise InvalidInputError(f"{flag}={value!r} is not supported by {type(self).__name__}: its "
                                        "updates are in-place multi-tensor kernels; use torch.optim for it")
        super().__init__(params, defaults)

    #: Whether ``_update`` takes parameters whose gradient is sparse.
    supports_sparse = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for name, default in self.defaults.items():
                group.setdefault(name, default)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            found = params_with_grad(group["params"], type(self).__name__, self.supports_sparse)
            for params in group_by_device_dtype(found):
                sparse = [p for p in params if p.grad.is_sparse]  # type: ignore[union-attr]
                if sparse:
                    self._update_sparse(sparse, group)
                dense = [p for p in params if not p.grad.is_sparse]  # type: ignore[union-attr]
                if dense:
                    self._update(dense, group)
        return loss

    def _update(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update_sparse(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """The rule for parameters whose gradient is sparse, a tensor at a time (where
        ``supports_sparse``); a sparse gradient's other rows stay untouched, so weight decay, which
        would touch every row, is refused.

        Raises:
            InvalidInputError: weight decay is set.
        """
        if group.get("weight_decay", 0) != 0:
            raise InvalidInputError(
                f"{type(self).__name__} with weight_decay needs dense gradients; use "
                "nn.Embedding(sparse=False) or weight_decay=0 for the parameters with sparse gradients"
            )
        for param in params:
            grad = -param.grad if group["maximize"] else param.grad  # type: ignore[operator]
            self._step_sparse(param, grad, group)

    def _step_sparse(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError

