"""Hard (stochastic) attention trained with REINFORCE.

Hard attention reads exactly one input location. Choosing it is not differentiable, so the
scorer is trained as a policy: sample a location from the softmax of the scores, receive a
reward (e.g. 1 if the downstream prediction was right), and follow the REINFORCE gradient
``(reward - baseline) * grad log p(location)``. A moving-average baseline lowers the variance of
that estimate and an entropy bonus keeps the policy exploring early on (Xu et al., 2015;
Mnih et al., 2014). At evaluation the most probable location is taken (argmax).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.attention.base import ScoredAttention, check_inputs
from nlp182.attention.masks import check_mask, masked_log_softmax
from nlp182.errors import InvalidInputError


class HardAttentionSample(NamedTuple):
    """What one hard-attention step chose and what REINFORCE needs to learn from it.

    Shapes: context ``(B, Tq, Dv)``, weights ``(B, Tq, Tk)`` (one-hot), index ``(B, Tq)``,
    log_prob ``(B, Tq)`` (log-probability of the chosen location), entropy ``(B, Tq)``.
    Fully masked query rows have zero context, zero weights, index 0, log_prob 0, entropy 0.
    """

    context: torch.Tensor
    weights: torch.Tensor
    index: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor


class HardAttention(nn.Module):
    """Pick one key per query: sampled from ``softmax(score)`` in training, argmax in evaluation.

    Args:
        scorer: any :class:`ScoredAttention` (additive, multiplicative) whose ``score`` defines
            the policy's logits.
    """

    def __init__(self, scorer: ScoredAttention) -> None:
        super().__init__()
        if not isinstance(scorer, ScoredAttention):
            raise InvalidInputError(
                "HardAttention needs a ScoredAttention scorer (additive or multiplicative)"
            )
        self.scorer = scorer

    def sample(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> HardAttentionSample:
        """Choose one location per query ``(B, Tq, Dq)`` among keys ``(B, Tk, Dk)`` and read its value.

        ``values`` is ``(B, Tk, Dv)`` and defaults to ``keys``.

        ``mask`` is bool broadcastable to ``(B, Tq, Tk)`` (``True`` = may be chosen).
        """
        values = keys if values is None else values
        check_inputs(query, keys, values)
        scores = self.scorer.score(query, keys)
        check_mask(mask, scores.shape)
        if scores.shape[-1] == 0:  # no keys at all: every query row is fully masked
            nothing = scores.sum(dim=-1)  # (B, Tq) zeros that keep the graph for REINFORCE losses
            context = values.new_zeros((*nothing.shape, values.shape[-1]))
            return HardAttentionSample(context, scores.to(values.dtype), nothing.long(), nothing, nothing)
        log_probs = masked_log_softmax(scores, mask)
        probs = log_probs.exp()
        has_key = probs.sum(dim=-1) > 0  # (B, Tq)
        if self.training:
            safe = torch.where(has_key.unsqueeze(-1), probs.detach(), torch.ones_like(probs))
            index = torch.multinomial(safe.flatten(0, -2), 1, generator=generator).view(has_key.shape)
        else:
            index = probs.argmax(dim=-1)
        index = index.masked_fill(~has_key, 0)
        weights = F.one_hot(index, scores.shape[-1]).to(values.dtype) * has_key.unsqueeze(-1)
        finite_log_probs = log_probs.masked_fill(probs == 0, 0.0)
        log_prob = finite_log_probs.gather(-1, index.unsqueeze(-1)).squeeze(-1) * has_key
        entropy = -(probs * finite_log_probs).sum(dim=-1)
        return HardAttentionSample(torch.bmm(weights, values), weights, index, log_prob, entropy)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(context (B, Tq, Dv), one-hot weights (B, Tq, Tk) or None)``; REINFORCE uses :meth:`sample`."""
        chosen = self.sample(query, keys, values, mask)
        return chosen.context, chosen.weights if need_weights else None


class ReinforceLoss(nn.Module):
    """REINFORCE surrogate loss with a moving-average reward baseline and an entropy bonus.

    ``loss = -mean((reward - b) * log_prob) - entropy_weight * mean(entropy)``, where ``b`` is an
    exponential moving average of past mean rewards (``b <- momentum * b + (1 - momentum) *
    mean(reward)``, updated after each training call). Until a training call has set it, each
    sample's ``b`` is the mean reward of the other batch rows at its position (leave one out along
    dimension 0, so a sequence's reward shared by its glimpses never enters its own baseline: an
    unbiased baseline); the first training call then starts the average at the batch mean. The
    average is saved with the module's state (a buffer). Minimising the loss follows the
    policy-gradient estimate; the reward carries no gradient.

    Args:
        momentum: weight of the old baseline in the moving average, in ``[0, 1)``.
        entropy_weight: coefficient of the entropy bonus (>= 0).
    """

    def __init__(self, momentum: float = 0.9, entropy_weight: float = 0.01) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0 or entropy_weight < 0:
            raise InvalidInputError("momentum must be in [0, 1) and entropy_weight >= 0")
        self.momentum = momentum
        self.entropy_weight = entropy_weight
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, log_prob: torch.Tensor, reward: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        """Surrogate loss for ``log_prob``, ``reward``, ``entropy`` of one shape, e.g. ``(B, Tq)``
        (a batch of ``B`` independent samples first)."""
        if not log_prob.shape == reward.shape == entropy.shape:
            raise InvalidInputError(
                f"log_prob {tuple(log_prob.shape)}, reward {tuple(reward.shape)} and entropy "
                f"{tuple(entropy.shape)} must have the same shape"
            )
        reward = reward.detach().to(log_prob.dtype)
        if not bool(torch.isfinite(reward).all()):  # the moving baseline would hold it for good
            raise InvalidInputError("reward holds NaN or inf (a NaN log-likelihood gives one); the "
                                    "baseline would keep it and every later loss would be NaN")
        if reward.numel() == 0:  # an empty batch: no loss, and the baseline is left as it is
            return (log_prob.sum() + entropy.sum()) * 0.0
        baseline: torch.Tensor = self.baseline
        if not bool(self.initialized):
            # no average yet: each sample is measured against the mean of the other batch rows
            # (leave one out), since a baseline holding its own reward, or that of another glimpse of
            # its sequence, biases the gradient (by 1 - 1/B, to nothing at B = 1)
            rows = reward.shape[0] if reward.dim() else 1
            baseline = (reward.sum(0) - reward) / (rows - 1) if rows > 1 else torch.zeros_like(reward)
            if self.training:  # a validation pass before training leaves the average to training
                self.baseline.fill_(reward.mean().item())
                self.initialized.fill_(True)
        advantage = reward - baseline
        loss = -(advantage * log_prob).mean() - self.entropy_weight * entropy.mean()
        if self.training:
            self.baseline.mul_(self.momentum).add_((1 - self.momentum) * reward.mean())
        return loss
