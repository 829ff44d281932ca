"""Caption words: one tokeniser for training and inference, and a vocabulary with ``<unk>``.

Captions are put in Unicode's composed form (NFC), lowercased and split into runs of letters and
digits with the combining marks written inside words (``"A red-disc."`` -> ``["a", "red",
"disc"]``; Devanagari's vowel signs and viramas stay in their word), so punctuation never becomes
a word and a caption typed decomposed (NFD) meets the same vocabulary. Ids 0-3 are ``<pad>``, ``<bos>``,
``<eos>`` and ``<unk>``; the rest are the training words seen at least ``min_count`` times,
most frequent first. Saved as ``vocab.txt``, one word per line in id order.
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import regex

from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import atomic_write_text, check_input_file

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
# The regex module's word characters (letters, digits and marks: Python's re leaves marks out),
# and every number character, as re has them (fractions, superscripts, circled digits).
_WORD = regex.compile(r"(?:[^\W_]|\p{N})+")


def tokenize(caption: str) -> list[str]:
    """Lowercased words of ``caption`` (letters, digits and their marks; punctuation dropped)."""
    return _WORD.findall(unicodedata.normalize("NFC", caption).lower())


class CaptionVocab:
    """Words <-> ids for captions; unknown words map to ``<unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        if tuple(words[:4]) != SPECIALS:
            raise InvalidInputError(f"a caption vocabulary starts with {', '.join(SPECIALS)}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise InvalidInputError("the vocabulary lists a word twice")

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> CaptionVocab:
        """Vocabulary of the words in ``captions`` seen at least ``min_count`` times."""
        if min_count < 1:
            raise InvalidInputError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if not kept:
            raise InvalidInputError(f"no caption word occurs at least min_count={min_count} times")
        return cls([*SPECIALS, *kept])

    def encode(self, caption: str) -> list[int]:
        """``[<bos>, word ids..., <eos>]`` for ``caption``."""
        return [BOS_ID, *(self.index.get(w, UNK_ID) for w in tokenize(caption)), EOS_ID]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids``, stopping at ``<eos>`` and skipping ``<pad>`` / ``<bos>``.

        Raises:
            InvalidInputError: an id outside the vocabulary (another run's, or a model's wider output).
        """
        words = []
        for i in ids:
            if i == EOS_ID:
                break
            if not 0 <= i < len(self.words):
                raise InvalidInputError(f"id {i} is outside this vocabulary of {len(self.words)} words")
            if i not in (PAD_ID, BOS_ID):
                words.append(self.words[i])
        return words

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one word per line, in id order (atomically)."""
        atomic_write_text(path, "".join(f"{w}\n" for w in self.words))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CaptionVocab:
        """Read a ``vocab.txt`` written by :meth:`save`."""
        target = check_input_file(path, missing_hint="; is this a captioning run folder?")
        try:
            words = target.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{target} is not a vocabulary (not UTF-8 text: {exc.reason})") from exc
        try:
            return cls(words)
        except InvalidInputError as exc:
            raise FileFormatError(f"{target}: {exc}") from exc
