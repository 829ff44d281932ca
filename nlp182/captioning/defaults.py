"""The captioning settings left to ``auto``, chosen from the data and the run's length.

The digits recipe (``bench/captioning.py``'s measured runs: 6,000 canvases, batch 32, 188 steps an
epoch, a 600 s budget on 2 CPU cores) is the default, written as rules that give its numbers on
digits and scale elsewhere:

- ``monitor``: ``exact_match`` when the median training caption has at most
  :data:`SHORT_CAPTION_WORDS` words (BLEU-4 needs 4-word matches and stays 0 on short captions
  while many are already right), else ``cider_d`` (consensus over longer, varied references);
- ``epochs``: :data:`DEFAULT_EPOCHS` without a time budget; with one, a ceiling the budget ends first;
- ``early_stopping_patience``: half the epochs rounded up, at least :data:`MIN_PATIENCE` (validation scores of
  small sets climb in steps, with plateaus of a dozen epochs between them); with a time
  budget, half the budget in seconds of training without a better score
  (``TrainerConfig.early_stopping_patience_s``) instead of a count of epochs; either counts only
  once the score has been above 0 (``TrainerConfig.patience_after_nonzero``: stopping a run that
  has not yet got one caption right keeps a model that learned nothing);
- ``ema_decay``: a horizon of :data:`EMA_HORIZON_EPOCHS` passes over the training images, in
  steps (0.998 on digits), at least :data:`MIN_EMA_HORIZON` steps;
- ``pretrain_steps``: :data:`PRETRAIN_EPOCHS` passes over the images (600 steps on digits), at least
  :data:`MIN_PRETRAIN_STEPS`; ``curriculum_steps``: off when one first word starts more than
  :data:`FIRST_WORD_SHARE` of the captions ("a red square", "a dog on ..."): scored on a constant
  first word, the decoder learns to ignore the image, the opposite of what the curriculum is for
  (on generated 300-image sets it held the validation score on one caption for all images for
  a dozen epochs, and with it off the same runs were exact by epoch 2); else
  :data:`CURRICULUM_EPOCHS` of a pass per word
  (150 on digits), at least :data:`MIN_CURRICULUM_STEPS`, and at most
  :data:`CURRICULUM_TOTAL_EPOCHS` passes over the words of a long caption (the 90th percentile of
  the lengths: 5 on digits), so that long captions are not held back for most of the run. These
  horizons count passes over the images, not over the (image, caption) pairs: on a set with
  several references an image (shapes: 3.5) a pair count stretched them past the whole run, and a
  600 s shapes run never scored a full caption. Without a budget the run's step count is known
  and each is capped at a share of it (:data:`PRETRAIN_SHARE`, :data:`CURRICULUM_SHARE`), so a
  short run still spends most of its steps on captions; with one, pre-training stops once it has
  taken :data:`PRETRAIN_BUDGET_SHARE` of the budget (:func:`pretrain_time_limit`).

:func:`choose_defaults` returns the settled config and one reason per choice, which
``train_captioner`` logs on one line and writes to ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter
from collections.abc import Sequence

from nlp182.captioning.config import AUTO, CaptionConfig
from nlp182.captioning.data import CaptionedImage
from nlp182.captioning.vocab import tokenize

SHORT_CAPTION_WORDS = 5
DEFAULT_EPOCHS = 40
#: Epoch ceiling of a run with a time budget: the budget ends it long before.
BUDGET_EPOCHS = 1000
MIN_PATIENCE = 10
PATIENCE_SHARE = 0.5
BUDGET_PATIENCE_SHARE = 0.5
EMA_HORIZON_EPOCHS = 2.7
MIN_EMA_HORIZON = 10
PRETRAIN_EPOCHS = 3.2
MIN_PRETRAIN_STEPS = 50
PRETRAIN_SHARE = 0.15
#: Most of a time budget encoder pre-training may take when its steps are chosen: the committed
#: recipes pre-train for 6-12% of a 600 s CPU budget and about a fifth of a 45 s GPU one, so they
#: keep their steps, while a short budget is left mostly to the captions.
PRETRAIN_BUDGET_SHARE = 0.25
CURRICULUM_EPOCHS = 0.8
MIN_CURRICULUM_STEPS = 5
CURRICULUM_SHARE = 0.03
CURRICULUM_TOTAL_EPOCHS = 4.0
#: The word curriculum is on only when no first word starts more than this share of the captions.
FIRST_WORD_SHARE = 0.5


def median_caption_words(items: Sequence[CaptionedImage]) -> float:
    """Median length in words of every caption of ``items`` (0 for no captions)."""
    lengths = [len(tokenize(caption)) for item in items for caption in item.captions]
    return float(statistics.median(lengths)) if lengths else 0.0


def long_caption_words(items: Sequence[CaptionedImage]) -> int:
    """The 90th percentile of the caption lengths in words (at least 1)."""
    lengths = sorted(len(tokenize(caption)) for item in items for caption in item.captions)
    return max(1, lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]) if lengths else 1


def most_common_first_word(items: Sequence[CaptionedImage]) -> tuple[str, float]:
    """The most common first word of the captions of ``items`` and the share of captions that start
    with it (``("", 1.0)`` for no captions)."""
    firsts = Counter(words[0] for item in items for caption in item.captions if (words := tokenize(caption)))
    if not firsts:
        return "", 1.0
    word, count = firsts.most_common(1)[0]
    return word, count / sum(firsts.values())


def first_word_names_the_image(items: Sequence[CaptionedImage]) -> bool:
    """Whether the captions' first word varies with the image (no first word starts more than
    :data:`FIRST_WORD_SHARE` of them): the word curriculum needs it."""
    return most_common_first_word(items)[1] <= FIRST_WORD_SHARE


def choose_monitor(items: Sequence[CaptionedImage]) -> tuple[str, str]:
    """The validation score for captions like those of ``items``, and why."""
    median = median_caption_words(items)
    if median <= SHORT_CAPTION_WORDS:
        return "exact_match", (
            f"the median caption has {median:g} words (<= {SHORT_CAPTION_WORDS}): BLEU-4 stays 0 on short "
            "captions while many are right"
        )
    return "cider_d", f"the median caption has {median:g} words (> {SHORT_CAPTION_WORDS})"


def choose_defaults(
    config: CaptionConfig,
    items: Sequence[CaptionedImage],
    steps_per_epoch: int,
    image_steps: int | None = None,
) -> tuple[CaptionConfig, dict[str, str]]:
    """``config`` with every ``auto`` setting chosen for the training ``items``, and
    ``{setting: "value, because ..."}`` for each one chosen.

    ``steps_per_epoch`` optimizer steps pass once over every (image, caption) pair; ``image_steps``
    (default: the same, one caption an image) show every training image once. The horizons (EMA,
    pre-training, curriculum) count passes over the images: an image with five references is not
    five times as new, and counting its pairs made them five times longer than the run on sets
    with several captions per image.
    """
    image_steps = steps_per_epoch if image_steps is None else image_steps
    chosen: dict[str, object] = {}
    why: dict[str, str] = {}
    budget = config.time_budget_s
    if config.epochs is None:
        chosen["epochs"] = BUDGET_EPOCHS if budget is not None else DEFAULT_EPOCHS
        why["epochs"] = "a ceiling: the time budget ends the run" if budget is not None else "the default"
    epochs = int(chosen.get("epochs", config.epochs))
    planned = None if budget is not None else epochs * steps_per_epoch
    if config.monitor == AUTO:
        chosen["monitor"], why["monitor"] = choose_monitor(items)
    if config.early_stopping_patience is None:
        if budget is not None:
            chosen["early_stopping_patience"] = 0
            why["early_stopping_patience"] = (
                f"off in epochs; instead {BUDGET_PATIENCE_SHARE * budget:g} s of training without a better "
                f"score (half the {budget:g} s budget)"
            )
        else:
            chosen["early_stopping_patience"] = max(MIN_PATIENCE, math.ceil(PATIENCE_SHARE * epochs))
            why["early_stopping_patience"] = f"half of {epochs} epochs, at least {MIN_PATIENCE}"
    if config.ema_decay is None:
        horizon = max(MIN_EMA_HORIZON, EMA_HORIZON_EPOCHS * image_steps)
        chosen["ema_decay"] = round(1.0 - 1.0 / horizon, 4)
        why["ema_decay"] = f"horizon {horizon:.0f} steps, {EMA_HORIZON_EPOCHS} image passes of {image_steps}"
    if config.pretrain_steps is None:
        steps = max(MIN_PRETRAIN_STEPS, round(PRETRAIN_EPOCHS * image_steps))
        reason = f"{PRETRAIN_EPOCHS} image passes of {image_steps} steps, at least {MIN_PRETRAIN_STEPS}"
        if planned is not None and steps > PRETRAIN_SHARE * planned:
            steps = max(1, round(PRETRAIN_SHARE * planned))
            reason = f"{PRETRAIN_SHARE:.0%} of the run's {planned} steps"
        elif budget is not None:
            reason += f", and at most {PRETRAIN_BUDGET_SHARE:.0%} of the {budget:g} s budget"
        chosen["pretrain_steps"], why["pretrain_steps"] = steps, reason
    if config.curriculum_steps is None and not first_word_names_the_image(items):
        word, share = most_common_first_word(items)
        chosen["curriculum_steps"] = 0
        why["curriculum_steps"] = (
            f"off: {share:.0%} of the captions start with {word!r}, so scoring the first word first would "
            "teach the decoder to ignore the image"
        )
    elif config.curriculum_steps is None:
        words = long_caption_words(items)
        share = min(CURRICULUM_EPOCHS, CURRICULUM_TOTAL_EPOCHS / words)
        steps = max(MIN_CURRICULUM_STEPS, round(share * image_steps))
        reason = f"{CURRICULUM_EPOCHS} of an image pass per word, at least {MIN_CURRICULUM_STEPS}"
        if share < CURRICULUM_EPOCHS:
            reason = f"{CURRICULUM_TOTAL_EPOCHS:g} image passes over the {words} words of a long caption"
        if planned is not None and steps > CURRICULUM_SHARE * planned:
            steps = max(1, round(CURRICULUM_SHARE * planned))
            reason = f"{CURRICULUM_SHARE:.0%} of the run's {planned} steps per word"
        chosen["curriculum_steps"], why["curriculum_steps"] = steps, reason
    settled = dataclasses.replace(config, **chosen)
    return settled, {name: f"{chosen[name]} ({why[name]})" for name in chosen}


def pretrain_time_limit(config: CaptionConfig, chosen: dict[str, str]) -> float | None:
    """Seconds encoder pre-training may take of a time budget: :data:`PRETRAIN_BUDGET_SHARE` of it
    when its steps were chosen from the data, all of it when they were given (``None`` without a
    budget), so that a budget is spent mostly on captions and is never overrun by pre-training."""
    if config.time_budget_s is None:
        return None
    return (PRETRAIN_BUDGET_SHARE if "pretrain_steps" in chosen else 1.0) * config.time_budget_s


def patience_seconds(config: CaptionConfig) -> float | None:
    """Seconds of training without a better score that end a run with a time budget: half the
    budget (``None`` without one). Used when the patience was left to ``auto``."""
    if config.time_budget_s is None:
        return None
    return BUDGET_PATIENCE_SHARE * config.time_budget_s


def summary_line(chosen: dict[str, str]) -> str:
    """The one log line: ``"defaults chosen from the data: monitor exact_match (because ...); ..."``."""
    if not chosen:
        return "every setting was given; nothing chosen from the data"
    return "defaults chosen from the data: " + "; ".join(f"{k} {v}" for k, v in chosen.items())
