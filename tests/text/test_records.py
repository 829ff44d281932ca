"""Text, JSON and Parquet corpora read within the limits a plain file meets: the same tokens as the
plain file, overlong records skipped and counted, bombs refused, malformed files named."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nlp182.bounded import ReadLimits
from nlp182.errors import FileFormatError
from nlp182.text import records
from nlp182.text.corpus import CorpusSource, iter_token_lines
from nlp182.text.encoded import encode

TEXTS = ["The cat sat.", "A dog's bark, loud!", "", "Well-known facts"]
TOKENS = [["the", "cat", "sat"], ["a", "dog's", "bark", "loud"], ["well-known", "facts"]]


def _json_lines(texts: list[str], column: str = "text") -> bytes:
    return "".join(json.dumps({column: t, "id": i}) + "\n" for i, t in enumerate(texts)).encode()


def _tokens(path, **kwargs) -> list[list[str]]:
    return list(iter_token_lines(CorpusSource(str(path), **kwargs)))


def test_every_format_streams_the_same_tokens_as_plain_text(tmp_path) -> None:
    (tmp_path / "c.txt").write_text("\n".join(TEXTS) + "\n")
    (tmp_path / "c.jsonl").write_bytes(_json_lines(TEXTS))
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(_json_lines(TEXTS)))
    (tmp_path / "c.json.bz2").write_bytes(bz2.compress(_json_lines(TEXTS)))
    (tmp_path / "array.json").write_text(json.dumps([{"text": t} for t in TEXTS], indent=2))
    (tmp_path / "bom.json").write_text(json.dumps([{"text": t} for t in TEXTS]), encoding="utf-8-sig")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _json_lines(TEXTS).replace(b"\n", b"\r\n"))
    pq.write_table(pa.table({"body": TEXTS}), tmp_path / "c.parquet")
    pq.write_table(pa.table({"body": TEXTS}), tmp_path / "plain.parquet", use_dictionary=False)
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.txt").write_text("\n".join(TEXTS[:2]) + "\n")
    (tmp_path / "parts" / "b.txt").write_text("\n".join(TEXTS[2:]))  # no final line break

    assert _tokens(tmp_path / "c.txt") == TOKENS  # blank line skipped
    for name in ("c.jsonl", "c.jsonl.gz", "c.json.bz2", "array.json", "bom.json", "bom.jsonl"):
        assert _tokens(tmp_path / name) == TOKENS, name
    for name in ("c.parquet", "plain.parquet"):
        assert _tokens(tmp_path / name, column="body") == TOKENS, name
    assert _tokens(tmp_path / "c.txt", fmt="text") == TOKENS
    assert _tokens(tmp_path / "parts" / "*.txt", fmt="text") == TOKENS
    assert CorpusSource(str(tmp_path / "c.jsonl.gz")).resolved_format() == "json"
    with pytest.raises(FileFormatError, match="no 'text' column; available columns: body"):
        _tokens(tmp_path / "c.parquet")
    with pytest.raises(FileFormatError, match="line 1: records have no 'body' column"):
        _tokens(tmp_path / "c.jsonl", column="body")


def test_a_record_with_line_breaks_is_one_sentence_when_encoded_too(tmp_path) -> None:
    """A JSON or Parquet record is one sentence on both read paths: the encoded corpus (training)
    keeps line breaks inside a record from cutting it, as ``iter_token_lines`` does, so training
    windows cross them."""
    texts = [f"alpha beta\ngamma delta {i}" for i in range(3)] + ["one\n\ntwo"]
    (tmp_path / "c.jsonl").write_bytes(_json_lines(texts))
    pq.write_table(pa.table({"text": texts}), tmp_path / "c.parquet")
    for name in ("c.jsonl", "c.parquet"):
        source = CorpusSource(str(tmp_path / name))
        lines = list(iter_token_lines(source))
        assert [len(tokens) for tokens in lines] == [5, 5, 5, 2], name
        text = encode(source, cache=tmp_path / f"cache-{name}")
        assert np.diff(text.starts).tolist() == [len(tokens) for tokens in lines], name
        assert [text.words[i] for i in text.read(0, 7)] == [*lines[0], *lines[1][:2]], name


def test_json_lines_longer_than_the_limit_are_skipped_and_counted(tmp_path, caplog) -> None:
    lines = _json_lines(["first words"]) + _json_lines(["x" * 5000]) + _json_lines(["last words"])
    (tmp_path / "c.jsonl").write_bytes(lines)
    source = CorpusSource(str(tmp_path / "c.jsonl"), limits=ReadLimits(max_line=1000))
    with caplog.at_level(logging.WARNING):
        assert list(source.lines()) == ["first words", "last words"]
    assert "c.jsonl: skipped 1 line longer than 1,000 bytes (first: line 2)" in caplog.text


def test_malformed_json_lines_name_the_file_and_the_line(tmp_path) -> None:
    cases = {
        b'{"text": "fine"}\n{"text": "cut\n': "c.jsonl: line 2 is not valid JSON",
        b'{"text": "fine"}\n\n["a", "list"]\n': "c.jsonl: line 3 is a JSON list, not an object of columns",
        b'\xff{"text": 1}\n': "c.jsonl: line 1 is not valid JSON",
        b'[{"text": "a"}, 3]': "c.jsonl: record 1 is a JSON int, not an object of columns",
        b'[{"text": "a"}': "c.jsonl is not valid JSON",
    }
    for data, message in cases.items():
        (tmp_path / "c.jsonl").write_bytes(data)
        with pytest.raises(FileFormatError, match=message):
            list(CorpusSource(str(tmp_path / "c.jsonl")).lines())


def test_json_numbers_and_nulls_become_text(tmp_path) -> None:
    (tmp_path / "c.jsonl").write_bytes(b'{"text": 12}\n{"text": null}\n{"text": "word"}\n')
    assert list(CorpusSource(str(tmp_path / "c.jsonl")).lines()) == ["12", "", "word"]


def test_compressed_json_is_held_to_the_decompression_caps(tmp_path) -> None:
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(_json_lines(["words"] * 500)))
    source = CorpusSource(str(tmp_path / "c.jsonl.gz"), limits=ReadLimits(max_total=1000))
    with pytest.raises(FileFormatError, match="decompresses to more than 1,000 bytes"):
        list(source.lines())


def test_a_json_array_past_the_whole_file_limit_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(records, "MAX_WHOLE_FILE_BYTES", 100)
    (tmp_path / "c.json").write_text(json.dumps([{"text": "some words"}] * 20))
    with pytest.raises(FileFormatError, match="write the records as JSON Lines"):
        list(CorpusSource(str(tmp_path / "c.json")).lines())


def _dictionary_table(values: list[str], indices: np.ndarray) -> pa.Table:
    """A ``text`` column of ``values[indices]``, dictionary-encoded: small on disk however long."""
    column = pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(values))
    return pa.table({"text": column})


def _peaks(lines) -> tuple[list[str], int, int]:
    """The lines, and the peaks of Python and of Arrow memory (above what was held before) while
    they were read."""
    kept, arrow_peak, arrow_before = [], 0, pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        for line in lines:
            kept.append(line)
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - arrow_before)
        return kept, tracemalloc.get_traced_memory()[1], arrow_peak
    finally:
        tracemalloc.stop()


def test_parquet_values_past_the_limit_are_skipped_before_they_are_decoded(tmp_path, caplog) -> None:
    """One 3 MiB value in 1,000 rows (3 GB decoded) in a file of a few kilobytes, a short value after
    every hundred: no batch ever decodes the long value."""
    path = tmp_path / "bomb.parquet"
    indices = np.tile(np.r_[np.zeros(100, int), 1], 10)
    table = _dictionary_table(["x" * (3 << 20), "kept words"], indices)
    pq.write_table(table, path, compression="zstd", store_schema=False)  # as writers other than Arrow do
    del table
    assert path.stat().st_size < 100_000
    with caplog.at_level(logging.WARNING):
        kept, python_peak, arrow_peak = _peaks(CorpusSource(str(path)).lines())
    assert kept == ["kept words"] * 10
    assert python_peak < 16 << 20 and arrow_peak < 16 << 20
    assert "bomb.parquet: skipped 1000 values of 'text' longer than 1 MiB" in caplog.text


def test_parquet_within_the_limit_streams_in_bounded_memory(tmp_path) -> None:
    """40,000 rows of a 5,000-byte value (200 MB decoded), each kept when the ratio bound is raised
    for it: a batch of rows is decoded at a time."""
    path = tmp_path / "long.parquet"
    pq.write_table(_dictionary_table(["y" * 5000], np.zeros(40_000, int)), path)
    lengths = (len(text) for text in CorpusSource(str(path), limits=ReadLimits(max_ratio=1e9)).lines())
    kept, python_peak, arrow_peak = _peaks(str(length) for length in lengths)
    assert kept == ["5000"] * 40_000
    assert python_peak < 16 << 20 and arrow_peak < 16 << 20


def test_parquet_columns_that_expand_past_the_caps_are_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a" * 100_000] * 20}), path, use_dictionary=False, compression="zstd")
    with pytest.raises(FileFormatError, match="decompresses to more than 1 MiB in row group 0"):
        list(CorpusSource(str(path), limits=ReadLimits(max_total=1 << 20)).lines())
    monkeypatch.setattr(records, "RATIO_FLOOR", 0)
    with pytest.raises(FileFormatError, match="expands more than 100 times in row group 0"):
        list(CorpusSource(str(path)).lines())


def test_a_dictionary_of_one_value_repeated_meets_the_bounds_of_a_gz(tmp_path, monkeypatch) -> None:
    """The footer counts a dictionary column's indices, not the text they stand for: a tiny file of
    one long value repeated is refused by its decoded text, as a compression bomb."""
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": ["word " * 2_000] * 20_000}), path, use_dictionary=True)
    assert path.stat().st_size < 100_000  # 200 MB of text
    monkeypatch.setattr(records, "RATIO_FLOOR", 1 << 20)
    with pytest.raises(FileFormatError, match="decodes to more than 100 times the file's"):
        list(CorpusSource(str(path)).lines())
    with pytest.raises(FileFormatError, match="decodes to more than 2 MiB of text"):
        list(CorpusSource(str(path), limits=ReadLimits(max_total=2 << 20, max_ratio=1e9)).lines())
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"text": [[1, 2], [3]]}), nested)
    assert list(CorpusSource(str(nested)).lines()) == ["[1, 2]", "[3]"]  # not a KeyError


def test_damaged_or_foreign_parquet_is_a_file_format_error(tmp_path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": TEXTS * 100}), path)
    (tmp_path / "cut.parquet").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (tmp_path / "text.parquet").write_text("just some words\n")
    for name in ("cut.parquet", "text.parquet"):
        with pytest.raises(FileFormatError, match=f"{name} could not be read as parquet"):
            list(CorpusSource(str(tmp_path / name)).lines())


def test_parquet_numbers_and_nulls_become_text(tmp_path) -> None:
    pq.write_table(pa.table({"n": [1, None, 3], "text": ["a", None, b"b".decode()]}), tmp_path / "c.parquet")
    assert list(CorpusSource(str(tmp_path / "c.parquet"), column="n").lines()) == ["1", "", "3"]
    assert list(CorpusSource(str(tmp_path / "c.parquet")).lines()) == ["a", "", "b"]


def test_hostile_json_is_one_package_error_not_a_traceback_or_gigabytes(tmp_path, monkeypatch) -> None:
    """Nesting past the recursion limit, an integer of 5,000 digits and more objects than memory
    should hold are each a FileFormatError naming the file, in a JSON array corpus, in JSON Lines
    and in a caption file."""
    from nlp182 import io as nlp_io
    from nlp182.captioning.readers import read_karpathy

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FileFormatError, match="nested too deeply"):
        list(records.json_records([deep], "text", ReadLimits()))
    digits = tmp_path / "digits.jsonl"
    digits.write_text('{"text": "fine"}\n{"text": "x", "n": ' + "9" * 5000 + "}\n")
    with pytest.raises(FileFormatError, match="line 2"):
        list(records.json_records([digits], "text", ReadLimits()))
    monkeypatch.setattr(nlp_io, "MAX_JSON_CONTAINERS", 1000)
    many = tmp_path / "many.json"
    many.write_text("[" + ",".join(['{"text": "a"}'] * 1001) + "]")
    with pytest.raises(FileFormatError, match="1,002 JSON objects and arrays"):
        list(records.json_records([many], "text", ReadLimits()))
    captions = tmp_path / "dataset.json"
    captions.write_text('{"images": [' + ",".join(["[]"] * 1001) + "]}")
    with pytest.raises(FileFormatError, match="JSON Lines"):
        read_karpathy(captions)


def test_a_parquet_file_is_named_by_its_first_bytes_and_text_starting_par1_is_text(tmp_path) -> None:
    """Parquet named ``.txt`` is told by its magic and page header; a text line that happens to
    start with ``PAR1`` is text."""
    for table in (pa.table({"text": TEXTS}), pa.table({"text": pa.array([], pa.string())})):
        pq.write_table(table, tmp_path / "shard.txt")
        problem = records.text_problem((tmp_path / "shard.txt").read_bytes()[:4096])
        assert problem is not None and problem.startswith("it is a Parquet file: name it with a .parquet")
    assert records.text_problem(b"PAR1 ships in May\nthe release notes follow\n") is None
