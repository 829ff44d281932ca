"""Translation quality: exact match, token error rates (PER / WER / CER) and corpus BLEU.

Every scorer takes one hypothesis per item and a *list of references* per item, because some
tasks have several right answers (a word with two pronunciations). An item is right when it
matches any reference; a token error rate charges each item the edit distance to its closest
reference and divides the total by the total length of those references (the standard corpus
PER of grapheme-to-phoneme work, Yao & Zweig 2015).

Task metrics by name (``METRICS``):

- ``exact_match``: fraction of items equal to a reference (after stripping outer whitespace);
- ``wer``: grapheme-to-phoneme *word* error rate, ``1 - exact_match`` (an item is one word);
- ``per``: token error rate over whitespace-separated tokens (phonemes for G2P, words for text);
- ``cer``: the same over characters;
- ``bleu``: corpus BLEU (sacrebleu, 0-100) against the first reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sacrebleu

from nlp182.errors import InvalidInputError

References = Sequence[Sequence[str]]

#: Metrics where lower is better (the rest are higher-is-better).
ERROR_METRICS = ("wer", "per", "cer")
#: The best value each metric can take: a validation score that reaches it ends training (no later
#: epoch could be kept instead).
PERFECT_SCORES = {"exact_match": 1.0, "wer": 0.0, "per": 0.0, "cer": 0.0, "bleu": 100.0}


def _check(hypotheses: Sequence[str], references: Sequence[object]) -> None:
    for name, given in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(given, str):  # one string would be read as one item per character
            raise InvalidInputError(f"{name} is one string; give a list, one item per sentence")
    if len(hypotheses) != len(references) or not hypotheses:
        raise InvalidInputError(
            f"need the same non-zero number of hypotheses and references, got {len(hypotheses)} "
            f"and {len(references)}"
        )


def _as_lists(references: Sequence[str] | References) -> list[list[str]]:
    """Accept one reference string per item or a list of references per item."""
    out = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    if any(not refs for refs in out):
        raise InvalidInputError("every item needs at least one reference")
    return out


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (unit cost insert / delete / substitute)."""
    previous = list(range(len(b) + 1))
    for i, token_a in enumerate(a, start=1):
        current = [i]
        for j, token_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token_a != token_b)))
        previous = current
    return previous[-1]


def exact_match(hypotheses: Sequence[str], references: Sequence[str] | References) -> float:
    """Fraction of hypotheses equal to one of their references (outer whitespace stripped)."""
    _check(hypotheses, references)
    refs = _as_lists(references)
    hits = sum(h.strip() in {r.strip() for r in rs} for h, rs in zip(hypotheses, refs, strict=True))
    return hits / len(refs)


def token_error_rate(
    hypotheses: Sequence[str],
    references: Sequence[str] | References,
    split: Callable[[str], Sequence[str]] = str.split,
) -> float:
    """Corpus token error rate: sum of edit distances to each item's closest reference over their lengths.

    ``split`` turns a string into tokens: whitespace (PER/WER) by default, ``list`` for characters.
    Among equally close references the shorter is charged: the same edits over fewer tokens, the
    higher rate (``"A B"`` against ``"A"`` and ``"A B C"``, one edit from each, scores 1.0, not
    1/3), so a tie never flatters the model.
    """
    _check(hypotheses, references)
    edits = length = 0
    for hyp, refs in zip(hypotheses, _as_lists(references), strict=True):
        hyp_tokens = split(hyp.strip())
        best = min(
            ((edit_distance(hyp_tokens, ref_tokens), len(ref_tokens))
             for ref_tokens in (split(r.strip()) for r in refs)),
        )  # fmt: skip
        edits, length = edits + best[0], length + best[1]
    if length == 0:
        raise InvalidInputError("the references hold no tokens")
    return edits / length


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | References) -> float:
    """Corpus BLEU (0-100) against the first reference of each item (sacrebleu's default 13a tokens)."""
    _check(hypotheses, references)
    firsts = [refs[0] for refs in _as_lists(references)]
    return float(sacrebleu.corpus_bleu(list(hypotheses), [firsts]).score)


METRICS: dict[str, Callable[[Sequence[str], References], float]] = {
    "exact_match": exact_match,
    "wer": lambda h, r: 1.0 - exact_match(h, r),
    "per": token_error_rate,
    "cer": lambda h, r: token_error_rate(h, r, split=list),
    "bleu": corpus_bleu,
}


def parse_metrics(names: str) -> list[str]:
    """``"wer,per"`` -> ``["wer", "per"]``, rejecting unknown names; a name given twice is scored once."""
    chosen = list(dict.fromkeys(name.strip() for name in names.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in METRICS]
    if unknown or not chosen:
        raise InvalidInputError(f"unknown metrics {unknown or names!r}; choose from {', '.join(METRICS)}")
    return chosen


def score(hypotheses: Sequence[str], references: References, names: Sequence[str]) -> dict[str, float]:
    """The named metrics of ``hypotheses`` against ``references`` (one list of references per item)."""
    return {name: METRICS[name](hypotheses, references) for name in names}
