"""Corpus sources and their encoding into id chunks for training.

A source is any local plain-text file (one sentence or document per line) or local files read
through `datasets` (``text``, ``json``, ``parquet``), streamed line by line so the corpus never has
to fit in memory. Encoding turns lines into chunks of vocabulary ids with a sentence index per
token; windows never cross sentences. Small corpora are kept encoded in memory between epochs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError, MissingFileError
from nlp182.text.tokenize import WordTokenizer, default_tokenizer
from nlp182.text.vocab import Vocabulary

SOURCE_FORMATS = ("auto", "plain", "text", "json", "parquet")
# gensim's trainer ignores words past this length of one sentence; we split instead of dropping.
MAX_SENTENCE_TOKENS = 10_000
_EXTENSION_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class CorpusSource:
    """Where the text comes from.

    Args:
        path: a local file (or, for `datasets` formats, a glob of local files).
        fmt: ``plain`` reads lines directly; ``text``/``json``/``parquet`` go through `datasets`;
            ``auto`` chooses by extension (plain for anything that is not json/parquet).
        column: the text column for json/parquet records.
    """

    path: str
    fmt: str = "auto"
    column: str = "text"

    def resolved_format(self) -> str:
        if self.fmt not in SOURCE_FORMATS:
            raise InvalidInputError(
                f"unknown corpus format {self.fmt!r}; use one of {', '.join(SOURCE_FORMATS)}"
            )
        if self.fmt != "auto":
            return self.fmt
        return _EXTENSION_FORMATS.get(Path(self.path).suffix.lower(), "plain")

    def lines(self) -> Iterator[str]:
        """Stream the text of the corpus, one line (sentence or document) at a time."""
        fmt = self.resolved_format()
        if fmt == "plain":
            path = Path(self.path)
            if not path.is_file():
                raise MissingFileError(f"corpus {path} does not exist; run `nlp182 corpus prepare` first?")
            with path.open(encoding="utf-8", errors="replace") as handle:
                yield from handle
            return
        yield from _dataset_lines(self.path, fmt, self.column)


def _dataset_lines(path: str, fmt: str, column: str) -> Iterator[str]:
    if not glob.glob(path):
        raise MissingFileError(f"corpus {path} matches no local file")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    try:
        stream = load_dataset(fmt, data_files=path, split="train", streaming=True)
        for record in stream:
            if column not in record:
                raise FileFormatError(f"{path}: records have no {column!r} column (have {sorted(record)})")
            yield str(record[column] or "")
    except (ValueError, OSError) as exc:
        raise FileFormatError(f"{path} could not be read as {fmt}: {exc}") from exc


def iter_token_lines(source: CorpusSource, tokenizer: WordTokenizer | None = None) -> Iterator[list[str]]:
    """Tokens of each non-empty line, long lines split into pieces of ``MAX_SENTENCE_TOKENS``."""
    tokenizer = tokenizer or default_tokenizer()
    for line in source.lines():
        tokens = tokenizer(line)
        for start in range(0, len(tokens), MAX_SENTENCE_TOKENS):
            yield tokens[start : start + MAX_SENTENCE_TOKENS]


@dataclass
class Chunk:
    """A piece of the encoded corpus.

    Attributes:
        ids: ``(N,)`` int64 vocabulary ids of in-vocabulary tokens, in corpus order.
        sentence: ``(N,)`` int64 sentence number of each token (windows never cross sentences).
        raw_words: tokens read for this chunk, out-of-vocabulary ones included (gensim's "raw words").
    """

    ids: np.ndarray
    sentence: np.ndarray
    raw_words: int


class EncodedCorpus:
    """A corpus as a re-iterable sequence of id chunks; cached in memory when it is small.

    Args:
        source: the text.
        vocab: maps words to ids; other tokens are dropped before windowing, as in word2vec.
        chunk_tokens: in-vocabulary tokens per chunk (bounds memory for any corpus size).
        cache_limit: corpora with at most this many in-vocabulary tokens are encoded once.
    """

    def __init__(
        self,
        source: CorpusSource,
        vocab: Vocabulary,
        chunk_tokens: int = 1 << 20,
        cache_limit: int = 50_000_000,
        tokenizer: WordTokenizer | None = None,
    ) -> None:
        self.source, self.vocab, self.chunk_tokens = source, vocab, chunk_tokens
        self.cache_limit, self.tokenizer = cache_limit, tokenizer
        self._cache: list[Chunk] | None = None
        self.raw_words = 0

    def __iter__(self) -> Iterator[Chunk]:
        if self._cache is not None:
            yield from self._cache
            return
        chunks: list[Chunk] | None = []
        kept, raw = 0, 0
        for chunk in self._encode():
            kept += len(chunk.ids)
            raw += chunk.raw_words
            if chunks is not None:
                chunks.append(chunk)
                if kept > self.cache_limit:
                    chunks = None
            yield chunk
        if kept == 0:
            raise EmptyCorpusError(f"corpus {self.source.path} has no in-vocabulary token")
        self.raw_words = raw
        self._cache = chunks

    def preload(self) -> bool:
        """Encode and cache the corpus now if it fits the cache (the vocabulary's token count
        tells before reading), so that training time excludes reading and tokenizing it.
        Returns whether the corpus is held in memory."""
        if self._cache is None and self.vocab.total_words <= self.cache_limit:
            for _ in self:
                pass
        return self._cache is not None

    def _encode(self) -> Iterator[Chunk]:
        index = self.vocab.index
        ids: list[int] = []
        sentences: list[int] = []
        raw = sentence = 0
        for tokens in iter_token_lines(self.source, self.tokenizer):
            raw += len(tokens)
            encoded = [index[t] for t in tokens if t in index]
            if not encoded:
                continue
            ids.extend(encoded)
            sentences.extend([sentence] * len(encoded))
            sentence += 1
            if len(ids) >= self.chunk_tokens:
                yield Chunk(np.asarray(ids, dtype=np.int64), np.asarray(sentences, dtype=np.int64), raw)
                ids, sentences, raw = [], [], 0
        if ids:
            yield Chunk(np.asarray(ids, dtype=np.int64), np.asarray(sentences, dtype=np.int64), raw)
