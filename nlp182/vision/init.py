"""Weight initialisation: fan-in, Xavier, He (Kaiming) and the fixed small Gaussian.

For a layer whose outputs are ``a_out = sum_i W_i a_i`` over ``F`` inputs (the fan-in: the input
width of a linear layer, ``F_H x F_W x C`` for a convolution), ``Var(a_out) = F Var(W) Var(a_in)``.
Keeping the variance needs ``Var(W) = 1 / F`` (LeCun; the course calls it Xavier, and
``mode="fan_in"`` gives it); Glorot and Bengio's Xavier averages fan-in and fan-out to keep the
gradients' variance too, ``Var(W) = 2 / (F_in + F_out)``, as torch does. ReLU zeroes half of its
input, so He doubles the fan-in rule to ``Var(W) = 2 / F``. A fixed ``N(0, 1e-4)`` ignores ``F``
and the activations shrink by ``F * 1e-4 / 2`` per ReLU layer until they vanish.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError

SCHEMES = ("xavier", "xavier_uniform", "he", "he_uniform", "fixed")


def fan_in_and_out(weight: torch.Tensor) -> tuple[int, int]:
    """Fan-in and fan-out of a linear ``(out, in)`` or convolution ``(out, in, F_H, F_W)`` weight.

    A convolution's fan-in is ``F_H x F_W x C`` (every input the filter sees); its fan-out is
    ``F_H x F_W x out``.
    """
    if weight.dim() < 2:
        raise ShapeError(
            f"fan-in needs a weight with >= 2 dimensions (out, in, ...); got {tuple(weight.shape)}"
        )
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def xavier_normal_(
    weight: torch.Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mode: str = "fan_avg",
) -> torch.Tensor:
    """Fill ``weight`` from ``N(0, gain^2 / F)``: linear ``(out, in)`` or convolution ``(out, in, F_H, F_W)``.

    ``mode="fan_avg"`` (the default) is Glorot and Bengio's ``F = (fan_in + fan_out) / 2``, a
    compromise between the forward and the backward pass, as ``torch.nn.init.xavier_normal_``;
    ``mode="fan_in"`` uses ``F = fan_in``, the course's derivation (forward variance preserved),
    and ``"fan_out"`` the backward pass's. ``generator`` draws the numbers, as in torch (the same
    generator state gives torch's values). A weight without elements is left as it is.
    """
    if weight.numel() == 0:
        return weight
    return weight.normal_(0.0, gain / math.sqrt(_fan(weight, mode)), generator=generator)


@torch.no_grad()
def xavier_uniform_(
    weight: torch.Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mode: str = "fan_avg",
) -> torch.Tensor:
    """Fill ``weight`` from ``U(-b, b)`` with ``b = gain * sqrt(3 / F)`` (same variance as the normal,
    ``F`` as :func:`xavier_normal_` takes it: torch's ``xavier_uniform_`` by default), drawn from
    ``generator`` when given; a weight without elements is left as it is."""
    if weight.numel() == 0:
        return weight
    bound = gain * math.sqrt(3.0 / _fan(weight, mode))
    return weight.uniform_(-bound, bound, generator=generator)


def he_normal_(
    weight: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He (Kaiming) init for (leaky) ReLU: ``N(0, 2 / ((1 + slope^2) F))``, ``F`` the fan-in (torch's
    ``kaiming_normal_`` with ``a=slope``, ``nonlinearity="leaky_relu"``) or with ``mode="fan_out"``
    the fan-out (torchvision's ResNets)."""
    return xavier_normal_(weight, math.sqrt(2.0 / (1.0 + negative_slope**2)), generator, mode=mode)


def he_uniform_(
    weight: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He (Kaiming) init from a uniform with the same variance as :func:`he_normal_`."""
    return xavier_uniform_(weight, math.sqrt(2.0 / (1.0 + negative_slope**2)), generator, mode=mode)


@torch.no_grad()
def fixed_normal_(
    weight: torch.Tensor, std: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``weight`` from ``N(0, std^2)`` whatever the layer size (AlexNet's ``N(0, 1e-4)``)."""
    return weight.normal_(0.0, std, generator=generator)


def _fan(weight: torch.Tensor, mode: str) -> float:
    fan_in, fan_out = fan_in_and_out(weight)
    fans = {"fan_in": float(fan_in), "fan_out": float(fan_out), "fan_avg": (fan_in + fan_out) / 2.0}
    if mode not in fans:
        raise InvalidInputError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'; got {mode!r}")
    return fans[mode]


def init_weights(module: nn.Module, scheme: str = "he", std: float = 0.01) -> nn.Module:
    """Initialise every linear and convolution weight (transposed ones included, their fans taken
    as ``torch.nn.init`` takes them) in ``module`` with ``scheme``; zero the biases.

    ``scheme`` is one of ``xavier``, ``xavier_uniform``, ``he``, ``he_uniform``, ``fixed``
    (``N(0, std^2)``). Normalisation layers are left alone. Returns ``module`` for chaining.
    """
    fills = {
        "xavier": xavier_normal_,
        "xavier_uniform": xavier_uniform_,
        "he": he_normal_,
        "he_uniform": he_uniform_,
        "fixed": lambda w: fixed_normal_(w, std),
    }
    if scheme not in fills:
        raise InvalidInputError(f"unknown init scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.modules.conv._ConvNd):  # transposed convolutions too
            fills[scheme](layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
