"""The word tokenizer in C (``wordscan.c``), numbering words as they first appear.

``Scanner.number`` gives, block after block of a corpus, what tokenizing the whole text with
the tokenizer's ``block`` (the words rule of ``WordTokenizer``, or ``WhitespaceTokenizer``'s) and
numbering its words by first appearance gives: the same words, the same numbers. ASCII lines are
scanned in C, about 6 times faster than the regular expression, and one C hash table numbers every
word, where Python merged a dictionary per block; lines with other bytes are tokenized by the
tokenizer (Unicode normalisation and word classes) and numbered in place by the same table.
Encoding a corpus spent most of its time there. Built on first use with ``nlp182.cbuild``;
``available()`` is false without a C compiler, and callers then take the Python path.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nlp182.cbuild import build, builds
from nlp182.text.tokenize import LINE_BREAK, WordTokenizer

SOURCE = Path(__file__).with_name("wordscan.c")
_NO_ROOM, _NO_MEMORY = -1, -2
_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
_RULES = {"words": 0, "whitespace": 1}  # wordscan.c's WORDSCAN_WORDS, WORDSCAN_WHITESPACE


@functools.cache
def library() -> ctypes.CDLL:
    """The compiled scanner (raises ``NativeKernelUnavailable`` when it cannot be built)."""
    lib = build("wordscan", [SOURCE])
    lib.wordscan_new.restype = _ptr
    lib.wordscan_new.argtypes = []
    lib.wordscan_free.restype = None
    lib.wordscan_free.argtypes = [_ptr]
    lib.wordscan_number.restype = _i64
    lib.wordscan_number.argtypes = [
        _ptr, _ptr, _i64, ctypes.c_int, ctypes.c_int, _ptr, _i64, _ptr, _i64, _ptr, _i64,
        ctypes.POINTER(_i64),
    ]  # fmt: skip
    lib.wordscan_size.restype = _i64
    lib.wordscan_size.argtypes = [_ptr]
    lib.wordscan_words.restype = _i64
    lib.wordscan_words.argtypes = [_ptr, _i64, _i64, _ptr, _i64]
    return lib


def available() -> bool:
    """Whether the scanner builds (and loads) on this machine."""
    return builds(library)


class NonAsciiLines(NamedTuple):
    """A block's lines that hold bytes >= 0x80, tokenized in Python.

    Attributes:
        ranges: ``(D, 2)`` int64 byte ranges from each such line's start to its line break.
        tokens: their words joined by ``\\n``, an empty word after each line (the scanner's
            pre-tokenized buffer), UTF-8.
        count: the number of items in ``tokens`` (words and line ends).
    """

    ranges: np.ndarray
    tokens: bytes
    count: int


def non_ascii_lines(data: bytes, tokenizer: WordTokenizer) -> NonAsciiLines:
    """The lines of ``data`` holding a byte >= 0x80, tokenized by ``tokenizer`` (the part of
    ``Scanner.number`` that runs in Python, so worker processes can do it for many blocks)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    high = np.flatnonzero(raw >= 0x80)
    if len(high) == 0:
        return NonAsciiLines(np.zeros((0, 2), dtype=np.int64), b"", 0)
    breaks = np.flatnonzero(raw == ord(LINE_BREAK))
    lines = np.searchsorted(breaks, high)
    lines = lines[np.r_[True, lines[1:] != lines[:-1]]]
    ends = breaks[lines]
    starts = np.where(lines > 0, breaks[np.maximum(lines - 1, 0)] + 1, 0)
    text = b"\n".join(data[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True))
    tokens = tokenizer.block(text.decode("utf-8", errors="replace") + LINE_BREAK)
    pre = "\n".join("" if token == LINE_BREAK else token for token in tokens).encode("utf-8")
    return NonAsciiLines(np.stack([starts, ends], axis=1).astype(np.int64), pre, len(tokens))


class Scanner:
    """Numbers the words of a corpus's blocks, in order, under ``tokenizer``'s rules (a context
    manager: the C table is freed on exit).

    Raises:
        MemoryError: the table cannot be allocated.
    """

    def __init__(self, tokenizer: WordTokenizer) -> None:
        self.tokenizer, self.lib = tokenizer, library()
        self.table = self.lib.wordscan_new()
        if not self.table:
            raise MemoryError("the word scanner could not allocate its table")

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.wordscan_free(self.table)
        self.table = None

    def number(self, data: bytes, non_ascii: NonAsciiLines | None = None) -> tuple[list[str], np.ndarray]:
        """The words of UTF-8 ``data`` (whole lines, the last ending with a line break) seen for
        the first time, in order, and its ``(N,)`` uint32 tokens as 1-based numbers over every
        block so far (0 marks each line end). ``non_ascii``: ``non_ascii_lines(data, tokenizer)``
        when already computed (by a worker process).

        Raises:
            ValueError: ``data`` does not end with a line break.
            MemoryError: the table could not grow.
        """
        if data and not data.endswith(LINE_BREAK.encode()):
            raise ValueError("the word scanner takes whole lines: the data must end with a line break")
        deferred, pre, pre_tokens = non_ascii or non_ascii_lines(data, self.tokenizer)
        ids = np.empty(len(data) + 1 + pre_tokens, dtype=np.uint32)
        first_new = _i64(0)
        count = self.lib.wordscan_number(
            self.table, data, len(data), int(self.tokenizer.lowercase), _RULES[self.tokenizer.rule],
            deferred.ctypes.data, len(deferred), pre, len(pre), ids.ctypes.data, len(ids),
            ctypes.byref(first_new),
        )  # fmt: skip
        if count == _NO_MEMORY:
            raise MemoryError("the word scanner could not grow its table")
        if count < 0:
            raise RuntimeError(f"the word scanner refused its buffers (status {count})")
        return self._words(first_new.value, self.lib.wordscan_size(self.table)), ids[:count].copy()

    def _words(self, first: int, last: int) -> list[str]:
        """Words ``first..last`` (1-based, inclusive)."""
        if last < first:
            return []
        size = self.lib.wordscan_words(self.table, first, last, None, 0)
        out = np.empty(size, dtype=np.uint8)
        used = self.lib.wordscan_words(self.table, first, last, out.ctypes.data, size)
        if used != size:
            raise RuntimeError(f"the word scanner could not copy words {first}..{last}")
        return out.tobytes().decode("utf-8").split("\n")[:-1]
