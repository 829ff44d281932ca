"""Pre-training the encoder on the captions' bag of words, before caption training.

Any caption set gives it for free: each training pair's target is the multi-hot vector of the
words its caption contains (the specials ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` excluded),
and the encoder's annotation grid ``(B, L, D)``, max pooled over the ``L`` locations, feeds one
linear layer scored by the mean binary cross-entropy over the real words of the vocabulary. The
max pool makes a word's evidence come from some location, so the locations of an object learn
to say what it is before the decoder has to find them; from scratch the decoder learns to
ignore the image first (the captioning benchmark page, ``docs/benchmarks/captioning.md``,
shows both). The head is thrown away after.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nlp182.captioning.data import CaptionBatch
from nlp182.captioning.model import CaptionModel
from nlp182.captioning.vocab import SPECIALS
from nlp182.errors import InvalidInputError
from nlp182.optim import Adam

log = logging.getLogger(__name__)


def bag_of_words(captions: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Multi-hot ``(B, vocab_size - 4)``: column ``j`` is 1 when caption row ``b`` holds word id ``j + 4``.

    ``captions`` ``(B, T)`` are ids as in a :class:`CaptionBatch`; specials never count.
    """
    first = len(SPECIALS)
    targets = torch.zeros(captions.shape[0], vocab_size, device=captions.device)
    targets.scatter_(1, captions, 1.0)
    return targets[:, first:]


def bag_of_words_loss(
    annotations: torch.Tensor, head: nn.Linear, captions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE of ``head(max_L annotations)`` against :func:`bag_of_words`; also the logits.

    ``annotations`` ``(B, L, D)``; ``head`` maps ``D`` to the ``V - 4`` real words.
    """
    logits = head(annotations.amax(dim=1))
    targets = bag_of_words(captions, head.out_features + len(SPECIALS))
    return F.binary_cross_entropy_with_logits(logits, targets), logits


def pretrain_encoder(
    model: CaptionModel,
    batches: Iterable[CaptionBatch],
    vocab_size: int,
    steps: int,
    lr: float,
    device: torch.device | str = "cpu",
    time_limit_s: float | None = None,
) -> list[dict[str, float]]:
    """Train ``model.encoder`` (and a throw-away head) for ``steps`` Adam steps on bag-of-words BCE,
    or fewer when ``time_limit_s`` seconds run out first (its share of a run's time budget).

    ``batches`` is cycled (a training DataLoader). Returns a record every 50 steps and at the last:
    the step, the loss and the share of images whose whole bag is right (logit > 0 exactly on
    the caption's words).
    """
    if steps < 0:
        raise InvalidInputError(f"pre-training steps must be >= 0, got {steps}")
    if steps == 0:
        return []
    if vocab_size <= len(SPECIALS):
        raise InvalidInputError("bag-of-words pre-training needs caption words in the vocabulary")
    encoder = model.encoder.to(device)
    head = nn.Linear(model.config.feature_dim, vocab_size - len(SPECIALS)).to(device)
    params = [p for p in itertools.chain(encoder.parameters(), head.parameters()) if p.requires_grad]
    optimizer = Adam(params, lr=lr)
    encoder.train()
    history: list[dict[str, float]] = []
    step = 0
    deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
    while step < steps:
        for batch in batches:
            images, captions = batch.images.to(device), batch.captions.to(device)
            loss, logits = bag_of_words_loss(encoder(images), head, captions)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if deadline is not None and step < steps and time.perf_counter() >= deadline:
                log.info("encoder pre-training stopped after %d of %d steps: its %g s of the time budget "
                         "ran out", step, steps, time_limit_s)
                steps = step  # the last step: recorded below
            if step % 50 == 0 or step == steps:
                targets = bag_of_words(captions, vocab_size)
                exact = ((logits.detach() > 0) == (targets > 0)).all(dim=1).float().mean()
                record = {"step": step, "loss": float(loss.detach()), "bag_exact": float(exact)}
                history.append(record)
                log.info("encoder pre-training step %d/%d: loss %.4f, bag of words exact %.3f", step, steps,
                         record["loss"], record["bag_exact"])
            if step >= steps:
                break
    return history
