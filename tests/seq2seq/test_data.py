"""The date generator, the parallel-text readers and the splitter."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import torch

from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.seq2seq.batching import make_loader
from nlp182.seq2seq.data import MONTHS, date_pairs, date_splits, read_aligned_files, read_tsv, split_pairs


def _parse_back(text: str) -> dt.date:
    """An independent reading of every generated format (numbers + month names)."""
    lowered = text.lower()
    month = next((i + 1 for i, name in enumerate(MONTHS) if re.search(rf"\b{name[:3]}", lowered)), None)
    numbers = [int(n) for n in re.findall(r"\d+", lowered)]
    if month is None:
        if re.fullmatch(r"\d{4}/\d{2}/\d{2}", text):
            year, month, day = numbers
        else:
            day, month, year = numbers
    else:
        day, year = numbers
    if year < 100:
        year += 2000 if year < 50 else 1900
    return dt.date(year, month, day)


def test_date_pairs_are_correct_in_every_format() -> None:
    train, valid, test = date_splits(600, 50, 50, seed=3)
    for source, target in train + valid + test:
        assert _parse_back(source).isoformat() == target, source
    sources = {s for s, _ in date_pairs([dt.date(2018, 5, 9)] * 300, seed=0)}
    # The forms (9 May 2018 was a Wednesday: the generator writes the true weekday).
    assert {"wednesday 9 may 2018", "9/5/18", "May 9th, 2018"} <= sources
    assert len(sources) == 10


def test_date_splits_are_seeded_and_use_disjoint_dates() -> None:
    first = date_splits(500, 100, 100, seed=7)
    assert first == date_splits(500, 100, 100, seed=7)
    assert first != date_splits(500, 100, 100, seed=8)
    train_dates = {t for _, t in first[0]}
    held_out = {t for _, t in first[1] + first[2]}
    assert len(train_dates) == 500 and not train_dates & held_out
    with pytest.raises(InvalidInputError):
        date_splits(40000, 1, 1)


def test_read_aligned_files(tmp_path) -> None:
    src, tgt = tmp_path / "train.de", tmp_path / "train.en"
    src.write_text("guten tag\n\nwie geht es\n", encoding="utf-8")
    tgt.write_text("good day\n\nhow are you\n", encoding="utf-8")
    assert read_aligned_files(src, tgt) == [("guten tag", "good day"), ("wie geht es", "how are you")]
    tgt.write_text("good day\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="lines"):
        read_aligned_files(src, tgt)
    tgt.write_text("good day\nhello\nhow are you\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="line 2"):
        read_aligned_files(src, tgt)
    with pytest.raises(MissingFileError):
        read_aligned_files(src, tmp_path / "nope.en")


def test_read_tsv_by_number_and_by_header_name(tmp_path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("id\tde\ten\n1\thallo\thello\n2\tdanke\tthank you\n", encoding="utf-8")
    assert read_tsv(path, "de", "en") == [("hallo", "hello"), ("danke", "thank you")]
    assert read_tsv(path, "2", "1")[1:] == [("hello", "hallo"), ("thank you", "danke")]
    with pytest.raises(InvalidInputError, match="fr"):
        read_tsv(path, "de", "fr")
    path.write_text("hallo\thello\ndanke\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="row 2"):
        read_tsv(path)


def test_a_tab_inside_a_sentence_is_refused_and_a_header_row_skipped(tmp_path) -> None:
    """A target holding a tab was cut at it without a word, and a ``source<TAB>target`` first row
    was trained on as a pair (the caption reader refused the one and skipped the other)."""
    path = tmp_path / "pairs.tsv"
    path.write_text("Source\tTarget\none two\t1 2\nthree\t3\textra words\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="row 3 has 3 tab-separated columns where the first row has 2"):
        read_tsv(path)
    path.write_text("Source\tTarget\none two\t1 2\nthree\t3\n", encoding="utf-8")
    assert read_tsv(path) == [("one two", "1 2"), ("three", "3")]
    path.write_text("en\tfr\tby\nhello\tbonjour\tann\nthanks\tmerci\tbob\n", encoding="utf-8")
    assert read_tsv(path) == [("en", "fr"), ("hello", "bonjour"), ("thanks", "merci")]  # 3 in each row
    path.write_text("src\ttgt\nhello world\tbonjour\nthree\tfour\tcut here\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="row 3 has 3 tab-separated columns where the header has 2"):
        read_tsv(path, "src", "tgt")
    path.write_text("hello\tbonjour\t\t\nthanks\tmerci\n", encoding="utf-8")  # a spreadsheet's empty cells
    assert read_tsv(path) == [("hello", "bonjour"), ("thanks", "merci")]


def test_a_file_of_classic_mac_line_ends_is_named_as_such(tmp_path) -> None:
    """Read as one line, it was refused as "1 pairs are too few to hold out 1 for validation"."""
    path = tmp_path / "cr.tsv"
    path.write_bytes(b"abc\tcba\rdef\tfed\rghi\tihg\r")
    with pytest.raises(FileFormatError, match="end in a carriage return alone"):
        read_tsv(path)
    path.write_bytes(b"abc\tcba\r\ndef\tfed\r\n")  # Windows line ends read as ever
    assert read_tsv(path) == [("abc", "cba"), ("def", "fed")]


def test_split_pairs_is_a_seeded_partition() -> None:
    pairs = [(str(i), str(i)) for i in range(100)]
    train, valid, test = split_pairs(pairs, 0.1, 0.05, seed=1)
    assert (len(train), len(valid), len(test)) == (85, 10, 5)
    assert sorted(train + valid + test) == sorted(pairs)
    assert split_pairs(pairs, 0.1, 0.05, seed=1) == (train, valid, test)
    with pytest.raises(InvalidInputError):
        split_pairs(pairs[:2], 0.5, 0.4)


def test_pairs_that_share_a_source_stay_in_one_split_and_a_bom_is_not_text(tmp_path) -> None:
    pairs = [("a b", "b a"), ("c d", "d c"), ("e f", "f e"), ("g h", "h g")] * 40 + [("g h", "h  g")]
    train, valid, test = split_pairs(pairs, 0.05, 0.05, seed=0)
    assert not {s for s, _ in train} & {s for s, _ in valid + test}  # nothing held out was trained on
    assert not {s for s, _ in valid} & {s for s, _ in test} and len(train + valid + test) == len(pairs)
    with pytest.raises(InvalidInputError, match="only 2 distinct sources"):
        split_pairs(pairs[:2] * 10, 0.1, 0.1)
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffsrc\ttgt\nabc\tcba\n".encode())
    assert read_tsv(path, source_column="src", target_column="tgt") == [("abc", "cba")]
    path.write_bytes("\ufeffabc\tcba\n".encode())
    assert read_tsv(path) == [("abc", "cba")]


def test_the_shuffled_loader_follows_its_own_seed_not_the_global_one() -> None:
    """The batch order is the loader's seed's alone, so a run repeats and resumes mid-epoch
    whatever else drew from torch's global generator."""
    pairs = [([token], [token]) for token in range(4, 24)]

    def order(global_seed: int, seed: int) -> list[int]:
        torch.manual_seed(global_seed)
        return [int(batch.source[0, 0]) for batch in make_loader(pairs, 1, shuffle=True, seed=seed)]

    assert order(0, seed=3) == order(1, seed=3) != order(0, seed=4)
    assert sorted(order(0, seed=3)) == list(range(4, 24))


def test_compressed_pair_files_read_as_plain_ones(tmp_path) -> None:
    """``.gz`` and ``.bz2`` data failed with "file or stream is not seekable" (no file named): the
    check for classic Mac line ends read the head, then seeked back."""
    import bz2
    import gzip

    text = b"hello\tbonjour\nthanks\tmerci\n"
    (tmp_path / "pairs.tsv.gz").write_bytes(gzip.compress(text))
    (tmp_path / "pairs.tsv.bz2").write_bytes(bz2.compress(text))
    (tmp_path / "de.txt.gz").write_bytes(gzip.compress(b"hallo\ndanke\n"))
    (tmp_path / "en.txt.bz2").write_bytes(bz2.compress(b"hello\nthank you\n"))
    for name in ("pairs.tsv.gz", "pairs.tsv.bz2"):
        assert read_tsv(tmp_path / name) == [("hello", "bonjour"), ("thanks", "merci")]
    assert read_aligned_files(tmp_path / "de.txt.gz", tmp_path / "en.txt.bz2") == [
        ("hallo", "hello"), ("danke", "thank you")]
    (tmp_path / "cr.tsv.gz").write_bytes(gzip.compress(b"abc\tcba\rdef\tfed\rghi\tihg\r"))
    with pytest.raises(FileFormatError, match="end in a carriage return alone"):
        read_tsv(tmp_path / "cr.tsv.gz")
