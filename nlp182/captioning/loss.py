"""The captioning objective: cross-entropy, the doubly stochastic regulariser, REINFORCE for hard attention.

Doubly stochastic regularisation (Xu et al., 2015, eq. 14) pushes the model to have looked at
every location about once over the caption:
``lambda * sum_i (1 - sum_t alpha_ti)^2``, the sum running over the ``L`` locations ``i`` and the
caption's real steps ``t`` (its words and ``<eos>``; padding excluded). Normalisation: the
``lambda`` here multiplies that **sum over locations** for one image, and the result is averaged
over the images of the batch (the cross-entropy is the mean per real token). Implementations that
take the mean over locations instead use ``lambda_mean = L * lambda``.

Besides the loss, the parts logged per batch include ``gate`` (the mean gating scalar ``beta``) and
``attention_peak`` (the mean largest attention weight; ``1 / L`` for uniform attention): on
``digits`` both fall within the first few dozen steps when the decoder learns to ignore the image.

Curriculum (``curriculum_steps`` > 0): the first ``curriculum_steps`` training batches score only
the first word, the next ``curriculum_steps`` the first two (and ``<eos>`` of one-word captions),
and so on (:func:`curriculum_mask`; the cross-entropy, the penalty and the logged parts all use
the window). From the start, most of the loss is about what the image hardly decides yet (where
``<eos>`` goes, the later words), and on ``digits`` the decoder learns to ignore the image
before the attention finds the first digit; scored on the first word alone, it keeps its gate
open and learns to look. Evaluation (no gradient, or the model in eval mode) scores every word
and does not advance the window. The loss counts its own training batches, or reads the count
from ``step_count`` (``train_captioner`` passes the Trainer's global step, which a checkpoint
restores, so a resumed run goes on where the curriculum was).

Hard attention (``attention="hard"``) follows the paper's variational objective: the word
cross-entropy trains everything but the location policy, and the policy gets the REINFORCE
gradient with the caption's log-likelihood as reward, a moving-average baseline and an entropy
bonus (:class:`~nlp182.attention.ReinforceLoss`). The regulariser is not applied to it (its
weights are one-hot samples).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.attention import ReinforceLoss
from nlp182.captioning.data import CaptionBatch
from nlp182.captioning.vocab import PAD_ID
from nlp182.errors import InvalidInputError


def curriculum_mask(real: torch.Tensor, words: int | None) -> torch.Tensor:
    """``real`` ``(B, T)`` restricted to the first ``words`` target positions (``None``: unchanged).

    Target position ``t`` is the ``t+1``-th word, or ``<eos>`` when the caption has ``t`` words, so a
    caption's ``<eos>`` counts only once the window has grown past its last word.
    """
    if words is None:
        return real
    return real & (torch.arange(real.shape[1], device=real.device) < words).unsqueeze(0)


def doubly_stochastic_penalty(weights: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``sum_i (1 - sum_t alpha_ti)^2`` per image: weights ``(B, T, L)``, ``real`` ``(B, T)`` -> ``(B,)``."""
    coverage = (weights * real.unsqueeze(-1).to(weights.dtype)).sum(dim=1)
    return ((1.0 - coverage) ** 2).sum(dim=1)


class CaptionLoss(nn.Module):
    """``loss_fn(model, batch)`` for the Trainer: returns the loss and its parts for logging."""

    def __init__(
        self,
        regularizer: float = 0.02,
        momentum: float = 0.9,
        entropy_weight: float = 0.01,
        curriculum_steps: int = 0,
        step_count: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        if regularizer < 0:
            raise InvalidInputError(f"the regulariser weight must be >= 0, got {regularizer}")
        if curriculum_steps < 0:
            raise InvalidInputError(f"curriculum_steps must be >= 0, got {curriculum_steps}")
        self.regularizer = regularizer
        self.reinforce = ReinforceLoss(momentum, entropy_weight)
        self.curriculum_steps = curriculum_steps
        self.training_calls = 0
        self.step_count = step_count

    def window(self) -> int | None:
        """How many target positions the next training batch is scored on (``None``: all)."""
        if not self.curriculum_steps:
            return None
        done = self.step_count() if self.step_count is not None else self.training_calls
        return 1 + done // self.curriculum_steps

    def forward(self, model: nn.Module, batch: CaptionBatch) -> tuple[torch.Tensor, dict[str, float]]:
        captions_in, targets = batch.captions[:, :-1], batch.captions[:, 1:]
        out = model(batch.images, captions_in)
        training = torch.is_grad_enabled() and model.training
        real = curriculum_mask(targets != PAD_ID, self.window() if training else None)
        if training and self.step_count is None:
            self.training_calls += 1
        token_nll = F.cross_entropy(
            out.logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD_ID, reduction="none"
        ).view(targets.shape)
        words = real.sum().clamp_min(1)
        cross_entropy = (token_nll * real).sum() / words
        parts = {"cross_entropy": float(cross_entropy.detach())}
        unwrapped = getattr(model, "module", model)
        if unwrapped.decoder.hard:
            self.reinforce.train(training)  # validation batches leave the moving baseline alone
            log_likelihood = -(token_nll * real).sum(dim=1)
            policy = self.reinforce(
                (out.log_prob * real).sum(dim=1),
                log_likelihood.detach(),
                (out.entropy * real).sum(dim=1) / real.sum(dim=1).clamp_min(1),
            )
            parts["reinforce"] = float(policy.detach())
            loss = cross_entropy + policy
        else:
            penalty = doubly_stochastic_penalty(out.weights.float(), real).mean()
            parts["doubly_stochastic"] = float(penalty.detach())
            loss = cross_entropy + self.regularizer * penalty
        correct = (out.logits.argmax(dim=-1) == targets) & real
        parts["token_accuracy"] = float(correct.sum()) / float(words)
        # Diagnostics of an image-blind decoder: the mean gate and the mean largest attention weight
        # over real steps (1 / L when the attention is uniform).
        parts["gate"] = float((out.beta.detach() * real).sum()) / float(words)
        peak = out.weights.detach().float().amax(dim=-1)
        parts["attention_peak"] = float((peak * real).sum()) / float(words)
        return loss, parts
