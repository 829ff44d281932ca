"""Vector files other tools write: word2vec binary and text, GloVe (text without a header), fastText
``.vec`` (word2vec text), each optionally gzip- or bz2-compressed (as ``gensim.downloader`` stores
them), and gensim's own saved ``KeyedVectors`` (``.kv``). Other compressions and archives (xz,
zstd, zip) are refused by their first bytes, naming them (``open_binary``): the bounded readers
decompress gzip and bz2 only.

Reading streams: rows go straight into a preallocated ``(V, D)`` array (``np.empty``, or a
memory-mapped ``.npy`` when importing into a run folder), so memory is the matrix, never the file.
Files are untrusted (``nlp182.bounded``): compressed ones expand under a ratio and a total cap, a
text line or a binary word longer than ``ReadLimits.max_line`` is refused with its line number, a
header is checked against the bytes the file can hold before anything is allocated, and a vector
with ``nan``, ``inf`` or a value beyond the dtype's range (``1e39`` in float32) is refused, or
dropped and counted with ``nonfinite="drop"``.
The word2vec rules are gensim's: the header's count is cut to ``limit`` (the first words, which are
the most frequent in files sorted by frequency), a repeated word keeps its first vector, a leading
newline of a binary word is dropped, words decode with ``encoding`` and ``unicode_errors``.

``.kv`` files are Python pickles. ``read_gensim_kv`` never runs their code: a restricted unpickler
admits only numpy arrays and plain containers, and builds gensim's ``KeyedVectors`` object as an
inert record of its fields; anything else in the file is refused. Arrays gensim stored beside the
pickle (``NAME.kv.vectors.npy``) load with ``allow_pickle=False``.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import contextlib
import logging
import math
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from nlp182.bounded import RATIO_FLOOR, BoundedLines, ReadLimits, compressed, mib
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, TruncatedFileError
from nlp182.io import atomic_open
from nlp182.progress import progress
from nlp182.text.records import file_signature

log = logging.getLogger(__name__)

#: Bytes read per step from a binary word2vec file.
BINARY_CHUNK = 1 << 20
#: Bytes at the start of a file matched against ``FILE_SIGNATURES`` (the longest magic is 6).
SIGNATURE_BYTES = 16
FORMATS = ("auto", "word2vec-binary", "word2vec-text", "glove", "kv")
#: What a reader does with a vector holding nan, inf or an overflow: refuse the file, or drop the row.
NONFINITE = ("error", "drop")

Allocate = Callable[[int, int, np.dtype], np.ndarray]


@dataclass
class Loaded:
    """What a reader found: words in file order, their ``(V, D)`` vectors and counts (if known)."""

    words: list[str]
    vectors: np.ndarray
    counts: np.ndarray | None = None


def open_binary(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing ``.gz`` and ``.bz2`` on the fly under the
    caps of ``limits``.

    Any other file whose first bytes show another kind (an xz, zstd or gzip stream, a zip archive,
    UTF-16 text: ``nlp182.text.records.FILE_SIGNATURES``, the corpus reader's table) is refused in
    one line naming it and what to do: read on, its bytes would be misread as a header and rows.
    """
    handle = (limits or ReadLimits()).open(path)
    if not compressed(path):
        signature = file_signature(handle.read(SIGNATURE_BYTES))
        if signature is not None:
            handle.close()
            fix = "extract the vector file from it and name that" if signature.corpus_fix else signature.fix
            raise FileFormatError(f"{path}: it is {signature.what}: {fix}")
        handle.seek(0)
    return handle


def capacity(path: str | os.PathLike[str], limits: ReadLimits) -> int:
    """The most bytes ``path`` can yield: its size, or for a compressed file what the caps allow."""
    size = Path(path).stat().st_size
    if not compressed(path):
        return size
    return min(limits.max_total, max(RATIO_FLOOR, math.ceil(size * limits.max_ratio)))


def read_counts(
    path: str | os.PathLike[str], unicode_errors: str = "strict", limits: ReadLimits | None = None
) -> dict[str, int]:
    """``word count`` lines (word2vec's ``-save-vocab`` file, gensim's ``fvocab``) as a dict.

    The count is what follows the line's last space or tab, so a word holding another space
    (a no-break space, which the vectors file keeps) is read whole. Counts are whole numbers from
    0 to 2**63 - 1 (they are stored as int64).
    """
    counts: dict[str, int] = {}
    limits = limits or ReadLimits()
    with open_binary(path, limits) as handle:
        for number, line in limits.lines(handle, path, on_long="error"):
            text = _decode(line, "utf-8", unicode_errors, path, f"line {number}").rstrip("\r\n")
            match = _COUNT_LINE.fullmatch(text)
            if match is None or not match[1] or not match[2].isascii() or not match[2].isdigit():
                message = f"{path}: line {number} is not '<word> <count>': {line[:80]!r}"
                raise FileFormatError(message)
            word, count = match.groups()
            if len(count) > 19 or int(count) > MAX_COUNT:
                raise FileFormatError(f"{path}: line {number}: the count {count[:30]} is beyond 2**63 - 1")
            counts[word] = int(count)
    return counts


#: A counts line: the word (any characters, ASCII spaces and tabs around it dropped), then the count.
_COUNT_LINE = re.compile(r"[ \t]*(.*?)[ \t]+(\S+)[ \t]*")
MAX_COUNT = 2**63 - 1


def _decode(data: bytes, encoding: str, errors: str, path: object, where: str) -> str:
    try:
        return data.decode(encoding, errors=errors)
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: {where} is not valid {encoding} ({exc.reason} at byte {exc.start}); "
            "pass unicode_errors='replace' or 'ignore' (CLI: --unicode-errors) to load it anyway"
        ) from None
    except LookupError:
        raise InvalidInputError(f"unknown encoding or unicode_errors: {encoding!r}, {errors!r}") from None


# A word is a line of vocab.txt, a field of counts.tsv and of the word2vec text format: it may hold
# any character but these (other Unicode spaces, such as the no-break space, are kept, as gensim does).
WORD_BREAKS = frozenset(" \t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def storable_words(words: list[str]) -> bool:
    """Whether every word is a non-empty string without a space, tab or line break."""
    return all(isinstance(w, str) and w for w in words) and WORD_BREAKS.isdisjoint("".join(words))


#: The first 4 bytes of a fastText binary model (its magic number, a little-endian int32).
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
FASTTEXT_BIN_ADVICE = (
    "a fastText .bin model holds its training state and subword buckets, not a table of vectors: "
    "import the .vec file fastText writes beside it (gensim reads the .bin with load_facebook_vectors)"
)


def parse_header(line: bytes, path: object) -> tuple[int, int]:
    """``(count, dim)`` from a word2vec header line, or a clear error."""
    parts = line.split()
    try:
        count, dim = int(parts[0]), int(parts[1])
        if len(parts) != 2 or count < 0 or dim < 1:
            raise ValueError
    except (ValueError, IndexError):
        binary = not line.strip() or b"\x00" in line or line.startswith(FASTTEXT_MAGIC)
        raise FileFormatError(
            f"{path}: first line must be '<words> <dims>' (words >= 0, dims >= 1), got {line[:80]!r} "
            + (f"(a binary file: if it is a fastText model, {FASTTEXT_BIN_ADVICE})" if binary else
               "(GloVe files have no header: pass no_header=True, CLI --format glove)")
        ) from None
    return count, dim


def header_rows(
    count: int, dim: int, binary: bool, path: str | os.PathLike[str], limits: ReadLimits
) -> int:
    """Rows to allocate for a header of ``count`` words of ``dim`` dims: at most what the file can
    hold, so an absurd header never allocates more than the file's size; a row that cannot fit at
    all is refused before any allocation.

    A binary row takes at least ``4 * dim + 2`` bytes (a one-byte word, a space, the floats), a
    text row ``2 * dim + 1`` (a word, then a space and a digit per value) and must fit in a line
    of ``limits.max_line`` bytes. A file with fewer rows than its header promises is still refused
    by the reader when it ends (``TruncatedFileError``).
    """
    row = 4 * dim + 2 if binary else 2 * dim + 1
    if not binary and row > limits.max_line:
        raise FileFormatError(
            f"{path}: the header's {dim:,} dims need lines of at least {row:,} bytes, more than the "
            f"longest line read ({mib(limits.max_line)}); pass --max-line-bytes to raise it"
        )
    room = capacity(path, limits)
    if count == 0:
        return 0
    if row > room:
        raise FileFormatError(
            f"{path}: the header's {dim:,} dims need at least {row:,} bytes a row but the file can hold "
            f"{room:,} bytes; the header is wrong"
        )
    return min(count, room // row)


def nonfinite_problem(path: object, where: str, dtype: np.dtype) -> FileFormatError:
    """The one-line refusal of a vector with nan, inf, a value beyond ``dtype``'s range or a length
    beyond it (no cosine can be computed for it)."""
    return FileFormatError(
        f"{path}: {where} has a value that is nan, inf or beyond {dtype.name}'s range, or a length "
        "beyond it; fix the file or pass nonfinite='drop' (CLI: --nonfinite drop) to leave such rows out"
    )


def scorable_rows(rows: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: which rows of ``(n, D)`` are finite in float32 with a length float32 holds (a
    row of 3e38s is finite, but its norm is not, and every cosine of it is undefined)."""
    with np.errstate(over="ignore", invalid="ignore"):
        single = np.asarray(rows, dtype=np.float32)
        finite = np.isfinite(single).all(axis=1)
        lengths = np.linalg.norm(np.where(finite[:, None], single, 0).astype(np.float64), axis=1)
    return finite & (lengths <= np.finfo(np.float32).max)


#: Rows checked at a time by ``first_nonfinite_row`` (a few MB of a memory map and its mask).
FINITE_BLOCK_ROWS = 8192


def first_nonfinite_row(matrix: np.ndarray, block_rows: int = FINITE_BLOCK_ROWS) -> int | None:
    """The first row of ``matrix`` ``(V, D)`` holding nan or inf, or whose length is beyond its dtype
    (``[3e38, 3e38]`` in float32: no cosine), or None: one vectorised check per block of
    ``block_rows`` rows, so a memory-mapped 1M x 300 matrix is read once, a block at a time."""
    if not np.issubdtype(matrix.dtype, np.floating):  # integers are finite, their lengths float64's
        return None
    for start in range(0, matrix.shape[0], block_rows):
        block = np.asarray(matrix[start : start + block_rows])
        with np.errstate(over="ignore", invalid="ignore"):
            # a squared length that is nan or inf flags a row with nan/inf or a length near the
            # dtype's range; only those rows are measured closely (scaled, in float64)
            suspects = np.flatnonzero(~np.isfinite(np.einsum("ij,ij->i", block, block)))
        if suspects.size:
            rows = block[suspects].astype(np.float64)
            finite = np.isfinite(rows).all(axis=1)
            rows[~finite] = 0.0
            peak = np.abs(rows).max(axis=1)
            lengths = peak * np.linalg.norm(rows / np.where(peak > 0, peak, 1.0)[:, None], axis=1)
            bad = ~finite | (lengths > np.finfo(block.dtype).max)
            if bad.any():
                return start + int(suspects[np.flatnonzero(bad)[0]])
    return None


class _Collector:
    """Fills rows of the output array, keeping the first vector of a repeated word (as gensim) and
    refusing (or dropping, with ``nonfinite="drop"``) vectors that are not finite in its dtype."""

    def __init__(
        self, out: np.ndarray, counts: dict[str, int] | None, path: object, bar: Any, nonfinite: str
    ) -> None:
        self.out, self.counts, self.path, self.bar, self.nonfinite = out, counts, path, bar, nonfinite
        self.words: list[str] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.dropped: list[str] = []

    def add(self, word: str, vector: np.ndarray, where: str) -> None:
        self.bar.update(1)
        if not storable_words([word]):
            raise FileFormatError(
                f"{self.path}: {where}: the word {word!r} is empty or holds a space, tab or line break, "
                "which no word2vec text file or run folder can store; fix or remove that row"
            )
        if word in self.seen:
            self.duplicates += 1
            return
        if len(self.words) == len(self.out):
            raise FileFormatError(f"{self.path}: {where} is beyond the rows the file's size allows")
        with np.errstate(over="ignore", invalid="ignore"):
            row = np.asarray(vector, dtype=self.out.dtype)
            # nan or inf when a value is, or when the squared length passes the dtype's range: only
            # then is the row looked at closely (one dot product a row, the cost of an isfinite)
            square = float(np.dot(row, row))
        if not math.isfinite(square) and not scorable_rows(row[None, :])[0]:
            if self.nonfinite != "drop":
                raise nonfinite_problem(self.path, where, self.out.dtype)
            self.dropped.append(where)
            return
        self.out[len(self.words)] = row
        self.seen.add(word)
        self.words.append(word)

    def result(self) -> Loaded:
        if self.duplicates:
            log.warning("%s: %d repeated words ignored (first vector kept)", self.path, self.duplicates)
        if self.dropped:
            log.warning("%s: dropped %d vectors with nan, inf or an overflow (first: %s)",
                        self.path, len(self.dropped), self.dropped[0])
        counts = None
        if self.counts is not None:
            missing = [w for w in self.words if w not in self.counts]
            if missing:
                log.warning("%s: the vocabulary file lacks %d words (count 0), e.g. %r",
                            self.path, len(missing), missing[0])
            counts = np.array([self.counts.get(w, 0) for w in self.words], dtype=np.int64)
        return Loaded(self.words, self.out[: len(self.words)], counts)


def read_word2vec(
    path: str | os.PathLike[str],
    binary: bool = False,
    no_header: bool = False,
    limit: int | None = None,
    encoding: str = "utf-8",
    unicode_errors: str = "strict",
    datatype: type | np.dtype = np.float32,
    fvocab: str | os.PathLike[str] | None = None,
    allocate: Allocate | None = None,
    show_progress: bool = False,
    nonfinite: str = "error",
    limits: ReadLimits | None = None,
) -> Loaded:
    """Read a word2vec binary/text file (or GloVe text with ``no_header``) as gensim does.

    Args:
        limit: read at most this many words (the first ones); ``None`` or ``0`` (gensim's rule) all.
        datatype: dtype of the returned vectors (``np.float16`` halves the memory).
        fvocab: ``word count`` file whose counts come back in ``Loaded.counts``.
        allocate: ``allocate(rows, dim, dtype)`` returns the array to fill (default ``np.empty``).
        show_progress: report words read through ``nlp182.progress``.
        nonfinite: ``"error"`` refuses a vector with nan, inf or an overflow of ``datatype``;
            ``"drop"`` leaves it out and logs the count.
        limits: the longest line or word and the decompression caps (``nlp182.bounded``).
    """
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    limit = limit or None  # 0 reads everything, as in gensim
    if binary and no_header:
        raise InvalidInputError("no_header is for text files (GloVe); binary word2vec files have a header")
    if nonfinite not in NONFINITE:
        raise InvalidInputError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {nonfinite!r}")
    limits = limits or ReadLimits()
    counts = read_counts(fvocab, unicode_errors, limits) if fvocab is not None else None
    allocate = allocate or (lambda rows, dim, dtype: np.empty((rows, dim), dtype=dtype))
    with open_binary(path, limits) as handle:
        lines = limits.lines(handle, path, on_long="error")
        if no_header:
            count, dim = _count_headerless(lines, path, limit)
            handle.close()
            handle = open_binary(path, limits)
            lines = limits.lines(handle, path, on_long="error")
        else:
            header = lines.readline()
            count, dim = parse_header(header[1] if header else b"", path)
            # a text row of the header's dimension is a line: a 100,000-dim row takes 2 MB
            lines.max_bytes = max(lines.max_bytes, min(dim * TEXT_BYTES_PER_VALUE, MAX_TEXT_ROW_BYTES))
        if limit is not None:
            count = min(count, limit)
        rows = count if no_header else header_rows(count, dim, binary, path, limits)
        out = allocate(rows, dim, np.dtype(datatype))
        with progress(total=count, desc=f"reading {Path(path).name}", unit="words", unit_scale=True,
                      disable=not show_progress) as bar:
            collector = _Collector(out, counts, path, bar, nonfinite)
            if binary:
                _read_binary(handle, collector, count, dim, encoding, unicode_errors, limits.max_line)
            else:
                _read_text(lines, collector, count, dim, encoding, unicode_errors)
    return collector.result()


def _count_headerless(lines: BoundedLines, path: object, limit: int | None) -> tuple[int, int]:
    """Rows (up to ``limit``) and dimension of a text file without a header (gensim's first pass)."""
    first = lines.readline()
    if first is None or not first[1].strip():
        raise FileFormatError(f"{path} is empty")
    dim = len(first[1].rstrip().split(b" ")) - 1
    if dim < 1:
        raise FileFormatError(f"{path}: the first line has a word but no values")
    count = 1
    for number, line in lines:
        if limit is not None and count >= limit:
            break
        # every row holds the first row's number of values: a short line is no row, and counting
        # it would size the matrix (rows x dim) from lines the file does not have
        if not line.strip():
            continue  # a blank line (at the end, say) is no row
        values = line.rstrip().count(b" ")
        if values != dim:
            raise FileFormatError(
                f"{path} line {number} has {values} values where line 1 has {dim}{_tabs_advice(line)}"
            )
        count += 1
    return count, dim


def _read_text(
    lines: BoundedLines, collector: _Collector, count: int, dim: int, encoding: str, errors: str
) -> None:
    path = collector.path
    for row in range(count):
        item = lines.readline()
        while item is not None and not item[1].strip():  # a blank line is no row, as when counting
            item = lines.readline()
        if item is None:
            raise TruncatedFileError(f"{path}: the header promises {count} words; the file ends after {row}")
        where = f"line {item[0]}"
        parts = _decode(item[1].rstrip(), encoding, errors, path, where).split(" ")
        if len(parts) != dim + 1:
            raise FileFormatError(
                f"{path}: {where} has {len(parts) - 1} values, expected {dim}{_tabs_advice(item[1])}"
            )
        try:
            vector = np.asarray(parts[1:], dtype=np.float64)
        except ValueError as exc:
            raise FileFormatError(f"{path}: {where} has a non-numeric value: {exc}") from None
        collector.add(parts[0], vector, where)


def _tabs_advice(line: bytes) -> str:
    """What to add to a count of values that a line split by tabs got wrong: word2vec and GloVe
    files separate the word and its values by single spaces."""
    if b"\t" not in line:
        return ""
    return " (it is split by tabs; vector files separate the word and its values by spaces: tr '\\t' ' ')"


def _read_binary(
    handle: IO[bytes], collector: _Collector, count: int, dim: int, encoding: str, errors: str, max_word: int
) -> None:
    """Rows of ``word SPACE 4*dim bytes``. The space is searched for only in bytes not yet searched
    (linear in the file), and a word longer than ``max_word`` bytes is refused."""
    path, row_bytes = collector.path, 4 * dim
    buffer, start = b"", 0
    for row in range(count):
        searched = start
        while True:
            space = buffer.find(b" ", searched)
            if space != -1 and len(buffer) - space - 1 >= row_bytes and space - start <= max_word:
                break
            searched = len(buffer) if space == -1 else space
            if searched - start > max_word:
                raise FileFormatError(
                    f"{path}: word #{row} is longer than {mib(max_word)} (no space within it); the file is "
                    "not word2vec binary, or pass --max-line-bytes to raise the limit"
                )
            more = handle.read(max(BINARY_CHUNK, row_bytes))
            if not more:
                raise TruncatedFileError(
                    f"{path}: the header promises {count} words but the file ends inside word #{row}"
                )
            buffer, searched, start = buffer[start:] + more, searched - start, 0
        word = _decode(buffer[start:space], encoding, errors, path, f"word #{row}").lstrip("\n")
        collector.add(word, np.frombuffer(buffer, dtype="<f4", count=dim, offset=space + 1), f"word #{row}")
        start = space + 1 + row_bytes


def write_word2vec(
    path: str | os.PathLike[str],
    words: list[str],
    vectors: np.ndarray,
    binary: bool = False,
    write_header: bool = True,
    prefix: str = "",
    fvocab: str | os.PathLike[str] | None = None,
    counts: np.ndarray | None = None,
) -> None:
    """Write the word2vec C format (binary little-endian float32, or text at the rows' precision) atomically.

    ``vectors`` is ``(V, D)``, row ``i`` for ``words[i]``. ``write_header=False`` writes GloVe's
    header-less text; ``prefix`` goes before every word. With ``fvocab`` the ``word count`` file
    (gensim's ``fvocab``, from ``counts``, ``(V,)``) is written too, and the two files are replaced
    together or not at all: both are written in full and synced as temporary files before either is
    renamed, so a write that fails part way (a full disk) leaves both previous files as they were,
    never a vector file beside a counts file that lists other words.
    """
    if binary and not write_header:
        raise InvalidInputError("write_header=False (--no-header) is for text files only (GloVe's layout), "
                                "not --binary")
    if (fvocab is None) != (counts is None):
        raise InvalidInputError("fvocab and counts go together: the counts file is written from the counts")
    counts_file = atomic_open(fvocab, "wb") if fvocab is not None else contextlib.nullcontext()
    # The counts file is renamed first (the inner context exits first): the vector file is synced
    # before that, so its own rename is all that is left once the counts file is in place.
    with atomic_open(path, "wb") as handle, counts_file as counts_handle:
        if write_header:
            handle.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, row in zip(words, vectors, strict=True):
            if binary:
                handle.write(f"{prefix}{word} ".encode() + np.asarray(row, dtype="<f4").tobytes())
            else:  # the shortest text that reads back to the same value of the row's own dtype
                row = np.asarray(row, dtype=np.float64 if row.dtype == np.float64 else np.float32)
                values = " ".join(np.format_float_positional(v, unique=True, trim="-") for v in row)
                handle.write(f"{prefix}{word} {values}\n".encode())
        if counts_handle is not None:
            lines = (f"{prefix}{w} {int(c)}\n" for w, c in zip(words, counts, strict=True))
            counts_handle.write("".join(lines).encode())
        handle.flush()
        os.fsync(handle.fileno())


#: Bytes a text row may take per value of the header's dimension (``repr`` of a float32 and a
#: space take at most 16), so a wide row is read whatever ``max_line``, up to MAX_TEXT_ROW_BYTES.
TEXT_BYTES_PER_VALUE = 32
MAX_TEXT_ROW_BYTES = 1 << 30
#: Bytes of a file ``sniff_format`` reads.
SNIFF_BYTES = 1 << 16
#: Bytes no word2vec text file holds (C0 controls but the whitespace ``str.split`` breaks at, and
#: DEL), and that nearly every row of float32s holds.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1b\x7f]")


def sniff_format(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> str:
    """Guess ``word2vec-binary``, ``word2vec-text``, ``glove`` or ``kv`` from a file's first bytes.

    A first line of two integers is a word2vec header, even one that ``parse_header`` then refuses
    (``-5 4``, ``0 300``): read as GloVe it would be a word ``-5`` with one value. What follows it
    is binary when it holds a control byte (a NUL, say) that no text row has and nearly every row
    of float32s does, or when it is the whole file and parses as the header's binary rows and is
    not laid out as its text rows (a small file of float32s that happen to hold no control byte).
    Anything else is text, read by the text parser, whose errors name the line and the value at
    fault (a row ``a 0x10 2`` is text with a value that is not a number, never a binary file).
    """
    with open_binary(path, limits) as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):  # read on, the header would be a word and every row misread
        raise FileFormatError(f"{path} starts with a UTF-8 byte order mark: remove those 3 bytes; vector "
                              "files are UTF-8 without one")
    if head[:1] == b"\x80" or head.startswith(b"ccopy_reg\n_reconstructor\n"):  # pickles: protocol 2+, 0-1
        return "kv"
    if head.startswith(FASTTEXT_MAGIC):
        raise FileFormatError(f"{path} is a fastText binary model; {FASTTEXT_BIN_ADVICE}")
    first, _, rest = head.partition(b"\n")
    if b"\x00" in head[:4] or b"\x00" in first:  # every vector file here starts with a line of text
        raise FileFormatError(
            f"{path} is a binary file but not a word2vec binary one (which starts with the text line "
            f"'<words> <dims>'); if it is a fastText model of the older layout, {FASTTEXT_BIN_ADVICE}"
        )
    if not re.fullmatch(rb"\s*[-+]?\d+[ \t]+[-+]?\d+\s*", first):
        return "glove"
    if _CONTROL_BYTES.search(rest):
        return "word2vec-binary"
    count, dim = (int(part) for part in first.split())
    whole = len(head) < SNIFF_BYTES and count > 0 and dim > 0  # the whole file was read, and has rows
    if whole and _binary_rows(rest, count, dim) and not _text_rows(rest, count, dim):
        return "word2vec-binary"
    return "word2vec-text"


def _binary_rows(data: bytes, count: int, dim: int) -> bool:
    """Whether ``data`` is exactly ``count`` binary rows of ``dim`` float32s (``word SPACE 4*dim
    bytes``, a word led by newlines as the C tool writes them), then at most a final newline."""
    at = 0
    for _ in range(count):
        space = data.find(b" ", at)
        if space <= at or space + 1 + 4 * dim > len(data):
            return False
        at = space + 1 + 4 * dim
    return not data[at:].strip(b"\n")


def _text_rows(data: bytes, count: int, dim: int) -> bool:
    """Whether ``data`` is laid out as ``count`` text rows of a word and ``dim`` values, blank lines
    aside: a value that is not a number (``0x10``) leaves a text row, for the text parser to name."""
    rows = [line.rstrip().split(b" ") for line in data.split(b"\n") if line.strip()]
    return len(rows) == count and all(len(row) == dim + 1 for row in rows)


# --------------------------------------------------------------------------- gensim .kv files
class _Record:
    """An inert stand-in for the objects a ``.kv`` pickle names: it only keeps their fields."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict, slots) from objects with __slots__
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected object state of type {type(state).__name__}")
        self.__dict__.update(state)


_NUMPY_SCALAR = {(module, "scalar") for module in ("numpy.core.multiarray", "numpy._core.multiarray")}


class _NdarrayName:
    """What ``numpy.ndarray`` stands for in a ``.kv`` pickle: a name ``_reconstruct`` is given, never
    a class a pickle may call (``ndarray(shape, dtype, buffer, offset, strides)`` would build object
    arrays from the file's bytes, read uninitialised memory, or stride one value to gigabytes)."""

    def __new__(cls, *args: object, **kwargs: object) -> _NdarrayName:
        raise pickle.UnpicklingError("refusing to call numpy.ndarray (an array comes from its own bytes)")


_NUMPY_FROMBUFFER = {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")}
_NUMPY_RECONSTRUCT = {
    (module, "_reconstruct") for module in ("numpy.core.multiarray", "numpy._core.multiarray")
}


def _claimed_bytes(shape: object, dtype: object) -> int:
    """Bytes an array of ``shape`` and ``dtype`` needs; refuses object arrays and odd shapes."""
    dtype = np.dtype(dtype)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise pickle.UnpicklingError("refusing an array of Python objects")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"refusing an array of shape {shape!r}")
    return math.prod(shape) * dtype.itemsize


class _CheckedArray(np.ndarray):
    """An array a pickle fills in (``BUILD``): its claimed size must equal the bytes it brings, so a
    header claiming 10^13 elements is refused before numpy allocates them."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("refusing an array state this reader does not know")
        shape, dtype, _, raw = state[-4:]
        if not isinstance(raw, bytes) or _claimed_bytes(shape, dtype) != len(raw):
            raise pickle.UnpicklingError(f"an array claims shape {shape} but brings {len(raw):,} bytes")
        super().__setstate__(state)


def _checked_frombuffer(buffer: object, dtype: object, shape: object, order: str) -> np.ndarray:
    """numpy's ``_frombuffer`` (how protocol 5 stores an array) when the bytes brought are exactly
    the bytes the shape claims."""
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("refusing an array buffer this reader does not know")
    size = memoryview(buffer).nbytes
    if _claimed_bytes(shape, dtype) != size:
        raise pickle.UnpicklingError(f"an array claims shape {shape} but brings {size:,} bytes")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)  # type: ignore[call-overload]


def _checked_scalar(dtype: object, raw: object = None) -> object:
    """numpy's ``scalar`` (how a pickle stores a NumPy number) for plain numbers only: a scalar of
    object dtype would read a pointer out of the file's bytes."""
    dtype = np.dtype(dtype)  # type: ignore[call-overload]
    plain = not dtype.hasobject and dtype.kind in "biufcU"  # numbers, and text (keys as numpy.str_)
    if not plain or not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError(f"refusing a scalar of {dtype}")
    return np.frombuffer(raw, dtype=dtype)[0]


def _checked_reconstruct(subtype: type, shape: object, dtype: object) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain arrays only, as a :class:`_CheckedArray` to fill."""
    if subtype is not _NdarrayName or _claimed_bytes(shape, dtype) > 1 << 10:
        name = getattr(subtype, "__name__", subtype)
        raise pickle.UnpicklingError(f"refusing to reconstruct {name}{shape}")
    return _CheckedArray(shape, dtype)  # type: ignore[call-overload]
_RECORD_CLASSES = {
    "KeyedVectors", "Word2VecKeyedVectors", "EuclideanKeyedVectors", "Doc2VecKeyedVectors",
    "Vocab", "CompatVocab",
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays and gensim's ``KeyedVectors``/``Vocab`` (as ``_Record``), nothing else.

    Pickles of protocols 0-2 name Python 2's modules (``__builtin__``, ``copy_reg``): they are read
    under their Python 3 names, as the unpickler this one narrows would read them."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayName
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) in _NUMPY_SCALAR:
            return _checked_scalar
        if (module, name) in _NUMPY_RECONSTRUCT:
            return _checked_reconstruct
        if module == "gensim.models.keyedvectors" and name in _RECORD_CLASSES:
            return _Record
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) == ("builtins", "object"):
            return object
        if (module, name) in (("builtins", "frozenset"), ("builtins", "set")):  # gensim's lifecycle events
            return frozenset if name == "frozenset" else set
        if (module, name) in _NUMPY_FROMBUFFER:  # arrays of protocol 5
            return _checked_frombuffer
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """How protocol-2 pickles store bytes (``_codecs.encode(text, "latin1")``), and nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _reconstructor(cls: type, base: type, state: object) -> object:
    """``copyreg._reconstructor`` for protocol 0-1 pickles, limited to the admitted classes."""
    if cls is not _Record or base is not object or state is not None:
        raise pickle.UnpicklingError("refusing an object this reader does not know")
    return _Record()


def read_gensim_kv(path: str | os.PathLike[str], limit: int | None = None, mmap: bool = True) -> Loaded:
    """Words, vectors and counts of a gensim ``KeyedVectors.save`` file, without running its code.

    gensim 4 files (``index_to_key``, ``vectors``, ``expandos['count']``) and gensim 3 files
    (``index2word``, ``syn0``, ``vocab``) are understood; arrays saved beside the pickle
    (``PATH.vectors.npy``) are memory-mapped when ``mmap``. FastText and Doc2Vec models are refused.
    """
    path = Path(path)
    with open_binary(path) as handle:
        try:
            record = _RestrictedUnpickler(handle).load()
        except (MemoryError, OverflowError, RecursionError) as exc:
            raise FileFormatError(f"{path} claims more data than it holds ({type(exc).__name__}); the file "
                                  "is damaged or not a gensim KeyedVectors file") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
            advice = ""
            if "FastTextKeyedVectors" in str(exc):  # model.wv of a FastText: subword buckets too
                advice = ("; this is fastText's KeyedVectors (words and subword buckets): write its word "
                          "vectors in gensim with model.wv.save_word2vec_format('vectors.bin', binary=True), "
                          "or import the .vec file fastText wrote, and read that")
            elif "gensim.models." in str(exc):  # a whole model (Word2Vec.save): its vectors load alone
                advice = ("; this is a whole gensim model: save its vectors in gensim with "
                          "model.wv.save('vectors.kv') or model.wv.save_word2vec_format('vectors.bin', "
                          "binary=True), and read that")
            raise FileFormatError(
                f"{path} is not a gensim KeyedVectors file safe to read: {exc}{advice}"
            ) from None
    if not isinstance(record, _Record):
        raise FileFormatError(f"{path} does not hold a gensim KeyedVectors object")
    fields = record.__dict__
    for name in fields.get("__numpys", []):
        side = Path(f"{path}.{name}.npy")
        if not side.is_file():
            raise MissingFileError(f"{side} (saved beside {path.name} by gensim) does not exist")
        check_npy(side)
        fields[name] = np.load(side, mmap_mode="r" if mmap else None, allow_pickle=False)
    words = fields.get("index_to_key", fields.get("index2word", fields.get("index2entity")))
    vectors = fields.get("vectors", fields.get("syn0"))
    if not isinstance(words, list) or not isinstance(vectors, np.ndarray) or vectors.ndim != 2:
        raise FileFormatError(f"{path} lacks a word list and a (V, D) vector matrix")
    # gensim's keys are strings (or integers); anything else, a list nested a thousand times say,
    # is refused before any str() of it could take gigabytes
    odd = next((i for i, w in enumerate(words)
                if not isinstance(w, str | np.integer) and type(w) is not int), None)
    if odd is not None:
        raise FileFormatError(f"{path}: key {odd} is a {type(words[odd]).__name__}, not a word")
    counts = _kv_counts(fields, words, path)
    stop = len(words) if limit is None else min(limit, len(words))
    if any(type(w) is int and not -(10**18) < w < 10**18 for w in words):  # str() of 10**5000 raises
        raise FileFormatError(f"{path}: a key is an integer of more than 18 digits, not a word")
    return Loaded([str(w) for w in words[:stop]], vectors[:stop], None if counts is None else counts[:stop])


def check_npy(path: str | os.PathLike[str]) -> None:
    """Refuse an ``.npy`` whose header claims other than the bytes the file holds after it, or
    Python objects, in one line naming the file, before numpy allocates or maps anything: a
    100-byte file whose header claims shape ``(3, 10**12)`` would otherwise allocate 11 TiB."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = np.lib.format
            read = header.read_array_header_1_0 if version == (1, 0) else header.read_array_header_2_0
            shape, _, dtype = read(handle)
            claimed = _claimed_bytes(shape, dtype)
        except (ValueError, TypeError, pickle.UnpicklingError) as exc:
            # numpy's refusal of a large header runs to several lines of advice (allow_pickle=True)
            # that does not hold here: its first line says what is wrong
            reason = str(exc).strip().split("\n", 1)[0]
            raise FileFormatError(f"{path} is not a plain .npy array: {reason}") from None
        held = path.stat().st_size - handle.tell()
    if claimed != held:
        raise FileFormatError(f"{path}: its header claims an array of shape {shape} ({claimed:,} bytes) "
                              f"but the file holds {held:,} bytes after it; it is truncated or damaged")


def _kv_counts(fields: dict[str, Any], words: list[str], path: Path) -> np.ndarray | None:
    """The words' counts from gensim 4's ``expandos['count']`` or gensim 3's ``vocab``, each a
    whole number in 0..2**63-1 (anything else, a count of 10**30 or 'lots', is refused)."""
    expandos = fields.get("expandos") or {}
    if not isinstance(expandos, dict):
        raise FileFormatError(f"{path}: its expandos are a {type(expandos).__name__}, not a mapping")
    if "count" in expandos:
        counts = expandos["count"]
        flat = isinstance(counts, np.ndarray) and counts.ndim == 1 and counts.dtype.kind in "iu"
        listed = isinstance(counts, list) and all(type(c) is int for c in counts)
        if not (flat or listed) or len(counts) != len(words):
            raise FileFormatError(f"{path}: its counts are not one integer per word")
        return _whole_counts(counts, path)
    vocab = fields.get("vocab")
    if isinstance(vocab, dict) and all(isinstance(v, _Record) for v in vocab.values()):
        counts = [getattr(vocab.get(w), "count", 0) for w in words]
        if not all(type(c) is int for c in counts):
            raise FileFormatError(f"{path}: its counts are not one integer per word")
        return _whole_counts(counts, path)
    return None


def _whole_counts(counts: Any, path: Path) -> np.ndarray:
    """``counts`` as int64 when each is in 0..2**63-1 (a uint64 of 2**64-1 would wrap to -1)."""
    values = counts if isinstance(counts, np.ndarray) else np.array(counts, dtype=object)
    if len(values) and (values.min() < 0 or values.max() > np.iinfo(np.int64).max):
        raise FileFormatError(f"{path}: its counts must be whole numbers from 0 to 2**63-1")
    return np.asarray(values, dtype=np.int64)
