"""Corpus files nobody here wrote, plain text or JSON Lines, through ``nlp182 train w2v`` and
``nlp182 train lsa``: lines past ``--max-line-bytes`` are skipped with one warning while the process
holds one block and one bound, compressed corpora stop at their expansion ratio, and a corpus left
without words, a folder or a device is one error line."""

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


def test_w2v_corpus_line_of_100_mb_is_skipped_and_counted(cli, bounded, tmp_path) -> None:
    corpus = _sentences(tmp_path / "c.txt", tail=b"x" * (100 * MIB) + b"\n")
    outcome = bounded(cli([*W2V, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "c.txt: skipped 1 line longer than 1 MiB (first: line 51)" in outcome.stderr
    assert (tmp_path / "run" / "vectors.npy").is_file()


def test_lsa_corpus_line_of_100_mb_is_skipped_and_counted(cli, bounded, tmp_path) -> None:
    corpus = _sentences(tmp_path / "c.txt", head=b"y" * (100 * MIB) + b"\n")
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=0)
    assert "c.txt: skipped 1 line longer than 1 MiB (first: line 1)" in outcome.stderr
    assert (tmp_path / "run" / "vectors.npy").is_file()


def test_corpus_sparse_2_gb_without_a_line_break_has_no_words(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "sparse.txt"
    with corpus.open("wb") as handle:
        handle.truncate(2 << 30)  # no data block on disk: NUL bytes, no newline
    outcome = bounded(cli([*LSA, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=2)
    assert "sparse.txt: skipped 1 line longer than 1 MiB (first: line 1)" in outcome.stderr
    assert "sparse.txt has no words to train on" in outcome.error_lines[0]
    assert not (tmp_path / "run").exists()


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


def test_corpus_of_nul_bytes_has_no_words(cli, bounded, tmp_path) -> None:
    corpus = tmp_path / "nul.txt"
    corpus.write_bytes((b"\0" * 99 + b"\n") * 30_000)
    outcome = bounded(cli([*W2V, "--corpus", corpus, "--out", tmp_path / "run"]), 150, rc=2)
    assert "nul.txt has no words to train on" in outcome.error_lines[0]


def test_corpus_that_is_a_folder_is_refused(cli, bounded, tmp_path) -> None:
    outcome = bounded(cli([*W2V, "--corpus", tmp_path, "--out", tmp_path / "run"]), 150, rc=2)
    assert "is a directory, not a file" in outcome.error_lines[0]


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
