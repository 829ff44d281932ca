"""Sentences given in memory, as gensim's ``Word2Vec(sentences=...)`` takes them: lists of words.

The trainers read corpora from files (encoded once, cached by content, streamed in chunks), so
sentences in memory are written to a text file first: one sentence a line, words joined by a
space, read back with the ``whitespace`` token rule (gensim's ``LineSentence``), so every word
comes back exactly as given: case, punctuation and all. The file is named by the SHA-256 of its
text under ``$NLP182_CACHE/sentences``, so the same sentences map to the same file and to the same
encoded corpus, and it is written atomically (a killed write leaves no file under that name).
Any iterable works, a generator included: it is read once.
"""

from __future__ import annotations

import hashlib
import logging
import reprlib
from codecs import BOM_UTF8
from collections.abc import Iterable, Sequence
from pathlib import Path

from nlp182 import io
from nlp182.bounded import MAX_LINE_BYTES, mib
from nlp182.errors import EmptyCorpusError, InvalidInputError, shown

log = logging.getLogger(__name__)

#: Where the files are kept, under the package cache.
SENTENCES_FOLDER = "sentences"


def sentences_folder() -> Path:
    """``$NLP182_CACHE/sentences``."""
    return io.cache_folder() / SENTENCES_FOLDER


def from_memory(path: str | Path) -> bool:
    """Whether ``path`` is a file ``write_sentences`` wrote (the user gave sentences, not a file:
    messages name the sentences, not the cache file)."""
    return Path(path).parent == sentences_folder()


def _words_and_line(number: int, sentence: object) -> tuple[Sequence[str], str]:
    """The words of ``sentence`` (the ``number``-th) and the line they make, joined by spaces,
    after checking that reading the line back at whitespace gives those words again.

    Raises:
        InvalidInputError: ``sentence`` is a string or not a sequence of words, or a word is not a
            ``str``, is empty or holds whitespace (it would come back as other words).
    """
    if isinstance(sentence, str | bytes) or not isinstance(sentence, Iterable):
        raise InvalidInputError(
            f"sentence {number} is a {type(sentence).__name__}, not a list of words: give "
            "[['the', 'cat', 'sat'], ...] (split each text first), or write the text to a file and "
            "pass its path"
        )
    words = sentence if isinstance(sentence, list | tuple) else list(sentence)
    try:
        line = " ".join(words)
    except TypeError:
        odd = next(word for word in words if not isinstance(word, str))
        raise InvalidInputError(
            f"sentence {number}: the word {reprlib.repr(odd)} is {type(odd).__name__}, not str"
        ) from None
    if line.split() != list(words):
        odd = next(word for word in words if word.split() != [word])
        raise InvalidInputError(
            f"sentence {number}: the word {shown(odd)} is empty or holds whitespace; a word is "
            "read back from its line at whitespace, so it would become other words"
        )
    if "\x00" in line:  # a text file holds none: the reader takes NUL for a binary file
        odd = next(word for word in words if "\x00" in word)
        raise InvalidInputError(f"sentence {number}: the word {shown(odd)} holds a NUL character")
    return words, line


def _pieces_within(words: Sequence[str], max_tokens: int, max_bytes: int) -> list[str]:
    """``words`` as lines of at most ``max_tokens`` words and ``max_bytes`` UTF-8 bytes each (a
    long text file line is read in such pieces, cut at spaces).

    Raises:
        InvalidInputError: a single word longer than ``max_bytes``.
    """
    lines: list[str] = []
    piece: list[str] = []
    size = 0
    for word in words:
        width = len(word.encode("utf-8"))
        if width > max_bytes:
            raise InvalidInputError(
                f"the word {shown(word)} is over {mib(max_bytes)}, more than a corpus line may hold"
            )
        if piece and (len(piece) == max_tokens or size + 1 + width > max_bytes):
            lines.append(" ".join(piece))
            piece, size = [], 0
        size += width + (1 if piece else 0)  # the space before it
        piece.append(word)
    lines.append(" ".join(piece))
    return lines


def write_sentences(sentences: Iterable[Sequence[str]], max_tokens: int) -> Path:
    """Write ``sentences`` (each a list of ``str`` words) to the cache, one a line, a sentence of
    more than ``max_tokens`` words, or longer than a corpus line may be (``MAX_LINE_BYTES``), as
    lines within both bounds (what the encoder would cut it into); return the file.

    Raises:
        InvalidInputError: a sentence or word that cannot be written as given (see
            ``_words_and_line``), text that is not valid Unicode, or a word longer than a corpus
            line may be.
        EmptyCorpusError: the sentences hold no word.
    """
    folder = sentences_folder()
    digest = hashlib.sha256()
    total = 0
    with io.atomic_open(
        folder / "sentences.txt", "wb", final=lambda: folder / f"{digest.hexdigest()[:32]}.txt"
    ) as handle:
        pending: list[bytes] = []

        def flush() -> None:
            data = b"".join(pending)
            digest.update(data)
            handle.write(data)
            pending.clear()

        for number, sentence in enumerate(sentences):
            words, line = _words_and_line(number, sentence)
            if not words:
                continue
            if len(words) > max_tokens:
                cuts = range(0, len(words), max_tokens)
                line = "\n".join(" ".join(words[cut : cut + max_tokens]) for cut in cuts)
            try:
                data = line.encode("utf-8") + b"\n"
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"sentence {number} holds text that is not valid Unicode ({exc.reason}), as a "
                    "bad decoding leaves"
                ) from None
            if len(data) > MAX_LINE_BYTES and max(map(len, data.split(b"\n"))) > MAX_LINE_BYTES:
                try:
                    pieces = _pieces_within(words, max_tokens, MAX_LINE_BYTES)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"sentence {number}: {exc}") from None
                data = "\n".join(pieces).encode("utf-8") + b"\n"
            if total == 0 and data.startswith(BOM_UTF8):  # readers drop a mark at a file's start: give
                data = BOM_UTF8 + data  # them one, so the first word keeps its own U+FEFF
            pending.append(data)
            total += len(words)
            if len(pending) >= 4096:
                flush()
        flush()
        if total == 0:
            raise EmptyCorpusError("the sentences hold no words to train on")
    path = folder / f"{digest.hexdigest()[:32]}.txt"
    log.info("sentences: %d words written to %s", total, path)
    return path
