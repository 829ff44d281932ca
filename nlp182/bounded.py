"""Reading files nobody here wrote, with bounds: lines of at most ``max_bytes`` and decompression
with a ratio and a total cap.

Every reader of user files (corpus text, Wikipedia dumps, vector files, parallel text, ``translate
--input``) opens them with :func:`open_bounded` and walks them with :class:`BoundedLines`, so what
it holds in memory is set by the bound, never by the file: a 10 GB line without a newline is
skipped (or refused) while holding at most ``max_bytes + 1`` bytes, and a 1 KB ``.bz2`` that
expands to gigabytes stops with an error once it has expanded ``max_ratio`` times past a floor.

Lines are read with the stream's own ``readline(limit)`` (C code in ``io``, ``gzip`` and ``bz2``):
each call holds at most ``limit`` bytes, and the rest of an overlong line is drained in
``SKIP_CHUNK`` pieces, so a file is read once, in linear time.

A corpus is not a file of records: its lines are sentences, and some real corpora are one line
(text8, the classic word2vec corpus, is 100 MB without a line break). Corpus readers therefore cut
an overlong line into pieces at word breaks (:func:`split_line`, ``LineBlocks(on_long="split")``)
instead of skipping it, within the same bound.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

from nlp182.errors import FileFormatError, InvalidInputError

log = logging.getLogger(__name__)

#: Longest text line a reader keeps by default (1 MiB).
MAX_LINE_BYTES = 1 << 20
#: Most bytes a compressed file may expand to (1 TiB: above any public dump, e.g. English
#: Wikipedia's pages-articles, about 100 GB).
MAX_DECOMPRESSED_BYTES = 1 << 40
#: Most times a compressed file may expand, judged once ``RATIO_FLOOR`` bytes came out (text
#: compresses 3-10 times, Wikipedia dumps about 5; a compression bomb thousands of times).
MAX_RATIO = 100.0
#: Decompressed bytes before the ratio is judged (small files of repeated text may compress well).
RATIO_FLOOR = 64 << 20
#: Largest file read whole by default (a dataset's JSON: Karpathy's COCO split is about 150 MB).
MAX_WHOLE_FILE_BYTES = 256 << 20
#: Bytes read per call while draining an overlong line.
SKIP_CHUNK = 1 << 20
#: Bytes that end a word under every tokenizer rule (``str.split``'s ASCII whitespace, the line
#: break aside): where an overlong corpus line is cut. An ASCII byte never sits inside a UTF-8
#: character, so a cut never splits one.
WORD_BREAKS = tuple(bytes([byte]) for byte in b" \t\x0b\x0c\r\x1c\x1d\x1e\x1f")
_BREAK_OR_LINE_END = re.compile(rb"[ \t\x0b\x0c\r\x1c-\x1f\n]")
#: File name endings read as compressed streams.
GZIP_SUFFIXES = (".gz", ".dz")
BZIP2_SUFFIXES = (".bz2",)


def mib(size: int) -> str:
    """A byte count for messages: ``1 MiB``, ``10 MiB``, ``512 KiB``, ``300 bytes``."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << (shift - 4)) == 0:
            return f"{size / (1 << shift):g} {unit}"
    return f"{size:,} bytes"


def read_capped(path: str | os.PathLike[str], max_bytes: int = MAX_WHOLE_FILE_BYTES) -> bytes:
    """The bytes of a regular file that is read whole (JSON, a caption list), refused with a
    one-line :class:`FileFormatError` naming the file, its size and the limit when it holds more
    than ``max_bytes`` (judged by its size, and by what a read gives for a file that grows)."""
    path = Path(path)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise FileFormatError(
            f"{path} is {max(size, len(data)):,} bytes, more than the {mib(max_bytes)} a file read whole "
            "may hold (the limit); split it or name a smaller file"
        )
    return data


def bound_passed(
    out: int, stored: int, max_ratio: float, max_total: int, floor: int | None = None
) -> str | None:
    """Which decompression bound ``out`` bytes from ``stored`` pass: ``"total"`` (over
    ``max_total``), ``"ratio"`` (over ``max_ratio`` times ``stored``, once past ``floor``, by
    default ``RATIO_FLOOR``) or None. The one rule for compressed streams, Parquet footers and
    decoded Parquet text."""
    if out > max_total:
        return "total"
    if out > (RATIO_FLOOR if floor is None else floor) and out > max_ratio * max(stored, 1):
        return "ratio"
    return None


def _last_break(data: bytes | bytearray, start: int, stop: int) -> int:
    """Index of the last word break in ``data[start:stop]``, or -1 (spaces first: they are the
    common case, and every other break is then looked for only after the last space)."""
    found = -1
    for byte in WORD_BREAKS:
        found = max(found, data.rfind(byte, max(start, found + 1), stop))
    return found


class Pieces(NamedTuple):
    """What :func:`split_line` made of a stretch of one line.

    Attributes:
        spans: ``[start, end)`` of each piece in the stretch, at most ``max_bytes`` each.
        rest: where the uncut rest of the stretch starts.
        dropping: whether ``rest`` is inside a run without a word break being dropped (the reader
            drops on to the next break or line end).
        dropped: where each dropped run starts.
        cuts: where each cut was made (the end of a piece the line goes on from).
    """

    spans: list[tuple[int, int]]
    rest: int
    dropping: bool
    dropped: list[int]
    cuts: list[int]


def split_line(data: bytes | bytearray, max_bytes: int, complete: bool) -> Pieces:
    """Cut ``data``, a stretch of one line (no line break in it) starting where a piece starts,
    into pieces of at most ``max_bytes``: each piece ends just before the last word break of the
    ``max_bytes + 1`` bytes from its start, and the break itself is left out. A run of more than
    ``max_bytes`` without a break (no word is that long) is dropped up to the next break.

    ``complete`` says the line ends where ``data`` does; otherwise cutting stops while the rest
    could still join the bytes after it (at most ``max_bytes`` left) or inside a dropped run whose
    end ``data`` does not hold.
    """
    spans: list[tuple[int, int]] = []
    dropped: list[int] = []
    at, size = 0, len(data)
    while size - at > max_bytes:
        cut = _last_break(data, at, at + max_bytes + 1)
        if cut < 0:  # a run longer than the bound: dropped to the next break
            dropped.append(at)
            found = _BREAK_OR_LINE_END.search(data, at + max_bytes + 1)
            if found is None:
                return Pieces(spans, size, not complete, dropped, [end for _, end in spans])
            at = found.start() + 1
            continue
        if cut > at:
            spans.append((at, cut))
        at = cut + 1
    cuts = [end for _, end in spans]
    if complete and at < size:
        spans.append((at, size))
        at = size
    return Pieces(spans, at, False, dropped, cuts)


class _Counting(io.RawIOBase):
    """The compressed file underneath a decompressor, counting the bytes taken from it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Guarded(io.RawIOBase):
    """Decompressed bytes, refused once they pass ``max_total`` or ``max_ratio`` times the input."""

    def __init__(
        self, inner: BinaryIO, counting: _Counting, name: str, max_ratio: float, max_total: int
    ) -> None:
        self.inner, self.counting, self.name = inner, counting, name
        self.max_ratio, self.max_total, self.out = max_ratio, max_total, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile, "Invalid data stream", truncation
            raise FileFormatError(f"{self.name}: damaged or truncated compressed data ({exc})") from None
        n = len(data)
        buffer[:n] = data
        self.out += n
        passed = bound_passed(self.out, self.counting.count, self.max_ratio, self.max_total)
        if passed == "total":
            raise FileFormatError(
                f"{self.name}: decompresses to more than {mib(self.max_total)} (the limit); "
                "pass --max-decompressed-bytes to raise it"
            )
        if passed == "ratio":
            raise FileFormatError(
                f"{self.name}: expands more than {self.max_ratio:g} times ({self.out:,} bytes from "
                f"{self.counting.count:,}), as a compression bomb does; pass --max-ratio to raise the limit"
            )
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def compressed(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a ``.gz``/``.dz``/``.bz2`` stream, whatever the case (``corpus.txt.GZ``)."""
    return Path(path).suffix.lower() in GZIP_SUFFIXES + BZIP2_SUFFIXES


def open_bounded(
    path: str | os.PathLike[str],
    max_ratio: float = MAX_RATIO,
    max_total: int = MAX_DECOMPRESSED_BYTES,
) -> BinaryIO:
    """Open ``path`` for reading bytes; ``.gz``/``.dz`` and ``.bz2`` files are decompressed on the fly
    under the ratio and total caps (a :class:`FileFormatError` naming the file when one is passed)."""
    from nlp182.io import check_input_file  # io reads through this module

    path = check_input_file(path)  # missing, a folder or a device: each named as such
    if max_ratio < 1 or max_total < 1:
        raise InvalidInputError(f"max_ratio and max_total must be >= 1, got {max_ratio} and {max_total}")
    if not compressed(path):
        return path.open("rb")
    counting = _Counting(path.open("rb"))  # type: ignore[arg-type]
    buffered = io.BufferedReader(counting, SKIP_CHUNK)
    gzipped = path.suffix.lower() in GZIP_SUFFIXES
    inner = gzip.GzipFile(fileobj=buffered) if gzipped else bz2.BZ2File(buffered)
    guarded = _Guarded(inner, counting, str(path), max_ratio, max_total)  # type: ignore[arg-type]
    return io.BufferedReader(guarded, SKIP_CHUNK)  # type: ignore[return-value]


class BoundedLines:
    """Iterate ``(line_number, line)`` over a binary stream, each line at most ``max_bytes`` bytes.

    Line numbers start at ``first`` and count every line, skipped ones too. A longer line is
    skipped and counted (``on_long="skip"``; :meth:`warn_skipped` logs the count once) or refused
    with a one-line :class:`FileFormatError` naming the file, the line and the limit
    (``on_long="error"``). The ``\\n`` is removed; a ``\\r`` before it is kept.
    """

    def __init__(
        self,
        stream: BinaryIO,
        max_bytes: int = MAX_LINE_BYTES,
        name: str = "input",
        on_long: Literal["skip", "error"] = "skip",
        first: int = 1,
        flag: str = "--max-line-bytes",
    ) -> None:
        if max_bytes < 1:
            raise InvalidInputError(f"the longest line must be >= 1 byte, got {max_bytes}")
        self.stream, self.max_bytes, self.name, self.on_long = stream, max_bytes, name, on_long
        self.flag, self.number = flag, first - 1
        self.skipped: list[int] = []

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        while (item := self.readline()) is not None:
            yield item

    def readline(self) -> tuple[int, bytes] | None:
        """The next kept ``(line_number, line)``, or None at the end of the stream."""
        while True:
            line = self.stream.readline(self.max_bytes + 1)
            if not line:
                return None
            self.number += 1
            if line.endswith(b"\n"):
                return self.number, line[:-1]
            if len(line) <= self.max_bytes:  # the last line, without a line end
                return self.number, line
            del line
            self._drain()
            if self.on_long == "error":
                raise FileFormatError(
                    f"{self.name}: line {self.number} is longer than {mib(self.max_bytes)} (the limit); "
                    f"pass {self.flag} to raise it"
                )
            self.skipped.append(self.number)

    def _drain(self) -> None:
        while True:
            rest = self.stream.readline(SKIP_CHUNK)
            if not rest or rest.endswith(b"\n"):
                return

    def warn_skipped(self, done: str = "skipped") -> None:
        """Log one warning with the number of skipped lines and the first of them, if any; ``done``
        says what became of them (``"skipped"``, ``"left untranslated"``)."""
        if self.skipped:
            count = len(self.skipped)
            log.warning(
                "%s: %s %d line%s longer than %s (first: line %d); pass %s to keep them",
                self.name, done, count, "" if count == 1 else "s", mib(self.max_bytes), self.skipped[0],
                self.flag,
            )


@dataclass(frozen=True)
class ReadLimits:
    """The bounds one reader applies: longest line (or record), and the decompression caps."""

    max_line: int = MAX_LINE_BYTES
    max_ratio: float = MAX_RATIO
    max_total: int = MAX_DECOMPRESSED_BYTES

    def open(self, path: str | os.PathLike[str]) -> BinaryIO:
        """:func:`open_bounded` with these caps."""
        return open_bounded(path, self.max_ratio, self.max_total)

    def lines(
        self, stream: BinaryIO, name: object, on_long: Literal["skip", "error"] = "skip", first: int = 1
    ) -> BoundedLines:
        """:class:`BoundedLines` over ``stream`` with this longest line."""
        return BoundedLines(stream, self.max_line, str(name), on_long, first)

    def blocks(
        self,
        stream: BinaryIO,
        name: object,
        piece_bytes: int = 8 << 20,
        on_long: Literal["skip", "split"] = "skip",
    ) -> LineBlocks:
        """:class:`LineBlocks` over ``stream`` with this longest line."""
        return LineBlocks(stream, self.max_line, str(name), piece_bytes, on_long=on_long)


_UTF8_BOM = b"\xef\xbb\xbf"


class LineBlocks:
    """Whole lines of a binary stream, about ``piece_bytes`` at a time, lines longer than
    ``max_bytes`` skipped and counted (``on_long="skip"``) or cut into pieces at word breaks
    (``on_long="split"``, :func:`split_line`, each piece then a line of its own: a corpus's
    sentences): what :class:`BoundedLines` does line by line, at the speed of a block reader (the
    corpus encoder hands blocks to a C word scanner).

    Iterating yields ``(start, end, data)``: ``data`` is the stream's bytes ``[start, end)``, whole
    lines each at most ``max_bytes`` long (not counting the ``\\n``), ending with ``\\n`` (one is
    added after a last line without it). A block never holds more than ``piece_bytes`` plus one
    line of ``max_bytes``, whatever the stream: an overlong line is drained in ``SKIP_CHUNK``
    pieces. Most blocks are checked for overlong lines by looking for a line break in each aligned
    window of ``(max_bytes + 1) // 2`` bytes (any longer line holds such a window whole), so only a
    block holding a window without one is split into lines. ``skipped`` lists the byte offset of
    every skipped line's start; when splitting, ``cuts`` where each cut was made and ``dropped``
    where each run without a word break longer than ``max_bytes`` began. ``not_utf8`` counts the
    lines yielded that are not UTF-8 (their bad bytes decode as U+FFFD, which splits words) and
    ``first_not_utf8`` is the first one's offset: a block is decoded only when it is not ASCII, and
    split into lines only when it fails. A UTF-8 byte order mark at the stream's start (Windows
    editors write one) is read as spaces.
    """

    def __init__(
        self,
        stream: BinaryIO,
        max_bytes: int = MAX_LINE_BYTES,
        name: str = "input",
        piece_bytes: int = 8 << 20,
        flag: str = "--max-line-bytes",
        on_long: Literal["skip", "split"] = "skip",
    ) -> None:
        if max_bytes < 1 or piece_bytes < 1:
            raise InvalidInputError(
                f"the longest line and the block must be >= 1 byte, got {max_bytes} and {piece_bytes}"
            )
        self.stream, self.max_bytes, self.name, self.piece_bytes = stream, max_bytes, name, piece_bytes
        self.flag, self.split = flag, on_long == "split"
        self.skipped: list[int] = []
        self.cuts: list[int] = []
        self.dropped: list[int] = []
        self.not_utf8 = 0
        self.first_not_utf8: int | None = None

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        for start, end, data in self._blocks():
            if start == 0 and data.startswith(_UTF8_BOM):  # an encoding mark, not text: it stuck to
                data = b"   " + data[len(_UTF8_BOM):]  # the first word; spaces keep the offsets
            if not data.isascii():
                self._count_not_utf8(start, data)
            yield start, end, data

    def _count_not_utf8(self, offset: int, block: bytes) -> None:
        """Count the lines of ``block`` (whole lines at ``offset``) that are not UTF-8."""
        try:
            block.decode("utf-8")
            return
        except UnicodeDecodeError:
            pass
        start = 0
        for line in block.split(b"\n"):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                self.not_utf8 += 1
                if self.first_not_utf8 is None:
                    self.first_not_utf8 = offset + start
            start += len(line) + 1

    def _blocks(self) -> Iterator[tuple[int, int, bytes]]:
        offset, data, ended, dropping = 0, bytearray(), False, False
        while True:
            if not ended:
                more = self.stream.read(self.piece_bytes)
                ended = not more
                data += more
            if dropping:  # inside a run without a word break, longer than the bound
                found = _BREAK_OR_LINE_END.search(data)
                dropping = found is None
                # up to the break (which goes too) or the line end (which stays: it ends the line)
                gone = len(data) if found is None else found.start() + (found.group() != b"\n")
                offset += gone
                del data[:gone]
            if not data:
                if ended:
                    return
                continue
            cut = data.rfind(b"\n") + 1
            if cut:
                yield from self._kept(offset, bytes(data[:cut]))
                offset += cut
                del data[:cut]
            elif ended:  # the last line, without a line break
                if len(data) <= self.max_bytes:
                    yield offset, offset + len(data), bytes(data) + b"\n"
                elif self.split:
                    yield from self._pieces(offset, data, split_line(data, self.max_bytes, complete=True))
                else:
                    self.skipped.append(offset)
                return
            elif len(data) > self.max_bytes and self.split:  # cut what is read; the line goes on
                pieces = split_line(data, self.max_bytes, complete=False)
                yield from self._pieces(offset, data, pieces)
                dropping = pieces.dropping
                offset += pieces.rest
                del data[: pieces.rest]
            elif len(data) > self.max_bytes:  # an overlong line whose end is not read yet
                self.skipped.append(offset)
                offset += len(data)
                data.clear()
                while (rest := self.stream.readline(SKIP_CHUNK)) and not rest.endswith(b"\n"):
                    offset += len(rest)
                offset += len(rest)
                ended = not rest

    def _long_lines(self, block: bytes) -> list[tuple[int, int]]:
        """``[start, end)`` (line break included) of the overlong lines of ``block`` (whole lines)."""
        window = (self.max_bytes + 1) // 2
        if len(block) <= self.max_bytes:
            return []
        windows = range(0, len(block) - window + 1, window)
        if len(windows) <= 1024 and all(block.find(b"\n", start, start + window) >= 0 for start in windows):
            return []
        import numpy as np

        breaks = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
        starts = np.r_[0, breaks[:-1] + 1]
        long = np.flatnonzero(breaks - starts > self.max_bytes)
        return list(zip(starts[long].tolist(), (breaks[long] + 1).tolist(), strict=True))

    def _pieces(
        self, offset: int, data: bytes | bytearray, pieces: Pieces
    ) -> Iterator[tuple[int, int, bytes]]:
        """The ``pieces`` of ``data`` (a stretch of one overlong line at ``offset``), each with a
        line break added; their cuts and drops are recorded."""
        self.cuts += [offset + at for at in pieces.cuts]
        self.dropped += [offset + at for at in pieces.dropped]
        for start, end in pieces.spans:
            yield offset + start, offset + end, bytes(data[start:end]) + b"\n"

    def _kept(self, offset: int, block: bytes) -> Iterator[tuple[int, int, bytes]]:
        """The runs of ``block`` (whole lines at ``offset``) between its overlong lines, and the
        pieces of those when splitting."""
        kept = 0
        for start, end in self._long_lines(block):
            if start > kept:
                yield offset + kept, offset + start, block[kept:start]
            if self.split:
                line = block[start : end - 1]
                yield from self._pieces(offset + start, line, split_line(line, self.max_bytes, complete=True))
            else:
                self.skipped.append(offset + start)
            kept = end
        if kept < len(block):
            yield offset + kept, offset + len(block), block[kept:] if kept else block

    def warn_skipped(self, reopen: Callable[[], BinaryIO] | None = None) -> None:
        """Log what became of overlong lines, if any: one warning with the number of skipped lines
        (or dropped runs) and the first of them, and one info line with the number of cuts; and one
        warning with the number of lines that are not UTF-8 and the first of them. The first
        is named by its line number when ``reopen`` gives the stream again from its start (its lines
        before are counted then, so a file without overlong lines costs nothing), else by its byte
        offset."""

        def where(offset: int) -> str:
            if reopen is None:
                return f"byte {offset:,}"
            with reopen() as stream:
                return f"line {line_number_at(stream, offset)}"

        bound, flag = mib(self.max_bytes), self.flag
        if self.skipped:
            count = len(self.skipped)
            log.warning("%s: skipped %d line%s longer than %s (first: %s); pass %s to keep them",
                        self.name, count, "" if count == 1 else "s", bound, where(self.skipped[0]), flag)
        if self.dropped:
            count = len(self.dropped)
            log.warning("%s: dropped %d run%s of over %s without a space (first: %s); pass %s to keep them",
                        self.name, count, "" if count == 1 else "s", bound, where(self.dropped[0]), flag)
        if self.first_not_utf8 is not None:
            count = self.not_utf8
            log.warning("%s: %d line%s not UTF-8 (first: %s); their bad bytes read as U+FFFD, which "
                        "splits their words: convert the file to UTF-8, e.g. iconv -f CP1252 -t UTF-8 for "
                        "Windows text",
                        self.name, count, " is" if count == 1 else "s are", where(self.first_not_utf8))
        if self.cuts:
            count = len(self.cuts)
            log.info("%s: lines longer than %s read in pieces cut at spaces, each piece a sentence (%d "
                     "cut%s, first in %s; %s sets the piece size)",
                     self.name, bound, count, "" if count == 1 else "s", where(self.cuts[0]), flag)


def line_number_at(stream: BinaryIO, offset: int) -> int:
    """The 1-based number of the line starting at byte ``offset`` of ``stream`` (read from where it
    is, ``SKIP_CHUNK`` bytes at a time)."""
    breaks, left = 0, offset
    while left > 0 and (data := stream.read(min(SKIP_CHUNK, left))):
        breaks += data.count(b"\n")
        left -= len(data)
    return breaks + 1
