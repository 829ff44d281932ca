"""Multi-head attention with the parameter layout of ``torch.nn.MultiheadAttention``.

The parameters are named and shaped as in PyTorch (``in_proj_weight`` ``(3E, E)``, or
``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` when keys or values have their own sizes;
``in_proj_bias`` ``(3E,)``, ``out_proj``), so ``load_state_dict`` moves weights either way and the
two give the same outputs. ``forward`` takes PyTorch's keywords too (``key``, ``value``,
``key_padding_mask``, ``attn_mask`` with float masks added to the scores, ``average_attn_weights``,
``is_causal``) and its unbatched ``(T, E)`` inputs, but ``need_weights`` defaults to ``False``
as in every module of this package (PyTorch's default is ``True``), and the fourth positional
argument is this package's ``mask`` (``True`` = attend), not PyTorch's ``key_padding_mask``
(``True`` = ignore): pass that one by keyword. A 2-D ``mask`` must be exactly ``(Tq, Tk)``, so a
padding mask ``(B, Tk)`` given in its place is refused rather than read inverted, except when
``B == Tq``, where the two shapes cannot be told apart. Each head runs through
:func:`scaled_dot_product`, i.e. the fused kernel unless weights are asked for.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.attention.base import check_inputs
from nlp182.attention.masks import check_mask, from_torch_mask, merge_masks, padding_mask, split_additive
from nlp182.attention.registry import register_attention
from nlp182.attention.scaled_dot import scaled_dot_product
from nlp182.errors import InvalidInputError, ShapeError


class MultiHeadAttention(nn.Module):
    """``H`` scaled dot-product heads over learned projections, concatenated and projected.

    Args:
        embed_dim: ``E``, size of queries, keys, values and the output.
        num_heads: ``H``; must divide ``E``.
        dropout: dropout on the attention weights while training.
        bias: learn biases in the input and output projections.
        batch_first: inputs and outputs are ``(B, T, E)`` (the default, as everywhere in this
            package); ``False`` takes ``(T, B, E)``, PyTorch's default layout. Keyword-only, as
            every argument after ``bias``: PyTorch's fifth positional argument is ``add_bias_kv``
            (not offered here), which a positional call would have set ``batch_first`` with.
        kdim: size of the keys (default ``E``); with ``vdim``, any size other than ``E`` gives
            separate ``q/k/v_proj_weight`` parameters, as in PyTorch.
        vdim: size of the values (default ``E``).
        device: where the parameters are made, as in PyTorch's modules.
        dtype: the parameters' dtype, as in PyTorch's modules.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        batch_first: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        whole = [isinstance(size, Integral) and not isinstance(size, bool) for size in (embed_dim, num_heads)]
        if not all(whole):
            raise InvalidInputError(f"embed_dim and num_heads must be integers, got {embed_dim!r} and "
                                    f"{num_heads!r}")
        embed_dim, num_heads = int(embed_dim), int(num_heads)
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise InvalidInputError(f"num_heads ({num_heads}) must divide embed_dim ({embed_dim}), both > 0")
        if not 0.0 <= dropout < 1.0:
            raise InvalidInputError(f"dropout must be in [0, 1), got {dropout}")
        kdim = embed_dim if kdim is None else kdim
        vdim = embed_dim if vdim is None else vdim
        if kdim <= 0 or vdim <= 0:
            raise InvalidInputError(f"kdim and vdim must be > 0, got {kdim} and {vdim}")
        self.embed_dim, self.kdim, self.vdim = embed_dim, kdim, vdim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        made = {"device": device, "dtype": dtype}
        self.shared_projection = kdim == embed_dim and vdim == embed_dim
        if self.shared_projection:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **made))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **made))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, kdim, **made))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, vdim, **made))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **made)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **made)
        self.reset_parameters()

    @property
    def _qkv_same_embed_dim(self) -> bool:
        """Read by ``nn.TransformerEncoderLayer`` in evaluation to choose its fused fast path, which
        would call PyTorch's kernels on these weights instead of this module; False keeps the layer
        calling this module's ``forward`` (the same answer, and what a user who swapped it in means)."""
        return False

    def reset_parameters(self) -> None:
        """Initialise as PyTorch does: Xavier-uniform input projections, zero biases."""
        if self.shared_projection:
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                nn.init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def _project(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bias = self.in_proj_bias
        b_q, b_k, b_v = bias.chunk(3) if bias is not None else (None, None, None)
        if not self.shared_projection:
            return (
                F.linear(query, self.q_proj_weight, b_q),
                F.linear(keys, self.k_proj_weight, b_k),
                F.linear(values, self.v_proj_weight, b_v),
            )
        weight = self.in_proj_weight
        if query is keys and keys is values:  # self-attention: one matmul
            return F.linear(query, weight, bias).chunk(3, dim=-1)
        w_q, w_k, w_v = weight.chunk(3)
        if keys is values:
            k, v = F.linear(
                keys, torch.cat([w_k, w_v]), None if bias is None else torch.cat([b_k, b_v])
            ).chunk(2, dim=-1)
            return F.linear(query, w_q, b_q), k, v
        return F.linear(query, w_q, b_q), F.linear(keys, w_k, b_k), F.linear(values, w_v, b_v)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.embed_dim // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
        *,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        causal: bool = False,
        average_weights: bool = True,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool | None = None,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from query ``(B, Tq, E)`` to keys ``(B, Tk, kdim)`` and values ``(B, Tk, vdim)``.

        ``keys`` and ``values`` are named as in every module of this package; PyTorch's names
        ``key=`` and ``value=`` are taken too. With ``batch_first=False`` the three are
        ``(T, B, E)`` and so is the context. Unbatched inputs, query ``(Tq, E)`` with key and value
        ``(Tk, ·)``, give a context ``(Tq, E)`` and weights without the batch axis, as in PyTorch
        (a ``key_padding_mask`` is then ``(Tk,)``).

        Args:
            mask: bool ``(Tq, Tk)`` (2-D: exactly that shape), 3-D broadcastable to ``(B, Tq, Tk)``
                (e.g. ``(B, 1, Tk)`` key padding), or ``(B, H, Tq, Tk)`` per head; ``True`` = attend.
            causal: forbid keys after the query position (``is_causal``, PyTorch's name, too).
            need_weights: compute weights; ``(B, Tq, Tk)`` averaged over heads when
                ``average_weights`` (or PyTorch's ``average_attn_weights``) else ``(B, H, Tq, Tk)``;
                ``None`` otherwise (the fused kernel runs). PyTorch's default is ``True``.
            key_padding_mask: PyTorch's convention, ``(B, Tk)``: bool with ``True`` = a padding key
                to ignore, or float and added to the scores (``-inf`` = ignore).
            attn_mask: PyTorch's convention, ``(Tq, Tk)`` or ``(B * H, Tq, Tk)``: bool with ``True``
                = not allowed, or float and added to the scores (a ``-inf``/``0`` mask, a ``-1e9``
                one or a positional bias). All given masks apply together; a query whose keys are
                all at ``-inf`` or forbidden gets zero weights and a zero context from every head
                (PyTorch gives NaN), so its output is ``out_proj``'s bias alone.

        Returns:
            ``(context, weights)`` with context ``(B, Tq, E)``.

        Nested tensors (``torch.nested``, one sequence each, as ``nn.TransformerEncoder`` passes them
        in eval with a padding mask) are padded, attended with the padding left out and nested again.
        """
        keys, values = _one_of(keys, key, "keys", "key"), _one_of(values, value, "values", "value")
        if keys is None:
            raise InvalidInputError("keys (PyTorch's key=) are required")
        values = keys if values is None else values
        options = {"causal": causal, "average_weights": average_weights, "attn_mask": attn_mask,
                   "average_attn_weights": average_attn_weights, "is_causal": is_causal}
        if any(getattr(tensor, "is_nested", False) for tensor in (query, keys, values)):
            return self._forward_nested(query, keys, values, mask, need_weights,
                                        key_padding_mask=key_padding_mask, **options)
        if isinstance(query, torch.Tensor) and query.dim() == 2:
            return self._forward_unbatched(query, keys, values, mask, need_weights, key_padding_mask,
                                           **options)
        if not self.batch_first:
            query, keys, values = (t.transpose(0, 1) if t.dim() == 3 else t for t in (query, keys, values))
        check_inputs(query, keys, values)
        expected = (("query", query, "embed_dim", self.embed_dim), ("keys", keys, "kdim", self.kdim),
                    ("values", values, "vdim", self.vdim))
        for name, tensor, size_name, size in expected:
            if tensor.shape[-1] != size:
                raise ShapeError(f"{name} has size {tensor.shape[-1]}, expected {size_name}={size}")
        if average_attn_weights is not None:
            average_weights = average_attn_weights
        causal = causal or is_causal
        mask = merge_masks(
            self._head_mask(mask, query, keys),
            self._torch_padding_mask(key_padding_mask, keys),
            self._torch_attn_mask(attn_mask, query, keys),
        )
        q, k, v = (self._split_heads(t) for t in self._project(query, keys, values))
        dropout_p = self.dropout if self.training else 0.0
        context, weights = scaled_dot_product(
            q, k, v, mask, causal=causal, dropout_p=dropout_p, need_weights=need_weights
        )
        batch, _, length, _ = context.shape
        output = self.out_proj(context.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if weights is not None and average_weights:
            weights = weights.mean(dim=1)
        return (output if self.batch_first else output.transpose(0, 1)), weights

    def _forward_unbatched(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
        need_weights: bool, key_padding_mask: torch.Tensor | None, **options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward`` of one sequence: query ``(Tq, E)``, keys ``(Tk, kdim)``, values ``(Tk, vdim)``,
        run as a batch of one in the module's layout; context ``(Tq, E)``, weights without ``B``."""
        for name, tensor in (("keys", keys), ("values", values)):
            if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
                shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise ShapeError(f"query is unbatched (Tq, E), so {name} must be (Tk, D) too; got {shape}")
        if isinstance(key_padding_mask, torch.Tensor) and key_padding_mask.dim() == 1:
            key_padding_mask = key_padding_mask.unsqueeze(0)  # (Tk,) -> (1, Tk)
        batch_axis = 0 if self.batch_first else 1
        query, keys, values = (tensor.unsqueeze(batch_axis) for tensor in (query, keys, values))
        context, weights = self.forward(query, keys, values, mask, need_weights,
                                        key_padding_mask=key_padding_mask, **options)
        return context.squeeze(batch_axis), None if weights is None else weights.squeeze(0)

    def _forward_nested(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
        need_weights: bool, **options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward`` of nested ``(B, T_i, E)`` inputs: padded, the keys past each length masked,
        the context cut back to each query's length and nested in the query's layout."""
        if not (query.is_nested and keys.is_nested and values.is_nested) or not self.batch_first:
            raise ShapeError("nested inputs must be query, keys and values all nested, with batch_first=True")
        query_lengths = [row.shape[0] for row in query.unbind()]
        key_lengths = torch.tensor([row.shape[0] for row in keys.unbind()], device=keys.device)
        padded = [tensor.to_padded_tensor(0.0) for tensor in (query, keys, values)]
        real_keys = padding_mask(key_lengths, padded[1].shape[1])  # (B, 1, Tk)
        if mask is not None and mask.dim() == 4:
            real_keys = real_keys[:, None]
        context, weights = self.forward(*padded, merge_masks(mask, real_keys), need_weights, **options)
        rows = [context[row, :length] for row, length in enumerate(query_lengths)]
        return torch.nested.as_nested_tensor(rows, layout=query.layout), weights

    def _head_mask(
        self, mask: torch.Tensor | None, query: torch.Tensor, keys: torch.Tensor
    ) -> torch.Tensor | None:
        """The package mask, checked against ``(B, Tq, Tk)`` as given, then shaped for the heads."""
        if mask is None or mask.dim() == 4:
            return mask  # (B, H, Tq, Tk): checked against the per-head scores
        query_len, key_len = query.shape[1], keys.shape[1]
        if mask.dim() == 2 and tuple(mask.shape) != (query_len, key_len):
            raise ShapeError(
                f"a 2-D mask is (Tq, Tk) = ({query_len}, {key_len}) with True = attend; got "
                f"{tuple(mask.shape)}. PyTorch's key_padding_mask (B, Tk), True = ignore, goes by keyword "
                "(key_padding_mask=...); this package's key padding mask is (B, 1, Tk), True = attend"
            )
        check_mask(split_additive(mask)[0], torch.Size((query.shape[0], query.shape[1], keys.shape[1])))
        return mask.unsqueeze(-3) if mask.dim() == 3 else mask  # (B, Tq, Tk) -> (B, 1, Tq, Tk)

    def _torch_padding_mask(
        self, key_padding_mask: torch.Tensor | None, keys: torch.Tensor
    ) -> torch.Tensor | None:
        if key_padding_mask is None:
            return None
        batch, key_len = keys.shape[0], keys.shape[1]
        if key_padding_mask.shape != (batch, key_len):
            raise ShapeError(
                f"key_padding_mask must be (B, Tk) = ({batch}, {key_len}); "
                f"got {tuple(key_padding_mask.shape)}"
            )
        return from_torch_mask(key_padding_mask, "key_padding_mask")[:, None, None, :]

    def _torch_attn_mask(
        self, attn_mask: torch.Tensor | None, query: torch.Tensor, keys: torch.Tensor
    ) -> torch.Tensor | None:
        if attn_mask is None:
            return None
        batch, query_len, key_len = query.shape[0], query.shape[1], keys.shape[1]
        if attn_mask.shape == (query_len, key_len):
            return from_torch_mask(attn_mask, "attn_mask")
        if attn_mask.shape == (batch * self.num_heads, query_len, key_len):
            return from_torch_mask(attn_mask, "attn_mask").view(batch, self.num_heads, query_len, key_len)
        raise ShapeError(
            f"attn_mask must be (Tq, Tk) = ({query_len}, {key_len}) or (B * H, Tq, Tk) = "
            f"({batch * self.num_heads}, {query_len}, {key_len}); got {tuple(attn_mask.shape)}"
        )

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}"
            + ("" if self.shared_projection else f", kdim={self.kdim}, vdim={self.vdim}")
        )


def _one_of(ours: torch.Tensor | None, torchs: torch.Tensor | None, name: str, torch_name: str
            ) -> torch.Tensor | None:
    """The tensor given under this package's ``name`` or PyTorch's ``torch_name``, not both."""
    if ours is not None and torchs is not None:
        raise InvalidInputError(f"{name} and {torch_name} name the same input: give one of them")
    return torchs if ours is None else ours


@register_attention("multihead", same_dims=True)
def _build_multihead(
    query_dim: int, key_dim: int, *, num_heads: int = 4, dropout: float = 0.0, **_: object
) -> MultiHeadAttention:
    return MultiHeadAttention(query_dim, num_heads, dropout=dropout)
