"""``nlp182 corpus prepare --wiki``: a Wikipedia ``pages-articles`` dump to a corpus file.

The dump streams through ``nlp182.bounded`` (bz2 decompressed under a ratio and a total cap) and
is cut into ``<page>`` elements line by line: a page longer than ``max_article`` bytes (10 MiB by
default; the longest English article is about 1.5 MB of wikitext) is skipped and counted, and
anything between pages is dropped, so gensim's ``extract_pages`` (an ``iterparse`` that would
hold a 2 GiB ``<text>`` whole) only ever sees one bounded page at a time. A file that does not
start as a MediaWiki XML export, or that declares XML entities (the "billion laughs"), is refused
at once.

gensim's ``process_article`` strips the wiki markup in ``processes`` worker processes (the
expensive part) while a thread reads and parses the next group of pages (``read_ahead``, as
gensim's ``WikiCorpus`` does with ``chunkize``); its tokenizer hook runs our tokenizer there, so
our tokenizer decides what a word is, as for every other corpus (one article per line, normalised
tokens joined by spaces). Articles shorter than ``min_tokens`` whitespace-separated words
(redirect stubs, lists) and pages outside the main namespace are left out, as gensim's
``WikiCorpus`` does.
"""

from __future__ import annotations

import functools
import io
import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeVar
from xml.etree.ElementTree import ParseError

from nlp182.bounded import BoundedLines, ReadLimits, mib
from nlp182.corpora.text import WrittenCorpus, write_corpus
from nlp182.errors import FileFormatError, Nlp182Error
from nlp182.io import check_input_file
from nlp182.signals import children_die_with_us
from nlp182.text.tokenize import WhitespaceTokenizer, WordTokenizer, default_tokenizer

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Longest page (its XML, wikitext included) kept by default.
MAX_ARTICLE_BYTES = 10 << 20
#: Pages handed to the workers at once: at most this many bytes of page text.
BATCH_BYTES = 32 << 20
_XML_STARTS = (b"<?xml", b"<mediawiki")


def _article_words(text: str, min_words: int, token_max_len: int, lower: bool) -> list[str]:
    """gensim's tokenizer hook, run in the worker processes: our tokenizer's words of the
    markup-free text, or none for an article of fewer than ``min_words`` whitespace-separated words
    (gensim passes ``token_min_len``, which carries ``min_words`` here). Tokenizing in the workers
    keeps the reading process to reading: with many cores it is the one that sets the pace."""
    if len(text.split()) < min_words:
        return []
    return _worker_tokenizer()(text)


@functools.lru_cache(maxsize=1)
def _worker_tokenizer() -> WordTokenizer:
    return default_tokenizer()


class _PageStream(io.RawIOBase):
    """The dump's XML reduced to its header, its pages of at most ``max_bytes`` and a closing tag.

    Reads ``handle`` once; holds at most one page (``max_bytes``) plus one line. ``skipped`` lists
    the (1-based) numbers of the pages left out for their size.
    """

    def __init__(self, handle: io.BufferedIOBase, name: str, max_bytes: int) -> None:
        self.lines = BoundedLines(handle, max_bytes, name, flag="--max-article-bytes")  # type: ignore[arg-type]
        self.name, self.max_bytes = name, max_bytes
        self.skipped: list[int] = []
        self.pages = 0
        self._chunks = self._generate()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _header(self) -> tuple[bytes, bytes | None]:
        """The lines before the first ``<page>`` (at most ``max_bytes`` of them) and that line."""
        parts: list[bytes] = []
        size, started = 0, False
        for _, line in self.lines:
            stripped = line.strip()
            if not started and stripped:
                if not stripped.startswith(_XML_STARTS):
                    raise FileFormatError(
                        f"{self.name} is not a MediaWiki XML dump: it starts with {stripped[:40]!r}, "
                        "not <mediawiki"
                    )
                started = True
            if b"<!DOCTYPE" in line or b"<!ENTITY" in line:
                raise FileFormatError(
                    f"{self.name}: declares XML entities (<!DOCTYPE/<!ENTITY), which no MediaWiki dump does; "
                    "refused"
                )
            if stripped.startswith(b"<page>"):
                return b"".join(parts), line
            size += len(line) + 1
            if size > self.max_bytes or self.lines.skipped:
                raise FileFormatError(
                    f"{self.name}: no <page> in its first {mib(self.max_bytes)}; is it a pages-articles dump?"
                )
            parts.append(line + b"\n")
        if not started:
            raise FileFormatError(f"{self.name} is empty; expected a MediaWiki XML dump")
        return b"".join(parts), None

    def _generate(self) -> Iterator[bytes]:
        header, opening = self._header()
        yield header
        in_page = opening is not None
        page, size = [(opening or b"") + b"\n"], len(opening or b"") + 1
        oversized, skipped_lines = False, len(self.lines.skipped)
        for _, line in self.lines:
            stripped = line.strip()
            if not in_page:
                if stripped.startswith(b"<page>"):
                    in_page, page, size, oversized = True, [line + b"\n"], len(line) + 1, False
                    skipped_lines = len(self.lines.skipped)
                continue
            size += len(line) + 1
            if len(self.lines.skipped) != skipped_lines or size > self.max_bytes:
                oversized, page = True, []
            elif not oversized:
                page.append(line + b"\n")
            if stripped.startswith(b"</page>"):
                in_page = False
                self.pages += 1
                if oversized:
                    self.skipped.append(self.pages)
                else:
                    yield b"".join(page)
        if in_page:  # the text ran out in the middle of a page: the dump was cut short
            log.warning("%s: ends inside page %d, which is left out: the dump is truncated (an interrupted "
                        "download?)", self.name, self.pages + 1)
        yield b"</mediawiki>\n"


def _pages(stream: _PageStream) -> Iterator[tuple[str, str]]:
    """``(title, text)`` of each main-namespace page, parsed by gensim's ``extract_pages``."""
    from gensim.corpora.wikicorpus import extract_pages

    try:
        for title, text, _ in extract_pages(io.BufferedReader(stream), filter_namespaces=("0",)):
            yield title or "", text
    except Nlp182Error:
        raise
    except (ParseError, ValueError, AttributeError) as exc:
        where = f"near page {stream.pages + 1}"
        raise FileFormatError(f"{stream.name}: not a well-formed MediaWiki dump {where}: {exc}") from None


def _batches(
    pages: Iterator[tuple[str, str]], count: int, min_words: int
) -> Iterator[list[tuple[str, str, str, tuple]]]:
    """Groups of at most ``count`` pages and ``BATCH_BYTES`` of text, in gensim's worker format."""
    params = (_article_words, min_words, 0, False)
    group: list[tuple[str, str, str, tuple]] = []
    size = 0
    for title, text in pages:
        group.append((text, title, "", params))
        size += len(text)
        if len(group) >= count or size >= BATCH_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items`` in order, up to ``depth`` of them produced ahead by a thread while the
    caller works on the current one: the next group of pages is read and parsed while the workers
    strip the markup of this one. An error raised by ``items`` is raised here, after the items
    before it; closing this generator stops the thread after the item it is producing."""
    ready: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                ready.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as exc:  # handed to the caller's thread, raised there
            put("error", exc)

    thread = threading.Thread(target=produce, name="wiki-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def wiki_texts(
    dump: str | os.PathLike[str], processes: int, min_tokens: int, limits: ReadLimits
) -> Iterator[str]:
    """The words of each article of ``dump`` with at least ``min_tokens`` words (whitespace-separated,
    markup stripped), tokenized as every corpus is and joined by spaces."""
    from gensim.corpora.wikicorpus import IGNORED_NAMESPACES, _process_article, init_to_ignore_interrupt

    with limits.open(dump) as handle:
        stream = _PageStream(handle, str(dump), limits.max_line)  # type: ignore[arg-type]
        with children_die_with_us(), multiprocessing.Pool(processes, init_to_ignore_interrupt) as pool:
            for group in read_ahead(_batches(_pages(stream), 10 * processes, min_tokens)):
                for tokens, title, _ in pool.imap(_process_article, group):
                    if tokens and not any(
                        title.startswith(f"{ignore}:") for ignore in IGNORED_NAMESPACES
                    ):
                        yield " ".join(tokens)
    if stream.skipped:
        count = len(stream.skipped)
        log.warning("%s: skipped %d page%s longer than %s (first: page %d); pass --max-article-bytes "
                    "to keep them", dump, count, "" if count == 1 else "s", mib(limits.max_line),
                    stream.skipped[0])


def prepare_wiki(
    dump: str | os.PathLike[str],
    out: str | os.PathLike[str],
    processes: int | None = None,
    min_tokens: int = 50,
    limits: ReadLimits | None = None,
) -> WrittenCorpus:
    """Write every article of ``dump`` with at least ``min_tokens`` words to ``out``.

    ``limits.max_line`` is the longest page in bytes (default ``MAX_ARTICLE_BYTES``); the ratio and
    total caps bound the bz2 stream. A dump with no article to write is an ``EmptyCorpusError``.
    """
    check_input_file(dump, "Wikipedia dump")
    limits = limits or replace(ReadLimits(), max_line=MAX_ARTICLE_BYTES)
    workers = processes or max(1, (os.cpu_count() or 2) - 1)
    articles = wiki_texts(dump, workers, min_tokens, limits)  # tokenized by the workers already
    return write_corpus(articles, out, tokenizer=WhitespaceTokenizer(), require_lines=True)
