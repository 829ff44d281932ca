"""Soft attention modules against explicit float64 NumPy formulas, torch references and gradcheck."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from nlp182.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    MultiplicativeAttention,
    ScaledDotProductAttention,
    build_attention,
    causal_mask,
    padding_mask,
)
from nlp182.attention.scaled_dot import scaled_dot_product
from nlp182.errors import InvalidInputError, ShapeError


def softmax_rows(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Softmax over the last axis, masked keys excluded; rows with no valid key are all zeros."""
    out = np.zeros_like(scores)
    mask = np.ones(scores.shape, dtype=bool) if mask is None else np.broadcast_to(mask, scores.shape)
    for idx in np.ndindex(*scores.shape[:-1]):
        valid = mask[idx]
        if valid.any():
            row = np.exp(scores[idx][valid] - scores[idx][valid].max())
            out[idx][valid] = row / row.sum()
    return out


def additive_scores(
    q: np.ndarray, k: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, b_k: np.ndarray, v: np.ndarray
):
    """``v . tanh(W_q q_i + W_k k_j + b)`` for every (i, j), by explicit loops."""
    batch, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    scores = np.zeros((batch, tq, tk))
    for b in range(batch):
        for i in range(tq):
            for j in range(tk):
                scores[b, i, j] = v @ np.tanh(w_q @ q[b, i] + w_k @ k[b, j] + b_k)
    return scores


def attend(scores: np.ndarray, values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(weights @ values, weights)`` with masked softmax weights."""
    weights = softmax_rows(scores, mask)
    return weights @ values, weights


SHAPES = [(1, 1, 1, 3), (2, 3, 5, 4), (3, 7, 2, 6)]  # (B, Tq, Tk, D)


def _inputs(b: int, tq: int, tk: int, dq: int, dk: int, dv: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(b * 100 + tq * 10 + tk)
    return tuple(
        torch.randn(b, t, d, dtype=torch.float64, generator=gen) for t, d in ((tq, dq), (tk, dk), (tk, dv))
    )


def _random_mask(b: int, tq: int, tk: int) -> torch.Tensor:
    lengths = torch.randint(1, tk + 1, (b,), generator=torch.Generator().manual_seed(tk))
    return padding_mask(lengths, tk)


@pytest.mark.parametrize(("b", "tq", "tk", "d"), SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_additive_matches_explicit_formula(b: int, tq: int, tk: int, d: int, masked: bool) -> None:
    q, k, v = _inputs(b, tq, tk, d, d + 1, d + 2)
    module = AdditiveAttention(d, d + 1, attn_dim=5).double()
    mask = _random_mask(b, tq, tk) if masked else None
    context, weights = module(q, k, v, mask, need_weights=True)
    scores = additive_scores(
        q.numpy(),
        k.numpy(),
        module.query_proj.weight.detach().numpy(),
        module.key_proj.weight.detach().numpy(),
        module.key_proj.bias.detach().numpy(),
        module.energy.weight.detach().numpy()[0],
    )
    ref_context, ref_weights = attend(scores, v.numpy(), None if mask is None else mask.numpy())
    np.testing.assert_allclose(weights.detach().numpy(), ref_weights, atol=1e-12)
    np.testing.assert_allclose(context.detach().numpy(), ref_context, atol=1e-12)


@pytest.mark.parametrize(("b", "tq", "tk", "d"), SHAPES)
@pytest.mark.parametrize("mode", ["dot", "general"])
def test_multiplicative_matches_explicit_formula(b: int, tq: int, tk: int, d: int, mode: str) -> None:
    dk = d if mode == "dot" else d + 2
    q, k, v = _inputs(b, tq, tk, d, dk, 3)
    module = MultiplicativeAttention(d, dk, mode=mode).double()
    mask = _random_mask(b, tq, tk)
    context, weights = module(q, k, v, mask, need_weights=True)
    assert module(q, k, v, mask)[1] is None
    w = np.eye(d) if mode == "dot" else module.key_proj.weight.detach().numpy()  # (Dq, Dk)
    scores = np.einsum("bid,de,bje->bij", q.numpy(), w, k.numpy())
    ref_context, ref_weights = attend(scores, v.numpy(), mask.numpy())
    np.testing.assert_allclose(weights.detach().numpy(), ref_weights, atol=1e-12)
    np.testing.assert_allclose(context.detach().numpy(), ref_context, atol=1e-12)


@pytest.mark.parametrize(("b", "tq", "tk", "d"), SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal", "both"])
def test_scaled_dot_matches_formula_with_and_without_weights(
    b: int, tq: int, tk: int, d: int, mask_kind: str
) -> None:
    q, k, v = _inputs(b, tq, tk, d, d, 5)
    mask = _random_mask(b, tq, tk) if mask_kind in ("padding", "both") else None
    causal = mask_kind in ("causal", "both")
    module = ScaledDotProductAttention()
    fused, no_weights = module(q, k, v, mask, causal=causal)
    explicit, weights = module(q, k, v, mask, causal=causal, need_weights=True)
    assert no_weights is None
    full = np.ones((b, tq, tk), dtype=bool)
    if mask is not None:
        full &= mask.numpy()
    if causal:
        full &= causal_mask(tq, tk).numpy()
    scores = q.numpy() @ k.numpy().transpose(0, 2, 1) / np.sqrt(d)
    ref_context, ref_weights = attend(scores, v.numpy(), full)
    np.testing.assert_allclose(weights.numpy(), ref_weights, atol=1e-12)
    np.testing.assert_allclose(explicit.numpy(), ref_context, atol=1e-12)
    np.testing.assert_allclose(fused.numpy(), ref_context, atol=1e-12)


def test_fully_masked_rows_give_zeros_not_nan_everywhere() -> None:
    q, k, v = (t.float().requires_grad_() for t in _inputs(2, 3, 4, 8, 8, 8))
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False
    mask[1] = False
    mha = MultiHeadAttention(8, 2)
    modules = [
        AdditiveAttention(8, 8),
        MultiplicativeAttention(8, mode="dot"),
        ScaledDotProductAttention(),
        mha,
    ]
    for module in modules:
        for need in (False, True):
            context, weights = module(q, k, v, mask, need_weights=need)
            blank = mha.out_proj.bias.expand(8) if module is mha else torch.zeros(8)
            torch.testing.assert_close(context[0, 1], blank)
            torch.testing.assert_close(context[1], blank.expand(3, 8))
            if weights is not None:
                assert torch.all(weights[0, 1] == 0) and torch.all(weights[1] == 0)
            context.sum().backward()
            assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
            assert torch.all(q.grad[1] == 0)
            q.grad = k.grad = v.grad = None


@pytest.mark.parametrize(("b", "tq", "tk"), [(2, 3, 5), (1, 6, 6), (3, 1, 4)])
@pytest.mark.parametrize("inputs", ["three", "self", "memory"])
def test_multihead_matches_torch_multihead_attention(b: int, tq: int, tk: int, inputs: str) -> None:
    """Three tensors, self-attention (q is k is v) and a decoder's cross-attention over one memory
    (k is v, q another): each call takes its own path through the packed projection."""
    embed, heads = 12, 3
    reference = torch.nn.MultiheadAttention(embed, heads, batch_first=True)
    ours = MultiHeadAttention(embed, heads)
    ours.load_state_dict(reference.state_dict())
    q, k, v = (t.float().requires_grad_() for t in _inputs(b, tq, tk, embed, embed, embed))
    if inputs == "self":
        tk = tq
        k = v = q
    elif inputs == "memory":
        v = k
    lengths = torch.randint(1, tk + 1, (b,), generator=torch.Generator().manual_seed(3))
    lengths[0] = tk
    key_valid = padding_mask(lengths, tk)  # (B, 1, Tk)
    causal = tq == tk
    ref_out, ref_w = reference(
        q,
        k,
        v,
        key_padding_mask=~key_valid[:, 0],
        attn_mask=~causal_mask(tq) if causal else None,
        need_weights=True,
    )
    out, weights = ours(q, k, v, key_valid, causal=causal, need_weights=True)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, ref_w, atol=1e-5, rtol=1e-5)
    fused, none = ours(q, k, v, key_valid, causal=causal)
    assert none is None
    torch.testing.assert_close(fused, ref_out, atol=1e-5, rtol=1e-5)
    _, per_head = ours(q, k, v, key_valid, causal=causal, need_weights=True, average_weights=False)
    ref_heads = reference(q, k, v, key_padding_mask=~key_valid[:, 0], average_attn_weights=False)[1]
    if not causal:
        torch.testing.assert_close(per_head, ref_heads, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(fused.square().sum(), [*ours.parameters()])
    ref_grads = torch.autograd.grad(ref_out.square().sum(), [*reference.parameters()])
    for mine, theirs in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_gradcheck_every_soft_module() -> None:
    q, k, v = (t.requires_grad_() for t in _inputs(2, 3, 4, 4, 4, 4))
    mask = padding_mask(torch.tensor([4, 2]), 4)
    modules = [
        AdditiveAttention(4, 4, attn_dim=3).double(),
        MultiplicativeAttention(4, mode="general").double(),
        MultiplicativeAttention(4, mode="dot").double(),
        MultiHeadAttention(4, 2).double(),
    ]
    for module in modules:
        assert gradcheck(lambda q, k, v, m=module: m(q, k, v, mask)[0], (q, k, v))
        params = [p for p in module.parameters()]
        if params:
            assert gradcheck(
                lambda *ps, m=module: torch.func.functional_call(
                    m,
                    dict(zip([n for n, _ in m.named_parameters()], ps, strict=True)),
                    (q.detach(), k.detach(), v.detach(), mask),
                )[0],
                tuple(p.detach().clone().requires_grad_() for p in params),
            )
    sdpa = ScaledDotProductAttention()
    for need in (False, True):
        assert gradcheck(
            lambda q, k, v, need=need: sdpa(q, k, v, mask, causal=True, need_weights=need)[0], (q, k, v)
        )


def test_bad_inputs_raise_package_errors() -> None:
    q, k, v = _inputs(2, 3, 4, 4, 4, 4)
    with pytest.raises(ShapeError):
        MultiplicativeAttention(4, mode="dot")(q[0], k, v)
    with pytest.raises(ShapeError):
        AdditiveAttention(4, 4)(q, k, v[:, :2])
    with pytest.raises(ShapeError):
        ScaledDotProductAttention()(q, k, v, torch.ones(3, 3, 4, dtype=torch.bool))
    with pytest.raises(InvalidInputError, match="must be bool"):  # a float one is added to the scores
        ScaledDotProductAttention()(q, k, v, torch.ones(2, 1, 4, dtype=torch.int64))
    with pytest.raises(InvalidInputError):
        MultiHeadAttention(10, 3)
    with pytest.raises(ShapeError):
        MultiHeadAttention(8, 2)(q, k, v)
    with pytest.raises(InvalidInputError):
        MultiplicativeAttention(4, 5, mode="dot")
    with pytest.raises(InvalidInputError):
        build_attention("bahdanau", 4, 4)


@pytest.mark.parametrize("kind", ["additive", "dot", "general", "scaled_dot", "multihead"])
def test_build_attention_gives_working_modules(kind: str) -> None:
    q, k, _ = (t.float() for t in _inputs(2, 1, 5, 8, 8, 8))
    context, _ = build_attention(kind, 8, 8, num_heads=2)(q, k, k, padding_mask(torch.tensor([5, 3]), 5))
    assert context.shape == (2, 1, 8) and torch.isfinite(context).all()


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_takes_torch_masks_and_layout(batch_first: bool) -> None:
    """``key_padding_mask`` / ``attn_mask`` in PyTorch's convention (True or -inf = ignore), both layouts."""
    embed, heads, b, tq, tk = 8, 2, 3, 4, 5
    reference = torch.nn.MultiheadAttention(embed, heads, batch_first=batch_first).double().eval()
    ours = MultiHeadAttention(embed, heads, batch_first=batch_first).double().eval()
    ours.load_state_dict(reference.state_dict())
    q, k, v = _inputs(b, tq, tk, embed, embed, embed)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    generator = torch.Generator().manual_seed(5)
    padding = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    shared = torch.rand(tq, tk, generator=generator) < 0.3
    per_head = torch.rand(b * heads, tq, tk, generator=generator) < 0.3
    shared[:, 0] = per_head[..., 0] = False  # every query keeps a key: torch gives NaN otherwise
    float_padding = torch.zeros(b, tk, dtype=torch.float64).masked_fill(padding, float("-inf"))
    for masks in (
        {"key_padding_mask": padding},
        {"key_padding_mask": float_padding},
        {"attn_mask": shared},
        {"attn_mask": per_head, "key_padding_mask": padding},
    ):
        out, weights = ours(q, k, v, need_weights=True, **masks)
        ref_out, ref_weights = reference(q, k, v, **masks)
        torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(ours(q, k, v, **masks)[0], ref_out, atol=1e-12, rtol=1e-12)
    with pytest.raises(ShapeError, match="key_padding_mask"):
        ours(q, k, v, key_padding_mask=padding[:, :3])


def test_multihead_adds_float_masks_to_the_scores_as_torch_does() -> None:
    """Any float ``attn_mask`` / ``key_padding_mask`` is added to the scores: a positional bias, a
    ``-1e9`` "mask" or ``finfo.min`` give torch's outputs and weights (they were refused)."""
    embed, heads, b, tq, tk = 8, 2, 3, 4, 5
    reference = torch.nn.MultiheadAttention(embed, heads, batch_first=True).double().eval()
    ours = MultiHeadAttention(embed, heads).double().eval()
    ours.load_state_dict(reference.state_dict())
    q, k, v = _inputs(b, tq, tk, embed, embed, embed)
    generator = torch.Generator().manual_seed(3)
    padding = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    bias = torch.randn(tq, tk, generator=generator, dtype=torch.float64)
    per_head = torch.randn(b * heads, tq, tk, generator=generator, dtype=torch.float64)
    for masks in (
        {"attn_mask": bias},
        {"attn_mask": per_head, "key_padding_mask": padding},
        {"attn_mask": bias.masked_fill(torch.eye(tq, tk, dtype=torch.bool), float("-inf"))},
        {"key_padding_mask": torch.zeros(b, tk, dtype=torch.float64).masked_fill(padding, -1e9)},
        {"key_padding_mask": torch.zeros(b, tk, dtype=torch.float64).masked_fill(
            padding, torch.finfo(torch.float64).min), "attn_mask": bias},
    ):
        out, weights = ours(q, k, v, need_weights=True, **masks)
        ref_out, ref_weights = reference(q, k, v, **masks)
        torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(ours(q, k, v, **masks)[0], ref_out, atol=1e-12, rtol=1e-12)  # fused
    with pytest.raises(InvalidInputError, match=r"must be bool .* or float"):
        ours(q, k, v, attn_mask=torch.zeros(tq, tk, dtype=torch.int64))


def test_scaled_dot_product_adds_a_float_mask_as_torch_does() -> None:
    """A float mask is ``F.scaled_dot_product_attention``'s additive ``attn_mask``; a row at -inf
    everywhere gives a zero context and weights where torch gives NaN."""
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 4, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    bias[0, 0, 1, 2] = float("-inf")
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    for need_weights in (False, True):
        context, weights = scaled_dot_product(q, k, v, bias, need_weights=need_weights)
        torch.testing.assert_close(context, expected, atol=1e-12, rtol=1e-12)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(8) + bias
    torch.testing.assert_close(weights, torch.softmax(scores, -1).expand_as(weights), atol=1e-12, rtol=1e-12)
    causal = scaled_dot_product(q, k, v, bias, causal=True)[0]
    torch.testing.assert_close(causal, F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias + torch.full((4, 4), float("-inf"), dtype=torch.float64).triu(1)))
    bias[1, 0, 3] = float("-inf")
    for need_weights in (False, True):
        context, weights = scaled_dot_product(q, k, v, bias, need_weights=need_weights)
        assert not context[1, :, 3].any() and torch.isfinite(context).all()
    assert not weights[1, :, 3].any()


def test_multihead_takes_torch_keyword_names_and_unbatched_inputs() -> None:
    """``mha(query=q, key=k, value=v)`` and one sequence ``(T, E)`` run as in PyTorch."""
    for batch_first in (True, False):
        reference = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=6, vdim=5).double().eval()
        ours = MultiHeadAttention(8, 2, batch_first=batch_first, kdim=6, vdim=5).double().eval()
        ours.load_state_dict(reference.state_dict())
        q, k, v = _inputs(1, 3, 4, 8, 6, 5)
        q, k, v = q[0], k[0], v[0]  # (3, 8), (4, 6), (4, 5)
        padding = torch.tensor([False, False, True, False])
        bias = torch.randn(3, 4, dtype=torch.float64)
        for options in ({}, {"key_padding_mask": padding}, {"attn_mask": bias},
                        {"attn_mask": torch.rand(2, 3, 4) < 0.2, "average_attn_weights": False}):
            out, weights = ours(query=q, key=k, value=v, need_weights=True, **options)
            ref_out, ref_weights = reference(query=q, key=k, value=v, **options)
            assert out.shape == (3, 8)
            torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=1e-12)
            torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-12)
    with pytest.raises(ShapeError, match=r"query is unbatched \(Tq, E\), so keys must be"):
        ours(q, k[None], v)


def test_empty_batches_and_sequences_give_empty_or_zero_context() -> None:
    mha = MultiHeadAttention(8, 2)
    assert mha(torch.randn(0, 3, 8), torch.randn(0, 4, 8))[0].shape == (0, 3, 8)
    assert mha(torch.randn(2, 0, 8), torch.randn(2, 4, 8))[0].shape == (2, 0, 8)
    for module in (mha, AdditiveAttention(8, 8), MultiplicativeAttention(8), ScaledDotProductAttention()):
        context, weights = module(torch.randn(2, 3, 8), torch.randn(2, 0, 8), need_weights=True)
        blank = mha.out_proj.bias if module is mha else torch.zeros(8)
        torch.testing.assert_close(context, blank.expand(2, 3, 8))
        assert weights.shape[-2:] == (3, 0)


def test_scaled_dot_product_options_are_keyword_only_and_scale_matches_torch() -> None:
    q, k, v = _inputs(2, 3, 4, 4, 4, 4)
    mask = torch.ones(3, 4, dtype=torch.bool)
    with pytest.raises(TypeError):
        scaled_dot_product(q, k, v, mask, 0.1)  # torch's fifth argument is dropout_p, not causal
    for need in (False, True):
        context, _ = scaled_dot_product(q, k, v, None if not need else mask, scale=0.3, need_weights=need)
        torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_wrong_feature_sizes_raise_shape_errors_naming_the_size() -> None:
    with pytest.raises(ShapeError, match="query has size 3 but this attention expects 5"):
        AdditiveAttention(5, 6)(torch.randn(2, 3, 3), torch.randn(2, 4, 6))
    with pytest.raises(ShapeError, match="keys have size 5 but this attention expects 6"):
        AdditiveAttention(5, 6)(torch.randn(2, 3, 5), torch.randn(2, 4, 5))
    with pytest.raises(ShapeError, match="keys have size 5 but this attention expects 6"):
        MultiplicativeAttention(5, 6, mode="general")(torch.randn(2, 3, 5), torch.randn(2, 4, 5))
    with pytest.raises(ShapeError, match=r"mask of shape \(4, 3, 5\)"):
        wrong_batch = torch.ones(4, 3, 5, dtype=torch.bool)
        MultiHeadAttention(8, 2)(torch.randn(3, 4, 8), torch.randn(3, 5, 8), mask=wrong_batch)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_with_own_key_and_value_sizes_matches_torch(batch_first: bool) -> None:
    """``kdim``/``vdim`` give torch's separate ``q/k/v_proj_weight``; state dicts move both ways."""
    embed, heads, kdim, vdim, b, tq, tk = 8, 2, 5, 3, 3, 4, 6
    reference = torch.nn.MultiheadAttention(
        embed, heads, kdim=kdim, vdim=vdim, batch_first=batch_first, dtype=torch.float64
    ).eval()
    ours = MultiHeadAttention(
        embed, heads, batch_first=batch_first, kdim=kdim, vdim=vdim, dtype=torch.float64
    )
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    q, k, v = _inputs(b, tq, tk, embed, kdim, vdim)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    padding = torch.zeros(b, tk, dtype=torch.bool)
    padding[0, 4:] = True
    ref_out, ref_weights = reference(q, k, v, key_padding_mask=padding, average_attn_weights=False)
    out, weights = ours(q, k, v, key_padding_mask=padding, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-12)
    reference.load_state_dict(MultiHeadAttention(embed, heads, kdim=kdim, vdim=vdim).double().state_dict())
    with pytest.raises(ShapeError, match="kdim=5"):
        ours(q, v, v)


def test_multihead_is_causal_is_the_causal_flag() -> None:
    """PyTorch's ``is_causal`` (given with its causal ``attn_mask``) gives torch's answer here too."""
    embed, heads, t = 8, 2, 5
    reference = torch.nn.MultiheadAttention(embed, heads, batch_first=True).double().eval()
    ours = MultiHeadAttention(embed, heads).double().eval()
    ours.load_state_dict(reference.state_dict())
    x = _inputs(2, t, t, embed, embed, embed)[0]
    upper = torch.ones(t, t, dtype=torch.bool).triu(1)
    ref_out, _ = reference(x, x, x, attn_mask=upper, is_causal=True, need_weights=False)
    torch.testing.assert_close(ours(x, x, x, is_causal=True)[0], ref_out, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ours(x, x, x, causal=True)[0], ref_out, atol=1e-12, rtol=1e-12)


def test_a_torch_padding_mask_given_positionally_is_refused_not_read_inverted() -> None:
    """PyTorch's fourth positional argument is key_padding_mask (True = ignore); here it is the
    package's mask (True = attend). A (B, Tk) mask in that place read inverted when B == 1."""
    attention = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 5, 8)
    padding = torch.tensor([[False, False, False, True, True]])
    with pytest.raises(ShapeError, match=r"key_padding_mask=\.\.\."):
        attention(x, x, x, padding)
    reference = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    reference.load_state_dict(attention.state_dict())
    expected = reference(x, x, x, padding)[0]
    torch.testing.assert_close(attention(x, x, x, key_padding_mask=padding)[0], expected)
    square = torch.rand(5, 5) > 0.3
    square[:, 0] = True
    torch.testing.assert_close(attention(x, x, x, square)[0], reference(x, x, x, attn_mask=~square)[0])


def test_it_stands_in_for_self_attn_of_a_torch_transformer_layer_in_eval_too() -> None:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    reference = copy.deepcopy(layer)
    ours = MultiHeadAttention(8, 2)
    ours.load_state_dict(layer.self_attn.state_dict())
    layer.self_attn = ours
    calls = []
    ours.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 5, 8)
    for training in (True, False):
        layer.train(training)
        reference.train(training)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), reference(x), atol=1e-5, rtol=1e-5)
    assert len(calls) == 2  # the module ran in evaluation too, not PyTorch's fused path around it


def test_multihead_drops_attention_weights_in_training_only() -> None:
    """``dropout`` acts on the attention weights in training; in eval the output is torch's."""
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    ours = MultiHeadAttention(8, 2, dropout=0.5)
    ours.load_state_dict(reference.state_dict())
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    reference.eval()
    ours.eval()
    torch.testing.assert_close(ours(q, k, v)[0], reference(q, k, v, need_weights=False)[0])
    ours.train()
    assert not torch.allclose(ours(q, k, v)[0], reference(q, k, v, need_weights=False)[0])


def test_nested_cross_attention_masks_each_row_by_its_own_key_length() -> None:
    """Nested queries and keys of different lengths: row ``i`` attends over its ``Tk_i`` keys, as
    the same row alone does."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2).eval()
    queries = [torch.randn(3, 8), torch.randn(1, 8)]
    keys = [torch.randn(1, 8), torch.randn(4, 8)]
    nested_keys = torch.nested.nested_tensor(keys)
    context, _ = attention(torch.nested.nested_tensor(queries), nested_keys, nested_keys)
    for query, key, row in zip(queries, keys, context.unbind(), strict=True):
        alone, _ = attention(query[None], key[None], key[None])
        torch.testing.assert_close(row, alone[0], atol=1e-5, rtol=1e-5)


def test_it_stands_in_for_self_attn_in_a_built_encoder_fed_nested_tensors_in_eval() -> None:
    """``nn.TransformerEncoder`` built with torch's attention turns its input into a nested tensor in
    eval when given a padding mask; swapped in after the build, this module raised at the first
    validation pass. It now pads, masks and re-nests: the encoder's output is torch's."""
    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True), 2,
    )
    encoder = copy.deepcopy(reference)
    for layer in encoder.layers:
        ours = MultiHeadAttention(8, 2)
        ours.load_state_dict(layer.self_attn.state_dict())
        layer.self_attn = ours
    x = torch.randn(3, 5, 8)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] + [True] * 4])
    encoder.eval()
    reference.eval()
    with torch.no_grad():
        got, want = encoder(x, src_key_padding_mask=pad), reference(x, src_key_padding_mask=pad)
    assert encoder.use_nested_tensor
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    nested = torch.nested.nested_tensor([x[0], x[1, :3], x[2, :1]])
    context, _ = encoder.layers[0].self_attn(nested, nested, nested, need_weights=False)
    for row, length in enumerate((5, 3, 1)):
        alone, _ = encoder.layers[0].self_attn(x[row : row + 1, :length], x[row : row + 1, :length],
                                               x[row : row + 1, :length])
        torch.testing.assert_close(context.unbind()[row], alone[0], atol=1e-6, rtol=1e-6)


def test_weights_in_float16_stay_finite_where_q_dot_k_passes_its_range() -> None:
    """The weights path multiplied q by k before scaling, so a q.k over float16's 65504 became inf
    and the context nan, where the fused path and torch stayed finite."""
    q = torch.full((1, 1, 64), 40.0)
    k = torch.full((1, 2, 64), 40.0)
    k[0, 1] = 20.0
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    want = torch.softmax((q.double() @ k.double().transpose(1, 2)) / 8.0, -1) @ v.double()
    for need_weights in (False, True):
        context, _ = scaled_dot_product(q.half(), k.half(), v.half(), need_weights=need_weights)
        assert torch.isfinite(context).all()
        torch.testing.assert_close(context.double(), want, atol=1e-3, rtol=1e-3)


def test_float_torch_masks_compile_whole_and_vmap() -> None:
    """A float mask (torch's ``generate_square_subsequent_mask``) was checked by reading its values,
    which broke ``torch.compile(fullgraph=True)`` and ``vmap``; the check now runs eagerly only."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2).eval()
    x = torch.randn(2, 5, 8)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    eager, _ = attention(x, x, x, attn_mask=causal)
    compiled = torch.compile(attention, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, x, x, attn_mask=causal)[0], eager)
    pads = torch.zeros(2, 1, 5)
    pads[1, 0, 3:] = float("-inf")
    mapped = torch.func.vmap(lambda xs, pad: attention(xs, xs, xs, key_padding_mask=pad)[0])(x[:, None], pads)
    for row in range(2):
        alone, _ = attention(x[row : row + 1], x[row : row + 1], x[row : row + 1], key_padding_mask=pads[row])
        torch.testing.assert_close(mapped[row], alone)
    biased = causal + torch.linspace(-1.0, 1.0, 5)  # a float mask that is also a bias
    torch.testing.assert_close(compiled(x, x, x, attn_mask=biased)[0],
                               attention(x, x, x, attn_mask=biased)[0])


def test_arrays_and_float_sizes_are_named_not_attribute_errors() -> None:
    """A NumPy input or mask raised AttributeError (or "must be bool ... got dtype bool"), and
    MultiHeadAttention(8, 2.0) built a module that failed at its first forward."""
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    with pytest.raises(InvalidInputError, match=r"query must be a torch\.Tensor, got ndarray"):
        MultiHeadAttention(8, 2)(q.numpy(), k.numpy())
    with pytest.raises(InvalidInputError, match="key_padding_mask must be a torch tensor, got ndarray"):
        MultiHeadAttention(8, 2)(q, k, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(InvalidInputError, match="attention masks must be bool torch tensors, got ndarray"):
        scaled_dot_product(q, k, k, np.ones((2, 1, 4), bool))
    with pytest.raises(InvalidInputError, match=r"must be integers, got 8 and 2\.0"):
        MultiHeadAttention(8, 2.0)
    assert MultiHeadAttention(np.int64(8), np.int64(2)).num_heads == 2


def test_arguments_after_bias_are_keywords_where_torch_places_others() -> None:
    """nn.MultiheadAttention's fifth positional argument is add_bias_kv: the same call here set
    batch_first=True without a word."""
    with pytest.raises(TypeError):
        MultiHeadAttention(8, 2, 0.0, True, True)
    assert not MultiHeadAttention(8, 2, 0.0, True, batch_first=False).batch_first

