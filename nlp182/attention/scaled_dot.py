"""Scaled dot-product attention on top of ``torch.nn.functional.scaled_dot_product_attention``.

The fused function picks flash / memory-efficient kernels where they exist (CUDA) and never
materialises the ``(Tq, Tk)`` weight matrix, so weights are computed (explicitly, with the same
formula) only when the caller asks for them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.attention.masks import causal_mask, check_mask, masked_softmax, merge_masks, split_additive
from nlp182.attention.registry import register_attention
from nlp182.errors import InvalidInputError, ShapeError


def _check(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    q, k, v = query.shape, keys.shape, values.shape
    if len(q) == len(k) == len(v) >= 3 and q[:-2] == k[:-2] and k[:-1] == v[:-1] and q[-1] == k[-1]:
        return  # one test on the hot path; the messages below say what is wrong
    _explain(query, keys, values)


def _explain(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    if not query.dim() == keys.dim() == values.dim() >= 3:
        raise ShapeError(
            "query, keys and values must all be (B, T, D) or (B, H, T, D); got shapes "
            f"{tuple(query.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}"
        )
    if query.shape[:-2] != keys.shape[:-2] or keys.shape[:-1] != values.shape[:-1]:
        raise ShapeError(
            f"leading dimensions differ: query {tuple(query.shape)}, keys {tuple(keys.shape)}, "
            f"values {tuple(values.shape)}"
        )
    if query.shape[-1] != keys.shape[-1]:
        raise ShapeError(f"query size {query.shape[-1]} != key size {keys.shape[-1]}")


def scaled_dot_product(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(q k^T * scale) v`` with masking; fully masked query rows give zeros.

    The options after ``mask`` are keyword-only: ``F.scaled_dot_product_attention`` takes
    ``dropout_p`` fifth, so a positional call written for it must fail here, not run as another option.

    Args:
        query: ``(B, Tq, D)`` or ``(B, H, Tq, D)``.
        keys: ``(B, Tk, D)`` or ``(B, H, Tk, D)``.
        values: ``(B, Tk, Dv)`` or ``(B, H, Tk, Dv)``.
        mask: broadcastable to the scores ``(B, [H,] Tq, Tk)``: bool with ``True`` = attend, or
            float and added to the scores (``-inf`` = not allowed), as the ``attn_mask`` of
            ``F.scaled_dot_product_attention``.
        causal: also forbid keys after the query position (top-left aligned).
        dropout_p: dropout on the attention weights (pass 0 at evaluation).
        need_weights: also compute and return the weights ``(B, [H,] Tq, Tk)``; otherwise ``None``.
        scale: the factor on the scores; ``None`` is ``1 / sqrt(D)``, as in PyTorch.

    Returns:
        ``(context, weights)`` with context ``(B, [H,] Tq, Dv)``.
    """
    _check(query, keys, values)
    if mask is None and not need_weights:  # the fused kernel and nothing else on the hot path
        return F.scaled_dot_product_attention(
            query, keys, values, dropout_p=dropout_p, is_causal=causal, scale=scale
        ), None
    query_len, key_len = query.shape[-2], keys.shape[-2]
    mask, bias = split_additive(mask)
    check_mask(mask, torch.Size((*query.shape[:-2], query_len, key_len)))
    if mask is not None and mask.dim() < 2:  # a (Tk,) key mask: torch's kernel wants (.., Tq, Tk)
        shape = (1, -1) if mask.dim() == 1 else (1, 1)
        mask, bias = mask.view(shape), None if bias is None else bias.view(shape)
    if causal:
        mask = merge_masks(mask, causal_mask(query_len, key_len, device=query.device))
    if need_weights:
        factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
        # scaled before the product, as torch does: q.k itself may pass float16's 65504
        scores = torch.matmul(query * factor, keys.transpose(-2, -1))
        weights = masked_softmax(scores if bias is None else scores + bias, mask)
        if dropout_p > 0:
            weights = F.dropout(weights, p=dropout_p)
        return torch.matmul(weights, values), weights
    # Let fully masked rows attend everywhere (finite in every kernel), then zero their output:
    # no NaN in the forward pass and exactly zero gradient from those rows.
    has_key = mask.any(dim=-1, keepdim=True)
    allowed = mask | ~has_key
    if bias is not None:  # the kernel adds a float mask: the bias where allowed, -inf elsewhere
        allowed = torch.where(allowed, bias.to(query.dtype), float("-inf"))
    context = F.scaled_dot_product_attention(
        query, keys, values, attn_mask=allowed, dropout_p=dropout_p, scale=scale
    )
    return context.masked_fill(~has_key, 0.0), None


class ScaledDotProductAttention(nn.Module):
    """Module form of :func:`scaled_dot_product` (no parameters); returns ``(context, weights)``.

    Args:
        dropout: dropout probability on the attention weights while training.
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise InvalidInputError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
        *,
        causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from query ``(B, Tq, D)`` to keys ``(B, Tk, D)`` / values ``(B, Tk, Dv)``.

        ``mask`` is broadcastable to ``(B, Tq, Tk)``, bool (``True`` = attend) or float (added to
        the scores); weights are ``None`` unless ``need_weights``.
        """
        values = keys if values is None else values
        dropout_p = self.dropout if self.training else 0.0
        return scaled_dot_product(
            query, keys, values, mask, causal=causal, dropout_p=dropout_p, need_weights=need_weights
        )

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


@register_attention("scaled_dot", same_dims=True)
def _build_scaled_dot(
    query_dim: int, key_dim: int, *, dropout: float = 0.0, **_: object
) -> ScaledDotProductAttention:
    return ScaledDotProductAttention(dropout)
