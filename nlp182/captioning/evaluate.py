"""Score a captioner on captioned images: exact match, BLEU-1..4 (0-100), CIDEr-D, attention correctness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nlp182.captioning.captioner import Caption, Captioner
from nlp182.captioning.data import CaptionedImage, image_batches
from nlp182.captioning.metrics import attention_correctness, bleu, cider_d, ground_words
from nlp182.captioning.vocab import tokenize


def caption_items(
    captioner: Captioner, items: Sequence[CaptionedImage], beam_width: int, batch_size: int = 128
) -> list[Caption]:
    """Captions of ``items`` in order."""
    captions: list[Caption] = []
    for images, _ in image_batches(items, captioner.config.image_size, batch_size):
        captions.extend(captioner.caption(images, beam_width=beam_width))
    return captions


def score_captions(
    captions: Sequence[Caption], items: Sequence[CaptionedImage], grid: tuple[int, int], image_size: int
) -> dict[str, Any]:
    """Metrics of ``captions`` against the references (and object boxes) of ``items``.

    ``exact_match``: share of images whose caption equals one of its references word for word.
    ``attention_correctness`` / ``uniform_baseline``: means over every grounded emitted word
    (``None`` when no word was grounded, e.g. user data without boxes).
    """
    hypotheses = [c.words for c in captions]
    references = [[tokenize(r) for r in item.captions] for item in items]
    exact = sum(h in refs for h, refs in zip(hypotheses, references, strict=True)) / len(items)
    cider, _ = cider_d(hypotheses, references)
    scored: list[tuple[float, float]] = []
    for caption, item in zip(captions, items, strict=True):
        if caption.weights is None or not item.objects:
            continue
        boxes = ground_words(caption.words, item.objects, item.in_caption_order)
        scored.extend(attention_correctness(caption.weights, boxes, grid, (image_size, image_size)))
    return {
        "images": len(items),
        "exact_match": exact,
        **bleu(hypotheses, references),
        "cider_d": cider,
        "attention_correctness": sum(s for s, _ in scored) / len(scored) if scored else None,
        "uniform_baseline": sum(b for _, b in scored) / len(scored) if scored else None,
        "grounded_words": len(scored),
        "examples": [
            {"output": c.text, "references": item.captions[:3]}
            for c, item in zip(captions[:5], items, strict=False)
        ],
    }


def evaluate(
    captioner: Captioner, items: Sequence[CaptionedImage], beam_width: int = 1, batch_size: int = 128
) -> dict[str, Any]:
    """Caption ``items`` (greedy when ``beam_width`` is 1) and score them; see :func:`score_captions`."""
    captions = caption_items(captioner, items, beam_width, batch_size)
    return score_captions(captions, items, captioner.grid, captioner.config.image_size)
