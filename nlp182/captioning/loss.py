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

Hard attention (``attention="hard"``) follows the paper's variational objective: the word
cross-entropy trains everything but the location policy, and the policy gets the REINFORCE
gradient with the caption's log-likelihood as reward, a moving-average baseline and an entropy
bonus (:class:`~nlp182.attention.ReinforceLoss`). The regulariser is not applied to it (its
weights are one-hot samples).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.attention import ReinforceLoss
from nlp182.captioning.data import CaptionBatch
from nlp182.captioning.vocab import PAD_ID
from nlp182.errors import InvalidInputError


def doubly_stochastic_penalty(weights: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``sum_i (1 - sum_t alpha_ti)^2`` per image: weights ``(B, T, L)``, ``real`` ``(B, T)`` -> ``(B,)``."""
    coverage = (weights * real.unsqueeze(-1).to(weights.dtype)).sum(dim=1)
    return ((1.0 - coverage) ** 2).sum(dim=1)


class CaptionLoss(nn.Module):
    """``loss_fn(model, batch)`` for the Trainer: returns the loss and its parts for logging."""

    def __init__(
        self, regularizer: float = 0.02, momentum: float = 0.9, entropy_weight: float = 0.01
    ) -> None:
        super().__init__()
        if regularizer < 0:
            raise InvalidInputError(f"the regulariser weight must be >= 0, got {regularizer}")
        self.regularizer = regularizer
        self.reinforce = ReinforceLoss(momentum, entropy_weight)

    def forward(self, model: nn.Module, batch: CaptionBatch) -> tuple[torch.Tensor, dict[str, float]]:
        captions_in, targets = batch.captions[:, :-1], batch.captions[:, 1:]
        out = model(batch.images, captions_in)
        real = targets != PAD_ID
        token_nll = F.cross_entropy(
            out.logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD_ID, reduction="none"
        ).view(targets.shape)
        words = real.sum().clamp_min(1)
        cross_entropy = token_nll.sum() / words
        parts = {"cross_entropy": float(cross_entropy.detach())}
        unwrapped = getattr(model, "module", model)
        if unwrapped.decoder.hard:
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
