"""WER / PER / CER / exact match against hand-computed cases, multi-reference included."""

from __future__ import annotations

import pytest

from nlp182.errors import InvalidInputError
from nlp182.seq2seq.metrics import METRICS, edit_distance, exact_match, parse_metrics, score, token_error_rate


def test_edit_distance_by_hand() -> None:
    assert edit_distance([], []) == 0
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance(["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"]) == 1
    assert edit_distance(["A", "B"], []) == 2 and edit_distance([], ["A"]) == 1
    assert edit_distance(["A", "B", "C"], ["B", "C", "D"]) == 2  # delete A, insert D


def test_per_and_wer_with_several_references_by_hand() -> None:
    hyps = ["T AH M EY T OW", "R EH D", "K AE T"]
    refs = [
        ["T AH M EY T OW", "T AH M AA T OW"],  # matches the first reference: 0 edits of 6
        ["R IY D", "R EH D Z"],  # 1 edit to either; the shorter (3 tokens) is charged
        ["D AO G"],  # 3 substitutions of 3
    ]
    assert token_error_rate(hyps, refs) == pytest.approx((0 + 1 + 3) / (6 + 3 + 3))
    assert exact_match(hyps, refs) == pytest.approx(1 / 3)
    scores = score(hyps, refs, ["wer", "per", "exact_match"])
    assert scores["wer"] == pytest.approx(2 / 3)
    # A closer but longer reference wins over a shorter farther one: edits first.
    assert token_error_rate(["A B C D"], [["A B C D E", "X"]]) == pytest.approx(1 / 5)
    # Equally close: the shorter reference is charged, the higher rate, whichever comes first.
    assert token_error_rate(["A B"], [["A", "A B C"]]) == token_error_rate(["A B"], [["A B C", "A"]]) == 1.0


def test_cer_counts_characters_and_single_references_are_accepted() -> None:
    assert METRICS["cer"](["2018-05-09"], ["2018-05-19"]) == pytest.approx(1 / 10)
    assert METRICS["per"](["a b c"], ["a x c"]) == pytest.approx(1 / 3)
    ref = "the cat sat on the mat"
    assert METRICS["bleu"]([ref], [[ref, "a dog sat on a rug"]]) == pytest.approx(100.0)


def test_bad_metric_input_is_rejected() -> None:
    assert parse_metrics("wer, per") == ["wer", "per"] == parse_metrics("wer,per,wer")
    with pytest.raises(InvalidInputError, match="unknown metrics"):
        parse_metrics("wer,accuracy")
    with pytest.raises(InvalidInputError):
        exact_match(["a"], [[]])
    with pytest.raises(InvalidInputError):
        token_error_rate(["a", "b"], ["a"])
    # one string is one item per character: exact_match(["a", "b", "c"], "abc") read 1.0
    with pytest.raises(InvalidInputError, match="references is one string"):
        exact_match(["a", "b", "c"], "abc")
    with pytest.raises(InvalidInputError, match="hypotheses is one string"):
        token_error_rate("xy", ["x", "y"])
