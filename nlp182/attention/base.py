"""The call protocol every attention module follows, and the shared shape of score-based attention.

Score-based attention is: score, masked softmax, weighted sum of values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from nlp182.attention.masks import check_mask, masked_softmax
from nlp182.errors import InvalidInputError, ShapeError


def check_inputs(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Raise ShapeError unless query is ``(B, Tq, Dq)``, keys ``(B, Tk, Dk)``, values ``(B, Tk, Dv)``
    (an array or a list that is not a tensor is an ``InvalidInputError`` naming it)."""
    for name, tensor in (("query", query), ("keys", keys), ("values", values)):
        if not isinstance(tensor, torch.Tensor):
            raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__} "
                                    "(torch.as_tensor converts an array)")
        if tensor.dim() != 3:
            raise ShapeError(f"{name} must be 3-D (B, T, D), got shape {tuple(tensor.shape)}")
    if not query.shape[0] == keys.shape[0] == values.shape[0]:
        raise ShapeError(
            f"batch sizes differ: query {query.shape[0]}, keys {keys.shape[0]}, values {values.shape[0]}"
        )
    if keys.shape[1] != values.shape[1]:
        raise ShapeError(f"keys have {keys.shape[1]} positions but values have {values.shape[1]}")


def check_feature_sizes(query: torch.Tensor, keys: torch.Tensor, query_dim: int, key_dim: int) -> None:
    """Raise ShapeError unless query ``(..., Dq)`` and keys ``(..., Dk)`` have the sizes the module takes."""
    for name, tensor, expected in (("query has", query, query_dim), ("keys have", keys, key_dim)):
        if tensor.shape[-1] != expected:
            raise ShapeError(f"{name} size {tensor.shape[-1]} but this attention expects {expected}")


@runtime_checkable
class Attention(Protocol):
    """The one call protocol of every attention module in ``nlp182.attention``.

    ``module(query, keys, values=None, mask=None, need_weights=False) -> (context, weights)``:

    - ``query`` ``(B, Tq, Dq)``, ``keys`` ``(B, Tk, Dk)``, ``values`` ``(B, Tk, Dv)`` (``None``: the keys);
    - ``mask``: bool broadcastable to ``(B, Tq, Tk)``, ``True`` = may attend; a query with no valid
      key gets zero weights and a zero context (a module that projects its context, as
      ``MultiHeadAttention``, returns the projection's bias there);
    - ``need_weights``: ``False`` by default everywhere, so fused kernels can skip the ``(Tq, Tk)``
      matrix; with ``True`` the weights ``(B, Tq, Tk)`` come back, else ``None``;
    - ``context`` is ``(B, Tq, Dv)``.

    Modules may take further keyword arguments after these (``causal=`` for the dot-product kinds).
    """

    def __call__(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class ScoredAttention(nn.Module, ABC):
    """Attention defined by a score function ``score(query, keys) -> (B, Tq, Tk)``.

    Subclasses implement :meth:`score`; this class applies the mask, normalises with a softmax
    over keys and returns the weighted sum of values, so additive, multiplicative and hard
    attention share one masking rule.
    """

    @abstractmethod
    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores ``(B, Tq, Tk)`` for query ``(B, Tq, Dq)`` and keys ``(B, Tk, Dk)``."""

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from each query to the keys (the :class:`Attention` protocol).

        Args:
            query: ``(B, Tq, Dq)``.
            keys: ``(B, Tk, Dk)``.
            values: ``(B, Tk, Dv)``; defaults to ``keys``.
            mask: bool broadcastable to ``(B, Tq, Tk)``, ``True`` = attend (see ``masks``).
            need_weights: return the weights (they are computed either way here; the flag
                and its default keep one calling convention with the fused modules).

        Returns:
            ``(context, weights)``: context ``(B, Tq, Dv)`` and weights ``(B, Tq, Tk)`` or ``None``.
        """
        values = keys if values is None else values
        check_inputs(query, keys, values)
        scores = self.score(query, keys)
        check_mask(mask, scores.shape)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights, values), weights if need_weights else None
