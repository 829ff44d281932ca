"""Attention modules, batch-first; every module returns ``(context, weights)``.

Masks are bool and ``True`` means "may attend" (the ``scaled_dot_product_attention``
convention); a query with no valid key gets zero weights and a zero context.
"""

from nlp182.attention.additive import AdditiveAttention
from nlp182.attention.base import ScoredAttention
from nlp182.attention.factory import ATTENTION_KINDS, build_attention
from nlp182.attention.hard import HardAttention, HardAttentionSample, ReinforceLoss
from nlp182.attention.masks import causal_mask, masked_log_softmax, masked_softmax, merge_masks, padding_mask
from nlp182.attention.multihead import MultiHeadAttention
from nlp182.attention.multiplicative import MultiplicativeAttention
from nlp182.attention.scaled_dot import ScaledDotProductAttention, scaled_dot_product

__all__ = [
    "ATTENTION_KINDS",
    "AdditiveAttention",
    "HardAttention",
    "HardAttentionSample",
    "MultiHeadAttention",
    "MultiplicativeAttention",
    "ReinforceLoss",
    "ScaledDotProductAttention",
    "ScoredAttention",
    "build_attention",
    "causal_mask",
    "masked_log_softmax",
    "masked_softmax",
    "merge_masks",
    "padding_mask",
    "scaled_dot_product",
]
