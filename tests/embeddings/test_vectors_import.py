"""``nlp182 import`` on files gensim writes, and the imported folder through ``index`` and the service."""

from __future__ import annotations

import gzip
import logging
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from nlp182.cli import main
from nlp182.embeddings.formats import sniff_format
from nlp182.embeddings.importing import import_vectors
from nlp182.embeddings.runs import load_run
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError
from nlp182.text.vocab import Vocabulary


@pytest.fixture(scope="module")
def reference() -> KeyedVectors:
    kv = KeyedVectors.load_word2vec_format(datapath("lee_fasttext.vec"))
    kv.set_vecattr("government", "count", 4242)
    return kv


@pytest.fixture(scope="module")
def files(reference: KeyedVectors, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same vectors in every format gensim writes, plus fastText's .vec as shipped."""
    folder = tmp_path_factory.mktemp("written-by-gensim")
    reference.save_word2vec_format(str(folder / "vectors.bin"), binary=True)
    reference.save_word2vec_format(str(folder / "vectors.txt"), binary=False)
    reference.save_word2vec_format(str(folder / "glove.txt"), binary=False, write_header=False)
    reference.save(str(folder / "inline.kv"))
    reference.save(str(folder / "beside.kv"), sep_limit=0)
    shutil.copy(datapath("lee_fasttext.vec"), folder / "fasttext.vec")
    with (folder / "vectors.txt").open("rb") as source, gzip.open(folder / "vectors.txt.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    return {path.name: path for path in folder.iterdir() if not path.name.endswith(".npy")}


def _order(reference: KeyedVectors, name: str) -> list[str]:
    """gensim writes word2vec files most frequent first: its (made-up) counts, then the one we set."""
    if name.endswith(".kv") or name == "fasttext.vec":
        return list(reference.index_to_key)
    counts = np.asarray([reference.get_vecattr(w, "count") for w in reference.index_to_key])
    return [reference.index_to_key[i] for i in np.argsort(-counts, kind="stable")]


EXPECTED_FORMAT = {
    "vectors.bin": "word2vec-binary",
    "vectors.txt": "word2vec-text",
    "glove.txt": "glove",
    "inline.kv": "kv",
    "beside.kv": "kv",
    "fasttext.vec": "word2vec-text",
    "vectors.txt.gz": "word2vec-text",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FORMAT))
def test_every_format_gensim_writes_imports_exactly(
    reference: KeyedVectors, files: dict[str, Path], tmp_path: Path, name: str
) -> None:
    report = import_vectors(files[name], tmp_path / "run", show_progress=False)
    assert report.format == EXPECTED_FORMAT[name] == sniff_format(files[name])
    vectors, config = load_run(tmp_path / "run")
    words = _order(reference, name)
    assert vectors.words == words and config["format"] == report.format
    np.testing.assert_array_equal(np.asarray(vectors.vectors), reference[words])
    assert isinstance(vectors.vectors, np.memmap) and vectors.vectors.dtype == np.float32
    if name.endswith(".kv"):  # gensim's own counts come along
        counts = Vocabulary.load(tmp_path / "run" / "counts.tsv")
        assert counts.counts[counts.index["government"]] == 4242


@pytest.mark.parametrize("name", ["vectors.bin", "glove.txt", "beside.kv"])
def test_limit_keeps_the_first_words(
    reference: KeyedVectors, files: dict[str, Path], tmp_path: Path, name: str
) -> None:
    import_vectors(files[name], tmp_path / "run", limit=100, show_progress=False)
    vectors = Vectors.load(tmp_path / "run")
    assert vectors.words == _order(reference, name)[:100]
    np.testing.assert_array_equal(np.asarray(vectors.vectors), reference[vectors.words])


def test_cli_import_then_index_then_serve(
    reference: KeyedVectors, files: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="nlp182.progress"):
        assert main(["import", str(files["vectors.bin"]), "--out", str(run), "--limit", "1500"]) == 0
    assert any("reading vectors.bin" in r.getMessage() and "1.50k" in r.getMessage() for r in caplog.records)
    assert main(["index", str(run)]) == 0
    assert (run / "index.faiss").is_file()

    from nlp182.server.app import create_app

    client = create_app(run).test_client()
    answer = client.get("/v1/neighbors?word=government&k=5").get_json()["neighbors"]
    expected = reference.most_similar("government", topn=5, restrict_vocab=1500)
    assert [n["word"] for n in answer] == [w for w, _ in expected]
    np.testing.assert_allclose([n["score"] for n in answer], [s for _, s in expected], atol=1e-5)


def test_cli_export_is_read_by_gensim_and_never_replaces_the_run(
    reference: KeyedVectors, files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """``nlp182 export`` writes what ``KeyedVectors.load_word2vec_format`` reads back exactly (binary,
    text, GloVe's headerless text, with the counts file), most frequent first; an existing file
    needs --overwrite, and a file of the run itself is never the target."""
    run = tmp_path / "run"
    assert main(["import", str(files["inline.kv"]), "--out", str(run)]) == 0
    ours = Vectors.load(run)
    counts = np.asarray([ours.get_vecattr(word, "count") for word in ours.words])
    order = np.argsort(-counts, kind="stable")
    assert main(["export", str(run), "--out", str(tmp_path / "v.bin"), "--binary",
                 "--fvocab", str(tmp_path / "v.vocab")]) == 0
    back = KeyedVectors.load_word2vec_format(
        str(tmp_path / "v.bin"), binary=True, fvocab=str(tmp_path / "v.vocab")
    )
    assert back.index_to_key == [ours.words[i] for i in order] and back.index_to_key[0] == "government"
    np.testing.assert_array_equal(back.vectors, np.asarray(ours.vectors)[order])
    assert back.get_vecattr("government", "count") == 4242
    glove_file = str(tmp_path / "glove.txt")
    assert main(["export", str(run), "--out", glove_file, "--no-header", "--limit", "50"]) == 0
    glove = KeyedVectors.load_word2vec_format(glove_file, no_header=True)
    assert glove.index_to_key == back.index_to_key[:50]
    np.testing.assert_allclose(glove.vectors, back.vectors[:50], rtol=1e-6)
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "v.bin")]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    vocab = (run / "vocab.txt").read_bytes()
    assert main(["export", str(run), "--out", str(run / "vocab.txt"), "--overwrite"]) == 2
    assert "is a file of the run" in capsys.readouterr().err and (run / "vocab.txt").read_bytes() == vocab
    same = str(tmp_path / "same")
    assert main(["export", str(run), "--out", same, "--fvocab", same]) == 2
    assert not (tmp_path / "same").exists()


def test_repeated_words_keep_the_first_vector(tmp_path: Path) -> None:
    (tmp_path / "dup.txt").write_text("3 2\na 1 0\nb 0 1\na 5 5\n")
    import_vectors(tmp_path / "dup.txt", tmp_path / "run", show_progress=False)
    vectors = Vectors.load(tmp_path / "run")
    assert vectors.words == ["a", "b"] and vectors.vectors.shape == (2, 2)
    np.testing.assert_array_equal(vectors["a"], [1, 0])


class _Payload:
    """A pickle that would run ``Path.touch`` when unpickled by a trusting reader."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_kv_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path: Path, capsys) -> None:
    target = tmp_path / "pwned"
    (tmp_path / "evil.kv").write_bytes(pickle.dumps({"vectors": _Payload(target)}, protocol=4))
    with pytest.raises(FileFormatError, match="refusing to load pathlib"):
        Vectors.load_gensim(tmp_path / "evil.kv")
    assert main(["import", str(tmp_path / "evil.kv"), "--out", str(tmp_path / "run")]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "run").exists()


def test_a_whole_gensim_model_is_refused_with_the_line_that_saves_its_vectors(tmp_path: Path) -> None:
    """``Word2Vec.save`` is what a migrating user has: it is a pickle of the whole model, not read,
    and the message said nothing of how to get the vectors out of it."""
    from gensim.models import Word2Vec

    model = Word2Vec([["a", "b", "c"], ["b", "c", "a"]], vector_size=4, min_count=1, epochs=1)
    model.save(str(tmp_path / "w2v.model"))
    with pytest.raises(FileFormatError, match=r"refusing to load gensim.models.word2vec.Word2Vec;.*wv\.save"):
        Vectors.load_gensim(tmp_path / "w2v.model")
    model.wv.save(str(tmp_path / "w2v.kv"))
    assert Vectors.load_gensim(tmp_path / "w2v.kv").words == model.wv.index_to_key


class _Reduce:
    """A pickle that calls ``function(*args)`` when unpickled."""

    def __init__(self, function, args: tuple) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def test_a_kv_pickle_cannot_call_numpy_ndarray_or_make_object_scalars(tmp_path: Path) -> None:
    """``numpy.ndarray`` was admitted as a callable: an array of object dtype over the file's bytes
    (pointers: a segfault), a stride of 0 over 4 bytes written out as gigabytes, or uninitialised
    memory. gensim's files only name it, for ``_reconstruct``."""
    from gensim.models import KeyedVectors as GensimKeyedVectors

    pointers = (0x4141414141414141).to_bytes(8, "little") * 6
    forged = {
        "object array": _Reduce(np.ndarray, ((2, 3), np.dtype("O"), pointers)),
        "zero strides": _Reduce(np.ndarray, ((2, 10**9), np.dtype("f4"), b"\0" * 4, 0, (0, 0))),
        "no buffer": _Reduce(np.ndarray, ((64, 64), np.dtype("i4"))),
        "object scalar": _Reduce(np.core.multiarray.scalar, (np.dtype("O"), pointers[:8])),
    }
    for name, vectors in forged.items():
        kv = GensimKeyedVectors(3)
        kv.add_vectors(["a", "b"], np.ones((2, 3), dtype=np.float32))
        kv.vectors = vectors
        kv.save(str(tmp_path / "forged.kv"))
        with pytest.raises(FileFormatError, match="refusing"):
            Vectors.load_gensim(tmp_path / "forged.kv")
        assert main(["import", str(tmp_path / "forged.kv"), "--out", str(tmp_path / "run")]) == 2, name
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("protocol", range(6))
def test_a_kv_file_of_every_pickle_protocol_imports_and_none_runs_code(
    reference: KeyedVectors, tmp_path: Path, protocol: int
) -> None:
    """gensim saves with protocol 4 by default, but ``pickle_protocol=`` takes any: 0-3 were refused
    (Python 2 module names, gensim's frozenset), 5 too (numpy's buffer form), and 0-1 were taken
    for GloVe. Each reads as gensim reads it; code in any of them still never runs."""
    path = tmp_path / f"p{protocol}.kv"
    reference.save(str(path), pickle_protocol=protocol)
    assert sniff_format(path) == "kv"
    report = import_vectors(path, tmp_path / "run", show_progress=False)
    vectors, _ = load_run(tmp_path / "run")
    assert report.format == "kv" and vectors.words == reference.index_to_key
    np.testing.assert_array_equal(np.asarray(vectors.vectors), reference.vectors)
    target = tmp_path / "pwned"
    (tmp_path / "evil.kv").write_bytes(pickle.dumps({"vectors": _Payload(target)}, protocol=protocol))
    with pytest.raises(FileFormatError, match="refusing to load"):
        Vectors.load_gensim(tmp_path / "evil.kv")
    assert not target.exists()
    if protocol == 5:  # an array whose buffer is not the size its shape claims
        forged = pickle.dumps(np.zeros(4, dtype=np.float32), protocol=5).replace(b"K\x04", b"M\x00\x01", 1)
        (tmp_path / "forged.kv").write_bytes(forged)
        with pytest.raises(FileFormatError, match=r"claims shape \(256,\) but brings 16 bytes"):
            Vectors.load_gensim(tmp_path / "forged.kv")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xef\xbb\xbf1 2\na 1 2\n", "starts with a UTF-8 byte order mark"),  # was: "line 2 has 3 values"
        ("1 2\na 1 2\n".encode("utf-16"), "it is UTF-16 text .*iconv -f UTF-16"),
        (b"2 3\na 1 2 3\n", "ends after 1"),
        (b"2 3\na 1 2 3\nb 1 x 3\n", "line 3 has a non-numeric value"),
        (b"1 2\nna\xefve 1 2\n", "not valid utf-8.*unicode-errors"),
        (b"", "empty|first line"),
    ],
)
def test_damaged_files_are_one_line_errors_and_leave_nothing(
    tmp_path: Path, capsys, content: bytes, message: str
) -> None:
    (tmp_path / "bad.txt").write_bytes(content)
    assert main(["import", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("nlp182: error:")
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_unicode_errors_flag_replaces_broken_words(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"1 2\nna\xefve 1 2\n")
    assert (
        main(
            [
                "import",
                str(tmp_path / "bad.txt"),
                "--out",
                str(tmp_path / "run"),
                "--unicode-errors",
                "replace",
            ]
        )
        == 0
    )
    assert Vectors.load(tmp_path / "run").words == ["na\ufffdve"]


@pytest.mark.parametrize("name", ["vectors.txt", "vectors.bin"])
def test_encoding_flag_reads_the_words_of_a_latin1_file(tmp_path: Path, name: str) -> None:
    """``--encoding latin-1`` decodes the words as Latin-1: é is the byte e9, which UTF-8 refuses."""
    rows = {"café": [1.0, 2.0], "naïve": [3.0, 4.0]}
    if name.endswith(".bin"):  # word2vec's binary layout: the word, a space, then float32 values
        body = b"".join(word.encode("latin-1") + b" " + np.float32(row).tobytes() + b"\n"
                        for word, row in rows.items())
    else:
        body = "".join(f"{word} {a} {b}\n" for word, (a, b) in rows.items()).encode("latin-1")
    (tmp_path / name).write_bytes(b"2 2\n" + body)
    argv = ["import", str(tmp_path / name), "--out", str(tmp_path / "run"), "--encoding", "latin-1"]
    assert main(argv) == 0
    vectors = Vectors.load(tmp_path / "run")
    assert vectors.words == ["café", "naïve"]
    np.testing.assert_array_equal(vectors.vectors, [[1.0, 2.0], [3.0, 4.0]])


def test_a_kv_pickle_bomb_is_refused_in_milliseconds(tmp_path: Path) -> None:
    """A few hundred bytes of shared nested lists (``L(k+1) = [Lk, Lk]``) as a word or as the counts:
    refused by their types before anything prints or converts them (``str`` of the word would
    need 170 GB)."""
    import time

    from gensim.models import KeyedVectors

    nested: list = []
    for _ in range(40):
        nested = [nested, nested]
    for field in ("word", "counts"):
        kv = KeyedVectors(3)
        kv.add_vectors(["a", "b"], np.ones((2, 3), dtype=np.float32))
        if field == "word":
            kv.index_to_key = [nested, "b"]
        else:
            kv.expandos["count"] = nested
        path = tmp_path / f"{field}.kv"
        kv.save(str(path))
        assert path.stat().st_size < 10_000
        started = time.perf_counter()
        with pytest.raises(FileFormatError, match=r"not a word|not one integer per word"):
            Vectors.load_gensim(path)
        assert time.perf_counter() - started < 5


def test_a_glove_file_is_sized_by_its_rows_not_its_line_count(tmp_path: Path) -> None:
    """One wide first line and a million short ones would size a (1M x 500k) matrix: 1.8 TiB."""
    path = tmp_path / "glove.txt"
    path.write_bytes(b"w " + b" ".join([b"1"] * 500_000) + b"\n" + b"x\n" * 1_000_000)
    with pytest.raises(FileFormatError, match="line 2 has 0 values where line 1 has 500000"):
        Vectors.load_word2vec_format(path, no_header=True)
    fine = tmp_path / "fine.txt"
    fine.write_text("a 1 2\nb 3 4\n\n")
    assert Vectors.load_word2vec_format(fine, no_header=True).words == ["a", "b"]


@pytest.mark.parametrize("cut_after", ["-", "e", "e-", "1."])
def test_a_text_row_longer_than_the_sniffed_bytes_is_text_wherever_the_read_cuts_it(
    tmp_path: Path, cut_after: str
) -> None:
    """A 6,000-dim text file whose first row the sniffer's read cut after ``-`` or ``e`` was taken
    for binary and imported as garbage words and values, reported as a success."""
    from nlp182.embeddings.formats import SNIFF_BYTES

    value = "-1.5e-05"
    header = f"2 {SNIFF_BYTES // len(value) + 10}\n"
    cut = value.index(cut_after) + len(cut_after)  # the read ends right after these characters
    word_length = (SNIFF_BYTES - len(header) - 1 - cut) % (len(value) + 1) or len(value) + 1
    dims = int(header.split()[1])
    rows = [f"{'w' * word_length} " + " ".join([value] * dims), "b " + " ".join(["0.25"] * dims)]
    path = tmp_path / "wide.txt"
    path.write_text(header + "\n".join(rows) + "\n")
    assert path.read_bytes()[:SNIFF_BYTES].endswith(cut_after.encode())
    assert sniff_format(path) == "word2vec-text"
    vectors = KeyedVectors.load_word2vec_format(path)
    report = import_vectors(path, tmp_path / "run", show_progress=False)
    imported, _ = load_run(tmp_path / "run")
    assert report.format == "word2vec-text" and imported.words == vectors.index_to_key
    np.testing.assert_array_equal(np.asarray(imported.vectors), vectors.vectors)


def test_a_text_row_wider_than_the_line_bound_reads_as_its_header_says(tmp_path: Path) -> None:
    """A 100,000-dim text file (2 MB rows) gensim reads was refused as lines over 1 MiB, with
    advice to pass a CLI flag the Python call lacks; a row's bound now follows the header."""
    rng = np.random.default_rng(0)
    reference = KeyedVectors(100_000)
    reference.add_vectors(["a", "b"], rng.standard_normal((2, 100_000)).astype(np.float32))
    reference.save_word2vec_format(str(tmp_path / "wide.txt"))
    assert max(len(line) for line in (tmp_path / "wide.txt").read_bytes().split(b"\n")) > 1 << 20
    loaded = Vectors.load_word2vec_format(tmp_path / "wide.txt")
    np.testing.assert_array_equal(loaded.vectors, reference.vectors)
    assert main(["import", str(tmp_path / "wide.txt"), "--out", str(tmp_path / "run")]) == 0
    np.testing.assert_array_equal(np.asarray(Vectors.load(tmp_path / "run").vectors), reference.vectors)


def test_a_kv_row_whose_length_overflows_is_refused_or_dropped_at_import(tmp_path: Path) -> None:
    """Finite values whose length passes float32's range were imported; index, neighbors and eval
    then all refused the run."""
    kv = KeyedVectors(2)
    kv.add_vectors(["good", "long", "fine"], np.array([[0.5, 1], [3e38, 3e38], [-1, 2]], dtype=np.float32))
    kv.save(str(tmp_path / "long.kv"))
    assert main(["import", str(tmp_path / "long.kv"), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    dropping = ["--nonfinite", "drop"]
    assert main(["import", str(tmp_path / "long.kv"), "--out", str(tmp_path / "run"), *dropping]) == 0
    assert Vectors.load(tmp_path / "run").words == ["good", "fine"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("index_to_key", [10**5000, "b"], "integer of more than 18 digits"),
        ("expandos", 5, "expandos are a int, not a mapping"),
        ("count", np.array([2**64 - 1, 3], dtype=np.uint64), "from 0 to 2"),
        ("count", [-4, 3], "from 0 to 2"),
        ("count", [10**30, 3], "from 0 to 2"),
    ],
)
def test_odd_kv_field_values_are_one_line_errors(tmp_path: Path, field: str, value, message: str) -> None:
    """A key of 5,000 digits, expandos that are not a mapping, or counts past int64 (or negative)
    exited with a traceback, or wrapped a uint64 count to -1."""
    kv = KeyedVectors(3)
    kv.add_vectors(["a", "b"], np.ones((2, 3), dtype=np.float32))
    if field == "count":
        kv.expandos["count"] = value
    else:
        setattr(kv, field, value)
    kv.save(str(tmp_path / "odd.kv"))
    with pytest.raises(FileFormatError, match=message):
        Vectors.load_gensim(tmp_path / "odd.kv")


def test_a_kv_file_with_numpy_string_or_integer_keys_imports(tmp_path: Path) -> None:
    """gensim keeps keys given as a NumPy array as numpy.str_ (pickled as NumPy scalars): such a
    file was refused as holding a scalar this reader does not know."""
    rng = np.random.default_rng(0)
    kv = KeyedVectors(5)
    kv.add_vectors(np.array(["apple", "banana", "cherry"]), rng.standard_normal((3, 5)).astype(np.float32))
    kv.save(str(tmp_path / "strs.kv"))
    loaded = Vectors.load_gensim(tmp_path / "strs.kv")
    assert loaded.words == ["apple", "banana", "cherry"] and all(type(w) is str for w in loaded.words)
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)


def _packed(tmp_path: Path, kind: str) -> Path:
    """A word2vec text file of two words, xz-compressed or in a zip archive."""
    import lzma
    import zipfile

    text = b"2 3\na 1 2 3\nb 4 5 6\n"
    if kind == "xz":
        path = tmp_path / "vectors.txt.xz"
        path.write_bytes(lzma.compress(text))
    else:
        path = tmp_path / "vectors.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("vectors.txt", text)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("xz", r"vectors.txt.xz: it is xz-compressed: decompress it \(xz -d\), or compress it as .gz"),
        ("zip", r"vectors.zip: it is a zip archive: extract the vector file from it"),
    ],
)
def test_an_xz_or_zip_vector_file_is_refused_naming_what_it_is(
    tmp_path: Path, capsys, kind: str, message: str
) -> None:
    """Such files were read as GloVe text (``line 2 has 2 values where line 1 has 1``) or as a
    header that is not ``<words> <dims>``; the corpus reader's check of the first bytes names them."""
    path = _packed(tmp_path, kind)
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not (tmp_path / "run").exists()
    for binary in (False, True):
        with pytest.raises(FileFormatError, match=message):
            Vectors.load_word2vec_format(path, binary=binary)


def test_a_text_row_with_a_bad_first_value_is_text_and_its_error_names_the_value(
    tmp_path: Path, capsys
) -> None:
    """Row 1 ``a 0x10 2`` was sniffed as binary (its first value is not a number) and reported as a
    binary file cut short inside word #1."""
    path = tmp_path / "hex.txt"
    path.write_bytes(b"2 2\na 0x10 2\nb 1 2\n")
    assert sniff_format(path) == "word2vec-text"
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(r"line 2 has a non-numeric value: .*'0x10'", err), err


def test_small_binary_files_without_control_bytes_are_still_binary(tmp_path: Path) -> None:
    """float32s whose bytes are all printable, and a text file whose bytes happen to fit the
    binary layout exactly: the whole file decides."""
    printable = np.frombuffer(b"abcdWXYZ", dtype="<f4").reshape(1, 2)
    path = tmp_path / "printable.bin"
    Vectors(["w"], printable).save_word2vec_format(path, binary=True)
    assert sniff_format(path) == "word2vec-binary"
    np.testing.assert_array_equal(Vectors.load_word2vec_format(path, binary=True).vectors, printable)
    rng = np.random.default_rng(0)
    for dim in (1, 2, 3):
        path = tmp_path / f"random{dim}.bin"
        Vectors(["a", "b"], rng.standard_normal((2, dim))).save_word2vec_format(path, binary=True)
        assert sniff_format(path) == "word2vec-binary"
    fits = tmp_path / "fits.txt"
    fits.write_bytes(b"1 2\na 0.5 0.2\n")  # "0.5 0.2\n" is 8 bytes: two float32s
    assert sniff_format(fits) == "word2vec-text"
    # a text row with a value that is not a number, in a file that would also read as 2 x 3 float32s
    damaged = tmp_path / "damaged.vec"
    damaged.write_bytes(b"2 3\nking 0.9 0x10 0.1\nqueen 0.9 0.1 0.8\n")
    assert sniff_format(damaged) == "word2vec-text"
    with pytest.raises(FileFormatError, match=r"line 2 has a non-numeric value: .*'0x10'"):
        Vectors.load_word2vec_format(damaged)


def test_a_text_file_given_as_binary_is_refused_not_imported_as_garbage(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """--format word2vec-binary on a text file imported "words" like 36462408 and said it succeeded."""
    with pytest.raises(FileFormatError, match=r"reads as word2vec-text .*give --format word2vec-text"):
        import_vectors(files["vectors.txt"], tmp_path / "run", file_format="word2vec-binary",
                       show_progress=False)
    assert not (tmp_path / "run").exists()
    report = import_vectors(files["vectors.bin"], tmp_path / "bin", file_format="word2vec-binary",
                            show_progress=False)
    assert report.format == "word2vec-binary"  # a binary file given as binary still imports


def test_counts_files_keep_words_with_other_spaces_and_refuse_counts_out_of_range(tmp_path: Path,
                                                                                 capsys) -> None:
    """An fvocab line is split at its last space or tab, so a word holding a no-break space reads
    back whole; a count beyond int64 or below 0 is a one-line error (it was a traceback from
    ``import`` and a negative total in counts.tsv)."""
    vectors = Vectors(["a\xa0b", "c"], np.eye(2, dtype=np.float32), counts=[5, 3])
    vectors.save_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "v.vocab")
    again = Vectors.load_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "v.vocab")
    assert again.words == ["a\xa0b", "c"] and again.get_vecattr("a\xa0b", "count") == 5
    for line, problem in (("a 99999999999999999999999", "beyond 2\\*\\*63 - 1"),
                          ("a -5", "is not '<word> <count>'"), ("a", "is not '<word> <count>'")):
        (tmp_path / "bad.vocab").write_text(f"{line}\nc 2\n")
        with pytest.raises(FileFormatError, match=problem):
            Vectors.load_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "bad.vocab")
        assert main(["import", str(tmp_path / "v.txt"), "--fvocab", str(tmp_path / "bad.vocab"),
                     "--out", str(tmp_path / "run"), "--overwrite"]) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_a_damaged_counts_file_leaves_the_vectors_usable(tmp_path: Path, caplog) -> None:
    """counts.tsv is an extra of a run: a damaged one failed every command that reads the run."""
    words = ["x\xa0y", "b", "c"]
    Vectors(words, np.eye(3, dtype=np.float32), counts=[2**62, 2**62, 7]).save(tmp_path / "run")
    assert Vocabulary.load(tmp_path / "run" / "counts.tsv").words == words
    assert Vocabulary.load(tmp_path / "run" / "counts.tsv").total_words == 2**63 + 7  # no int64 wrap
    Vectors(words, np.eye(3, dtype=np.float32), counts=[5, 3, 2]).save_word2vec_format(
        tmp_path / "v.txt", fvocab=tmp_path / "v.vocab")
    assert main(["import", str(tmp_path / "v.txt"), "--fvocab", str(tmp_path / "v.vocab"), "--out",
                 str(tmp_path / "imported")]) == 0
    for run in ("run", "imported"):
        (tmp_path / run / "counts.tsv").write_text("garbage\n")
        with caplog.at_level(logging.WARNING):
            loaded = Vectors.load(tmp_path / run)
        assert loaded.words == words and "is not a vocabulary file" in caplog.text
    assert main(["neighbors", str(tmp_path / "imported"), "b", "-k", "1"]) == 0


@pytest.mark.parametrize(("name", "message"), [
    ("lee_fasttext_new.bin", r"is a fastText binary model; .*import the \.vec file"),
    ("lee_fasttext.bin", r"is a binary file but not a word2vec binary one .*older layout.*\.vec file"),
])
def test_a_fasttext_bin_model_is_named_with_the_file_to_import_instead(
    tmp_path: Path, capsys, name: str, message: str
) -> None:
    """fastText's .bin (gensim's own test models) was read as GloVe text: "is empty" for a 209 KB
    file of the older layout, "a word but no values" for one with fastText's magic number."""
    assert main(["import", datapath(name), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not (tmp_path / "run").exists()
    with pytest.raises(FileFormatError, match=r"a binary file: if it is a fastText model.*\.vec file"):
        Vectors.load_word2vec_format(datapath(name), binary=True)


def test_a_blank_line_between_rows_is_no_row_in_either_pass(tmp_path: Path) -> None:
    """The counting pass skipped a blank line mid-file and the reading pass refused it ("line 3
    has 0 values, expected 2"); a file with a header reads past one too."""
    glove = tmp_path / "glove.txt"
    glove.write_text("a 1 2\n\nb 3 4\n")
    loaded = Vectors.load_word2vec_format(glove, no_header=True)
    assert loaded.words == ["a", "b"] and loaded.vectors.tolist() == [[1, 2], [3, 4]]
    headed = tmp_path / "headed.txt"
    headed.write_text("2 2\na 1 2\n\nb 3 4\n")
    assert Vectors.load_word2vec_format(headed).words == ["a", "b"]


def test_a_tab_separated_vector_file_is_named_as_such(tmp_path: Path) -> None:
    """"line 2 has 0 values, expected 2" did not say why."""
    for name, text, no_header in (("tabs.txt", "2 2\na\t1\t2\nb\t3\t4\n", False),
                                  ("glove.txt", "a 1 2\nb\t3\t4\n", True)):
        (tmp_path / name).write_text(text)
        with pytest.raises(FileFormatError, match=r"split by tabs; vector files separate the word and its"):
            Vectors.load_word2vec_format(tmp_path / name, no_header=no_header)
