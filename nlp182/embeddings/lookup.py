"""Word lookups of bounded cost: rows, prefix completion and unknown-word suggestions, for the
vector store and the similarity service alike.

The vocabulary is stored most frequent first, so a word's row is its frequency rank. Built once
per worker: the words in sorted order (a Python list, for ``bisect``) and their rows in that order
(an ``int32`` array). A prefix is one contiguous range of the sorted list (one more for each of its
other forms, ``prefix_forms``), found with two binary searches (O(log V)); its ``limit``
most frequent words are the smallest rows of that range, which
``numpy.partition`` picks in C without sorting the range (about 2 ms for a one-letter prefix of
300,000 words, against 25 ms to scan the vocabulary for the prefix). A suggestion for an unknown word
tries its prefixes from the longest down, each a pair of binary searches, and stops at the first
that matches: no longer a prefix than a vocabulary word could start with, never a scan of the
vocabulary.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from nlp182.errors import UnknownWordError
from nlp182.text.tokenize import WordTokenizer

SUGGESTIONS = 5
#: How the word tokenizer writes a word (NFKC, lower-cased): a form a vocabulary may hold it in.
_TOKENIZER_FORM = WordTokenizer()


def unicode_forms(word: str) -> list[str]:
    """``word`` in the other Unicode normal forms (NFC, NFD, NFKC): the same text to a reader,
    other code points (``café`` typed on one system, ``cafe`` + U+0301 pasted from another; Thai
    ``ทำ`` with U+0E33 as a keyboard types it, or as the two characters NFKC makes of it, which the
    word tokenizer's vocabulary holds)."""
    if word.isascii():
        return []
    forms = (unicodedata.normalize("NFC", word), unicodedata.normalize("NFD", word),
             unicodedata.normalize("NFKC", word))
    return [form for form in dict.fromkeys(forms) if form != word]


def prefix_forms(prefix: str) -> list[str]:
    """``prefix`` and the forms a vocabulary may hold its words in: the other Unicode normal forms
    and the word tokenizer's (NFKC, lower-cased), so ``Datei`` typed with a capital (a German noun,
    a phone's first letter) completes to ``dateiformat`` in a lower-cased vocabulary."""
    return list(dict.fromkeys([prefix, *unicode_forms(prefix), _TOKENIZER_FORM.normalize(prefix)]))


def row_of(key_to_index: Mapping[str, int], word: str) -> int | None:
    """Row of ``word`` in ``key_to_index``, or of the same text in another Unicode normal form
    (``unicode_forms``); None when neither is there."""
    row = key_to_index.get(word)
    for form in unicode_forms(word) if row is None else ():
        row = key_to_index.get(form)
        if row is not None:
            break
    return row


def case_variants(word: str) -> list[str]:
    """``word`` as other spellings write it where a vocabulary may hold it: as the word tokenizer
    writes it (NFKC, lower-cased: ``ﬁnance`` -> ``finance``), then in other cases, lower-cased
    first (``King`` -> ``king``, ``KING``; ``usa`` -> ``Usa``, ``USA``)."""
    normal = _TOKENIZER_FORM.normalize(word)
    forms = (normal, word.lower(), word.capitalize(), word.title(), word.upper())
    return [form for form in dict.fromkeys(forms) if form != word]


class WordLookup:
    """Rows, prefixes and suggestions over ``words`` (most frequent first).

    Args:
        words: the vocabulary in row order (row = frequency rank).
        key_to_index: ``word -> row`` (the vector store's own dict, not copied).
    """

    def __init__(self, words: Sequence[str], key_to_index: Mapping[str, int]) -> None:
        self.words = words
        self.key_to_index = key_to_index
        order = sorted(range(len(words)), key=words.__getitem__)
        self._sorted = [words[row] for row in order]
        # a longer prefix of a query starts no word, in any form (a decomposed one is at most a few
        # times as long): suggestions try no more than this many, where a 1-MB word took minutes
        self._longest_prefix = 4 * max(map(len, self._sorted), default=0) + 4
        self._rows = np.asarray(order, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.words)

    def row(self, word: str) -> int:
        """Row of ``word`` (or of the same text in another Unicode normal form, as the library
        finds it); an unknown word raises ``UnknownWordError`` (404) with suggestions."""
        row = row_of(self.key_to_index, word)
        if row is None:
            raise UnknownWordError(word, self.suggest(word))
        return row

    def rows(self, words: Sequence[str]) -> list[int]:
        """Rows of ``words``; unknown words raise one ``UnknownWordError`` naming them all (first
        occurrences, in order), with suggestions for the first."""
        unknown = list(dict.fromkeys(word for word in words if row_of(self.key_to_index, word) is None))
        if unknown:
            raise UnknownWordError(unknown[0], self.suggest(unknown[0]), unknown)
        return [self.row(word) for word in words]

    def _rows_starting(self, prefix: str) -> np.ndarray:
        """Rows of the words starting with ``prefix`` in any of its ``prefix_forms`` (a prefix typed
        on macOS is NFD; a capital meets a lower-cased vocabulary), in no order."""
        found = []
        for form in prefix_forms(prefix):
            low = bisect.bisect_left(self._sorted, form)
            # Every word starting with ``form`` sorts before ``form + U+10FFFF`` (the largest code point).
            high = bisect.bisect_right(self._sorted, form + "\U0010ffff", low)
            found.append(self._rows[low:high])
        return found[0] if len(found) == 1 else np.unique(np.concatenate(found))

    def _most_frequent(self, rows: np.ndarray, limit: int | None) -> list[str]:
        if limit is not None and len(rows) > limit:
            rows = np.partition(rows, limit - 1)[:limit]  # the rows are the frequency ranks
        return [self.words[row] for row in np.sort(rows).tolist()]

    def with_prefix(self, prefix: str, limit: int | None) -> list[str]:
        """Up to ``limit`` (None: all) words starting with ``prefix`` (in any of its
        ``prefix_forms``), most frequent first ("" gives the top words)."""
        if not prefix:
            return list(self.words[:limit])
        return self._most_frequent(self._rows_starting(prefix), limit)

    def suggest(self, word: str, limit: int = SUGGESTIONS) -> list[str]:
        """Up to ``limit`` words sharing the longest prefix with ``word``, most frequent first; the
        word in another spelling first when the vocabulary has it (``case_variants``)."""
        cased = [variant for variant in case_variants(word) if variant in self.key_to_index]
        if cased:  # then the words that start as it does, in the vocabulary's case and the query's
            wanted = limit + len(cased)
            more = [*self.with_prefix(cased[0], wanted), *self.with_prefix(word, wanted)]
            return list(dict.fromkeys([*cased, *more]))[:limit]
        for length in range(min(len(word), self._longest_prefix), 0, -1):
            rows = self._rows_starting(word[:length])
            if len(rows):
                return self._most_frequent(rows, limit)
        return []
