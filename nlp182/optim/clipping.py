"""Gradient clipping by value and by global norm, on the multi-tensor kernels.

Clipping tames the occasional "monster" gradient: by value caps every coordinate to
``[-clip, clip]`` (changes the direction); by global norm rescales all gradients together so
their joint norm is at most ``max_norm`` (keeps the direction). The norm before clipping is
returned because it is the number worth logging.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from nlp182.errors import InvalidInputError, NonFiniteError
from nlp182.optim.tensor_lists import group_by_device_dtype


def _grads(parameters: Iterable[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_value_(
    parameters: Iterable[torch.Tensor] | torch.Tensor, clip_value: float, foreach: bool | None = None
) -> None:
    """Clamp every gradient coordinate into ``[-clip_value, clip_value]`` in place.

    Gradients may have any shape ``(...)``. ``foreach`` is taken for torch's signature: the
    gradients are always clamped a device-and-dtype group at a time. A sparse gradient (an
    ``Embedding`` with ``sparse=True``; torch's own raises) is coalesced first, so a row that
    several lookups added to is clamped as the sum the step will apply.
    """
    del foreach  # always the grouped (foreach) kernels
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise InvalidInputError(f"clip_value must be >= 0, got {clip_value}")
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    for param in params:
        if param.grad is not None and param.grad.is_sparse:
            param.grad = param.grad.coalesce()
            param.grad.values().clamp_(-clip_value, clip_value)
    for grads in group_by_device_dtype([grad for grad in _grads(params) if not grad.is_sparse]):
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)


def grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, norm_type: float = 2.0) -> torch.Tensor:
    """The ``norm_type`` norm ``()`` of the concatenation of every gradient of ``parameters`` (each of
    any shape ``(...)``), in float32 at least: float16 gradients whose joint norm passes 65504 are
    finite, and so is their norm (taken in float16 it was inf, and clipping refused the step). 0
    when no parameter has a gradient."""
    return _norm(_grads(parameters), norm_type)


def _norm(grads: list[torch.Tensor], norm_type: float) -> torch.Tensor:
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    # a sparse gradient (an Embedding with sparse=True) counts by its coalesced values: the
    # multi-tensor norm takes dense tensors only
    dense = [grad.coalesce().values() if grad.is_sparse else grad for grad in grads]
    norms: list[torch.Tensor] = []
    for same in group_by_device_dtype(dense):
        wide = torch.promote_types(same[0].dtype, torch.float32)
        norms.extend(n.to(device) for n in torch._foreach_norm(same, norm_type, dtype=wide))
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> torch.Tensor:
    """Scale all gradients by ``min(1, max_norm / (‖g‖ + 1e-6))``; return the pre-clip global norm ``‖g‖``.

    ``‖g‖`` is the ``norm_type`` norm of the concatenation of every gradient, each of any shape
    ``(...)`` (``inf`` or ``"inf"`` allowed); the returned norm is a scalar tensor ``()``. The
    arguments, their defaults and the result are torch's: a non-finite norm is returned and scales
    the gradients as torch does (an infinite norm zeroes the finite coordinates, the recipe
    ``scaler.unscale_``, clip, ``scaler.step`` relies on the step being skipped); with
    ``error_if_nonfinite=True`` it raises ``NonFiniteError`` (a ``RuntimeError``, as torch's) and
    leaves the gradients as they are. ``max_norm`` 0 zeroes every gradient. ``foreach`` is taken
    for torch's signature: the gradients are always handled a device-and-dtype group at a time.
    """
    del foreach  # always the grouped (foreach) kernels
    max_norm, norm_type = float(max_norm), float(norm_type)  # torch takes "inf" and tensors too
    if not max_norm >= 0:  # nan too: it would write nan into every gradient
        raise InvalidInputError(f"max_norm must be >= 0, got {max_norm}")
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    total = _norm(grads, norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise NonFiniteError(f"the gradient norm is {float(total)}; the loss or a layer produced inf/NaN")
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for same in group_by_device_dtype([grad for grad in grads if not grad.is_sparse]):
        torch._foreach_mul_(same, coef.to(same[0].device))
    for grad in grads:
        if grad.is_sparse:
            grad.mul_(coef.to(grad.device))
    return total
