"""``nlp182.bounded``: lines of at most N bytes and decompression under a ratio and a total cap,
against hand-computed cases."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import logging

import numpy as np
import pytest

from nlp182.bounded import (
    SKIP_CHUNK,
    BoundedLines,
    LineBlocks,
    ReadLimits,
    line_number_at,
    mib,
    open_bounded,
    read_capped,
    split_line,
)
from nlp182.corpora.text import paragraphs
from nlp182.errors import FileFormatError, MissingFileError
from nlp182.io import read_json


class _Recording(io.BytesIO):
    """A stream that remembers the longest piece ``readline`` handed out and the bytes in total."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.longest = self.total = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.longest, self.total = max(self.longest, len(line)), self.total + len(line)
        return line


def test_lines_over_the_bound_are_skipped_and_numbered() -> None:
    data = b"ab\n" + b"x" * 10 + b"\ncd\r\n\nabcd\nabcde\nlast"
    lines = BoundedLines(io.BytesIO(data), max_bytes=4, name="f.txt")
    assert list(lines) == [(1, b"ab"), (3, b"cd\r"), (4, b""), (5, b"abcd"), (7, b"last")]
    assert lines.skipped == [2, 6] and lines.number == 7


def test_a_last_line_one_byte_over_the_bound_is_skipped() -> None:
    lines = BoundedLines(io.BytesIO(b"abcd\nabcde"), max_bytes=4)
    assert list(lines) == [(1, b"abcd")] and lines.skipped == [2]


def test_a_long_line_is_an_error_naming_file_line_and_limit() -> None:
    data = io.BytesIO(b"ok\n" + b"y" * 2048 + b"\n")
    lines = BoundedLines(data, max_bytes=1024, name="v.txt", on_long="error")
    with pytest.raises(FileFormatError) as caught:
        list(lines)
    assert str(caught.value) == (
        "v.txt: line 2 is longer than 1 KiB (the limit); pass --max-line-bytes to raise it"
    )


def test_a_huge_line_is_read_once_in_pieces_of_the_bound() -> None:
    data = b"z" * (5 * SKIP_CHUNK + 7) + b"\nend\n"
    stream = _Recording(data)
    assert list(BoundedLines(stream, max_bytes=1000)) == [(2, b"end")]
    assert stream.longest <= SKIP_CHUNK and stream.total == len(data)


def test_warning_counts_the_skipped_lines(caplog) -> None:
    lines = BoundedLines(io.BytesIO(b"xxxxx\nok\nyyyyyy\n"), max_bytes=4, name="c.txt")
    assert [n for n, _ in lines] == [2]
    lines.warn_skipped()
    assert "c.txt: skipped 2 lines longer than 4 bytes (first: line 1); pass --max-line-bytes" in caplog.text


@pytest.mark.parametrize("compress, suffix", [(gzip.compress, ".gz"), (bz2.compress, ".bz2")])
def test_compressed_files_read_as_their_text(tmp_path, compress, suffix) -> None:
    text = b"".join(b"line %d\n" % i for i in range(1000))
    path = tmp_path / f"t.txt{suffix}"
    path.write_bytes(compress(text))
    with open_bounded(path) as handle:
        assert handle.read() == text


def test_a_compression_bomb_stops_at_the_ratio(tmp_path) -> None:
    path = tmp_path / "zeros.gz"
    path.write_bytes(gzip.compress(bytes(80 << 20)))  # 80 MiB in about 80 KB: a ratio near 1000
    with open_bounded(path) as handle, pytest.raises(FileFormatError, match="expands more than 100 times"):
        while handle.read(SKIP_CHUNK):
            pass
    with open_bounded(path, max_ratio=1e6) as handle:  # allowed: all 80 MiB come out
        assert sum(len(chunk) for chunk in iter(lambda: handle.read(SKIP_CHUNK), b"")) == 80 << 20


def test_the_total_cap_holds_whatever_the_ratio(tmp_path) -> None:
    path = tmp_path / "t.bz2"
    path.write_bytes(bz2.compress(b"abc\n" * 1000))  # 4,000 bytes
    with ReadLimits(max_total=3000).open(path) as handle, pytest.raises(FileFormatError) as caught:
        handle.read()
    assert str(caught.value).endswith("decompresses to more than 3,000 bytes (the limit); "
                                      "pass --max-decompressed-bytes to raise it")
    with ReadLimits(max_total=4000).open(path) as handle:
        assert len(handle.read()) == 4000


def test_a_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.gz does not exist"):
        open_bounded(tmp_path / "nope.gz")


def test_sizes_read_as_binary_units() -> None:
    assert [mib(1 << 20), mib(10 << 20), mib(1 << 40), mib(1536), mib(1000), mib(64 << 10)] == [
        "1 MiB", "10 MiB", "1 TiB", "1.5 KiB", "1,000 bytes", "64 KiB"]


def test_paragraphs_are_cut_after_the_line_that_passes_the_bound() -> None:
    assert list(paragraphs(["a b", "c", "", "d"])) == ["a b c", "d"]
    assert list(paragraphs(["a b", "c", "", "d"], max_bytes=3)) == ["a b", "c", "d"]
    # Cut before the bound, counted in UTF-8 bytes: 8 characters but 14 bytes do not fit in 10.
    assert list(paragraphs(["ééé", "ééé"], max_bytes=10)) == ["ééé", "ééé"]
    assert all(len(p.encode()) <= 10 for p in paragraphs(["ab cd"] * 9, max_bytes=10))


def test_a_file_of_one_paragraph_a_line_keeps_its_lines(tmp_path) -> None:
    """49,591 one-paragraph lines without blank lines between them were joined into 8 lines of a
    megabyte; text wrapped by hand (short lines) is still joined up to its blank lines."""
    from nlp182.bounded import ReadLimits
    from nlp182.corpora.text import file_paragraphs

    long_lines = [" ".join(f"word{i}x{j}" for j in range(30)) for i in range(3)]  # ~300 characters each
    wrapped = ["a short line of hand", "wrapped text", "", "another one"]
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join([*long_lines, "", *wrapped]) + "\n")
    assert list(file_paragraphs(path, ReadLimits())) == [
        *long_lines, "a short line of hand wrapped text", "another one"]
    assert list(paragraphs(long_lines)) == [" ".join(long_lines)]  # the recipes' rule is unchanged
    assert list(paragraphs("x\n  \ny  z\nw\n")) == ["x", "y z w"]


class _Reads(io.BytesIO):
    """A stream that remembers the most bytes one ``read`` or ``readline`` handed out."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.longest = 0

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        data = super().read(size)
        self.longest = max(self.longest, len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.longest = max(self.longest, len(line))
        return line


@pytest.mark.parametrize("seed", range(40))
def test_line_blocks_keep_what_bounded_lines_keep(seed: int) -> None:
    """Random lines around the bound (some far past it, a last line with or without its line
    break), random bounds and block sizes: the blocks are the stream's own bytes at their offsets,
    and hold exactly the lines ``BoundedLines`` keeps, and skip the lines it skips."""
    rng = np.random.default_rng(seed)
    max_bytes, piece = int(rng.integers(1, 40)), int(rng.integers(1, 120))
    lengths = rng.choice([0, 1, max_bytes - 1, max_bytes, max_bytes + 1, 3 * max_bytes, 300], size=30)
    data = b"\n".join(bytes(rng.integers(97, 123, size=max(int(n), 0)).astype(np.uint8)) for n in lengths)
    data += b"\n" if seed % 2 else b""
    reference = BoundedLines(io.BytesIO(data), max_bytes)
    kept = [line + b"\n" for _, line in reference]
    blocks = LineBlocks(io.BytesIO(data), max_bytes, piece_bytes=piece)
    found = list(blocks)
    assert b"".join(block for _, _, block in found) == b"".join(kept)
    for start, end, block in found:
        assert block.endswith(b"\n") and data[start:end] == block[: end - start]
    assert [line_number_at(io.BytesIO(data), offset) for offset in blocks.skipped] == reference.skipped


def test_line_blocks_hold_a_block_and_one_bound_whatever_the_line() -> None:
    data = b"ok\n" + b"z" * (5 * SKIP_CHUNK + 7) + b"\nend\n"
    stream = _Reads(data)
    blocks = LineBlocks(stream, max_bytes=1000, piece_bytes=4096)
    assert list(blocks) == [(0, 3, b"ok\n"), (len(data) - 4, len(data), b"end\n")]
    assert blocks.skipped == [3] and stream.longest <= SKIP_CHUNK


def test_line_blocks_warn_once_with_the_first_skipped_line(caplog) -> None:
    data = b"a\n" + b"x" * 50 + b"\nb\n" + b"y" * 60
    blocks = LineBlocks(io.BytesIO(data), max_bytes=10, name="c.txt", piece_bytes=16)
    assert b"".join(block for _, _, block in blocks) == b"a\nb\n"
    blocks.warn_skipped(lambda: io.BytesIO(data))
    assert caplog.messages == [
        "c.txt: skipped 2 lines longer than 10 bytes (first: line 2); pass --max-line-bytes to keep them"
    ]


def test_line_blocks_count_the_lines_that_are_not_utf8(caplog) -> None:
    """A cp1252 stretch inside UTF-8 text read as U+FFFD without a word: the lines are counted,
    across blocks, and the first is named."""
    good, bad = "naïve café\n".encode(), "naïve café\n".encode("cp1252")
    data = b"ascii\n" * 3 + good + bad + good * 40 + bad + b"\xff" + bad
    blocks = LineBlocks(io.BytesIO(data), max_bytes=100, name="m.txt", piece_bytes=64)
    assert b"".join(block for _, _, block in blocks) == data
    lines = data.split(b"\n")
    expected = [line for line in lines if line != line.decode("utf-8", "replace").encode()]
    assert blocks.not_utf8 == len(expected) == 3 and blocks.first_not_utf8 == data.index(bad)
    blocks.warn_skipped(lambda: io.BytesIO(data))
    assert caplog.messages[0].startswith("m.txt: 3 lines are not UTF-8 (first: line 5); their bad bytes")
    clean = LineBlocks(io.BytesIO(good * 10), piece_bytes=16)
    list(clean)
    clean.warn_skipped()
    assert clean.not_utf8 == 0 and clean.first_not_utf8 is None and len(caplog.messages) == 1


def _split_reference(data: bytes, max_bytes: int) -> list[bytes]:
    """The non-empty lines and pieces of ``data``, each overlong line cut by ``split_line`` whole."""
    lines = data.split(b"\n")
    pieces = []
    for line in lines[:-1] if data.endswith(b"\n") else lines:
        long = len(line) > max_bytes
        pieces += [line[a:b] for a, b in split_line(line, max_bytes, True).spans] if long else [line]
    return [piece for piece in pieces if piece]


@pytest.mark.parametrize("seed", range(60))
def test_line_blocks_cut_long_lines_as_split_line_cuts_them_whole(seed: int) -> None:
    """Random text of words, spaces, tabs and line breaks, random bounds and block sizes: every
    block is the stream's own bytes at its offset with line breaks added between pieces, no line or
    piece is over the bound, and the pieces are the ones the whole line gives."""
    rng = np.random.default_rng(seed)
    max_bytes, piece = int(rng.integers(1, 30)), int(rng.integers(1, 100))
    alphabet = np.frombuffer(b"abcde  \t\n\r", dtype=np.uint8)
    data = bytes(rng.choice(alphabet, size=int(rng.integers(0, 400)), p=rng.dirichlet([0.5] * 10)))
    found = list(LineBlocks(io.BytesIO(data), max_bytes, piece_bytes=piece, on_long="split"))
    for start, end, block in found:
        assert block.endswith(b"\n") and data[start:end] == block[: end - start]
        assert len(block) in (end - start, end - start + 1)
        assert max(map(len, block.split(b"\n"))) <= max_bytes
    lines = [line for _, _, block in found for line in block.split(b"\n")[:-1]]
    assert [line for line in lines if line] == _split_reference(data, max_bytes)


def test_split_line_cuts_before_the_last_break_and_drops_runs_without_one() -> None:
    assert split_line(b"aa bb cc dd", 5, complete=True) == ([(0, 5), (6, 11)], 11, False, [], [5])
    assert split_line(b"aa\tbb cc", 4, complete=True).spans == [(0, 2), (3, 5), (6, 8)]
    assert split_line(b"aaaaaaaa bb cc", 5, complete=True) == ([(9, 14)], 14, False, [0], [])
    assert split_line(b"aa bbbbbbbbbbb", 5, complete=False) == ([(0, 2)], 14, True, [3], [2])
    assert split_line(b"aa bb cc", 5, complete=False) == ([(0, 5)], 6, False, [], [5])  # "cc" may go on


def test_line_blocks_split_a_huge_line_holding_a_block_and_one_bound(caplog) -> None:
    caplog.set_level(logging.INFO, logger="nlp182.bounded")
    words = b"alpha beta " * (SKIP_CHUNK // 2) + b"z" * 3000 + b" omega\nend"
    stream = _Reads(b"ok\n" + words)
    blocks = LineBlocks(stream, max_bytes=1000, name="c.txt", piece_bytes=4096, on_long="split")
    lines = [line for _, _, block in blocks for line in block.split(b"\n")[:-1]]
    assert stream.longest <= 4096 and max(map(len, lines)) <= 1000
    assert b" ".join(lines) == b"ok " + words.replace(b" " + b"z" * 3000, b"").replace(b"\n", b" ")
    blocks.warn_skipped(lambda: io.BytesIO(b"ok\n" + words))
    assert caplog.messages == [
        "c.txt: dropped 1 run of over 1,000 bytes without a space (first: line 2); pass --max-line-bytes "
        "to keep them",
        f"c.txt: lines longer than 1,000 bytes read in pieces cut at spaces, each piece a sentence "
        f"({len(lines) - 3} cuts, first in line 2; --max-line-bytes sets the piece size)",
    ]


def test_a_file_read_whole_is_refused_past_its_cap_naming_size_and_limit(tmp_path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a": "x" * 2100}))  # 2,109 bytes
    assert read_json(path, max_bytes=4096) == {"a": "x" * 2100}
    assert read_capped(path, 2109) == path.read_bytes()
    with pytest.raises(FileFormatError) as caught:
        read_json(path, max_bytes=2 << 10)
    assert str(caught.value) == (
        f"{path} is 2,109 bytes, more than the 2 KiB a file read whole may hold (the limit); "
        "split it or name a smaller file"
    )
    with pytest.raises(FileFormatError, match="2,109 bytes, more than the 2,108 bytes"):
        read_capped(path, 2108)
