"""Vector files checked where they enter: binary words searched once across chunk boundaries,
headers sized against the file, non-finite rows refused or dropped (text and ``.kv`` alike)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from nlp182.bounded import ReadLimits
from nlp182.embeddings import formats
from nlp182.embeddings.importing import import_vectors
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError


def test_binary_words_found_across_tiny_chunks(tmp_path, monkeypatch) -> None:
    words = ["a", "bb", "ccc", "dddddddd"]
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3) - 5.5
    formats.write_word2vec(tmp_path / "v.bin", words, vectors, binary=True)
    monkeypatch.setattr(formats, "BINARY_CHUNK", 3)  # every word and row straddles reads
    loaded = formats.read_word2vec(tmp_path / "v.bin", binary=True)
    assert loaded.words == words and np.array_equal(loaded.vectors, vectors)


def test_a_binary_word_over_the_bound_is_refused(tmp_path) -> None:
    (tmp_path / "v.bin").write_bytes(b"1 2\n" + b"w" * 100 + b" " + bytes(8))
    with pytest.raises(FileFormatError, match="word #0 is longer than 64 bytes"):
        formats.read_word2vec(tmp_path / "v.bin", binary=True, limits=ReadLimits(max_line=64))


def test_header_rows_are_capped_by_the_file_size(tmp_path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"x" * 100)
    limits = ReadLimits()
    assert formats.header_rows(10**14, 4, False, path, limits) == 100 // 9  # 9 bytes: "w 0 0 0 0"
    assert formats.header_rows(10**14, 4, True, path, limits) == 100 // 18  # 18: "w" + " " + 16 bytes
    assert formats.header_rows(3, 4, False, path, limits) == 3
    with pytest.raises(FileFormatError, match="need at least 102 bytes a row"):
        formats.header_rows(1, 25, True, path, limits)
    with pytest.raises(FileFormatError, match="longest line read"):
        formats.header_rows(1, 600, False, path, ReadLimits(max_line=1000))


def test_float16_overflow_is_non_finite(tmp_path) -> None:
    (tmp_path / "v.txt").write_text("2 2\na 1 2\nb 70000 1\n")  # 70000 > float16's 65504
    with pytest.raises(FileFormatError, match=r"line 3 .* beyond float16's range"):
        formats.read_word2vec(tmp_path / "v.txt", datatype=np.float16)
    loaded = formats.read_word2vec(tmp_path / "v.txt", datatype=np.float16, nonfinite="drop")
    assert loaded.words == ["a"] and loaded.vectors.tolist() == [[1, 2]]


def test_kv_with_nan_is_refused_or_dropped(tmp_path) -> None:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(2)
    kv.add_vectors(["a", "b", "c"], np.array([[1, 2], [np.nan, 0], [3, 4]], dtype=np.float32))
    kv.save(str(tmp_path / "v.kv"))
    with pytest.raises(FileFormatError, match=r"row 2 \(word 'b'\) has a value that is nan"):
        import_vectors(tmp_path / "v.kv", tmp_path / "run", show_progress=False)
    report = import_vectors(tmp_path / "v.kv", tmp_path / "run", show_progress=False, nonfinite="drop")
    assert report.words == 2
    assert np.array_equal(np.load(tmp_path / "run" / "vectors.npy"), [[1, 2], [3, 4]])


def test_kv_rows_dropped_for_nan_take_their_counts_with_them(tmp_path: Path) -> None:
    """Every non-finite row is dropped, not only the first, and each kept word keeps its own count
    (the counts are cut with the rows, so none shifts onto the next word)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(2)
    rows = np.array([[1, 2], [np.nan, 0], [3, 4], [0, np.inf], [5, 6]], dtype=np.float32)
    kv.add_vectors(["a", "b", "c", "d", "e"], rows)
    for word, count in zip("abcde", (50, 40, 30, 20, 10), strict=True):
        kv.set_vecattr(word, "count", count)
    kv.save(str(tmp_path / "v.kv"))
    report = import_vectors(tmp_path / "v.kv", tmp_path / "run", show_progress=False, nonfinite="drop")
    assert (report.words, report.has_counts) == (3, True)
    vectors = Vectors.load(tmp_path / "run")
    assert vectors.words == ["a", "c", "e"]
    assert [vectors.get_vecattr(word, "count") for word in vectors.words] == [50, 30, 10]


def test_limit_is_at_least_one_and_is_kept_in_the_run_config(tmp_path: Path) -> None:
    """``limit=0`` is refused (it would import nothing); a limit taken is written to config.json."""
    (tmp_path / "v.txt").write_text("3 2\na 1 2\nb 3 4\nc 5 6\n")
    with pytest.raises(InvalidInputError, match="--limit must be >= 1, got 0"):
        import_vectors(tmp_path / "v.txt", tmp_path / "run", limit=0, show_progress=False)
    import_vectors(tmp_path / "v.txt", tmp_path / "run", limit=2, show_progress=False)
    assert Vectors.load(tmp_path / "run").words == ["a", "b"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["limit"] == 2


def test_a_file_of_no_vectors_is_refused(tmp_path) -> None:
    (tmp_path / "v.txt").write_text("1 2\na nan 1\n")
    with pytest.raises(EmptyCorpusError, match="holds no vector"):
        import_vectors(tmp_path / "v.txt", tmp_path / "run", show_progress=False, nonfinite="drop")
    assert not (tmp_path / "run").exists()


def _run_with_npy(folder: Path, data: bytes, words: int = 3) -> Path:
    """A run folder of ``words`` words whose ``vectors.npy`` holds ``data``."""
    folder.mkdir()
    (folder / "vocab.txt").write_text("".join(f"w{i}\n" for i in range(words)))
    (folder / "vectors.npy").write_bytes(data)
    return folder


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header of float32s of ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("mmap", [True, False])
def test_a_run_npy_whose_size_is_not_its_headers_is_refused_before_allocating(tmp_path, mmap) -> None:
    """A 128-byte file claiming shape (3, 10**12) made ``load(mmap=False)`` try to allocate 10.9 TiB
    (a bare MemoryError); the size must match the header's shape, as for a ``.kv``'s arrays."""
    run = _run_with_npy(tmp_path / "run", _npy_header((3, 10**12)))
    with pytest.raises(FileFormatError, match=r"vectors.npy: its header claims an array of shape \(3, 10+\)"):
        Vectors.load(run, mmap=mmap)
    short = _run_with_npy(tmp_path / "short", _npy_header((3, 2)) + bytes(20))  # 24 bytes claimed
    with pytest.raises(FileFormatError, match="holds 20 bytes after it"):
        Vectors.load(short, mmap=mmap)


def test_a_run_npy_with_a_huge_header_is_a_one_line_error_naming_the_file(tmp_path) -> None:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }" + " " * 20_000 + "\n"
    header = b"\x93NUMPY\x02\x00" + len(text).to_bytes(4, "little") + text.encode()
    run = _run_with_npy(tmp_path / "run", header + bytes(24))
    for mmap in (True, False):
        with pytest.raises(FileFormatError) as caught:
            Vectors.load(run, mmap=mmap)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{run / 'vectors.npy'} is not a plain .npy array")


def test_a_run_with_nan_is_refused_on_load_or_at_the_first_query_when_mapped(tmp_path) -> None:
    """Without ``mmap`` the matrix is in memory and checked on load; a memory-mapped load reads none
    of it, and the norms of the first query (one pass over the file) refuse the row."""
    matrix = np.array([[1, 2], [np.nan, 0], [3, 4]], dtype=np.float32)
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "vectors.npy", matrix)
    (run / "vocab.txt").write_text("a\nb\nc\n")
    with pytest.raises(InvalidInputError, match=r"'b' \(row 1\) holds NaN"):
        Vectors.load(run, mmap=False)
    mapped = Vectors.load(run, mmap=True)
    with pytest.raises(InvalidInputError, match=r"'b' \(row 1\) holds NaN"):
        mapped.most_similar("a")
