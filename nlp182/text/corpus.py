"""Corpus sources: where the text comes from, streamed so the corpus never has to fit in memory.

A source is any local plain-text file (one sentence or document per line; ``.gz``/``.bz2`` read
decompressed under ``nlp182.bounded``'s caps, lines longer than ``limits.max_line`` read in pieces
cut at word breaks, so a corpus of one huge line, as text8 is, trains in bounded memory) or local
text, JSON and Parquet files (``nlp182.text.records``, under the same limits). ``lines`` streams it
a line at a time (the gensim reference reads it so), ``blocks`` a few megabytes of
whole lines at a time (what the one-pass encoder in ``nlp182.text.encoded`` reads).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from nlp182.bounded import ReadLimits, compressed
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.io import check_input_file
from nlp182.text.records import TEXT_SNIFF_BYTES, json_records, parquet_records, text_problem, text_records
from nlp182.text.sentences import write_sentences
from nlp182.text.tokenize import WordTokenizer, tokenizer_for

SOURCE_FORMATS = ("auto", "plain", "text", "json", "parquet")
# gensim's trainer ignores words past this length of one sentence; we split instead of dropping.
MAX_SENTENCE_TOKENS = 10_000
_EXTENSION_FORMATS = {
    ".json": "json", ".jsonl": "json", ".ndjson": "json", ".jsonlines": "json", ".ldjson": "json",
    ".parquet": "parquet",
}
BLOCK_BYTES = 8 << 20
#: What the trainers read: a source, a path, or sentences in memory as lists of words.
CorpusLike = Union["CorpusSource", str, os.PathLike, Iterable[Sequence[str]]]


def as_source(source: CorpusLike) -> CorpusSource:
    """``source`` itself; a path (``str``/``Path``) read as a corpus in the ``auto`` format; or
    sentences in memory (any iterable of lists of words, gensim's ``sentences``), written to the
    cache by :func:`nlp182.text.sentences.write_sentences` and read back with the ``whitespace``
    rule, so every word trains as given.

    Raises:
        InvalidInputError: a sentence or word that cannot be read back as given.
        EmptyCorpusError: sentences without a word.
    """
    if isinstance(source, CorpusSource):
        return source
    if isinstance(source, str | bytes | os.PathLike) or not isinstance(source, Iterable):
        return CorpusSource(source)  # type: ignore[arg-type]  # refuses what is not a path
    return CorpusSource(str(write_sentences(source, MAX_SENTENCE_TOKENS)), "plain", tokens="whitespace")


def _is_glob(path: str) -> bool:
    return any(mark in path for mark in "*?[")


def _format_of(path: Path) -> str:
    """A file's format by its extension, past ``.gz``/``.bz2``: ``json``, ``parquet`` or ``plain``."""
    if compressed(path):
        path = path.with_suffix("")
    return _EXTENSION_FORMATS.get(path.suffix.lower(), "plain")


@dataclass(frozen=True)
class CorpusSource:
    """Where the text comes from.

    Args:
        path: a local file (or, for the ``text``/``json``/``parquet`` formats, a glob of local files).
        fmt: ``plain`` reads the lines of one file; ``text`` the lines of every file the glob names;
            ``json`` JSON Lines (or one JSON array) of records; ``parquet`` Parquet tables;
            ``auto`` chooses by extension (``.json``/``.jsonl``/``.ndjson``, ``.parquet``; plain
            otherwise), looking past ``.gz``/``.bz2``; a glob by the extension of the files it
            matches (``text`` for plain files; files of several formats are refused).
        column: the text column for json/parquet records.
        limits: the longest line read whole (a longer text line comes in pieces cut at word breaks,
            each a sentence; a longer JSON or Parquet record is skipped and counted), and the caps
            on decompressing ``.gz``/``.bz2`` files (and Parquet column chunks).
        tokens: how a line becomes words: ``words`` (lowercased runs of word characters,
            punctuation dropped) or ``whitespace`` (gensim's ``LineSentence``: the line split at
            whitespace, kept as written, for text the user has tokenized already).
    """

    path: str
    fmt: str = "auto"
    column: str = "text"
    limits: ReadLimits = field(default_factory=ReadLimits)
    tokens: str = "words"

    def __post_init__(self) -> None:
        tokenizer_for(self.tokens)  # an unknown rule is refused here, not after the encoding
        if not isinstance(self.path, str | os.PathLike):
            raise InvalidInputError(
                "a corpus is a local file path (or a glob), or for the trainers sentences as lists of "
                f"words, not {type(self.path).__name__}"
            )
        object.__setattr__(self, "path", os.fspath(self.path))  # a pathlib.Path is welcome too

    def tokenizer(self) -> WordTokenizer:
        """The tokenizer of the ``tokens`` rule."""
        return tokenizer_for(self.tokens)

    def resolved_format(self) -> str:
        """The format to read: ``fmt`` itself, or for ``auto`` the one the file name (or every file
        a glob matches) says, plain text when none does.

        Raises:
            InvalidInputError: an unknown format, or a glob matching files of several formats.
        """
        if self.fmt not in SOURCE_FORMATS:
            raise InvalidInputError(
                f"unknown corpus format {self.fmt!r}; use one of {', '.join(SOURCE_FORMATS)}"
            )
        if self.fmt != "auto":
            return self.fmt
        if not _is_glob(self.path) or Path(self.path).is_file():
            return _format_of(Path(self.path))
        formats = {_format_of(path) for path in self._matched()}  # 'shards/**/*.jsonl.gz': the files'
        if len(formats) > 1:
            raise InvalidInputError(
                f"corpus {self.path} matches files of several formats ({', '.join(sorted(formats))}); "
                "narrow the pattern to one, or pass --format"
            )
        found = formats.pop() if formats else "plain"
        return "text" if found == "plain" else found

    def _matched(self) -> list[Path]:
        """The files a glob names, sorted; ``**`` matches any depth of folders, as in a shell's
        globstar and Python's ``glob(recursive=True)``."""
        return sorted(Path(p) for p in glob.glob(self.path, recursive=True) if Path(p).is_file())

    def files(self) -> list[Path]:
        """The local files of the corpus, sorted.

        Raises:
            MissingFileError: no file is there.
        """
        if Path(self.path).is_dir():
            raise InvalidInputError(
                f"corpus {self.path} is a folder; name its files with a quoted glob (--corpus "
                f"'{Path(self.path) / '**' / '*.txt'}' reads every .txt file at any depth) or name one file"
            )
        if self.resolved_format() == "plain":
            prepared = Path(self.path).parts[-2:] == ("corpora", "wiki.txt")  # what `corpus prepare` writes
            missing = "; run `nlp182 corpus prepare` first?" if prepared else ""
            return [check_input_file(self.path, "corpus", missing_hint=missing)]
        if not _is_glob(self.path) or Path(self.path).is_file():  # one file named
            return [check_input_file(self.path, "corpus")]
        found = self._matched()
        if not found:
            raise MissingFileError(f"corpus {self.path} matches no local file")
        return found

    def check_text(self) -> None:
        """Refuse a plain or text corpus whose first MiB (decompressed), or the last MiB of an
        uncompressed file, is not UTF-8 text.

        NUL bytes mean a binary file or UTF-16 text; bytes that do not decode mean another encoding
        (Latin-1, cp1252). Either would otherwise train on fragments of words without a word of
        warning. The end is looked at too because corpora are often files joined one after another,
        one of them in another encoding. The rest is decoded leniently: a rare bad byte becomes U+FFFD.

        Raises:
            FileFormatError: naming the file, the line and how to convert it.
        """
        if self.resolved_format() not in ("plain", "text"):
            return
        for path in self.files():
            with self.limits.open(path) as handle:
                problem = text_problem(handle.read(TEXT_SNIFF_BYTES))
                if problem:
                    raise FileFormatError(f"corpus {path}: {problem}")
                size = path.stat().st_size
                if compressed(path) or size <= TEXT_SNIFF_BYTES:
                    continue
                start = max(TEXT_SNIFF_BYTES, size - TEXT_SNIFF_BYTES)
                handle.seek(start)
                tail = handle.read(TEXT_SNIFF_BYTES)
                skipped = tail.find(b"\n") + 1  # from the first whole line on
                problem = text_problem(tail[skipped:])
            if problem:
                raise FileFormatError(
                    f"corpus {path}: from byte {start + skipped:,} on (its last MiB, lines counted from "
                    f"there) {problem}"
                )

    def size_bytes(self) -> int:
        """Total bytes of the corpus files on disk."""
        return sum(path.stat().st_size for path in self.files())

    def progress_total(self) -> int | None:
        """The bytes that reading the corpus counts, when the files on disk tell it: plain text that
        is not compressed (compressed text counts its decompressed bytes, records their text)."""
        if self.resolved_format() not in ("plain", "text") or any(compressed(path) for path in self.files()):
            return None
        return self.size_bytes()

    def compressed(self) -> bool:
        """Whether the corpus is a ``.gz``/``.bz2`` plain file (read decompressed, in one stream)."""
        return self.resolved_format() == "plain" and compressed(self.path)

    def lines(self) -> Iterator[str]:
        """Stream the text of the corpus, one line (sentence or document) at a time; a text file's
        lines end at ``\n``, and one longer than ``limits.max_line`` comes in pieces cut at word
        breaks (one log line)."""
        fmt = self.resolved_format()
        files = self.files()
        if fmt in ("plain", "text"):  # one file, or every file a glob names
            yield from text_records(files, self.limits)
        elif fmt == "json":
            yield from json_records(files, self.column, self.limits)
        else:
            yield from parquet_records(files, self.column, self.limits)

    def byte_blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, int, bytes]]:
        """A plain file's whole lines about ``block_bytes`` at a time, as ``LineBlocks`` yields them
        (``(start, end, data)``, overlong lines in pieces cut at word breaks), then one log line if
        any was cut."""
        path = self.files()[0]
        with self.limits.open(path) as handle:
            blocks = self.limits.blocks(handle, path, block_bytes, on_long="split")
            yield from blocks
            blocks.warn_skipped(lambda: self.limits.open(path))

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        """Whole lines, about ``block_bytes`` at a time, each block ending with a line break;
        yields ``(text, bytes of the files this block stands for)``. Plain files are read in
        binary and cut at the last line break of each read (lines end at ``\n`` only; overlong lines
        come in pieces: ``byte_blocks``); other
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
            held += len(line.encode("utf-8", "surrogatepass")) + 1  # bytes, as the progress total counts
            if held >= block_bytes:
                yield "\n".join(lines) + "\n", held
                lines, held = [], 0
        if lines:
            yield "\n".join(lines) + "\n", held


def iter_token_lines(source: CorpusSource, tokenizer: WordTokenizer | None = None) -> Iterator[list[str]]:
    """Tokens of each non-empty line (by ``source.tokenizer()`` unless ``tokenizer`` is given),
    long lines split into pieces of ``MAX_SENTENCE_TOKENS``."""
    tokenizer = tokenizer or source.tokenizer()
    for line in source.lines():
        tokens = tokenizer(line)
        for start in range(0, len(tokens), MAX_SENTENCE_TOKENS):
            yield tokens[start : start + MAX_SENTENCE_TOKENS]
