"""Turn documents into a corpus file: one paragraph per line, normalised tokens joined by spaces.

Writing the tokens (not the raw text) makes the file mean the same to every reader: our
tokenizer gives back exactly these tokens, and gensim's ``LineSentence``/``corpus_file`` (which
split on whitespace) see the same ones, so a benchmark compares trainers, not tokenizers.
Used by ``nlp182 corpus prepare --text`` and by the recipes in this folder.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nlp182.io import atomic_open, check_input_file
from nlp182.progress import progress
from nlp182.text.tokenize import WordTokenizer, default_tokenizer

_BLANK_LINES = re.compile(r"\n\s*\n")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst", ".pod", ".info", "")


@dataclass(frozen=True)
class WrittenCorpus:
    """What ``write_corpus`` wrote."""

    path: Path
    lines: int
    tokens: int
    sha256: str


def read_text(path: Path) -> str:
    """A file's text (gzip-compressed ones, ``.gz``/``.dz``, are decompressed), undecodable bytes
    replaced."""
    if path.suffix in (".gz", ".dz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8", errors="replace")


def paragraphs(text: str) -> Iterator[str]:
    """Blocks of non-blank lines, each joined into one line."""
    for block in _BLANK_LINES.split(text):
        joined = " ".join(block.split())
        if joined:
            yield joined


def text_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files named, and the plain-text files (by suffix, optionally ``.gz``) under the folders
    named, sorted so that the corpus is the same on every run."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and Path(p.name.removesuffix(".gz")).suffix in TEXT_SUFFIXES
            )
        else:
            check_input_file(path)  # raises: missing, or not a regular file (a device, a pipe)
    return found


def write_corpus(
    paragraph_stream: Iterable[str],
    out: str | os.PathLike[str],
    tokenizer: WordTokenizer | None = None,
    min_tokens: int = 1,
) -> WrittenCorpus:
    """Tokenize each paragraph and write it as one line (atomically); paragraphs with fewer than
    ``min_tokens`` tokens are left out. Returns the line and token counts and the checksum."""
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
    os.chmod(out, 0o644)
    return WrittenCorpus(Path(out), lines, tokens, digest.hexdigest())


def prepare_text(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]) -> WrittenCorpus:
    """``corpus prepare --text``: every paragraph of the plain-text files under ``paths``."""
    files = text_files(paths)
    return write_corpus((p for path in files for p in paragraphs(read_text(path))), out)
