"""The attention registry and the one call protocol every registered kind follows."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from nlp182.attention import (
    ATTENTION_KINDS,
    Attention,
    HardAttention,
    MultiplicativeAttention,
    attention_kinds,
    build_attention,
    padding_mask,
    register_attention,
    registry,
)
from nlp182.errors import InvalidInputError

BUILT_IN = {"additive", "dot", "general", "scaled_dot", "multihead"}


def test_every_module_registers_its_kinds() -> None:
    assert BUILT_IN <= set(ATTENTION_KINDS) == set(attention_kinds())


@pytest.mark.parametrize("kind", attention_kinds())  # a new kind is checked here without editing this file
def test_each_kind_follows_the_call_protocol(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, t, 8, generator=gen) for t in (3, 5, 5))
    mask = padding_mask(torch.tensor([5, 2]), 5)  # (B, 1, Tk)
    module = build_attention(kind, 8, 8, num_heads=2).eval()
    assert isinstance(module, Attention)
    parameters = inspect.signature(module.forward).parameters
    assert list(parameters)[:5] == ["query", "keys", "values", "mask", "need_weights"]
    assert parameters["need_weights"].default is False and parameters["values"].default is None
    context, none = module(q, k, v, mask)
    assert none is None and context.shape == (2, 3, 8)
    again, weights = module(q, k, v, mask, need_weights=True)
    torch.testing.assert_close(again, context, atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[1, :, 2:] == 0)  # padding gets no weight
    torch.testing.assert_close(module(q, k, None, mask)[0], module(q, k, k, mask)[0])


def test_hard_attention_follows_the_protocol_too() -> None:
    hard = HardAttention(MultiplicativeAttention(4, mode="dot")).eval()
    q, k = torch.randn(2, 1, 4), torch.randn(2, 3, 4)
    assert hard(q, k)[1] is None
    weights = hard(q, k, need_weights=True)[1]
    assert torch.equal(weights.sum(-1), torch.ones(2, 1))


def test_same_dims_kinds_reject_different_sizes_before_building() -> None:
    for kind in ("dot", "scaled_dot", "multihead"):
        with pytest.raises(InvalidInputError, match="query_dim == key_dim"):
            build_attention(kind, 8, 6)
    assert build_attention("general", 8, 6)(torch.randn(1, 2, 8), torch.randn(1, 3, 6))[0].shape == (1, 2, 6)
    with pytest.raises(InvalidInputError, match="unknown attention 'bahdanau'"):
        build_attention("bahdanau", 4, 4)


def test_a_new_kind_is_one_decorated_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.KINDS, "_entries", dict(registry.KINDS._entries))

    class Uniform(nn.Module):
        def forward(self, query, keys, values=None, mask=None, need_weights=False):
            values = keys if values is None else values
            weights = torch.full((len(query), query.shape[1], keys.shape[1]), 1 / keys.shape[1])
            return weights @ values, weights if need_weights else None

    @register_attention("uniform")
    def _build(query_dim: int, key_dim: int, **_: object) -> Uniform:
        return Uniform()

    assert "uniform" in attention_kinds()
    keys = torch.arange(6.0).view(1, 3, 2)
    context, _ = build_attention("uniform", 2, 2)(torch.zeros(1, 1, 2), keys)
    torch.testing.assert_close(context, keys.mean(1, keepdim=True))
    with pytest.raises(InvalidInputError, match="registered twice"):
        register_attention("uniform")(lambda *a, **k: Uniform())
