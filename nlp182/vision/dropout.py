"""Inverted dropout: zero each unit with probability ``p`` in training and scale the survivors.

Scaling the kept units by ``1 / (1 - p)`` keeps every unit's expectation equal to its input, so
evaluation is the identity and needs no rescaling (the "renormalise by the expectation of the
Bernoulli" step done once, at training time).
"""

from __future__ import annotations

import torch
from torch import nn

from nlp182.errors import InvalidInputError


def dropout(
    x: torch.Tensor, p: float = 0.5, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply inverted dropout to ``x`` (any shape); the identity when ``training`` is False or p is 0,
    zeros when p is 1 (every unit dropped, as in torch).

    ``generator`` (optional) makes the mask reproducible; it may live on another device than ``x``.
    """
    if not 0.0 <= p <= 1.0:
        raise InvalidInputError(f"dropout probability must be in [0, 1]; got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0  # keeps the graph (zero gradients) and propagates NaN as torch does
    # A generator draws on its own device (a CPU generator can seed CUDA dropout reproducibly).
    device = x.device if generator is None else generator.device
    keep = (torch.rand(x.shape, generator=generator, device=device) >= p).to(x.device)
    return x * keep.to(x.dtype) / (1.0 - p)


class Dropout(nn.Module):
    """Module form of :func:`dropout`; follows the module's ``train()`` / ``eval()`` mode.

    x: any shape ``(...)``; returns the same shape.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise InvalidInputError(f"dropout probability must be in [0, 1]; got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
