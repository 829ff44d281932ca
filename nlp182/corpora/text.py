"""Turn documents into a corpus file: one paragraph per line, normalised tokens joined by spaces.

Writing the tokens (not the raw text) makes the file mean the same to every reader: our
tokenizer gives back exactly these tokens, and gensim's ``LineSentence``/``corpus_file`` (which
split on whitespace) see the same ones, so a benchmark compares trainers, not tokenizers.
Used by ``nlp182 corpus prepare --text`` and by the recipes in this folder.

User files stream through ``nlp182.bounded``: a line longer than ``ReadLimits.max_line`` (1 MiB by
default) is skipped and counted, a paragraph grows to at most that many characters before it is
written as a line of its own, and a file whose first block holds NUL bytes is binary, not text,
and is skipped with a warning. So memory is set by the bound, never by the file: a 10 GB file
without a newline is read once and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nlp182.bounded import MAX_LINE_BYTES, ReadLimits
from nlp182.errors import EmptyCorpusError, FileFormatError
from nlp182.io import atomic_open, check_input_file
from nlp182.progress import progress
from nlp182.text.records import TEXT_SNIFF_BYTES, text_problem, text_records
from nlp182.text.tokenize import WordTokenizer, default_tokenizer

log = logging.getLogger(__name__)
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst", ".pod", ".info", "")
#: Endings of compressed files, read decompressed.
COMPRESSED_SUFFIXES = (".gz", ".bz2")


@dataclass(frozen=True)
class WrittenCorpus:
    """What ``write_corpus`` wrote."""

    path: Path
    lines: int
    tokens: int
    sha256: str


def read_text(path: Path) -> str:
    """A whole file's text (``.gz``/``.dz`` decompressed under the default caps), undecodable bytes
    replaced: for the recipes' own files, whose size is known."""
    with ReadLimits().open(path) as handle:
        return handle.read().decode("utf-8", errors="replace")


def paragraphs(
    text: str | Iterable[str], max_bytes: int = MAX_LINE_BYTES, unwrapped: int | None = None
) -> Iterator[str]:
    """Blocks of non-blank lines (of ``text``, or of the lines it yields), each joined into one line.

    A block is cut before the line that would take it past ``max_bytes`` UTF-8 bytes, so every
    paragraph written stays within the line bound that training reads with (a longer one would be
    skipped there); a single line is never longer, as the readers skip such lines. With
    ``unwrapped``, a line of more characters than that is a paragraph of its own: text wrapped by
    hand keeps its lines short, and a file of one paragraph a line (no blank line between them)
    was joined into lines of a megabyte.
    """
    lines = text.split("\n") if isinstance(text, str) else text
    block: list[str] = []
    size = 0
    for line in lines:
        words = line.split()
        if not words:
            if block:
                yield " ".join(block)
                block, size = [], 0
            continue
        piece = " ".join(words)
        if unwrapped is not None and len(piece) > unwrapped:
            if block:
                yield " ".join(block)
                block, size = [], 0
            yield piece
            continue
        piece_bytes = len(piece.encode("utf-8")) + 1  # and the space (or line end) after it
        if block and size + piece_bytes > max_bytes:
            yield " ".join(block)
            block, size = [], 0
        block.append(piece)
        size += piece_bytes
    if block:
        yield " ".join(block)


def text_problem_of(path: Path, limits: ReadLimits) -> str | None:
    """What makes ``path`` no UTF-8 text, judged on its first MiB (decompressed) as a training
    corpus is (a binary file, UTF-16, Latin-1 on line after line), or None."""
    with limits.open(path) as handle:
        return text_problem(handle.read(TEXT_SNIFF_BYTES))


#: Characters past which a line of a user's file is not hand-wrapped text but a paragraph itself.
WRAPPED_WIDTH = 120


def file_paragraphs(path: Path, limits: ReadLimits) -> Iterator[str]:
    """The paragraphs of one file, streamed under ``limits`` (a long line read in pieces cut at
    spaces, as every corpus reader reads it): blocks of short lines between blank lines, and each
    line over :data:`WRAPPED_WIDTH` characters on its own."""
    yield from paragraphs(text_records([path], limits), unwrapped=WRAPPED_WIDTH)


def _is_text_name(name: str) -> bool:
    """Whether a file name ends as a plain-text file does (``TEXT_SUFFIXES``, then optionally
    ``.gz`` or ``.bz2``, which are read decompressed)."""
    for packed in COMPRESSED_SUFFIXES:
        name = name.removesuffix(packed)
    return Path(name).suffix in TEXT_SUFFIXES


def text_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files named, and the plain-text files (by suffix, optionally ``.gz`` or ``.bz2``) under
    the folders named, sorted so that the corpus is the same on every run. How many files of a
    folder are read and how many are not is logged; a folder with no text file at all is refused,
    naming the suffixes read (it was reported as a corpus left empty by its warnings)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            texts = [p for p in files if _is_text_name(p.name)]
            others = [p for p in files if not _is_text_name(p.name)]
            log.info("%s: %d text file%s read, %d other file%s left out%s", path, len(texts),
                     "" if len(texts) == 1 else "s", len(others), "" if len(others) == 1 else "s",
                     f" (e.g. {others[0].name})" if others else "")
            if not texts:
                raise EmptyCorpusError(
                    f"{path} holds no text file ({len(others)} other file{'' if len(others) == 1 else 's'}"
                    f"{f', e.g. {others[0].name}' if others else ''}): a folder's files are read when "
                    f"their names end in {', '.join(s for s in TEXT_SUFFIXES if s)} or have no suffix, "
                    "optionally followed by .gz or .bz2; name other files one by one to read them"
                )
            found += texts
        else:
            check_input_file(path)  # raises: missing, or not a regular file (a device, a pipe)
    return found


def write_corpus(
    paragraph_stream: Iterable[str],
    out: str | os.PathLike[str],
    tokenizer: WordTokenizer | None = None,
    min_tokens: int = 1,
    require_lines: bool = False,
) -> WrittenCorpus:
    """Tokenize each paragraph and write it as one line (atomically); paragraphs with fewer than
    ``min_tokens`` tokens are left out. Returns the line and token counts and the checksum.

    With ``require_lines``, writing no line at all is an ``EmptyCorpusError`` (``out`` is left as
    it was)."""
    tokenizer = tokenizer or default_tokenizer()
    digest = hashlib.sha256()
    lines = tokens = 0
    with atomic_open(out, "w") as handle, progress(desc="writing corpus", unit="tok", unit_scale=True) as bar:
        for paragraph in paragraph_stream:
            words = tokenizer(paragraph)
            if len(words) < min_tokens:
                continue
            line = " ".join(words) + "\n"
            handle.write(line)
            digest.update(line.encode("utf-8"))
            lines += 1
            tokens += len(words)
            bar.update(len(words))
        if require_lines and not lines:
            raise EmptyCorpusError(
                f"nothing to write to {out}: no paragraph or article was left (empty, too short, binary or "
                "too long; see the warnings above)"
            )
    os.chmod(out, 0o644)
    return WrittenCorpus(Path(out), lines, tokens, digest.hexdigest())


def prepare_text(
    paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], limits: ReadLimits | None = None
) -> WrittenCorpus:
    """``corpus prepare --text``: every paragraph of the plain-text files under ``paths``.

    Files that are not UTF-8 text (binary, UTF-16, Latin-1: what ``train`` refuses as a corpus) are
    skipped with a warning naming the first and how to convert it, and refused when no file is
    left; a corpus with no line at all is refused (``EmptyCorpusError``). ``out`` is then not written.
    """
    limits = limits or ReadLimits()
    files = text_files(paths)
    problems = {path: problem for path in files if (problem := text_problem_of(path, limits))}
    if problems:
        first, problem = next(iter(problems.items()))
        if len(problems) == len(files):
            others = f" (as {len(files) - 1} more of the files named)" if len(files) > 1 else ""
            raise FileFormatError(f"{first}: {problem}{others}")
        log.warning("skipped %d file%s not UTF-8 text, e.g. %s: %s", len(problems),
                    " that is" if len(problems) == 1 else "s that are", first, problem)
    texts = [path for path in files if path not in problems]
    stream = (p for path in texts for p in file_paragraphs(path, limits))
    return write_corpus(stream, out, require_lines=True)
