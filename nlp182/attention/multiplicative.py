"""Multiplicative attention (Luong et al., 2015): ``dot`` (``q . k``) and ``general`` (``q^T W k``)."""

from __future__ import annotations

import torch
from torch import nn

from nlp182.attention.base import ScoredAttention, check_feature_sizes
from nlp182.attention.registry import register_attention
from nlp182.errors import InvalidInputError

LUONG_MODES = ("dot", "general")


class MultiplicativeAttention(ScoredAttention):
    """Luong attention.

    ``dot`` compares query and key directly (they must have the same size and no parameters are
    learned); ``general`` learns a bilinear form ``W`` of shape ``(Dq, Dk)`` so the sizes may differ.

    Args:
        query_dim: ``Dq``.
        key_dim: ``Dk``; defaults to ``Dq``.
        mode: ``"dot"`` or ``"general"``.
    """

    def __init__(self, query_dim: int, key_dim: int | None = None, mode: str = "general") -> None:
        super().__init__()
        key_dim = query_dim if key_dim is None else key_dim
        if mode not in LUONG_MODES:
            raise InvalidInputError(f"unknown Luong mode {mode!r}; use one of {', '.join(LUONG_MODES)}")
        if mode == "dot" and query_dim != key_dim:
            raise InvalidInputError(
                f"dot attention needs query_dim == key_dim, got {query_dim} and {key_dim}; use mode='general'"
            )
        self.mode = mode
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False) if mode == "general" else None

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, Tq, Tk)`` for query ``(B, Tq, Dq)`` and keys ``(B, Tk, Dk)``."""
        check_feature_sizes(query, keys, self.query_dim, self.key_dim)
        projected = keys if self.key_proj is None else self.key_proj(keys)
        return torch.bmm(query, projected.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, query_dim={self.query_dim}"


@register_attention("dot", same_dims=True)
def _build_dot(query_dim: int, key_dim: int, **_: object) -> MultiplicativeAttention:
    return MultiplicativeAttention(query_dim, key_dim, mode="dot")


@register_attention("general")
def _build_general(query_dim: int, key_dim: int, **_: object) -> MultiplicativeAttention:
    return MultiplicativeAttention(query_dim, key_dim, mode="general")
