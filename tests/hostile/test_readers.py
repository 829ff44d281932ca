"""Files nobody here wrote, shaped like attacks, through the ``nlp182`` command: every case exits 0
or 2 with at most one error line and no traceback, within its time limit, and its peak memory
stays within a margin of what the imports alone hold (the bound, not the input, sets it)."""

from __future__ import annotations

import bz2
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

MIB = 1 << 20
ARTICLE = " ".join(f"word{i % 37} text" for i in range(60))  # 120 words: past the 50-word cut


def _page(title: str, text: str, page_id: int) -> bytes:
    return (f"  <page>\n    <title>{title}</title>\n    <ns>0</ns>\n    <id>{page_id}</id>\n    <revision>\n"
            f"      <text xml:space=\"preserve\">{text}</text>\n    </revision>\n  </page>\n").encode()


DUMP_HEAD = (b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="en">\n'
             b"  <siteinfo>\n    <sitename>Wikipedia</sitename>\n  </siteinfo>\n")
BOMB_PAGE = (b"  <page>\n    <title>Bomb</title>\n    <ns>0</ns>\n    <id>1</id>\n    <revision>\n"
             b'      <text xml:space="preserve">')


def _repeated(compress, head: bytes, filler: bytes, mib: int, tail: bytes) -> bytes:
    """``head``, ``mib`` MiB of ``filler`` and ``tail``, as concatenated compressed streams (gzip
    members, bz2 streams: both formats allow them): one MiB is compressed once and repeated."""
    block = compress(filler * (MIB // len(filler)))
    return compress(head) + block * mib + compress(tail)


def _bz2_dump(path: Path, huge_text_mib: int) -> Path:
    """A dump whose first page's <text> is ``huge_text_mib`` MiB on one line, then a normal page."""
    tail = b"</text>\n    </revision>\n  </page>\n" + _page("Fine", ARTICLE, 2) + b"</mediawiki>\n"
    path.write_bytes(_repeated(bz2.compress, DUMP_HEAD + BOMB_PAGE, b"a", huge_text_mib, tail))
    return path


def _gzip_of(path: Path, head: bytes, filler: bytes, mib: int, tail: bytes = b"") -> Path:
    path.write_bytes(_repeated(gzip.compress, head, filler, mib, tail))
    return path


# ----------------------------------------------------------------------------- corpus prepare --wiki
def test_wiki_bz2_bomb_in_one_text_is_refused_by_its_expansion_ratio(cli, bounded, tmp_path) -> None:
    dump = _bz2_dump(tmp_path / "bomb.xml.bz2", 256)
    assert dump.stat().st_size < 16 << 10  # 256 MiB in 13 KB
    outcome = bounded(cli(["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt"]), 150, rc=2)
    assert "bomb.xml.bz2: expands more than 100 times" in outcome.error_lines[0]
    assert "--max-ratio" in outcome.error_lines[0] and not (tmp_path / "w.txt").exists()


def test_wiki_page_over_the_article_bound_is_skipped_and_counted(cli, bounded, tmp_path) -> None:
    dump = _bz2_dump(tmp_path / "big.xml.bz2", 96)
    argv = ["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt", "--max-ratio", "1e9",
            "--processes", "1"]
    outcome = bounded(cli(argv), 150, rc=0)
    assert "skipped 1 page longer than 10 MiB (first: page 1)" in outcome.stderr
    lines = (tmp_path / "w.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].split()[:3] == ["word0", "text", "word1"]


def test_wiki_article_bound_is_the_one_max_article_bytes_gives(cli, bounded, tmp_path) -> None:
    """``--max-article-bytes 2048`` skips a 5 KB page that the 10 MiB default keeps, and keeps the
    page of about 900 bytes after it."""
    long_page, short_page = _page("Long", " ".join([ARTICLE] * 7), 1), _page("Short", ARTICLE, 2)
    assert len(short_page) < 2048 < 5000 < len(long_page)
    dump = tmp_path / "two.xml.bz2"
    dump.write_bytes(bz2.compress(DUMP_HEAD + long_page + short_page + b"</mediawiki>\n"))
    argv = ["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt", "--processes", "1",
            "--max-article-bytes", "2048"]
    outcome = bounded(cli(argv), 150, rc=0)
    assert "skipped 1 page longer than 2 KiB (first: page 1)" in outcome.stderr
    assert (tmp_path / "w.txt").read_text().split() == ARTICLE.split()


def test_wiki_keeps_main_articles_of_50_words_or_more_markup_stripped(cli, bounded, tmp_path) -> None:
    """Of a dump's pages, the text of main-namespace articles of 50 words or more is kept, its wiki
    markup stripped; a 49-word article, a user talk page (ns 3) and a ``Template:`` title are left out."""
    fifty = " ".join(f"fifty{i}" for i in range(50))
    marked = "'''Bold''' [[Link target|shown words]] {{Infobox thing}} " + ARTICLE
    pages = [_page("Marked", marked, 1), _page("Fifty", fifty, 2), _page("Short", fifty.rsplit(" ", 1)[0], 3),
             _page("User talk:Someone", ARTICLE, 4).replace(b"<ns>0</ns>", b"<ns>3</ns>"),
             _page("Template:Boiler", ARTICLE, 5)]
    dump = tmp_path / "pages.xml.bz2"
    dump.write_bytes(bz2.compress(DUMP_HEAD + b"".join(pages) + b"</mediawiki>\n"))
    argv = ["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt", "--processes", "1"]
    bounded(cli(argv), 150, rc=0)
    lines = (tmp_path / "w.txt").read_text().splitlines()
    assert lines == [" ".join(["bold", "shown", "words", *ARTICLE.split()]), fifty]


def test_wiki_cut_inside_a_page_keeps_the_pages_before_and_says_so(cli, bounded, tmp_path) -> None:
    """A dump that ends inside a page (its bz2 stream whole, its XML cut) keeps the complete pages
    and warns that the last one was left out."""
    dump = tmp_path / "cut.xml.bz2"
    dump.write_bytes(bz2.compress(DUMP_HEAD + _page("Whole", ARTICLE, 1) + _page("Cut", ARTICLE, 2)[:90]))
    argv = ["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt", "--processes", "1"]
    outcome = bounded(cli(argv), 150, rc=0)
    assert "cut.xml.bz2: ends inside page 2, which is left out: the dump is truncated" in outcome.stderr
    assert (tmp_path / "w.txt").read_text().split() == ARTICLE.split()
    whole = tmp_path / "whole.xml.bz2"
    whole.write_bytes(bz2.compress(DUMP_HEAD + _page("Whole", ARTICLE, 1) + b"</mediawiki>\n"))
    outcome = bounded(cli([*argv[:3], whole, "--out", tmp_path / "v.txt", "--processes", "1"]), 150, rc=0)
    assert "truncated" not in outcome.stderr


def test_wiki_of_raw_bytes_is_refused_at_once(cli, bounded, tmp_path) -> None:
    dump = tmp_path / "raw.xml.bz2"
    dump.write_bytes(bz2.compress(np.random.default_rng(0).bytes(4 * MIB)))
    outcome = bounded(cli(["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt"]), 100, rc=2)
    assert "raw.xml.bz2 is not a MediaWiki XML dump" in outcome.error_lines[0]
    assert outcome.seconds < 30


def test_wiki_declaring_entities_is_refused(cli, bounded, tmp_path) -> None:
    laughs = b'<?xml version="1.0"?>\n<!DOCTYPE mediawiki [\n  <!ENTITY a "ha">\n' + b"".join(
        b'  <!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">\n' % ((98 + i,) + (97 + i,) * 10)
        for i in range(9)) + b"]>\n"
    dump = tmp_path / "laughs.xml.bz2"
    page = _page("Laugh", "&j; " + ARTICLE, 1)
    dump.write_bytes(bz2.compress(laughs + DUMP_HEAD + page + b"</mediawiki>\n"))
    outcome = bounded(cli(["corpus", "prepare", "--wiki", dump, "--out", tmp_path / "w.txt"]), 100, rc=2)
    assert "laughs.xml.bz2: declares XML entities" in outcome.error_lines[0]


# ----------------------------------------------------------------------------- corpus prepare --text
def test_text_run_of_20_mb_without_a_space_is_dropped_and_counted(cli, bounded, tmp_path) -> None:
    source = tmp_path / "one-line.txt"
    with source.open("wb") as handle:
        handle.write(b"First paragraph here.\n\n")
        handle.write(b"x" * (20 * MIB) + b"\n\nLast one.\n")
    outcome = bounded(cli(["corpus", "prepare", "--text", source, "--out", tmp_path / "c.txt"]), 100, rc=0)
    assert "dropped 1 run of over 1 MiB without a space (first: line 3)" in outcome.stderr
    assert (tmp_path / "c.txt").read_text() == "first paragraph here\nlast one\n"


def test_text_line_of_20_mb_of_words_comes_in_paragraphs_of_the_bound(cli, bounded, tmp_path) -> None:
    source = tmp_path / "one-line.txt"
    source.write_bytes(b"First paragraph here.\n\n" + b"Many words. " * (20 * MIB // 12) + b"\n\nLast one.\n")
    outcome = bounded(cli(["corpus", "prepare", "--text", source, "--out", tmp_path / "c.txt"]), 100, rc=0)
    assert "lines longer than 1 MiB read in pieces cut at spaces" in outcome.stderr
    lines = (tmp_path / "c.txt").read_text().splitlines()
    assert lines[0] == "first paragraph here" and lines[-1] == "last one"
    assert " ".join(lines[1:-1]).split() == ["many", "words"] * (20 * MIB // 12)
    assert max(map(len, lines)) <= MIB


def test_text_sparse_10_gb_file_is_binary_and_refused(cli, bounded, tmp_path) -> None:
    source = tmp_path / "sparse.txt"
    with source.open("wb") as handle:
        handle.truncate(10 << 30)  # no data block on disk: NUL bytes, no newline
    outcome = bounded(cli(["corpus", "prepare", "--text", source, "--out", tmp_path / "c.txt"]), 100, rc=2)
    assert "sparse.txt: line 1 holds a NUL byte: this is a binary file" in outcome.error_lines[0]
    assert outcome.seconds < 30


def test_text_gzip_bomb_is_refused_by_its_expansion_ratio(cli, bounded, tmp_path) -> None:
    source = _gzip_of(tmp_path / "bomb.txt.gz", b"hello\n", b"a", 200)
    outcome = bounded(cli(["corpus", "prepare", "--text", source, "--out", tmp_path / "c.txt"]), 100, rc=2)
    assert "bomb.txt.gz: expands more than 100 times" in outcome.error_lines[0]


# ----------------------------------------------------------------------------- import
def test_import_gzip_of_one_giant_line(cli, bounded, tmp_path) -> None:
    source = _gzip_of(tmp_path / "vectors.txt.gz", b"2 3\n", b"0 ", 256)
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run"]), 100, rc=2)
    assert "expands more than 100 times" in outcome.error_lines[0]
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run", "--max-ratio", "1e6"]), 100, rc=2)
    assert "vectors.txt.gz: line 2 is longer than 1 MiB" in outcome.error_lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "content"), [
    ("cut.txt.gz", gzip.compress(b"2000 2\n" + b"".join(b"w%d %d 2\n" % (i, i) for i in range(2000)))[:-100]),
    ("junk.txt.gz", b"\x1f\x8b\x08\x00" + b"junk" * 100),
    ("junk.txt.bz2", b"BZh9" + b"junk" * 100),
])
def test_damaged_compressed_files_are_one_line_errors(cli, bounded, tmp_path, name, content) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run"]), 100, rc=2)
    assert f"{name}: damaged or truncated compressed data" in outcome.error_lines[0]
    outcome = bounded(cli(["corpus", "prepare", "--text", source, "--out", tmp_path / "c.txt"]), 100, rc=2)
    assert f"{name}: damaged or truncated compressed data" in outcome.error_lines[0]


def test_import_binary_without_a_space_is_refused_quickly(cli, bounded, tmp_path) -> None:
    source = tmp_path / "vectors.bin"
    with source.open("wb") as handle:
        handle.write(b"2 4\n")
        handle.truncate(200 * MIB)
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run", "--format", "word2vec-binary"]),
                      100, rc=2)
    assert "word #0 is longer than 1 MiB (no space within it)" in outcome.error_lines[0]
    assert outcome.seconds < 20


def test_import_non_finite_vectors_are_refused_or_dropped(cli, bounded, tmp_path) -> None:
    source = tmp_path / "vectors.txt"
    # "long": finite values whose length overflows float32 (imported, then refused by every command)
    source.write_text("7 2\ngood 0.5 1\nnan 1 nan\ninf inf 1\nneg 1 -inf\nbig 1e39 0\nlong 3e38 3e38\n"
                      "fine -1 2\n")
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run"]), 100, rc=2)
    assert "vectors.txt: line 3 has a value that is nan, inf or beyond float32's range" in outcome.stderr
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run", "--nonfinite", "drop"]), 100, rc=0)
    assert "dropped 5 vectors with nan, inf or an overflow (first: line 3)" in outcome.stderr
    assert (tmp_path / "run" / "vocab.txt").read_text() == "good\nfine\n"
    assert np.array_equal(np.load(tmp_path / "run" / "vectors.npy"), [[0.5, 1], [-1, 2]])


@pytest.mark.parametrize(("header", "binary", "message"), [
    ("3 1000000000000", False, "dims need lines of at least 2,000,000,000,001 bytes"),
    ("3 1000000000000", True, "dims need at least 4,000,000,000,002 bytes a row"),
    ("100000000000000 4", False, "the header promises 100000000000000 words; the file ends after 1"),
    ("100000000000000 4", True, "the header promises 100000000000000 words but the file ends"),
    ("-5 4", False, "first line must be '<words> <dims>' (words >= 0, dims >= 1)"),
    ("4 0", False, "first line must be '<words> <dims>' (words >= 0, dims >= 1)"),
    ("0 4", False, "holds no vector to import"),  # a header of no words reads none, as in gensim
])
def test_import_absurd_headers_are_refused_before_allocating(cli, bounded, tmp_path, header, binary,
                                                             message) -> None:
    source = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    row = b"a " + struct.pack("<4f", 1, 2, 3, 4) if binary else b"a 1 2 3 4\n"
    source.write_bytes(header.encode() + b"\n" + row)
    kind = "word2vec-binary" if binary else "auto"
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run", "--format", kind]), 100, rc=2)
    assert message in outcome.error_lines[0] and source.name in outcome.error_lines[0]


def _keyed_vectors(count: int, dim: int):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(dim)
    kv.add_vectors([f"w{i}" for i in range(count)], np.ones((count, dim), dtype=np.float32))
    return kv


def test_import_kv_whose_array_claims_1e13_elements(cli, bounded, tmp_path) -> None:
    data = pickle.dumps(_keyed_vectors(4, 3), protocol=2)  # no frames: the shape can grow in place
    shape = b"K\x04K\x03\x86"  # BININT1 4, BININT1 3, TUPLE2: the matrix's shape in its state
    assert data.count(shape) == 1
    huge = b"\x8a\x06" + (10**13).to_bytes(6, "little") + b"K\x03\x86"  # LONG1 10**13, BININT1 3, TUPLE2
    source = tmp_path / "vectors.kv"
    source.write_bytes(data.replace(shape, huge))
    outcome = bounded(cli(["import", source, "--out", tmp_path / "run"]), 100, rc=2)
    assert "vectors.kv" in outcome.error_lines[0]
    assert "claims shape (10000000000000, 3)" in outcome.error_lines[0]


def test_import_kv_sidecar_npy_whose_header_claims_1e13_elements(cli, bounded, tmp_path) -> None:
    _keyed_vectors(4, 3).save(str(tmp_path / "vectors.kv"), sep_limit=0)  # the matrix in NAME.vectors.npy
    side = tmp_path / "vectors.kv.vectors.npy"
    data = side.read_bytes()
    old, new = b"(4, 3), }", b"(10000000000000, 3), }"
    pad = b" " * (len(new) - len(old))
    assert data.count(old + pad) == 1  # the header's padding absorbs the longer shape
    side.write_bytes(data.replace(old + pad, new))
    outcome = bounded(cli(["import", tmp_path / "vectors.kv", "--out", tmp_path / "run"]), 100, rc=2)
    assert "its header claims an array of shape (10000000000000, 3)" in outcome.error_lines[0]
