"""Activation functions written out: sigmoid, tanh, ReLU, leaky ReLU, ELU and maxout.

Each is a plain function of a tensor (any shape) plus a module wrapper, so a network config can
name its nonlinearity (see :func:`make_activation`). Sigmoid and tanh are evaluated in a form that
does not overflow for large ``|x|``.
"""

from __future__ import annotations

import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``; each branch exponentiates only non-positive numbers, so it never overflows."""
    e_pos = torch.exp(-x.clamp(min=0.0))
    e_neg = torch.exp(x.clamp(max=0.0))
    return torch.where(x >= 0, 1.0 / (1.0 + e_pos), e_neg / (1.0 + e_neg))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``(1 - exp(-2x)) / (1 + exp(-2x))``, mirrored for negative ``x`` so it never overflows, with
    ``exp(u) - 1`` taken by ``expm1``: ``1 - exp(-2x)`` cancels for small ``x`` (``tanh(1e-9)`` was
    0 in float32), ``expm1`` keeps its relative precision."""
    m_pos = torch.expm1(-2.0 * x.clamp(min=0.0))  # in (-1, 0]
    m_neg = torch.expm1(2.0 * x.clamp(max=0.0))
    return torch.where(x >= 0, -m_pos / (2.0 + m_pos), m_neg / (2.0 + m_neg))


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(0, x)``: never saturates for positive inputs (NaN stays NaN, as in torch)."""
    return torch.where((x > 0) | x.isnan(), x, torch.zeros_like(x))


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``x`` for positive inputs, ``negative_slope * x`` otherwise, so no unit is ever fully dead."""
    return torch.where(x > 0, x, negative_slope * x)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``x`` for positive inputs, ``alpha * (exp(x) - 1)`` otherwise (smooth, mean closer to zero)."""
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


class Sigmoid(nn.Module):
    """Module form of :func:`sigmoid`: elementwise, ``x`` of any shape ``(...)`` in, the same shape out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigmoid(x)


class Tanh(nn.Module):
    """Module form of :func:`tanh`: elementwise, ``x`` of any shape ``(...)`` in, the same shape out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


class ReLU(nn.Module):
    """Module form of :func:`relu`: elementwise, ``x`` of any shape ``(...)`` in, the same shape out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu(x)


class LeakyReLU(nn.Module):
    """Module form of :func:`leaky_relu`: elementwise, ``x`` of any shape ``(...)`` in, the same shape out."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return leaky_relu(x, self.negative_slope)


class ELU(nn.Module):
    """Module form of :func:`elu`: elementwise, ``x`` of any shape ``(...)`` in, the same shape out."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return elu(x, self.alpha)


class Maxout(nn.Module):
    """Maxout unit (Goodfellow et al. 2013): the maximum of ``k`` affine pieces per output.

    ``y_j = max_{i < k} (W_i x + b_i)_j``. With two pieces where one is zero it is a ReLU of an affine
    map, so maxout generalises ReLU and leaky ReLU at the price of ``k`` times the weights.

    x: ``(..., in_features)``; returns ``(..., out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2) -> None:
        super().__init__()
        if pieces < 1:
            raise InvalidInputError(f"maxout needs at least one piece; got {pieces}")
        self.out_features = out_features
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.linear.in_features:
            raise ShapeError(f"maxout expects (..., {self.linear.in_features}); got {tuple(x.shape)}")
        z = self.linear(x).unflatten(-1, (self.pieces, self.out_features))
        return z.amax(dim=-2)


ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU}


def make_activation(name: str) -> nn.Module:
    """Build the element-wise activation called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise InvalidInputError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
