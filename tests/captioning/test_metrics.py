"""BLEU against sacrebleu, CIDEr-D against the COCO caption evaluation, attention correctness by hand."""

from __future__ import annotations

import pytest
import sacrebleu
import torch
from pycocoevalcap.cider.cider import Cider

from nlp182.captioning.data import GroundedObject
from nlp182.captioning.metrics import attention_correctness, bleu, cider_d, ground_words

HYPOTHESES = [
    "a small red disc left of a blue triangle",
    "a large green square",
    "two dogs run on the grass",
    "a man rides a red bike down the street",
]
REFERENCES = [
    [
        "a small red disc left of a large blue triangle",
        "a blue triangle right of a small red disc",
        "a red disc left of a blue triangle",
    ],
    ["a large green square", "a green square", "there is a large green square"],
    ["two brown dogs run across the grass", "dogs running on a lawn", "two dogs play in the grass"],
    ["a man riding a bike on the street", "a cyclist rides down a city street", "a man on a red bicycle"],
]


def _split(texts: list[str]) -> list[list[str]]:
    return [t.split() for t in texts]


def test_bleu_matches_sacrebleu_with_all_references() -> None:
    ours = bleu(_split(HYPOTHESES), [_split(refs) for refs in REFERENCES])
    streams = [list(stream) for stream in zip(*REFERENCES, strict=True)]
    for n in range(1, 5):
        reference = sacrebleu.metrics.BLEU(tokenize="none", max_ngram_order=n, smooth_method="none")
        expected = reference.corpus_score(HYPOTHESES, streams).score
        assert ours[f"bleu{n}"] == pytest.approx(expected, abs=1e-6)


def test_bleu_takes_the_shorter_of_two_references_equally_close_in_length_as_sacrebleu() -> None:
    """A 5-word caption between references of 4 and 6 words: its brevity penalty is against 4
    (none), not 6 (exp(1 - 6/5)); the sacrebleu data above never ties."""
    hypotheses = ["a red square on top"]
    references = [["a red square above", "a large red square on top"]]
    ours = bleu(_split(hypotheses), [_split(refs) for refs in references])
    streams = [list(stream) for stream in zip(*references, strict=True)]
    for n in (1, 2):
        reference = sacrebleu.metrics.BLEU(tokenize="none", max_ngram_order=n, smooth_method="none")
        assert ours[f"bleu{n}"] == pytest.approx(reference.corpus_score(hypotheses, streams).score, abs=1e-6)


def test_bleu_is_zero_without_matching_four_grams_and_100_for_copies() -> None:
    assert bleu([["a", "b"]], [[["c", "d"]]])["bleu4"] == 0.0
    assert bleu(_split(HYPOTHESES), [[h.split()] for h in HYPOTHESES])["bleu4"] == pytest.approx(100.0)


def test_cider_d_equals_the_coco_reference_implementation() -> None:
    ours, per_image = cider_d(_split(HYPOTHESES), [_split(refs) for refs in REFERENCES])
    gts = {i: refs for i, refs in enumerate(REFERENCES)}
    res = {i: [hyp] for i, hyp in enumerate(HYPOTHESES)}
    expected, expected_per_image = Cider().compute_score(gts, res)
    assert ours == pytest.approx(expected, abs=1e-9)
    assert per_image == pytest.approx(list(expected_per_image), abs=1e-9)


def test_attention_correctness_equals_a_hand_computed_case() -> None:
    # A 2x2 grid over a 4x4 image: with bilinear upsampling (align_corners=False) by 2, each
    # pixel's value is a fixed mix of the cell values, so put all mass in the top-left cell:
    # the upsampled map's rows/columns weigh that cell 1, 0.75, 0.25, 0 -> outer product / 4.
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0])
    full = torch.outer(profile, profile)
    box = (0, 0, 2, 2)  # the top-left 2x2 pixels
    expected_first = float(full[:2, :2].sum() / full.sum())
    scores = attention_correctness(weights, [box, box], grid=(2, 2), image_size=(4, 4))
    assert scores[0] == pytest.approx((expected_first, 4 / 16))
    assert expected_first == pytest.approx((1 + 0.75 + 0.75 + 0.5625) / 4.0)
    assert scores[1] == pytest.approx((0.25, 0.25))  # uniform attention scores the box's area share


def test_words_without_a_box_are_skipped() -> None:
    weights = torch.full((3, 4), 0.25)
    scores = attention_correctness(weights, [None, (0, 0, 4, 4), None], grid=(2, 2), image_size=(4, 4))
    assert scores == [pytest.approx((1.0, 1.0))]


def test_grounding_by_name_and_by_order() -> None:
    a, b, c = (0, 0, 1, 1), (1, 0, 2, 1), (2, 0, 3, 1)
    objects = [GroundedObject("one", a), GroundedObject("two", b), GroundedObject("one", c)]
    words = ["one", "two", "one", "three"]
    assert ground_words(words, objects, in_caption_order=True) == [a, b, c, None]
    assert ground_words(words, objects, in_caption_order=False) == [None, b, None, None]
