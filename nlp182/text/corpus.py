"""Corpus sources: where the text comes from, streamed so the corpus never has to fit in memory.

A source is any local plain-text file (one sentence or document per line; ``.gz``/``.bz2`` read
decompressed under ``nlp182.bounded``'s caps, lines longer than ``limits.max_line`` skipped and
counted) or local files read through `datasets` (``text``, ``json``, ``parquet``). ``lines``
streams it a line at a time (the gensim reference reads it so), ``blocks`` a few megabytes of
whole lines at a time (what the one-pass encoder in ``nlp182.text.encoded`` reads).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nlp182.bounded import BZIP2_SUFFIXES, GZIP_SUFFIXES, ReadLimits
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, Nlp182Error
from nlp182.io import check_input_file
from nlp182.text.tokenize import WordTokenizer, default_tokenizer

SOURCE_FORMATS = ("auto", "plain", "text", "json", "parquet")
# gensim's trainer ignores words past this length of one sentence; we split instead of dropping.
MAX_SENTENCE_TOKENS = 10_000
_EXTENSION_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class CorpusSource:
    """Where the text comes from.

    Args:
        path: a local file (or, for `datasets` formats, a glob of local files).
        fmt: ``plain`` reads lines directly; ``text``/``json``/``parquet`` go through `datasets`;
            ``auto`` chooses by extension (plain for anything that is not json/parquet).
        column: the text column for json/parquet records.
        limits: the longest line a plain file may have (longer ones are skipped and counted) and
            the caps on decompressing a ``.gz``/``.bz2`` plain file.
    """

    path: str
    fmt: str = "auto"
    column: str = "text"
    limits: ReadLimits = field(default_factory=ReadLimits)

    def resolved_format(self) -> str:
        if self.fmt not in SOURCE_FORMATS:
            raise InvalidInputError(
                f"unknown corpus format {self.fmt!r}; use one of {', '.join(SOURCE_FORMATS)}"
            )
        if self.fmt != "auto":
            return self.fmt
        return _EXTENSION_FORMATS.get(Path(self.path).suffix.lower(), "plain")

    def files(self) -> list[Path]:
        """The local files of the corpus, sorted.

        Raises:
            MissingFileError: no file is there.
        """
        if self.resolved_format() == "plain":
            missing = "; run `nlp182 corpus prepare` first?"
            return [check_input_file(self.path, "corpus", missing_hint=missing)]
        if not any(mark in self.path for mark in "*?["):  # one file named: say what is wrong with it
            return [check_input_file(self.path, "corpus")]
        found = sorted(Path(p) for p in glob.glob(self.path) if Path(p).is_file())
        if not found:
            raise MissingFileError(f"corpus {self.path} matches no local file")
        return found

    def size_bytes(self) -> int:
        """Total bytes of the corpus files (the progress total while reading them)."""
        return sum(path.stat().st_size for path in self.files())

    def compressed(self) -> bool:
        """Whether the corpus is a ``.gz``/``.bz2`` plain file (read decompressed, in one stream)."""
        return self.resolved_format() == "plain" and Path(self.path).suffix in GZIP_SUFFIXES + BZIP2_SUFFIXES

    def lines(self) -> Iterator[str]:
        """Stream the text of the corpus, one line (sentence or document) at a time; a plain file's
        lines end at ``\n`` and longer ones than ``limits.max_line`` are skipped (one warning)."""
        fmt = self.resolved_format()
        if fmt == "plain":
            path = self.files()[0]
            with self.limits.open(path) as handle:
                lines = self.limits.lines(handle, path)
                for _, line in lines:
                    yield line.decode("utf-8", errors="replace")
                lines.warn_skipped()
            return
        yield from _dataset_lines(self, fmt)

    def byte_blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, int, bytes]]:
        """A plain file's whole lines about ``block_bytes`` at a time, as ``LineBlocks`` yields them
        (``(start, end, data)``, overlong lines skipped), then one warning if any was skipped."""
        path = self.files()[0]
        with self.limits.open(path) as handle:
            blocks = self.limits.blocks(handle, path, block_bytes)
            yield from blocks
            blocks.warn_skipped(lambda: self.limits.open(path))

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        """Whole lines, about ``block_bytes`` at a time, each block ending with a line break;
        yields ``(text, bytes of the files this block stands for)``. Plain files are read in
        binary and cut at the last line break of each read (lines end at ``\n`` only; overlong lines
        are skipped: ``byte_blocks``); other
        formats join their records' text with line breaks (their byte counts are spread evenly
        over the blocks read from each file, so the progress total is the files' size)."""
        if self.resolved_format() == "plain":
            for start, end, data in self.byte_blocks(block_bytes):
                yield data.decode("utf-8", errors="replace"), end - start
            return
        lines: list[str] = []
        held = 0
        for line in self.lines():
            line = line.replace("\n", " ")
            lines.append(line)
            held += len(line) + 1
            if held >= block_bytes:
                yield "\n".join(lines) + "\n", held
                lines, held = [], 0
        if lines:
            yield "\n".join(lines) + "\n", held


def _dataset_lines(source: CorpusSource, fmt: str) -> Iterator[str]:
    """Text of each record of local json/parquet/text files, read with `datasets` (offline)."""
    files = [str(path) for path in source.files()]
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    column = source.column
    try:
        stream = load_dataset(fmt, data_files=files, split="train", streaming=True)
        for record in stream:
            if column not in record:
                raise FileFormatError(
                    f"{source.path}: records have no {column!r} column; available columns: "
                    f"{', '.join(sorted(record))} (choose one with --column)"
                )
            yield str(record[column] or "")
    except Nlp182Error:
        raise
    except (ValueError, OSError) as exc:
        raise FileFormatError(f"{source.path} could not be read as {fmt}: {exc}") from exc


def iter_token_lines(source: CorpusSource, tokenizer: WordTokenizer | None = None) -> Iterator[list[str]]:
    """Tokens of each non-empty line, long lines split into pieces of ``MAX_SENTENCE_TOKENS``."""
    tokenizer = tokenizer or default_tokenizer()
    for line in source.lines():
        tokens = tokenizer(line)
        for start in range(0, len(tokens), MAX_SENTENCE_TOKENS):
            yield tokens[start : start + MAX_SENTENCE_TOKENS]
