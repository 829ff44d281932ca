"""Translation quality: corpus BLEU (``sacrebleu``) and exact match."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

from nlp182.errors import InvalidInputError


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references) or not hypotheses:
        raise InvalidInputError(
            f"need the same non-zero number of hypotheses and references, got {len(hypotheses)} "
            f"and {len(references)}"
        )


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) against one reference per hypothesis (sacrebleu's default 13a tokens)."""
    _check(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses identical to their reference after stripping outer whitespace."""
    _check(hypotheses, references)
    return sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)) / len(references)
