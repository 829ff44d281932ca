"""The fused attention paths on CUDA in bf16 against float64 formulas and torch's module."""

from __future__ import annotations

import math

import pytest
import torch

from nlp182.attention import MultiHeadAttention, ScaledDotProductAttention, padding_mask

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("causal", [False, True])
def test_fused_sdpa_in_bf16_matches_float64(causal: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 256, 32, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = padding_mask(torch.tensor([256, 100]), 256)[:, None]  # (B, 1, 1, Tk)
    scores = q @ k.transpose(-2, -1) / math.sqrt(32)
    allowed = mask.expand(2, 4, 256, 256).clone()
    if causal:
        allowed &= torch.ones(256, 256, dtype=torch.bool).tril()
    expected = torch.softmax(scores.masked_fill(~allowed, -math.inf), -1) @ v
    context, weights = ScaledDotProductAttention()(*(t.cuda().bfloat16() for t in (q, k, v)), mask.cuda(),
                                                    causal=causal)
    assert weights is None and context.dtype == torch.bfloat16
    torch.testing.assert_close(context.double().cpu(), expected, atol=3e-2, rtol=3e-2)


def test_multihead_on_cuda_equals_torch_multihead_attention() -> None:
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(64, 4, batch_first=True).cuda()
    ours = MultiHeadAttention(64, 4).cuda()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 50, 64, device="cuda")
    key_valid = padding_mask(torch.tensor([50, 20, 7]), 50).cuda()
    expected, _ = reference(x, x, x, key_padding_mask=~key_valid[:, 0], need_weights=False)
    torch.testing.assert_close(ours(x, x, x, key_valid)[0], expected, atol=1e-4, rtol=1e-4)
