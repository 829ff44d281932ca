"""Corpus files nobody here wrote, plain text or JSON Lines, through ``nlp182 train w2v`` and
``nlp182 train lsa``: a text line past ``--max-line-bytes`` is read in pieces cut at spaces (a run
without one is dropped with one warning) and a JSON record past it is skipped, while the process
holds one block and one bound; compressed corpora stop at their expansion ratio, and a corpus that
is not UTF-8 text, a folder or a device is one error line."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

MIB = 1 << 20
W2V = ["train", "w2v", "--min-count", "1", "--epochs", "1", "--vector-size", "8", "--eval-dir", "none"]
LSA = ["train", "lsa", "--min-count", "1", "--dim", "2", "--eval-dir", "none"]


def _sentences(path: Path, head: bytes = b"", tail: bytes = b"") -> Path:
    """A few sentences (one word new to every run, so the encoding cache never answers), ``head``
    and ``tail`` around them."""
    words = b"alpha beta gamma delta %s epsilon\n" % os.urandom(6).hex().encode()
    path.write_bytes(head + words * 50 + tail + words * 50)
    return path


def test_w2v_corpus_run_of_100_mb_without_a_space_is_dropped_and_counted(cli, bounded, tmp_path) -> None:
    corpus = _sentences(tmp_path / "c.txt", tail=b"x" * (100 * MIB) + b"\n")
    outcome = bounded(cli([*W2V, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "c.txt: dropped 1 run of over 1 MiB without a space (first: line 51)" in outcome.stderr
    assert (tmp_path / "run" / "vectors.npy").is_file()


def test_lsa_corpus_run_of_100_mb_without_a_space_is_dropped_and_counted(cli, bounded, tmp_path) -> None:
    corpus = _sentences(tmp_path / "c.txt", head=b"y" * (100 * MIB) + b"\n")
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "c.txt: dropped 1 run of over 1 MiB without a space (first: line 1)" in outcome.stderr
    assert (tmp_path / "run" / "vectors.npy").is_file()


def test_corpus_of_one_line_of_24_mb_trains_in_pieces(cli, bounded, tmp_path) -> None:
    """text8's shape (one line, no line break): every word is counted, in bounded memory."""
    corpus = tmp_path / "text8"
    sentence = b"alpha beta gamma delta %s epsilon " % os.urandom(6).hex().encode()
    corpus.write_bytes(sentence * (24 * MIB // len(sentence)))
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "text8: lines longer than 1 MiB read in pieces cut at spaces" in outcome.stderr
    counts = dict(line.split("\t") for line in (tmp_path / "run" / "counts.tsv").read_text().splitlines())
    assert int(counts["alpha"]) == 24 * MIB // len(sentence)


def test_corpus_sparse_2_gb_of_nul_bytes_is_refused_as_binary(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "sparse.txt"
    with corpus.open("wb") as handle:
        handle.truncate(2 << 30)  # no data block on disk: NUL bytes, no newline
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=2)
    assert "sparse.txt: line 1 holds a NUL byte: this is a binary file" in outcome.error_lines[0]
    assert not (tmp_path / "run").exists()


def test_corpora_that_are_not_utf8_text_are_refused_naming_the_line(cli, bounded, tmp_path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("".join(f"le café {i} est naïve\n" for i in range(200)).encode("latin-1"))
    outcome = bounded(cli([*W2V, "--corpus", latin1, "--out", tmp_path / "run"]), 150, rc=2)
    assert "latin1.txt: 200 of its first 200 lines are not UTF-8 (first: line 1, byte 0xe9)" in (
        outcome.error_lines[0])
    joined = tmp_path / "joined.txt"  # UTF-8 files with a cp1252 one joined after them, past the first MiB
    joined.write_bytes(b"plain ascii words on a line\n" * 50_000 + latin1.read_bytes())
    outcome = bounded(cli([*W2V, "--corpus", joined, "--out", tmp_path / "run"]), 150, rc=2)
    assert "joined.txt: from byte 1,048," in outcome.error_lines[0]
    assert "(its last MiB, lines counted from there) 200 of" in outcome.error_lines[0]
    stray = _sentences(tmp_path / "stray.txt", tail=b"one damaged \xff byte\n")  # UTF-8 but for a byte
    outcome = bounded(cli([*W2V, "--corpus", stray, "--out", tmp_path / "stray"]), 150, rc=0)
    assert "stray.txt: 1 line is not UTF-8 (first: line 51); their bad bytes read as U+FFFD" in outcome.stderr
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes(_sentences(tmp_path / "plain.txt").read_text().encode("utf-16"))
    outcome = bounded(cli([*LSA, "--corpus", utf16, "--out", tmp_path / "run"]), 150, rc=2)
    assert "utf16.txt: it is UTF-16 text (its byte order mark): convert it" in outcome.error_lines[0]
    import lzma
    import zipfile

    packed = tmp_path / "c.txt.xz"  # compressed in a format not read: said so, not called UTF-16
    packed.write_bytes(lzma.compress(_sentences(tmp_path / "c.txt").read_bytes()))
    outcome = bounded(cli([*LSA, "--corpus", packed, "--out", tmp_path / "run"]), 150, rc=2)
    assert "c.txt.xz: it is xz-compressed: decompress it (xz -d)" in outcome.error_lines[0]
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as archive:
        archive.writestr("notes.txt", "one two three\n")
    outcome = bounded(cli([*LSA, "--corpus", tmp_path / "notes.zip", "--out", tmp_path / "run"]), 150, rc=2)
    assert "notes.zip: it is a zip archive: unzip it" in outcome.error_lines[0]
    upper = tmp_path / "c.txt.GZ"  # gzip whatever the case of its suffix
    upper.write_bytes(gzip.compress(_sentences(tmp_path / "c.txt").read_bytes()))
    bounded(cli([*LSA, "--corpus", upper, "--out", tmp_path / "run"]), 150, rc=0)
    assert "alpha" in (tmp_path / "run" / "vocab.txt").read_text().split()


def test_corpus_gzip_bomb_is_refused_by_its_expansion_ratio(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "bomb.txt.gz"
    corpus.write_bytes(gzip.compress(b"hello world\n") + gzip.compress(b"a" * MIB) * 200)
    outcome = bounded(cli([*W2V, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=2)
    assert "bomb.txt.gz: expands more than 100 times" in outcome.error_lines[0]


def test_corpus_gzip_of_text_trains(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "c.txt.gz"
    corpus.write_bytes(gzip.compress(_sentences(tmp_path / "c.txt").read_bytes()))
    bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert {"alpha", "epsilon"} <= set((tmp_path / "run" / "vocab.txt").read_text().split())


def test_corpus_that_is_a_folder_is_refused(cli, bounded, tmp_path) -> None:
    outcome = bounded(cli([*W2V, "--corpus", tmp_path, "--out", tmp_path / "run"]), 150, rc=2)
    assert f"corpus {tmp_path} is a folder; name its files with a quoted glob" in outcome.error_lines[0]
    assert f"'{tmp_path}/**/*.txt'" in outcome.error_lines[0]


def test_corpus_that_is_dev_zero_is_refused(cli, bounded, tmp_path) -> None:
    outcome = bounded(cli([*LSA, "--corpus", "/dev/zero", "--out", tmp_path / "run"]), 150, rc=2)
    assert "/dev/zero is not a regular file" in outcome.error_lines[0]


def test_json_lines_corpus_record_of_100_mb_is_skipped_and_counted(cli, bounded, tmp_path) -> None:
    record = b'{"text": "alpha beta gamma delta epsilon %s"}\n' % os.urandom(6).hex().encode()
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(record * 50 + b'{"text": "' + b"x" * (100 * MIB) + b'"}\n' + record * 50)
    outcome = bounded(cli([*W2V, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "c.jsonl: skipped 1 line longer than 1 MiB (first: line 51)" in outcome.stderr
    assert {"alpha", "epsilon"} <= set((tmp_path / "run" / "vocab.txt").read_text().split())


def test_json_lines_gzip_bomb_is_refused_by_its_expansion_ratio(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "bomb.jsonl.gz"
    corpus.write_bytes(gzip.compress(b'{"text": "hello world"}\n') + gzip.compress(b"\n" * MIB) * 200)
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=2)
    assert "bomb.jsonl.gz: expands more than 100 times" in outcome.error_lines[0]
