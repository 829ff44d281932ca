"""Hard attention: sampling, argmax at evaluation, the REINFORCE loss, and learning a pointer task."""

from __future__ import annotations

import pytest
import torch

from nlp182.attention import HardAttention, MultiplicativeAttention, ReinforceLoss, padding_mask
from nlp182.errors import InvalidInputError


def test_samples_follow_the_attention_distribution_and_respect_masks() -> None:
    hard = HardAttention(MultiplicativeAttention(3, mode="dot"))
    keys = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [5.0, 5.0, 5.0]]]).expand(4000, 4, 3)
    query = torch.tensor([[[0.0, 1.0, 2.0]]]).expand(4000, 1, 3)
    mask = padding_mask(torch.full((4000,), 3), 4)  # the last key, with the top score, is padding
    chosen = hard.sample(query, keys, mask=mask, generator=torch.Generator().manual_seed(0))
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    frequency = torch.bincount(chosen.index.flatten(), minlength=4).float() / 4000
    assert frequency[3] == 0
    torch.testing.assert_close(frequency[:3], expected, atol=0.03, rtol=0)
    torch.testing.assert_close(chosen.log_prob, expected.log()[chosen.index], atol=1e-6, rtol=0)
    torch.testing.assert_close(chosen.entropy, -(expected * expected.log()).sum().expand(4000, 1))
    torch.testing.assert_close(chosen.context, keys.gather(1, chosen.index[..., None].expand(4000, 1, 3)))
    hard.eval()
    context, weights = hard(query, keys, mask=mask, need_weights=True)
    assert hard(query, keys, mask=mask)[1] is None
    assert torch.all(weights.argmax(-1) == 2) and torch.equal(context[:, 0], keys[:, 2])


def test_the_entropy_bonus_reaches_the_scorer_and_a_seeded_generator_repeats_the_samples() -> None:
    """The entropy is differentiable in the scores, so its bonus shapes the policy; samples drawn
    with equally seeded generators are the same."""
    torch.manual_seed(0)
    hard = HardAttention(MultiplicativeAttention(3, mode="general"))
    query, keys = torch.randn(64, 2, 3), torch.randn(64, 5, 3)
    first = hard.sample(query, keys, generator=torch.Generator().manual_seed(1))
    first.entropy.sum().backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in hard.parameters() if p.grad is not None)
    again = hard.sample(query, keys, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first.index, again.index)


def test_fully_masked_rows_choose_nothing() -> None:
    hard = HardAttention(MultiplicativeAttention(2, mode="general"))
    keys = torch.randn(2, 3, 2)
    chosen = hard.sample(torch.randn(2, 1, 2), keys, mask=padding_mask(torch.tensor([0, 3]), 3))
    assert torch.all(chosen.context[0] == 0) and torch.all(chosen.weights[0] == 0)
    assert chosen.log_prob[0].item() == 0 and chosen.entropy[0].item() == 0
    assert torch.isfinite(chosen.log_prob).all()


@pytest.mark.parametrize("training", [True, False])
def test_no_keys_at_all_choose_nothing_and_keep_the_graph(training: bool) -> None:
    hard = HardAttention(MultiplicativeAttention(4)).train(training)
    query = torch.randn(2, 3, 4, requires_grad=True)
    sample = hard.sample(query, torch.randn(2, 0, 4), torch.randn(2, 0, 6))
    assert sample.context.shape == (2, 3, 6) and torch.all(sample.context == 0)
    assert sample.weights.shape == (2, 3, 0)
    assert torch.all(sample.index == 0) and torch.all(sample.log_prob == 0) and torch.all(sample.entropy == 0)
    (sample.log_prob.sum() + sample.entropy.sum()).backward()  # a REINFORCE loss still runs
    assert torch.all(query.grad == 0)


def test_a_non_finite_reward_is_refused_before_it_reaches_the_baseline() -> None:
    """One NaN reward made the moving baseline NaN for good (saved with the model too), so every
    later loss was NaN."""
    loss_fn = ReinforceLoss()
    log_prob, entropy = torch.tensor([-1.0, -2.0]), torch.tensor([0.5, 0.3])
    loss_fn(log_prob, torch.tensor([1.0, 0.0]), entropy)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="NaN or inf"):
            loss_fn(log_prob, torch.tensor([1.0, bad]), entropy)
    assert torch.isfinite(loss_fn.baseline)
    assert torch.isfinite(loss_fn(log_prob, torch.tensor([1.0, 0.0]), entropy))


def test_reinforce_loss_matches_hand_computation() -> None:
    loss_fn = ReinforceLoss(momentum=0.5, entropy_weight=0.1)
    log_prob = torch.tensor([-1.0, -2.0], requires_grad=True)
    entropy = torch.tensor([0.5, 0.3])
    # First batch: each sample against the others' mean (leave one out), so the advantages are
    # 1 - 0 and 0 - 1; the moving baseline then starts at the batch mean (0.5).
    loss = loss_fn(log_prob, torch.tensor([1.0, 0.0]), entropy)
    assert loss.item() == pytest.approx(-(1.0 * -1.0 + -1.0 * -2.0) / 2 - 0.1 * 0.4)
    loss.backward()
    torch.testing.assert_close(log_prob.grad, torch.tensor([-0.5, 0.5]))
    assert loss_fn.baseline.item() == pytest.approx(0.5)
    # Second batch: advantages against b = 0.5, then b <- 0.5 * 0.5 + 0.5 * 1.0.
    loss = loss_fn(log_prob, torch.tensor([1.0, 1.0]), entropy)
    assert loss.item() == pytest.approx(-(0.5 * -1.0 + 0.5 * -2.0) / 2 - 0.04)
    assert loss_fn.baseline.item() == pytest.approx(0.75)
    with pytest.raises(InvalidInputError):
        loss_fn(log_prob, torch.ones(3), entropy)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_the_first_reinforce_batch_is_unbiased(batch: int) -> None:
    """The expected gradient of the first call, over every batch of ``batch`` draws from a
    categorical policy, is the exact gradient of the expected reward (a baseline holding the
    sample's own reward would give ``1 - 1/B`` of it, and nothing at ``B = 1``)."""
    import itertools

    logits = torch.tensor([0.3, -0.5, 1.0, 0.1], dtype=torch.float64, requires_grad=True)
    reward = torch.tensor([11.0, 8.0, 10.5, 13.0], dtype=torch.float64)
    probs = torch.softmax(logits, 0)
    exact = torch.autograd.grad(-(probs * reward).sum(), logits)[0]
    expected = torch.zeros(4, dtype=torch.float64)
    for draws in itertools.product(range(4), repeat=batch):
        chosen = list(draws)
        loss = ReinforceLoss(entropy_weight=0.0)(
            torch.log_softmax(logits, 0)[chosen], reward[chosen], torch.zeros(batch, dtype=torch.float64)
        )
        expected += probs[chosen].prod().detach() * torch.autograd.grad(loss, logits)[0]
    torch.testing.assert_close(expected, exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 2])
def test_the_first_batch_is_unbiased_when_glimpses_share_their_sequence_reward(batch: int) -> None:
    """Two glimpses per sequence, each drawn from its own policy, one reward per sequence copied to
    both (the captioner's case): leaving out only the one element let the other glimpse's reward,
    which depends on this glimpse's choice, into its baseline (2/3 of the gradient at B = 2,
    nothing at B = 1). Exact expectation over every draw against the exact gradient."""
    import itertools

    logits = torch.tensor([[0.3, -0.5, 1.0], [0.2, 0.4, -0.7]], dtype=torch.float64, requires_grad=True)
    table = torch.tensor([[1.0, 4.0, 2.0], [7.0, 3.0, 5.0], [0.5, 6.0, 9.0]], dtype=torch.float64)
    probs = torch.softmax(logits, -1)
    expected_reward = (probs[0][:, None] * probs[1][None, :] * table).sum()
    exact = torch.autograd.grad(-expected_reward, logits)[0] / 2  # the loss averages over 2 glimpses
    expected = torch.zeros_like(logits)
    pairs = list(itertools.product(range(3), repeat=2))
    for draws in itertools.product(pairs, repeat=batch):
        chosen = torch.tensor(draws)  # (B, 2): each sequence's two choices
        log_prob = torch.log_softmax(logits, -1).gather(1, chosen.T).T  # (B, 2)
        reward = table[chosen[:, 0], chosen[:, 1]][:, None].expand(batch, 2)
        loss = ReinforceLoss(entropy_weight=0.0)(log_prob, reward, torch.zeros(batch, 2, dtype=torch.float64))
        weight = probs[0][chosen[:, 0]].prod() * probs[1][chosen[:, 1]].prod()
        expected += weight.detach() * torch.autograd.grad(loss, logits)[0]
    torch.testing.assert_close(expected, exact, rtol=1e-12, atol=1e-12)


def test_a_validation_call_before_training_leaves_the_baseline_to_training() -> None:
    loss_fn = ReinforceLoss(momentum=0.5, entropy_weight=0.0).eval()
    ones = torch.ones(2)
    loss_fn(torch.zeros(2), torch.full((2,), 10.0), ones)
    assert not loss_fn.initialized and loss_fn.baseline.item() == 0.0
    loss_fn.train()(torch.zeros(2), torch.zeros(2), ones)
    assert loss_fn.initialized and loss_fn.baseline.item() == 0.0  # the first training batch's mean


def _pointer_batch(batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eight positions, each with a random class one-hot and noise; one carries a marker and the answer."""
    length, classes = 8, 4
    labels = torch.randint(classes, (batch, length), generator=gen)
    target_pos = torch.randint(length, (batch,), generator=gen)
    features = torch.cat(
        [
            torch.nn.functional.one_hot(labels, classes).float(),
            torch.nn.functional.one_hot(target_pos, length).float().unsqueeze(-1),
            0.3 * torch.randn(batch, length, 3, generator=gen),
        ],
        dim=-1,
    )
    return features, labels.gather(1, target_pos[:, None]).squeeze(1), target_pos


def test_hard_attention_learns_to_point_at_the_informative_position() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    dim = 4 + 1 + 3
    query = torch.nn.Parameter(torch.zeros(1, 1, dim))
    hard = HardAttention(MultiplicativeAttention(dim, mode="general"))
    classifier = torch.nn.Linear(dim, 4)
    reinforce = ReinforceLoss(momentum=0.9, entropy_weight=0.01)
    params = [query, *hard.parameters(), *classifier.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(120):
        features, answer, _ = _pointer_batch(64, gen)
        chosen = hard.sample(query.expand(64, 1, dim), features, generator=gen)
        logits = classifier(chosen.context[:, 0])
        reward = (logits.argmax(-1) == answer).float()
        loss = torch.nn.functional.cross_entropy(logits, answer) + reinforce(
            chosen.log_prob[:, 0], reward, chosen.entropy[:, 0]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hard.eval()
    features, answer, target_pos = _pointer_batch(2000, gen)
    with torch.no_grad():
        context, weights = hard(query.expand(2000, 1, dim), features, need_weights=True)
        accuracy = (classifier(context[:, 0]).argmax(-1) == answer).float().mean().item()
    pointing = (weights[:, 0].argmax(-1) == target_pos).float().mean().item()
    assert pointing > 0.95, pointing
    assert accuracy > 0.95, accuracy


def test_an_empty_batch_leaves_the_baseline_alone() -> None:
    """The mean reward of no samples is NaN; folded into the average it made every later loss NaN."""
    loss_fn = ReinforceLoss(momentum=0.5)
    loss_fn(torch.zeros(4, requires_grad=True), torch.ones(4), torch.zeros(4))
    empty = torch.zeros(0, requires_grad=True)
    loss = loss_fn(empty, torch.zeros(0), torch.zeros(0))
    loss.backward()
    assert loss.item() == 0.0 and float(loss_fn.baseline) == 1.0 and empty.grad.shape == (0,)
    log_prob = torch.zeros(4, requires_grad=True)
    after = loss_fn(log_prob, torch.full((4,), 3.0), torch.zeros(4))
    after.backward()
    assert torch.isfinite(after) and torch.allclose(log_prob.grad, torch.full((4,), -2.0 / 4))


def test_the_reward_baseline_moves_by_one_minus_momentum_toward_each_mean_reward() -> None:
    """``b <- momentum * b + (1 - momentum) * mean(reward)`` at the default momentum 0.9 (a swap of the
    two weights is invisible at 0.5): the first call starts it at the mean, and the second call's
    loss is measured against it."""
    loss_fn = ReinforceLoss(entropy_weight=0.0)
    log_prob = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(4, 1, dtype=torch.float64)
    loss_fn(log_prob, torch.tensor([[1.0], [2.0], [3.0], [6.0]], dtype=torch.float64), zero)
    assert float(loss_fn.baseline) == pytest.approx(3.0)
    second = torch.tensor([[5.0], [5.0], [7.0], [7.0]], dtype=torch.float64)
    loss = loss_fn(log_prob, second, zero)
    (grad,) = torch.autograd.grad(loss, log_prob)
    torch.testing.assert_close(grad, -(second - 3.0) / 4)  # against the baseline before this call
    assert float(loss_fn.baseline) == pytest.approx(0.9 * 3.0 + 0.1 * 6.0)
