"""Caption quality and where the model looked.

- :func:`bleu`: corpus BLEU-1..4 (Papineni et al., 2002) with every reference of an image,
  clipped n-gram counts, the closest reference length for the brevity penalty, on a **0-100**
  scale. Inputs are already tokenised (lists of words).
- :func:`cider_d`: CIDEr-D (Vedantam et al., 2015) as the COCO caption evaluation computes it:
  TF-IDF n-gram vectors (n = 1..4; document frequencies over the evaluated images' reference
  sets), hypothesis counts clipped by the reference's, a Gaussian length penalty
  (``sigma = 6``), mean over n and references, times 10.
- :func:`attention_correctness` (Liu et al., 2017): each step's attention map upsampled
  (bilinear) to the image, renormalised to sum 1, summed inside the box of the object the word
  names; the uniform-attention baseline is the box's share of the image area.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nlp182.captioning.data import Box, GroundedObject
from nlp182.errors import InvalidInputError, ShapeError

Words = Sequence[str]


def _ngrams(words: Words, n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _check(hypotheses: Sequence[Words], references: Sequence[Sequence[Words]]) -> None:
    if len(hypotheses) != len(references) or not hypotheses:
        raise InvalidInputError(
            f"need one reference set per hypothesis and at least one of each; got {len(hypotheses)} "
            f"hypotheses and {len(references)} reference sets"
        )
    if any(not refs for refs in references):
        raise InvalidInputError("every image needs at least one reference caption")


def bleu(
    hypotheses: Sequence[Words], references: Sequence[Sequence[Words]], max_n: int = 4
) -> dict[str, float]:
    """Corpus ``bleu1`` .. ``bleu{max_n}`` on a 0-100 scale (uniform weights over 1..n)."""
    _check(hypotheses, references)
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            best: Counter = Counter()
            for ref in refs:
                best |= _ngrams(ref, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0
    scores = {}
    for n in range(1, max_n + 1):
        if min(matches[:n]) == 0:
            scores[f"bleu{n}"] = 0.0
            continue
        log_precision = sum(math.log(matches[k] / totals[k]) for k in range(n)) / n
        scores[f"bleu{n}"] = 100.0 * brevity * math.exp(log_precision)
    return scores


def cider_d(
    hypotheses: Sequence[Words], references: Sequence[Sequence[Words]], sigma: float = 6.0, max_n: int = 4
) -> tuple[float, list[float]]:
    """CIDEr-D over the corpus and per image (the corpus score is the mean of the image scores)."""
    _check(hypotheses, references)
    ref_counts = [
        [sum((_ngrams(r, n) for n in range(1, max_n + 1)), Counter()) for r in refs] for refs in references
    ]
    document_frequency: Counter = Counter()
    for counts in ref_counts:
        document_frequency.update(set().union(*counts))
    log_images = math.log(len(references))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(max_n)]
        for gram, tf in counts.items():
            vec[len(gram) - 1][gram] = tf * (log_images - math.log(max(1.0, document_frequency[gram])))
        norms = [math.sqrt(sum(v * v for v in order.values())) for order in vec]
        return vec, norms, sum(c for g, c in counts.items() if len(g) == 2)

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts, strict=True):
        h_vec, h_norm, h_len = vector(sum((_ngrams(hyp, n) for n in range(1, max_n + 1)), Counter()))
        total = 0.0
        for ref in refs:
            r_vec, r_norm, r_len = vector(ref)
            penalty = math.exp(-((h_len - r_len) ** 2) / (2 * sigma**2))
            for n in range(max_n):
                dot = sum(min(v, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, v in h_vec[n].items())
                if h_norm[n] and r_norm[n]:
                    dot /= h_norm[n] * r_norm[n]
                total += penalty * dot / max_n
        scores.append(10.0 * total / len(refs))
    return sum(scores) / len(scores), scores


def ground_words(words: Words, objects: Sequence[GroundedObject], in_caption_order: bool) -> list[Box | None]:
    """The box each word names, or ``None`` for words that name no object (or no single one).

    A name carried by one object grounds to it. A name several objects share grounds by order
    when the captions mention objects in list order (the k-th mention is the k-th such object)
    and is left out otherwise, since the word does not say which one it means.
    """
    boxes: dict[str, list[Box]] = {}
    for obj in objects:
        boxes.setdefault(obj.name, []).append(obj.box)
    seen: Counter = Counter()
    grounded: list[Box | None] = []
    for word in words:
        candidates = boxes.get(word, [])
        k = seen[word]
        seen[word] += 1
        if len(candidates) == 1:
            grounded.append(candidates[0])
        elif in_caption_order and k < len(candidates):
            grounded.append(candidates[k])
        else:
            grounded.append(None)
    return grounded


def upsample_attention(
    weights: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """Attention rows ``(T, h*w)`` on a ``grid`` -> maps ``(T, H, W)`` that each sum to 1.

    Bilinear upsampling (``align_corners=False``), negatives from interpolation clipped to 0,
    each map renormalised (a map with no mass stays zero).
    """
    steps, locations = weights.shape
    if locations != grid[0] * grid[1]:
        raise ShapeError(f"{locations} attention weights per step do not fill a {grid[0]}x{grid[1]} grid")
    maps = F.interpolate(
        weights.float().view(steps, 1, *grid), size=image_size, mode="bilinear", align_corners=False
    )[:, 0].clamp_min(0)
    return maps / maps.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def attention_correctness(
    weights: torch.Tensor | np.ndarray,
    boxes: Sequence[Box | None],
    grid: tuple[int, int],
    image_size: tuple[int, int],
) -> list[tuple[float, float]]:
    """``(correctness, uniform baseline)`` for each step whose box is not ``None``.

    ``weights`` ``(T, h*w)`` holds one attention row per emitted word, ``boxes`` one entry per
    row (``x0, y0, x1, y1`` in image pixels, exclusive ends, clipped to the image).
    """
    if len(boxes) > weights.shape[0]:
        raise ShapeError(f"{len(boxes)} words but only {weights.shape[0]} attention rows")
    maps = upsample_attention(torch.as_tensor(weights)[: len(boxes)], grid, image_size)
    height, width = image_size
    results = []
    for step, box in enumerate(boxes):
        if box is None:
            continue
        x0, y0 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
        x1, y1 = min(math.ceil(box[2]), width), min(math.ceil(box[3]), height)
        inside = float(maps[step, y0:y1, x0:x1].sum())
        results.append((inside, (x1 - x0) * (y1 - y0) / (height * width)))
    return results
