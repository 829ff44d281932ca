"""Build an attention module by name, so models and the CLI can choose one with a string."""

from __future__ import annotations

from torch import nn

from nlp182.attention.additive import AdditiveAttention
from nlp182.attention.multihead import MultiHeadAttention
from nlp182.attention.multiplicative import MultiplicativeAttention
from nlp182.attention.scaled_dot import ScaledDotProductAttention
from nlp182.errors import InvalidInputError

ATTENTION_KINDS = ("additive", "dot", "general", "scaled_dot", "multihead")


def build_attention(
    kind: str, query_dim: int, key_dim: int, num_heads: int = 4, dropout: float = 0.0
) -> nn.Module:
    """Return the attention module ``kind`` for queries of size ``query_dim`` and keys of size ``key_dim``.

    ``dot``, ``scaled_dot`` and ``multihead`` compare queries with keys directly and therefore
    need ``query_dim == key_dim``; ``num_heads`` applies to ``multihead`` only and ``dropout``
    to ``scaled_dot`` and ``multihead``.
    """
    if kind not in ATTENTION_KINDS:
        raise InvalidInputError(f"unknown attention {kind!r}; use one of {', '.join(ATTENTION_KINDS)}")
    if kind in ("dot", "scaled_dot", "multihead") and query_dim != key_dim:
        raise InvalidInputError(f"{kind} attention needs query_dim == key_dim, got {query_dim} and {key_dim}")
    if kind == "additive":
        return AdditiveAttention(query_dim, key_dim)
    if kind in ("dot", "general"):
        return MultiplicativeAttention(query_dim, key_dim, mode=kind)
    if kind == "scaled_dot":
        return ScaledDotProductAttention(dropout)
    return MultiHeadAttention(query_dim, num_heads, dropout=dropout)
