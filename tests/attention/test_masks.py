"""Masks and the masked softmax: values, the fully-masked-row rule, errors."""

from __future__ import annotations

import pytest
import torch

from nlp182.attention import causal_mask, masked_log_softmax, masked_softmax, merge_masks, padding_mask
from nlp182.errors import InvalidInputError, ShapeError


def test_padding_mask_marks_real_tokens() -> None:
    mask = padding_mask(torch.tensor([2, 0, 3]), max_len=4)
    expected = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool).unsqueeze(1)
    assert torch.equal(mask, expected)
    assert padding_mask(torch.tensor([1, 3])).shape == (2, 1, 3)


def test_padding_mask_rejects_bad_lengths() -> None:
    with pytest.raises(ShapeError):
        padding_mask(torch.tensor([[1, 2]]))
    with pytest.raises(InvalidInputError):
        padding_mask(torch.tensor([1, -1]))
    with pytest.raises(InvalidInputError):
        padding_mask(torch.tensor([5]), max_len=3)


def test_causal_mask_matches_torch_convention() -> None:
    expected = ~torch.nn.Transformer.generate_square_subsequent_mask(5).isinf()
    assert torch.equal(causal_mask(5), expected)
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool))


def test_merge_masks_is_logical_and() -> None:
    pad = padding_mask(torch.tensor([2, 3]), 3)
    merged = merge_masks(None, pad, causal_mask(3))
    assert merged.shape == (2, 3, 3)
    assert torch.equal(merged[0], torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.bool))
    assert merge_masks(None, None) is None


def test_masked_softmax_matches_reference_and_zeroes_fully_masked_rows() -> None:
    scores = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool).expand(2, 3, 4)
    weights = masked_softmax(scores, mask)
    expected = torch.exp(scores.detach()) * mask
    expected = torch.nan_to_num(expected / expected.sum(-1, keepdim=True))
    torch.testing.assert_close(weights, expected)
    assert torch.all(weights[:, 1] == 0)
    log_weights = masked_log_softmax(scores, mask)
    torch.testing.assert_close(log_weights.exp(), expected)
    (weights.sum() + (weights * scores).sum()).backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[:, 1] == 0)


def test_a_mask_that_does_not_fit_scores_with_heads_is_told_the_shape_that_does() -> None:
    """For (B, H, Tq, Tk) scores the advice named (B, 1, Tk), the very shape that failed."""
    from nlp182.attention.scaled_dot import scaled_dot_product

    q = torch.randn(3, 2, 4, 8)
    advice = r"use \(B, 1, 1, Tk\) for key padding \(padding_mask\(lengths\)\[:, None\]\)"
    with pytest.raises(ShapeError, match=advice):
        scaled_dot_product(q, q, q, padding_mask(torch.tensor([4, 2, 1])))
    context, _ = scaled_dot_product(q, q, q, padding_mask(torch.tensor([4, 2, 1]))[:, None])
    alone, _ = scaled_dot_product(q[1:2], q[1:2, :, :2], q[1:2, :, :2])
    torch.testing.assert_close(context[1], alone[0])


@pytest.mark.parametrize("heads", [False, True])
def test_a_key_mask_of_one_dimension_is_the_same_mask_as_one_row(heads: bool) -> None:
    """A ``(Tk,)`` mask broadcasts to the scores and passed the check, then failed in torch's fused
    kernel (IndexError) on 4-D inputs and in MultiHeadAttention."""
    from nlp182.attention import MultiHeadAttention
    from nlp182.attention.scaled_dot import scaled_dot_product

    torch.manual_seed(0)
    keys_mask = torch.tensor([True, True, False, True, True])
    if heads:
        query, keys = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 5, 4)
    else:
        query, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    flat, _ = scaled_dot_product(query, keys, keys, mask=keys_mask)
    rows, _ = scaled_dot_product(query, keys, keys, mask=keys_mask[None, :])
    torch.testing.assert_close(flat, rows)
    module = MultiHeadAttention(8, 2).eval()
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    torch.testing.assert_close(module(x, memory, memory, mask=keys_mask)[0],
                               module(x, memory, memory, mask=keys_mask[None, None, :])[0])


def test_a_padding_mask_of_given_width_traces_without_reading_the_lengths() -> None:
    """With max_len given, the value checks read lengths.min()/max(): torch.export, compile with
    fullgraph=True and vmap refused the mask (a data-dependent branch)."""
    from nlp182.attention import MultiHeadAttention

    class Padded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = MultiHeadAttention(8, 2)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.attention(x, x, x, mask=padding_mask(lengths, x.shape[1])[:, None])[0]

    model, x, lengths = Padded().eval(), torch.randn(2, 4, 8), torch.tensor([4, 2])
    exported = torch.export.export(model, (x, lengths)).module()
    torch.testing.assert_close(exported(x, lengths), model(x, lengths))
    rows = torch.vmap(lambda row: padding_mask(row, 4))(torch.tensor([[1, 3], [4, 0]]))
    assert torch.equal(rows, torch.stack([padding_mask(torch.tensor([1, 3]), 4),
                                          padding_mask(torch.tensor([4, 0]), 4)]))
    with pytest.raises(InvalidInputError, match="non-negative"):  # eager calls are still checked
        padding_mask(torch.tensor([-1, 2]), 4)
