"""Additive attention (Bahdanau et al., 2015): ``score(q, k) = v^T tanh(W_q q + W_k k + b)``."""

from __future__ import annotations

import torch
from torch import nn

from nlp182.attention.base import ScoredAttention, check_feature_sizes
from nlp182.attention.registry import register_attention
from nlp182.errors import InvalidInputError


class AdditiveAttention(ScoredAttention):
    """Bahdanau attention: a one-hidden-layer network scores each (query, key) pair.

    It works for any query and key sizes, at the price of a ``(B, Tq, Tk, attn_dim)`` hidden
    tensor, which is why it costs more than dot-product attention on long sequences.

    Args:
        query_dim: ``Dq``, the size of each query vector.
        key_dim: ``Dk``, the size of each key vector.
        attn_dim: width of the hidden layer; defaults to ``Dq``.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int | None = None) -> None:
        super().__init__()
        attn_dim = query_dim if attn_dim is None else attn_dim
        if min(query_dim, key_dim, attn_dim) <= 0:
            raise InvalidInputError("query_dim, key_dim and attn_dim must be positive")
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, attn_dim, bias=True)
        self.energy = nn.Linear(attn_dim, 1, bias=False)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, Tq, Tk)`` for query ``(B, Tq, Dq)`` and keys ``(B, Tk, Dk)``."""
        check_feature_sizes(query, keys, self.query_dim, self.key_dim)
        hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + self.key_proj(keys).unsqueeze(1))
        return self.energy(hidden).squeeze(-1)


@register_attention("additive")
def _build_additive(query_dim: int, key_dim: int, **_: object) -> AdditiveAttention:
    return AdditiveAttention(query_dim, key_dim)
