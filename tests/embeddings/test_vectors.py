"""The vector store against gensim's KeyedVectors: queries, file formats, errors."""

from __future__ import annotations

import contextlib
import errno
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nlp182.embeddings import formats
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, ShapeError, UnknownWordError
from nlp182.io import failed_write_target


@pytest.fixture
def pair() -> tuple[Vectors, KeyedVectors]:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)] + ["king", "queen", "kingdom", "kings"]
    matrix = rng.normal(size=(len(words), 16)).astype(np.float32)
    reference = KeyedVectors(16)
    reference.add_vectors(words, matrix)
    return Vectors(words, matrix), reference


def _assert_same(ours, theirs) -> None:
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


def test_queries_equal_gensim(pair) -> None:
    ours, ref = pair
    _assert_same(ours.most_similar("king", topn=10), ref.most_similar("king", topn=10))
    _assert_same(
        ours.most_similar(["king", "w3"], ["queen"], topn=7),
        ref.most_similar(["king", "w3"], ["queen"], topn=7),
    )
    _assert_same(
        ours.most_similar(["w1"], topn=5, restrict_vocab=50),
        ref.most_similar(["w1"], topn=5, restrict_vocab=50),
    )
    _assert_same(
        ours.most_similar_cosmul(["king", "w3"], ["queen"], topn=7),
        ref.most_similar_cosmul(["king", "w3"], ["queen"], topn=7),
    )
    assert ours.similarity("king", "w7") == pytest.approx(float(ref.similarity("king", "w7")), abs=1e-6)
    assert ours.doesnt_match(["w1", "w2", "w3", "king"]) == ref.doesnt_match(["w1", "w2", "w3", "king"])
    np.testing.assert_array_equal(ours["w5"], ref["w5"])
    _assert_same(ours.similar_to_vector(ref["w9"], topn=3), ref.similar_by_vector(ref["w9"], topn=3))


def test_membership_suggestions_and_errors(pair) -> None:
    ours, _ = pair
    assert len(ours) == 404 and "king" in ours and "emperor" not in ours
    with pytest.raises(UnknownWordError) as info:
        ours.most_similar("kingz")
    assert info.value.suggestions[0] == "king" and set(info.value.suggestions) <= {"king", "kingdom", "kings"}
    assert isinstance(info.value, KeyError) and "kingz" in str(info.value)
    assert ours.with_prefix("king") == ["king", "kingdom", "kings"]
    assert ours.most_similar("king", topn=0) == []  # as gensim
    with pytest.raises(ShapeError):
        ours.similar_to_vector(np.zeros(3))
    with pytest.raises(InvalidInputError):
        ours.similar_to_vector(np.full(16, np.nan))
    with pytest.raises(ShapeError):
        Vectors(["a", "b"], np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        Vectors(["a", "a"], np.zeros((2, 2), dtype=np.float32))
    # a 0-dim matrix imported and then crashed `nlp182 index`; complex values lost their imaginary part
    with pytest.raises(ShapeError, match="at least 1 dimension"):
        Vectors(["a", "b"], np.zeros((2, 0), dtype=np.float32))
    with pytest.raises(ShapeError, match="real numbers, got complex64"):
        Vectors(["a", "b"], np.ones((2, 2), dtype=np.complex64))
    with pytest.raises(ShapeError, match="real numbers, got <U"):
        Vectors(["a", "b"], [["1", "2"], ["3", "4"]])
    assert Vectors(["a", "b"], np.arange(4, dtype=np.int64).reshape(2, 2)).vectors.dtype == np.float32


def test_a_word_in_another_unicode_form_is_the_same_word_and_other_cases_are_suggested() -> None:
    """``café`` pasted from a system that writes it decomposed (NFD) reaches the vector of the
    composed ``café`` a corpus trained (and the other way round), and a compatibility form (Thai
    ``ำ`` as typed, the ligature ``ﬁ``) the form the word tokenizer wrote (``น้ำ`` was out of
    vocabulary, suggesting a word that looks the same); a capital is suggested in the vocabulary's
    case."""
    thai = unicodedata.normalize("NFKC", "\u0e19\u0e49\u0e33")  # น้ำ as the tokenizer writes it
    vectors = Vectors(["café", "finance", "cafe\u0301s", "tea", thai], np.eye(5, dtype=np.float32))
    assert vectors.get_index("cafe\u0301") == 0 and "cafe\u0301" in vectors
    assert vectors.get_index("cafés") == 2  # composed query, decomposed vocabulary
    np.testing.assert_array_equal(vectors["cafe\u0301"], vectors["café"])
    assert [w for w, _ in vectors.most_similar("cafe\u0301", topn=3)] == ["finance", "cafe\u0301s", "tea"]
    assert vectors.get_index("\u0e19\u0e49\u0e33") == 4 and vectors.get_index("\ufb01nance") == 1
    for spelling, meant in (("Café", "café"), ("FINANCE", "finance")):
        with pytest.raises(UnknownWordError) as info:
            vectors.get_vector(spelling)
        assert info.value.suggestions[0] == meant
    vectors.add_vectors(["cafe\u0301"], np.ones((1, 5)))  # adding keeps the key as given, as gensim
    assert len(vectors) == 6 and vectors.get_index("cafe\u0301") == 5 and vectors.get_index("café") == 0


def test_prefixes_and_suggestions_meet_words_in_either_unicode_form() -> None:
    """A prefix typed decomposed (macOS input) completed nothing and suggested unrelated words,
    though the word itself was found."""
    words = ["zero", "zürich", "zug", "cafe\u0301s", "zu\u0308nd", "zebra"]
    vectors = Vectors(words, np.eye(6, dtype=np.float32))
    lookup = vectors.lookup
    for prefix, expected in (("zu\u0308r", ["zürich"]), ("zür", ["zürich"]), ("zü", ["zürich", "zu\u0308nd"]),
                             ("zu", ["zug", "zu\u0308nd"]), ("café", ["cafe\u0301s"]), ("zz", [])):
        assert vectors.with_prefix(prefix) == lookup.with_prefix(prefix, 10) == expected, prefix
    assert vectors.suggest("zu\u0308richx") == lookup.suggest("zu\u0308richx") == ["zürich"]
    assert vectors.suggest("cafésx") == lookup.suggest("cafésx") == ["cafe\u0301s"]


def test_completion_and_suggestions_meet_a_capitalised_query_in_a_lower_cased_vocabulary() -> None:
    """German nouns and a phone's first letter come capitalised: ``Datei`` completed nothing and
    ``Dateiformate`` suggested nothing in a lower-cased vocabulary."""
    words = ["dateiformat", "datei", "dateien", "zug", "grösse"]
    vectors = Vectors(words, np.eye(5, dtype=np.float32))
    assert vectors.with_prefix("Datei") == ["dateiformat", "datei", "dateien"]
    assert vectors.with_prefix("DATEI", 2) == ["dateiformat", "datei"]
    assert vectors.suggest("Dateiformate") == ["dateiformat"]
    assert vectors.suggest("GRÖSSEN") == ["grösse"]


@pytest.mark.parametrize("mmap", [True, False])
def test_a_run_whose_vectors_file_was_cut_short_is_named_so(tmp_path, mmap) -> None:
    """A copy cut off by a full disk leaves 0 bytes, or part of a header: NumPy says EOFError, or
    guesses a pickle; a reader needs to hear which file is damaged and what to do."""
    Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32)).save(tmp_path / "run")
    whole = (tmp_path / "run" / "vectors.npy").read_bytes()
    for cut, message in ((0, "is empty or truncated"), (3, "is empty or truncated"),
                         (len(whole) - 8, "holds 28 bytes after it; it is truncated")):
        (tmp_path / "run" / "vectors.npy").write_bytes(whole[:cut])
        with pytest.raises(FileFormatError, match=message):
            Vectors.load(tmp_path / "run", mmap=mmap)
    (tmp_path / "run" / "vectors.npy").write_bytes(b"x")
    with pytest.raises(FileFormatError, match=r"vectors\.npy is not a \.npy file"):
        Vectors.load(tmp_path / "run", mmap=mmap)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trips_both_ways_with_gensim(pair, tmp_path, binary) -> None:
    ours, ref = pair
    ours.save_word2vec_format(tmp_path / "ours", binary=binary)
    loaded = KeyedVectors.load_word2vec_format(tmp_path / "ours", binary=binary)
    assert loaded.index_to_key == ours.words
    np.testing.assert_array_equal(loaded.vectors, ours.vectors)
    ref.save_word2vec_format(str(tmp_path / "theirs"), binary=binary)
    back = Vectors.load_word2vec_format(tmp_path / "theirs", binary=binary)
    assert back.words == ref.index_to_key
    np.testing.assert_array_equal(back.vectors, ref.vectors)


def test_text_format_keeps_the_precision_of_float64_rows(tmp_path) -> None:
    """Text is written at the rows' own precision: float64 rows read back exactly, by us and by gensim,
    where float32 text would lose digits (``0.12345679``, ``-1``)."""
    matrix = np.array([[0.123456789012345, -1.0000000001], [1e-300, 2.0 / 3.0]], dtype=np.float64)
    formats.write_word2vec(tmp_path / "v.txt", ["a", "b"], matrix)
    assert (tmp_path / "v.txt").read_text().splitlines()[1] == "a 0.123456789012345 -1.0000000001"
    ours = formats.read_word2vec(tmp_path / "v.txt", datatype=np.float64)
    np.testing.assert_array_equal(ours.vectors, matrix)
    loaded = KeyedVectors.load_word2vec_format(tmp_path / "v.txt", datatype=np.float64)
    np.testing.assert_array_equal(loaded.vectors, matrix)


@pytest.mark.parametrize("binary", [False, True])
def test_truncated_or_malformed_word2vec_files_are_clear_errors(pair, tmp_path, binary) -> None:
    ours, _ = pair
    path = tmp_path / "v"
    ours.save_word2vec_format(path, binary=binary)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"ends|values, expected"):
        Vectors.load_word2vec_format(path, binary=binary)
    path.write_bytes(b"not a header\n")
    with pytest.raises(FileFormatError, match="first line"):
        Vectors.load_word2vec_format(path, binary=binary)
    with pytest.raises(MissingFileError):
        Vectors.load_word2vec_format(tmp_path / "absent", binary=binary)


def test_text_format_rejects_wrong_value_count(tmp_path) -> None:
    (tmp_path / "v.txt").write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(FileFormatError, match="line 3"):
        Vectors.load_word2vec_format(tmp_path / "v.txt")


def test_npy_folder_loads_as_shared_memory_map(pair, tmp_path) -> None:
    ours, _ = pair
    ours.save(tmp_path)
    loaded = Vectors.load(tmp_path)
    assert isinstance(loaded.vectors, np.memmap) and not loaded.vectors.flags.writeable
    assert loaded.words == ours.words
    np.testing.assert_array_equal(np.asarray(loaded.vectors), ours.vectors)
    assert loaded.most_similar("king", topn=3) == ours.most_similar("king", topn=3)
    assert loaded.vocab_checksum() == ours.vocab_checksum()
    assert isinstance(Vectors.load(tmp_path, mmap=False).vectors, np.ndarray)


def test_save_is_atomic_and_leaves_no_temporary_files(pair, tmp_path, monkeypatch) -> None:
    ours, _ = pair
    ours.save(tmp_path)
    before = (tmp_path / "vectors.npy").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        Vectors(ours.words, ours.vectors * 2).save(tmp_path)
    assert (tmp_path / "vectors.npy").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["vectors.npy", "vocab.txt"]


def test_mismatched_folder_is_a_clear_error(pair, tmp_path) -> None:
    ours, _ = pair
    ours.save(tmp_path)
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(FileFormatError, match="lists 2 words"):
        Vectors.load(tmp_path)
    (tmp_path / "vectors.npy").write_bytes(b"garbage")
    with pytest.raises(FileFormatError):
        Vectors.load(tmp_path)


def test_save_limit_writes_the_most_frequent_rows_with_their_counts(pair, tmp_path) -> None:
    ours, _ = pair
    counts = np.arange(len(ours))  # the last rows are the most frequent: saving sorts by count
    store = Vectors(ours.words, ours.vectors, counts)
    store.save_word2vec_format(tmp_path / "top.bin", fvocab=tmp_path / "top.vocab", binary=True, limit=3)
    vocab = str(tmp_path / "top.vocab")
    loaded = KeyedVectors.load_word2vec_format(tmp_path / "top.bin", fvocab=vocab, binary=True)
    assert loaded.index_to_key == ours.words[::-1][:3]
    assert [loaded.get_vecattr(w, "count") for w in loaded.index_to_key] == [403, 402, 401]
    np.testing.assert_array_equal(loaded.vectors, ours.vectors[::-1][:3])
    with pytest.raises(InvalidInputError, match="no counts"):
        Vectors(ours.words, ours.vectors).save_word2vec_format(tmp_path / "x", fvocab=tmp_path / "x.vocab")


class _FullDisk:
    """A file handle on a full disk: a write puts a few bytes down, then fails with ENOSPC."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, data: bytes) -> int:
        self.handle.write(data[:5])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def test_a_failed_counts_write_leaves_both_previous_files(tmp_path, monkeypatch) -> None:
    """The vector file and its ``fvocab`` counts file are replaced together: a disk that fills while
    the counts are written leaves both files as they were, byte for byte, and no temporary file."""
    store = Vectors(["the", "cat", "sat"], np.eye(3, dtype=np.float32), counts=[30, 20, 10])
    vectors_file, vocab_file = tmp_path / "v.txt", tmp_path / "v.vocab"
    store.save_word2vec_format(vectors_file, fvocab=vocab_file)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    atomic_open = formats.atomic_open

    @contextlib.contextmanager
    def full_at_the_counts(path, mode="wb", final=None) -> Iterator[Any]:
        with atomic_open(path, mode, final) as handle:
            yield _FullDisk(handle) if Path(path) == vocab_file else handle

    monkeypatch.setattr(formats, "atomic_open", full_at_the_counts)
    with pytest.raises(OSError) as caught:
        store.save_word2vec_format(vectors_file, fvocab=vocab_file, limit=2)
    assert caught.value.errno == errno.ENOSPC and failed_write_target(caught.value) == str(vocab_file)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_vector_whose_length_float32_cannot_hold_is_refused_as_its_file_would_be(tmp_path) -> None:
    """``[3e38, 3e38]`` is finite but has no cosine: the store took it and wrote a file that
    ``load_word2vec_format`` refuses; a length within range (1e20s) stays."""
    with pytest.raises(InvalidInputError, match=r"'a' \(row 0\) holds NaN or inf, or a length beyond"):
        Vectors(["a", "b"], np.array([[3e38, 3e38], [3.0, 4.0]], dtype=np.float32))
    kept = Vectors(["a", "b"], np.array([[1e20, 1e20], [3.0, 4.0]], dtype=np.float32))
    kept.save_word2vec_format(tmp_path / "v.txt")
    again = Vectors.load_word2vec_format(tmp_path / "v.txt")
    assert again.similarity("a", "b") == pytest.approx(7 / (5 * np.sqrt(2)), abs=1e-5)


def test_reading_a_folder_or_a_device_says_so(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="is a directory, not a file"):
        Vectors.load_word2vec_format(tmp_path)
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        Vectors.load_word2vec_format("/dev/zero")


def test_vectors_with_nan_or_inf_are_refused_naming_the_word(tmp_path) -> None:
    matrix = np.eye(3, dtype=np.float32)
    matrix[1, 2] = np.inf
    with pytest.raises(InvalidInputError, match="'b' \\(row 1\\) holds NaN or inf"):
        Vectors(["a", "b", "c"], matrix)
    store = Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="'d'"):
        store.add_vectors(["d"], [[np.nan, 0.0, 0.0]])
    assert len(store) == 3  # nothing was added
    store.save(tmp_path)
    np.save(tmp_path / "vectors.npy", matrix)  # a folder edited behind the store's back
    with pytest.raises(InvalidInputError, match="'b'"):
        Vectors.load(tmp_path).most_similar("a")


def test_a_run_folder_brings_its_counts(tmp_path) -> None:
    words = ["the", "cat", "sat"]
    Vectors(words, np.eye(3, dtype=np.float32), counts=[30, 20, 10]).save(tmp_path)
    loaded = Vectors.load(tmp_path)
    assert loaded.get_vecattr("cat", "count") == 20
    loaded.save_word2vec_format(tmp_path / "v.bin", fvocab=tmp_path / "v.vocab", binary=True)
    assert (tmp_path / "v.vocab").read_text(encoding="utf-8").splitlines() == ["the 30", "cat 20", "sat 10"]


def test_an_unstorable_word_in_a_file_names_the_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"3 2\na 1 2\n 3 4\nc 5 6\n")  # line 3 starts with a space: an empty word
    with pytest.raises(FileFormatError, match=r"bad.txt: line 3: the word '' is empty"):
        Vectors.load_word2vec_format(path)


def test_a_mistyped_run_folder_and_a_capitalised_word_get_plain_answers(tmp_path) -> None:
    from nlp182.errors import MissingFileError, UnknownWordError

    with pytest.raises(MissingFileError, match=r"^run folder .*w2vv does not exist$"):
        Vectors.load(tmp_path / "w2vv")
    vectors = Vectors(["king", "kingdom", "queen"], np.eye(3, dtype=np.float32))
    with pytest.raises(UnknownWordError, match="did you mean: king, kingdom"):
        vectors["King"]


def test_a_huge_word_is_cut_short_in_messages() -> None:
    from nlp182.errors import InvalidInputError, UnknownWordError

    word = "x" * 1_000_000
    with pytest.raises(InvalidInputError) as twice:
        Vectors([word, word], np.eye(2, dtype=np.float32))
    assert len(str(twice.value)) < 200 and "1,000,000 characters" in str(twice.value)
    with pytest.raises(UnknownWordError) as unknown:
        Vectors(["a"], np.ones((1, 2), dtype=np.float32))[word]
    assert len(str(unknown.value)) < 300
