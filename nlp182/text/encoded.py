"""Encode a corpus once: vocabulary counts and a compact token file, cached by content.

One pass over the text tokenizes blocks of megabytes and gives every new word the next id in order
of first appearance (the C word scanner, ``wordscan``, with ``WordTokenizer``'s rules; the Python
tokenizer where it does not build, and for non-ASCII lines, a large plain file's in several
processes at once), counts the words, and appends the ids to a ``uint32`` token file; line ends
become sentence boundaries (offsets, one ``int64`` per sentence, lines longer than
``MAX_SENTENCE_TOKENS`` cut into pieces). A plain file is read in blocks of whole lines by
``nlp182.bounded.LineBlocks``: a line longer than the source's ``max_line`` (1 MiB by default) is
read in pieces cut at word breaks, each piece a sentence (text8 is one 100 MB line), so what is
held is one block and one bound, never one line of the file.
The folder is keyed by the SHA-256 of the corpus files,
the tokenizer's rules and this format's version, under ``$NLP182_CACHE/corpora`` (default
``~/.cache/nlp182``): later ``train w2v`` / ``train lsa`` runs on the same text skip reading it.
Any vocabulary cut (``min_count``, ``max_vocab``) is a remapping of the ids, so one encoding
serves them all.

Readers take the token file in bounded pieces with ``numpy.fromfile`` (not a memory map, whose
pages would count towards the process's resident memory as it is read), so training holds
O(vocabulary x dim) plus one chunk, never the corpus.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import signal
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import regex

from nlp182 import io
from nlp182.bounded import MAX_LINE_BYTES, ReadLimits, mib
from nlp182.errors import EmptyCorpusError, FileFormatError
from nlp182.io import atomic_save_npy, atomic_write_json, remove_dead_leftovers, staged_entry
from nlp182.progress import progress
from nlp182.signals import children_die_with_us
from nlp182.text import wordscan
from nlp182.text.corpus import BLOCK_BYTES, MAX_SENTENCE_TOKENS, CorpusSource
from nlp182.text.tokenize import LINE_BREAK, WordTokenizer
from nlp182.text.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)

#: Bump when the files below change meaning.
FORMAT_VERSION = 2  # 2: overlong lines come in pieces cut at spaces
#: Every file of a finished entry.
ENTRY_FILES = TOKENS_FILE, WORDS_FILE, COUNTS_FILE, STARTS_FILE, META_FILE = (
    "tokens.u32", "words.txt", "counts.npy", "starts.npy", "meta.json",
)  # fmt: skip
_HASH_BLOCK = 8 << 20
#: Plain files from this size are tokenized by several processes (below it, starting them costs
#: more than it saves).
PARALLEL_MIN_BYTES = 32 << 20
MAX_PROCESSES = 8


def cache_folder() -> Path:
    """Where encoded corpora are kept: ``$NLP182_CACHE/corpora`` (default ``~/.cache/nlp182``)."""
    return io.cache_folder() / "corpora"


def content_key(source: CorpusSource, tokenizer: WordTokenizer) -> str:
    """SHA-256 of the corpus files' bytes (and, for several files, where each ends), the tokenizer's
    rules and the encoding's version."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{tokenizer.signature}|".encode())
    fmt = source.resolved_format()
    if fmt != "plain":
        digest.update(f"{fmt}|{source.column}|".encode())
    if source.compressed():
        digest.update(b"decompressed|")
    if source.limits.max_line != MAX_LINE_BYTES:  # lines kept differ; the default keeps older keys
        digest.update(f"max_line={source.limits.max_line}|".encode())
    files = source.files()
    for path in files:
        read = 0
        with path.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
                read += len(block)
        if len(files) > 1:  # where a file ends is a line end: shards cut elsewhere are other text
            digest.update(f"|end of a file of {read} bytes|".encode())
    return digest.hexdigest()[:32]


@dataclass
class EncodedText:
    """An encoded corpus folder.

    Attributes:
        folder: where the files are.
        counts: ``(T,)`` occurrences of each word, in order of first appearance (token ids
            index it).
        starts: ``(S + 1,)`` sentence boundaries in the token file (``starts[-1]`` = all tokens).

    The token file is opened once, when the folder is loaded, and read through that descriptor:
    an entry removed from the cache meanwhile (``nlp182 cache --clear``) stays readable to a
    training that had started on it, where reopening it by name for every chunk failed.
    """

    folder: Path
    counts: np.ndarray
    starts: np.ndarray
    tokens_fd: int = field(repr=False, compare=False)

    @property
    def total_tokens(self) -> int:
        """Tokens in the token file, all sentences together (``starts[-1]``)."""
        return int(self.starts[-1])

    @classmethod
    def load(cls, folder: Path) -> EncodedText:
        """The encoded corpus saved in ``folder``: its counts and sentence starts read, its token
        file opened for reading in chunks.

        Raises:
            FileFormatError: files missing, unreadable, of another format version or not matching
                each other (a cache entry to rebuild).
        """
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            counts = np.load(folder / COUNTS_FILE, allow_pickle=False)
            starts = np.load(folder / STARTS_FILE, allow_pickle=False)
            consistent = meta["version"] == FORMAT_VERSION and meta["distinct"] == len(counts)
        except (OSError, ValueError, KeyError) as exc:
            raise FileFormatError(
                f"encoded corpus {folder} is unreadable ({exc}); delete it to re-encode"
            ) from exc
        if not consistent or not (folder / WORDS_FILE).is_file():
            raise FileFormatError(f"encoded corpus {folder} is inconsistent; delete it to re-encode")
        try:
            fd = os.open(folder / TOKENS_FILE, os.O_RDONLY)
        except OSError as exc:
            raise FileFormatError(f"encoded corpus {folder} is unreadable ({exc}); delete it to "
                                  "re-encode") from exc
        text = cls(folder, counts, starts, fd)
        weakref.finalize(text, os.close, fd)
        return text

    @functools.cached_property
    def words(self) -> list[str]:
        """Every distinct token in order of first appearance (a corpus's types can outnumber
        its vocabulary fivefold, so ``vocabulary`` reads only the words it keeps)."""
        return self.words_at(np.arange(len(self.counts)))

    def words_at(self, positions: np.ndarray) -> list[str]:
        """The words at ``(K,)`` ``positions`` of the word list, read from the words file."""
        data = (self.folder / WORDS_FILE).read_bytes()
        breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        if len(breaks) != len(self.counts) - 1 and len(self.counts) > 0:
            raise FileFormatError(f"encoded corpus {self.folder} is inconsistent; delete it to re-encode")
        firsts, ends = np.r_[0, breaks + 1], np.r_[breaks, len(data)]
        return [data[firsts[i] : ends[i]].decode("utf-8") for i in np.asarray(positions).tolist()]

    def read(self, start: int, stop: int) -> np.ndarray:
        """``(stop - start,)`` uint32 token ids ``[start, stop)`` of the token file."""
        tokens = np.empty(stop - start, dtype=np.uint32)
        done = 0
        while done < tokens.nbytes:  # pread may return less than asked; threads may read at once
            got = os.preadv(self.tokens_fd, [memoryview(tokens).cast("B")[done:]], 4 * start + done)
            if got == 0:
                raise FileFormatError(f"encoded corpus {self.folder} is shorter than its counts; delete it "
                                      "to re-encode")
            done += got
        return tokens

    def vocabulary(self, config: VocabConfig) -> tuple[Vocabulary, np.ndarray]:
        """The vocabulary cut by ``config`` and the ``(T,)`` int32 map from token ids to its ids
        (-1 for words left out)."""
        order = Vocabulary.cut(self.counts, self.total_tokens, config)
        vocab = Vocabulary(self.words_at(order), self.counts[order], self.total_tokens)
        remap = np.full(len(self.counts), -1, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return vocab, remap


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an ascending array, in one linear pass (``np.unique`` hashes: 0.5 s for a
    20M-token corpus's boundaries)."""
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _sentence_starts(line_ends: list[np.ndarray], total: int) -> np.ndarray:
    """Sentence boundaries from the token position of every line end: empty lines dropped, lines
    longer than ``MAX_SENTENCE_TOKENS`` cut into pieces of that size."""
    bounds = _sorted_unique(np.concatenate([np.zeros(1, np.int64), *line_ends, np.array([total])]))
    lengths = np.diff(bounds)
    pieces = [np.arange(bounds[i] + MAX_SENTENCE_TOKENS, bounds[i + 1], MAX_SENTENCE_TOKENS)
              for i in np.flatnonzero(lengths > MAX_SENTENCE_TOKENS)]  # fmt: skip
    return _sorted_unique(np.sort(np.concatenate([bounds, *pieces]))) if pieces else bounds


def _number(tokens: list, line_break: str | bytes) -> tuple[list, np.ndarray]:
    """One piece of the corpus: its words in order of first appearance and its ``(N,)`` uint32
    tokens as ids into that list plus one (0 marks a line end)."""
    index: defaultdict = defaultdict(itertools.count().__next__)
    index[line_break]  # id 0
    ids = np.fromiter(map(index.__getitem__, tokens), dtype=np.uint32, count=len(tokens))
    return list(index)[1:], ids


def _tokenize(text: str | bytes, tokenizer: WordTokenizer) -> tuple[list[str], np.ndarray]:
    """``_number`` of the tokens of ``text`` (whole lines; bytes are UTF-8) in Python: ASCII text
    is scanned as bytes by the tokenizer's pattern (``WordTokenizer.block_ascii``: the same tokens,
    a quarter faster), other text as ``str``."""
    if text.isascii():
        data = text if isinstance(text, bytes) else text.encode("ascii")
        words, ids = _number(tokenizer.block_ascii(data), LINE_BREAK.encode())
        return [word.decode("ascii") for word in words], ids
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return _number(tokenizer.block(text), LINE_BREAK)


def _read_range(path: str | Path, start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of a file (whole lines), ending with a line break."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    return data if data.endswith(b"\n") else data + b"\n"


def _tokenize_range(job: tuple[str, int, int, WordTokenizer]) -> tuple[list[str], np.ndarray, int]:
    """``_tokenize`` of the bytes ``[start, end)`` of a plain file, and their count (run in a
    worker process)."""
    path, start, end, tokenizer = job
    return (*_tokenize(_read_range(path, start, end), tokenizer), end - start)


def _non_ascii_of_range(job: tuple[str, int, int, WordTokenizer]) -> wordscan.NonAsciiLines:
    """``wordscan.non_ascii_lines`` of the bytes ``[start, end)`` of a plain file (run in a
    worker process: the Python part of the scanner's work)."""
    path, start, end, tokenizer = job
    return wordscan.non_ascii_lines(_read_range(path, start, end), tokenizer)


def _line_ranges(path: Path, piece_bytes: int, limits: ReadLimits | None = None) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of about ``piece_bytes`` of whole lines of a plain file (so no
    word, and no UTF-8 character, is cut), a line longer than ``limits.max_line`` as the ranges of
    its pieces (one bounded pass over the file: ``LineBlocks``; default limits: ``ReadLimits()``)."""
    with path.open("rb") as handle:
        blocks = (limits or ReadLimits()).blocks(handle, path, piece_bytes, on_long="split")
        ranges = [(start, end) for start, end, _ in blocks]
    blocks.warn_skipped(lambda: path.open("rb"))
    return ranges


class _Numbering:
    """Numbers over the whole corpus for pieces numbered each on its own (the Python path): a
    piece's new words follow the earlier pieces' words, in the piece's order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, local_words: list[str], local_ids: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The piece's words not seen before, in order, and its tokens renumbered (1-based over
        the corpus, 0 still a line end)."""
        new = [word for word in local_words if word not in self.index]
        self.index.update(zip(new, range(len(self.index) + 1, len(self.index) + 1 + len(new)), strict=True))
        to_global = np.zeros(len(local_words) + 1, dtype=np.uint32)
        to_global[1:] = np.fromiter(map(self.index.__getitem__, local_words), np.uint32, len(local_words))
        return new, to_global[local_ids]


def _utf8_blocks(source: CorpusSource) -> Iterator[tuple[bytes, int]]:
    """``source.blocks()`` (any format) as UTF-8."""
    for text, size in source.blocks():
        yield text.encode("utf-8", errors="surrogatepass"), size


@contextlib.contextmanager
def _pieces(
    source: CorpusSource, tokenizer: WordTokenizer, processes: int
) -> Iterator[Iterator[tuple[list[str], np.ndarray, int]]]:
    """The corpus as pieces in corpus order: ``(words first seen in it, its (N,) uint32 tokens as
    1-based word numbers over the corpus with 0 at each line end, bytes it stands for)``.

    Where the C word scanner builds, one table numbers every piece in this process (faster than
    merging per-piece numbers), and forked workers only tokenize the lines with non-ASCII bytes.
    Else the workers tokenize whole pieces and this process merges their numbers. Workers (as
    PyTorch's DataLoader forks them: they run only the tokenizer and NumPy) serve a plain file of
    at least ``PARALLEL_MIN_BYTES`` (not compressed), cut at line starts, where the platform can
    fork; anything else is read block by block in this process. Either way a line longer than
    ``source.limits.max_line`` comes in pieces cut at word breaks (``LineBlocks``), with one log
    line."""
    plain = source.resolved_format() == "plain"
    parallel = (
        processes > 1
        and plain
        and not source.compressed()
        and "fork" in multiprocessing.get_all_start_methods()
        and source.size_bytes() >= PARALLEL_MIN_BYTES
    )
    path = source.files()[0]
    ranges = _line_ranges(path, BLOCK_BYTES, source.limits) if parallel else []
    jobs = [(str(path), start, end, tokenizer) for start, end in ranges]
    blocks = ((data, end - start) for start, end, data in source.byte_blocks(BLOCK_BYTES)) if plain else None
    with contextlib.ExitStack() as stack:
        if parallel:
            pool = stack.enter_context(_worker_pool(processes))
        if wordscan.available():
            scanner = stack.enter_context(wordscan.Scanner(tokenizer))
            if parallel:
                lines = _in_order(pool, _non_ascii_of_range, jobs, ahead=2 * processes)
                yield (
                    (*scanner.number(_read_range(path, start, end), found), end - start)
                    for (start, end), found in zip(ranges, lines, strict=True)
                )
            else:
                yield ((*scanner.number(data), size) for data, size in blocks or _utf8_blocks(source))
            return
        numbering = _Numbering()
        if parallel:
            pieces = _in_order(pool, _tokenize_range, jobs, ahead=2 * processes)
            yield ((*numbering(words, ids), size) for words, ids, size in pieces)
        else:
            texts = blocks or source.blocks()
            yield ((*numbering(*_tokenize(text, tokenizer)), size) for text, size in texts)


@contextlib.contextmanager
def _worker_pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    """Forked tokenizing workers, stopped at once when the encoding does not finish (Ctrl-C, an
    error, a reader that stops early): the queued pieces are dropped and the workers ended, where
    the pool's own exit waited for every piece in flight (~10 s). Workers ignore SIGINT, which the
    terminal sends the whole process group: this process stops them, without their tracebacks."""
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                               initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
    try:
        with children_die_with_us():  # a kill -9 of this process left them blocked on their pipes
            yield pool
    except BaseException:
        workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        raise
    pool.shutdown()


def _in_order(pool: ProcessPoolExecutor, function: Callable, jobs: list, ahead: int) -> Iterator:
    """``pool.map(function, jobs)`` with at most ``ahead`` pieces in flight or waiting, so memory
    stays bounded however large the file."""
    waiting: deque = deque()
    for job in jobs:
        waiting.append(pool.submit(function, job))
        if len(waiting) >= ahead:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


def _encode_into(source: CorpusSource, tokenizer: WordTokenizer, folder: Path, processes: int) -> None:
    """The one pass: tokenize pieces and number words by first appearance in the whole corpus
    (``_pieces``: the result does not depend on how), count, write ids."""
    distinct = 0
    counts = np.zeros(0, dtype=np.int64)
    line_ends: list[np.ndarray] = []
    position = 0
    with (
        (folder / TOKENS_FILE).open("wb") as out,
        (folder / WORDS_FILE).open("w", encoding="utf-8", newline="\n") as words_out,
        progress(
            total=source.progress_total(), desc=f"encoding {Path(source.path).name}", unit="B",
            unit_scale=True,
        ) as bar,
        _pieces(source, tokenizer, processes) as pieces,
    ):
        for new_words, ids, size in pieces:
            if new_words:  # one word per line, no line break after the last
                words_out.write(("\n" if distinct else "") + "\n".join(new_words))
            distinct += len(new_words)
            breaks = np.flatnonzero(ids == 0)
            words = np.delete(ids, breaks) - 1
            # empty lines end where the line before them did: kept once, 100M blank lines cost nothing
            line_ends.append(_sorted_unique(breaks - np.arange(len(breaks)) + position))
            words.tofile(out)
            position += len(words)
            block_counts = np.bincount(words, minlength=distinct)
            counts = np.concatenate([counts, np.zeros(len(block_counts) - len(counts), np.int64)])
            counts += block_counts
            bar.update(size)
            bar.set_postfix(tokens=f"{position:,}", words=f"{distinct:,}", refresh=False)
    if position == 0:
        raise EmptyCorpusError(
            f"corpus {source.path} has no words to train on: it is empty, not text, or only runs of over "
            f"{mib(source.limits.max_line)} without a space, which were dropped (pass --max-line-bytes "
            "to keep them)"
        )
    atomic_save_npy(folder / COUNTS_FILE, counts)
    starts = _sentence_starts(line_ends, position)
    atomic_save_npy(folder / STARTS_FILE, starts)
    meta = {
        "version": FORMAT_VERSION,
        "source": str(Path(source.path).resolve()),
        "tokenizer": tokenizer.signature,
        "tokens": position,
        "sentences": len(starts) - 1,
        "distinct": distinct,
    }
    atomic_write_json(folder / META_FILE, meta)


def encode(
    source: CorpusSource,
    tokenizer: WordTokenizer | None = None,
    cache: Path | None = None,
    processes: int | None = None,
) -> EncodedText:
    """The encoded form of ``source``: from the cache when this text was encoded before, else
    encoded now (one pass; ``processes`` worker processes, default one per available CPU, at most
    ``MAX_PROCESSES``, tokenize what runs in Python: see ``_pieces``) and cached. ``tokenizer``
    defaults to the source's (``source.tokenizer()``), ``cache`` to ``cache_folder()``."""
    tokenizer = tokenizer or source.tokenizer()
    before = _file_states(source)
    folder = (cache or cache_folder()) / content_key(source, tokenizer)
    if processes is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        processes = min(MAX_PROCESSES, len(cpus))
    if not (folder / META_FILE).is_file():
        source.check_text()  # a binary, UTF-16 or Latin-1 file is refused before any work
        remove_dead_leftovers(folder, every_name=True)  # a killed encoding of any corpus
        with staged_entry(folder) as staging:  # two processes encoding one text: the first entry stays
            _encode_into(source, tokenizer, staging, processes)
            missing = [name for name in ENTRY_FILES if not (staging / name).is_file()]
            if missing:  # the folder was removed while written, and its last files made it anew
                raise FileFormatError(
                    f"the cache entry for {source.path} was removed while it was written (it lacks "
                    f"{', '.join(missing)}): a cache cleared meanwhile, or one shared with another "
                    "machine or container; run again"
                )
            changed = _file_states(source) != before  # then hashed again: a touch changes no byte
            if changed and content_key(source, tokenizer) != folder.name:  # other bytes were encoded
                raise FileFormatError(
                    f"corpus {source.path} changed while it was read; run again once it is written"
                )
    return EncodedText.load(folder)


def _file_states(source: CorpusSource) -> list[tuple[int, int, int]]:
    """Size, modification time (ns) and inode of each corpus file: what writing to one changes."""
    return [(s.st_size, s.st_mtime_ns, s.st_ino) for s in (path.stat() for path in source.files())]


@dataclass
class Chunk:
    """A piece of the corpus seen through a vocabulary, cut at sentence boundaries.

    Attributes:
        ids: ``(N,)`` int32 vocabulary ids of the in-vocabulary tokens, in corpus order.
        starts: ``(S + 1,)`` int64 sentence boundaries in ``ids`` (``starts[0] == 0``,
            ``starts[-1] == N``); windows never cross them.
        raw_words: tokens this piece covers, out-of-vocabulary ones included (gensim's raw words).
    """

    ids: np.ndarray
    starts: np.ndarray
    raw_words: int

    def sentence_numbers(self) -> np.ndarray:
        """``(N,)`` int64 sentence number of each token (for the vectorised steps)."""
        return np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))

    def share(self, rank: int, size: int) -> Chunk:
        """Process ``rank``'s slice of the sentences when ``size`` processes split the chunk (all
        of it for one process)."""
        if size == 1:
            return self
        sentences = len(self.starts) - 1
        first, last = sentences * rank // size, sentences * (rank + 1) // size
        low, high = int(self.starts[first]), int(self.starts[last])
        raw = round(self.raw_words * (high - low) / max(1, len(self.ids)))
        return Chunk(self.ids[low:high], self.starts[first : last + 1] - low, raw)


class EncodedCorpus:
    """An encoded text seen through a vocabulary, re-iterable, read in chunks of about
    ``chunk_tokens`` tokens (bounded memory for any corpus size).

    Args:
        text: the encoded corpus.
        vocab: the vocabulary (``text.vocabulary(config)``).
        remap: ``(T,)`` token id -> vocabulary id, -1 for words left out (dropped before
            windowing, as word2vec does).
    """

    def __init__(
        self, text: EncodedText, vocab: Vocabulary, remap: np.ndarray, chunk_tokens: int = 1 << 20
    ) -> None:
        self.text, self.vocab, self.remap, self.chunk_tokens = text, vocab, remap, max(1, chunk_tokens)
        self.raw_words = text.total_tokens

    def __iter__(self) -> Iterator[Chunk]:
        """The chunks in corpus order. A stretch without an in-vocabulary token yields nothing; its
        raw words count with the next chunk's (with the last chunk's, at the end), so the
        learning-rate schedule, which follows the raw words, still reaches its end."""
        starts = self.text.starts
        first, sentences, kept, skipped = 0, len(starts) - 1, 0, 0
        held: Chunk | None = None  # each chunk waits for the next: trailing raw words join the last
        while first < sentences:
            goal = int(starts[first]) + self.chunk_tokens
            last = max(first + 1, int(np.searchsorted(starts, goal, side="right")) - 1)
            low, high = int(starts[first]), int(starts[last])
            mapped = self.remap[self.text.read(low, high)]
            keep = mapped >= 0
            kept_before = np.zeros(len(mapped) + 1, dtype=np.int64)
            np.cumsum(keep, out=kept_before[1:])
            chunk_starts = np.unique(kept_before[starts[first : last + 1] - low])
            first = last
            if len(chunk_starts) > 1:
                kept += int(chunk_starts[-1])
                if held is not None:
                    yield held
                held, skipped = Chunk(mapped[keep], chunk_starts, high - low + skipped), 0
            else:
                skipped += high - low
        if held is not None:
            held.raw_words += skipped
            yield held
        if kept == 0:
            raise EmptyCorpusError(f"corpus {self.text.folder} has no in-vocabulary token")


def open_corpus(
    source: CorpusSource, config: VocabConfig, chunk_tokens: int = 1 << 20, cache: Path | None = None
) -> tuple[EncodedCorpus, Vocabulary]:
    """Encode ``source`` (or take it from the cache), cut the vocabulary and return both."""
    text = encode(source, cache=cache)
    vocab, remap = text.vocabulary(config)
    warn_unsegmented(vocab, str(source.path))
    return EncodedCorpus(text, vocab, remap, chunk_tokens), vocab


#: Scripts written without spaces between words: Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar.
_UNSPACED_SCRIPT = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")
#: A word of so many characters in such a script is a phrase or a sentence, not a word.
UNSEGMENTED_LENGTH = 8
#: Share of the corpus's tokens in such "words" past which the corpus is taken for unsegmented.
UNSEGMENTED_SHARE = 0.2


def warn_unsegmented(vocab: Vocabulary, name: str) -> None:
    """Warn when much of a corpus is in "words" of 8 or more characters of a script written without
    spaces (Chinese, Japanese, Thai, ...): the word rule splits at spaces and punctuation only, so an
    unsegmented corpus trains on whole phrases, and its neighbours mean nothing."""
    counts = vocab.counts
    long = [row for row, word in enumerate(vocab.words)
            if len(word) >= UNSEGMENTED_LENGTH and _UNSPACED_SCRIPT.search(word)]
    total, in_long = int(counts.sum()), int(counts[long].sum())
    if total and in_long > UNSEGMENTED_SHARE * total:
        log.warning("%s: %.0f%% of the tokens are runs of 8 or more characters of a script written without "
                    "spaces (e.g. %r): such text trains on phrases, not words; segment it first (jieba, "
                    "MeCab, PyThaiNLP, ...) into space-separated words", name, 100 * in_long / total,
                    vocab.words[long[0]][:20])
