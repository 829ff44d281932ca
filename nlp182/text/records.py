"""The text of each record of local text, JSON and Parquet corpus files, read within ``ReadLimits``.

A corpus a user brings in these formats is held to the same bounds as a plain file: what is in
memory at once is set by the limits, never by the file. Text files are read as a plain corpus is
(``LineBlocks``: a line longer than ``limits.max_line`` comes in pieces cut at word breaks); JSON
Lines are walked with ``BoundedLines`` (a record longer than ``limits.max_line`` is skipped and
counted); ``.gz``/``.bz2`` files decompress under the ratio and total caps; a JSON document that
is one array of records is read whole, up to ``MAX_WHOLE_FILE_BYTES``; Parquet is read a batch
of rows at a time with pyarrow, after its footer shows that no column chunk expands past the caps,
and values longer than ``limits.max_line`` are skipped and counted as overlong records are.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from nlp182.bounded import MAX_WHOLE_FILE_BYTES, RATIO_FLOOR, ReadLimits, bound_passed, mib
from nlp182.errors import FileFormatError
from nlp182.io import parse_json

log = logging.getLogger(__name__)

#: Rows of a Parquet file read at a time (at most this many values of ``max_line`` bytes in memory).
PARQUET_BATCH_ROWS = 256
#: Leading whitespace looked through to tell a JSON array from JSON Lines.
SNIFF_BYTES = 1 << 16


#: Bytes at the start of a text corpus checked to be UTF-8 before it is read (``text_problem``).
TEXT_SNIFF_BYTES = 1 << 20


#: The byte order marks of UTF-16 text (little-, big-endian), and what to do with such a file.
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
UTF16_FIX = "convert it (iconv -f UTF-16 -t UTF-8)"


class FileSignature(NamedTuple):
    """The first bytes of a kind of file a text file is mistaken for, what it is, and what to do."""

    magic: bytes
    #: the kind of file, as a message names it: ``xz-compressed``, ``a zip archive``
    what: str
    #: what to do with such a file
    fix: str
    #: whether ``fix`` names a corpus option (a glob, ``--format parquet``), which other readers lack
    corpus_fix: bool = False


#: The first bytes of files a text corpus or a vector file is mistaken for.
FILE_SIGNATURES = (
    FileSignature(b"\xfd7zXZ\x00", "xz-compressed",
                  "decompress it (xz -d), or compress it as .gz or .bz2, which are read"),
    FileSignature(b"\x28\xb5\x2f\xfd", "zstd-compressed",
                  "decompress it (zstd -d), or compress it as .gz or .bz2"),
    FileSignature(b"PK\x03\x04", "a zip archive",
                  "unzip it and name its text files (a glob: 'folder/**/*.txt')", corpus_fix=True),
    FileSignature(b"\x1f\x8b", "gzip-compressed", "name it with a .gz ending and it is read decompressed"),
    # Parquet's magic, then the compact Thrift header of a page (or of an empty file's footer)
    FileSignature(b"PAR1\x15", "a Parquet file",
                  "name it with a .parquet ending, or pass --format parquet", corpus_fix=True),
    *(FileSignature(mark, "UTF-16 text (its byte order mark)", UTF16_FIX) for mark in UTF16_MARKS),
)


def file_signature(head: bytes) -> FileSignature | None:
    """The ``FILE_SIGNATURES`` entry whose magic ``head`` (a file's first bytes) starts with, or None."""
    return next((signature for signature in FILE_SIGNATURES if head.startswith(signature.magic)), None)


def text_problem(head: bytes) -> str | None:
    """What makes ``head`` (a file's first bytes) not UTF-8 text, with the line and a fix; or None.

    Any NUL byte is a problem (a binary file, or UTF-16). Lines that do not decode are one when
    they are more than a stray few (over 1% of the lines, and over 3): a file in another encoding
    (Latin-1 with accents) fails on line after line, while a UTF-8 file with a damaged byte or
    two is read with U+FFFD in their place. A line cut at the end of ``head`` is not judged.
    """
    signature = file_signature(head)
    if signature is not None:
        return f"it is {signature.what}: {signature.fix}"
    if b"\x00" in head:
        line = head.count(b"\n", 0, head.index(b"\x00")) + 1
        return (f"line {line} holds a NUL byte: this is a binary file or UTF-16 text, not UTF-8 text; "
                f"{UTF16_FIX} or name the text file")
    lines = head.split(b"\n")[:-1] or [head]  # whole lines (the last one may be cut)
    bad = []
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, line[exc.start]))
    if len(bad) > max(3, len(lines) // 100):
        number, byte = bad[0]
        return (f"{len(bad)} of its first {len(lines)} lines are not UTF-8 (first: line {number}, byte "
                f"0x{byte:02x}); convert the file to UTF-8, e.g. iconv -f LATIN1 -t UTF-8 for Latin-1 text")
    return None


def text_records(files: Iterable[Path], limits: ReadLimits) -> Iterator[str]:
    """Each line of each text file (``\\n`` removed); a line longer than ``limits.max_line`` comes in
    pieces cut at word breaks, as the corpus encoder reads a plain file (one log line a file)."""
    for path in files:
        with limits.open(path) as handle:
            blocks = limits.blocks(handle, path, on_long="split")
            for _, _, data in blocks:
                yield from data.decode("utf-8", errors="replace").split("\n")[:-1]
        blocks.warn_skipped(lambda path=path: limits.open(path))


def json_records(files: Iterable[Path], column: str, limits: ReadLimits) -> Iterator[str]:
    """``column`` of each record of JSON Lines files (one object a line), or of JSON files that hold
    one array of objects; a record without ``column`` or a line that is not a JSON object is a
    :class:`FileFormatError` naming the file and the line."""
    for path in files:
        if _opens_an_array(path, limits):
            yield from _array_records(path, column, limits)
            continue
        with limits.open(path) as handle:
            lines = limits.lines(handle, path)
            for number, line in lines:
                if not line.strip():
                    continue
                where = f"{path}: line {number}"
                yield _column_text(parse_json(line, where, locate=False), column, where)
            lines.warn_skipped()


def parquet_records(files: Iterable[Path], column: str, limits: ReadLimits) -> Iterator[str]:
    """``column`` of each row of Parquet files, ``PARQUET_BATCH_ROWS`` rows at a time; values longer
    than ``limits.max_line`` bytes are skipped and counted (one warning a file) before they become
    Python strings, and dictionary-encoded columns stay encoded until then, so that a small file of
    one long value repeated cannot expand in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in files:
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as exc:
            raise FileFormatError(f"{path} could not be read as parquet: {exc}") from None
        if column not in names:
            raise _missing_column(str(path), column, names)
        textual = _is_text(pq.read_schema(path).field(column).type)
        parquet = pq.ParquetFile(path, read_dictionary=[column] if textual else None)
        _check_expansion(parquet.metadata, column, path, limits)
        skipped = rows = decoded = 0
        stored = max(path.stat().st_size, 1)
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
                texts, too_long = _batch_texts(batch.column(0), limits.max_line)
                skipped += too_long
                rows += batch.num_rows
                # the footer's sizes count a dictionary's indices, not the text they stand for:
                # the decoded text meets the bounds a .gz corpus meets
                decoded += sum(len(text) for text in texts)
                _check_decoded(decoded, stored, path, column, limits)
                yield from texts
        except (pa.ArrowException, OSError) as exc:
            raise FileFormatError(f"{path}: damaged parquet data after {rows:,} rows ({exc})") from None
        _warn_skipped(path, skipped, "value", column, limits)


def _batch_texts(values: Any, max_line: int) -> tuple[list[str], int]:
    """The text of a batch's values of at most ``max_line`` bytes (nulls as ``""``), and how many
    were longer. ``values`` is a pyarrow array: text, binary or dictionary-encoded, or any other
    type, whose values become text with ``str``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _is_text(values.type):
        return ["" if value is None else str(value) for value in values.to_pylist()], 0
    if pa.types.is_dictionary(values.type):
        lengths = pc.take(pc.binary_length(values.dictionary), values.indices)
    else:
        lengths = pc.binary_length(values)
    keep = pc.fill_null(pc.less_equal(lengths, max_line), True)
    kept = values.filter(keep)
    texts = [
        "" if value is None else value if isinstance(value, str) else value.decode("utf-8", errors="replace")
        for value in kept.to_pylist()
    ]
    return texts, len(values) - len(kept)


def _is_text(kind: Any) -> bool:
    """Whether a pyarrow type holds text or bytes (dictionary-encoded or not)."""
    import pyarrow as pa

    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))


def _check_decoded(decoded: int, stored: int, path: Path, column: str, limits: ReadLimits) -> None:
    """Refuse a Parquet file once its decoded text passes the total cap, or ``max_ratio`` times the
    file's size past ``RATIO_FLOOR`` (``decoded`` counts characters: at most its UTF-8 bytes)."""
    passed = bound_passed(decoded, stored, limits.max_ratio, limits.max_total, RATIO_FLOOR)
    if passed == "total":
        raise FileFormatError(
            f"{path}: column {column!r} decodes to more than {mib(limits.max_total)} of text (the limit); "
            "pass --max-decompressed-bytes to raise it"
        )
    if passed == "ratio":
        raise FileFormatError(
            f"{path}: column {column!r} decodes to more than {limits.max_ratio:g} times the file's "
            f"{stored:,} bytes (one value repeated, as a bomb is made); pass --max-ratio to raise the limit"
        )


def _check_expansion(metadata: Any, column: str, path: Path, limits: ReadLimits) -> None:
    """Refuse a Parquet file whose footer says a chunk of ``column`` decompresses past the total cap,
    or more than ``max_ratio`` times once past ``RATIO_FLOOR``: the bounds a ``.gz`` corpus meets."""
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            if chunk.path_in_schema != column:
                continue
            expanded, stored = chunk.total_uncompressed_size, max(chunk.total_compressed_size, 1)
            passed = bound_passed(expanded, stored, limits.max_ratio, limits.max_total, RATIO_FLOOR)
            if passed == "total":
                raise FileFormatError(
                    f"{path}: column {column!r} decompresses to more than {mib(limits.max_total)} in row "
                    f"group {group} (the limit); pass --max-decompressed-bytes to raise it"
                )
            if passed == "ratio":
                raise FileFormatError(
                    f"{path}: column {column!r} expands more than {limits.max_ratio:g} times in row group "
                    f"{group} ({expanded:,} bytes from {stored:,}), as a compression bomb does; pass "
                    "--max-ratio to raise the limit"
                )


def _opens_an_array(path: Path, limits: ReadLimits) -> bool:
    """Whether the first character after a byte-order mark and whitespace is ``[`` (a JSON array,
    not JSON Lines)."""
    with limits.open(path) as handle:
        head = handle.read(SNIFF_BYTES).removeprefix(codecs.BOM_UTF8).lstrip()
    return head.startswith(b"[")


def _array_records(path: Path, column: str, limits: ReadLimits) -> Iterator[str]:
    with limits.open(path) as handle:
        data = handle.read(MAX_WHOLE_FILE_BYTES + 1)
    if len(data) > MAX_WHOLE_FILE_BYTES:
        raise FileFormatError(
            f"{path}: a JSON array longer than {mib(MAX_WHOLE_FILE_BYTES)} (the limit of a file read "
            "whole); write the records as JSON Lines, one object a line, which are read a line at a time"
        )
    records = parse_json(data, str(path), locate=False)
    del data
    if not isinstance(records, list):
        raise FileFormatError(f"{path} is not a JSON array of records")
    skipped = 0
    for number, record in enumerate(records):
        text = _column_text(record, column, f"{path}: record {number}")
        if len(text.encode("utf-8")) > limits.max_line:
            skipped += 1
            continue
        yield text
    _warn_skipped(path, skipped, "record", column, limits)


def _column_text(record: Any, column: str, where: str) -> str:
    if not isinstance(record, dict):
        raise FileFormatError(f"{where} is a JSON {type(record).__name__}, not an object of columns")
    if column not in record:
        raise _missing_column(where, column, record)
    value = record[column]
    return "" if value is None else str(value)


def _missing_column(where: str, column: str, names: Iterable[str]) -> FileFormatError:
    return FileFormatError(
        f"{where}: records have no {column!r} column; available columns: {', '.join(sorted(names))} "
        "(choose one with --column)"
    )


def _warn_skipped(path: Path, count: int, what: str, column: str, limits: ReadLimits) -> None:
    """One warning for the ``count`` values of ``column`` skipped as longer than the limit, if any."""
    if count:
        log.warning("%s: skipped %d %s%s of %r longer than %s; pass --max-line-bytes to keep them",
                    path, count, what, "" if count == 1 else "s", column, mib(limits.max_line))
