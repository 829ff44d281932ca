"""Vocabulary: counts, ``min_count``/``max_vocab`` filtering, word2vec subsampling, noise distribution."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError
from nlp182.io import atomic_write_text, check_input_file


@dataclass
class VocabConfig:
    """How the vocabulary is cut from the raw counts (gensim's defaults)."""

    min_count: int = 5
    max_vocab: int | None = None
    sample: float = 1e-3

    def __post_init__(self) -> None:
        if self.min_count < 0:
            raise InvalidInputError(f"min_count must be >= 0 (0 and 1 keep every word), got {self.min_count}")
        if self.max_vocab is not None and self.max_vocab < 1:
            raise InvalidInputError(f"max_vocab must be >= 1, got {self.max_vocab}")
        if not 0.0 <= self.sample < math.inf:  # nan fails too
            raise InvalidInputError(f"sample must be a number >= 0, got {self.sample}")


class Vocabulary:
    """Words sorted by descending count (ties by first appearance), with their counts.

    Args:
        words: the kept words, most frequent first.
        counts: ``(V,)`` counts aligned with ``words``.
        total_words: raw token count of the corpus, including words that were cut.
    """

    def __init__(self, words: list[str], counts: np.ndarray, total_words: int) -> None:
        if len(words) != len(counts):
            raise InvalidInputError(f"{len(words)} words but {len(counts)} counts")
        self.words = list(words)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.total_words = int(total_words)
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        shown = ", ".join(self.words[:5]) + (", ..." if len(self.words) > 5 else "")
        return f"Vocabulary({len(self.words)} words of {self.total_words} tokens: {shown})"

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], config: VocabConfig | None = None) -> Vocabulary:
        """Count tokens and keep those with ``count >= min_count``, at most ``max_vocab`` of them."""
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        counts = np.fromiter(counter.values(), dtype=np.int64, count=len(counter))
        return cls.from_counts(list(counter), counts, int(counts.sum()), config)[0]

    @classmethod
    def from_counts(
        cls, words: list[str], counts: np.ndarray, total_words: int, config: VocabConfig | None = None
    ) -> tuple[Vocabulary, np.ndarray]:
        """Cut a vocabulary from ``(T,)`` ``counts`` of ``words`` listed in order of first
        appearance: most frequent first, ties in that order (as ``Counter.most_common``), at
        least ``min_count``, at most ``max_vocab``. Returns it and the ``(V,)`` positions of its
        words in ``words``."""
        counts = np.asarray(counts, dtype=np.int64)
        order = cls.cut(counts, total_words, config)
        return cls([words[i] for i in order.tolist()], counts[order], total_words), order

    @staticmethod
    def cut(counts: np.ndarray, total_words: int, config: VocabConfig | None = None) -> np.ndarray:
        """The ``(V,)`` positions in ``(T,)`` ``counts`` that ``from_counts`` keeps, in its order."""
        config = config or VocabConfig()
        counts = np.asarray(counts, dtype=np.int64)
        order = np.argsort(-counts, kind="stable")
        order = order[counts[order] >= config.min_count][: config.max_vocab]
        if len(order) == 0:
            raise EmptyCorpusError(
                f"no word occurs at least min_count={config.min_count} times in a corpus of "
                f"{total_words} tokens; lower min_count (--min-count) or use a larger corpus"
            )
        return order

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """``(V,)`` probability of keeping each word under word2vec's frequent-word subsampling.

        gensim's formula: with ``t = sample * retained_total``, keep ``(sqrt(c / t) + 1) * t / c``,
        capped at 1; ``sample=0`` disables subsampling. A ``sample`` of 1 or more is a count, as in
        gensim: ``t = int(sample * (3 + sqrt(5)) / 2)``, whatever the corpus's size.
        """
        counts = self.counts.astype(np.float64)
        if sample <= 0:
            return np.ones_like(counts)
        threshold = sample * counts.sum() if sample < 1 else float(int(sample * (3 + math.sqrt(5)) / 2))
        return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)

    def noise_distribution(self, power: float = 0.75) -> np.ndarray:
        """``(V,)`` unigram^power distribution that negative samples are drawn from."""
        weights = self.counts.astype(np.float64) ** power
        return weights / weights.sum()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``word<TAB>count`` lines, most frequent first, atomically."""
        body = "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts.tolist(), strict=True))
        atomic_write_text(path, f"#total_words\t{self.total_words}\n" + body)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a file written by ``save`` (lines end at ``\n`` only: a word may hold other line
        separators, such as U+2028, which ``str.splitlines`` would cut it at)."""
        path = check_input_file(path)
        try:
            lines = path.read_text(encoding="utf-8").removesuffix("\n").split("\n")
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{path} is not a vocabulary file: not UTF-8 ({exc.reason})") from None
        values: list[int] = []
        for number, line in enumerate(lines, 1):
            label, tab, count = line.rstrip("\r").rpartition("\t")
            whole = count.isascii() and count.isdigit() and len(count) <= 30
            int64 = number == 1 or (whole and int(count) < 2**63)  # the total is a sum of counts
            if not tab or not whole or not int64 or (number == 1 and label != "#total_words"):
                raise FileFormatError(f"{path} is not a vocabulary file (#total_words, then word<TAB>count "
                                      f"lines): line {number} is {line[:60]!r}")
            values.append(int(count))
        words = [line.rstrip("\r").rpartition("\t")[0] for line in lines[1:]]
        return cls(words, np.array(values[1:], dtype=np.int64), values[0])
