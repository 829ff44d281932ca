"""Attention modules, batch-first; every module follows one call protocol (:class:`Attention`):
``module(query, keys, values=None, mask=None, need_weights=False) -> (context, weights or None)``.

Masks are bool and ``True`` means "may attend" (the ``scaled_dot_product_attention``
convention); a query with no valid key gets zero weights and a zero context (which
:class:`MultiHeadAttention` then projects: its output there is ``out_proj``'s bias). The dot-product
kinds also take a float mask, added to the scores as that function's ``attn_mask`` is.
:class:`MultiHeadAttention` also takes PyTorch's own ``key``, ``value``, ``key_padding_mask`` and
``attn_mask`` (bool ``True`` = ignore, or float and added to the scores), its unbatched ``(T, E)``
inputs and its ``(T, B, E)`` layout with ``batch_first=False``, so calls and masks written for
``torch.nn.MultiheadAttention`` carry over (``need_weights`` stays ``False`` by default).
"""

from nlp182.attention.additive import AdditiveAttention
from nlp182.attention.base import Attention, ScoredAttention
from nlp182.attention.hard import HardAttention, HardAttentionSample, ReinforceLoss
from nlp182.attention.masks import causal_mask, masked_log_softmax, masked_softmax, merge_masks, padding_mask
from nlp182.attention.multihead import MultiHeadAttention
from nlp182.attention.multiplicative import MultiplicativeAttention
from nlp182.attention.registry import attention_kinds, build_attention, register_attention
from nlp182.attention.scaled_dot import ScaledDotProductAttention, scaled_dot_product

ATTENTION_KINDS = attention_kinds()  # every kind registered by a module of this package
"""The names of every attention kind registered by this package: ``build_attention``'s choices."""

__all__ = [
    "ATTENTION_KINDS",
    "AdditiveAttention",
    "Attention",
    "HardAttention",
    "HardAttentionSample",
    "MultiHeadAttention",
    "MultiplicativeAttention",
    "ReinforceLoss",
    "ScaledDotProductAttention",
    "ScoredAttention",
    "attention_kinds",
    "build_attention",
    "causal_mask",
    "masked_log_softmax",
    "masked_softmax",
    "merge_masks",
    "padding_mask",
    "register_attention",
    "scaled_dot_product",
]
