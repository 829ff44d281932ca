"""Parallel text: the seeded date-normalisation task and readers for the files users bring.

Users bring parallel text in one of two ways: two line-aligned files (``train.de`` and
``train.en``), or one TSV file with a source and a target column. Both readers return a list of
``(source, target)`` string pairs and reject misaligned or malformed input with a message that
says which line is wrong. Files stream through ``nlp182.bounded``: a line longer than
``max_line_bytes`` (64 KiB by default, far beyond any sentence) is skipped with its pair and
counted in one warning, so one 10 MB line costs neither memory nor an encoder run over millions
of positions.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from nlp182.bounded import BoundedLines, open_bounded
from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import check_input_file

log = logging.getLogger(__name__)

Pair = tuple[str, str]
#: Longest line (a sentence) of a parallel-text file, in bytes.
MAX_SENTENCE_BYTES = 1 << 16

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
FIRST_DAY = dt.date(1950, 1, 1)
LAST_DAY = dt.date(2049, 12, 31)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _date_formats(date: dt.date) -> list[str]:
    """The surface forms a date can take (two-digit years pivot at 50: 00-49 -> 20xx, 50-99 -> 19xx)."""
    d, m, y = date.day, date.month, date.year
    month, weekday = MONTHS[m - 1], WEEKDAYS[date.weekday()]
    return [
        f"{weekday} {d} {month} {y}",
        f"{d}/{m}/{y % 100:02d}",
        f"{month.capitalize()} {_ordinal(d)}, {y}",
        f"{d} {month[:3].capitalize()} {y}",
        f"{d:02d}.{m:02d}.{y}",
        f"{y}/{m:02d}/{d:02d}",
        f"{weekday.capitalize()}, {month.capitalize()} {d}, {y}",
        f"the {_ordinal(d)} of {month} {y}",
        f"{month[:3].upper()} {d:02d} {y}",
        f"{weekday[:3]} {d} {month[:3]} {y % 100:02d}",
    ]


def date_pairs(dates: Sequence[dt.date], seed: int = 0) -> list[Pair]:
    """One ``(written date, ISO date)`` pair per date, each in a format drawn with ``seed``."""
    rng = random.Random(seed)
    return [(rng.choice(_date_formats(date)), date.isoformat()) for date in dates]


def date_splits(
    num_train: int = 20000, num_valid: int = 1000, num_test: int = 1000, seed: int = 0
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train / valid / test pairs of the date-normalisation task, e.g. ``"9/5/18" -> "2018-05-09"``.

    The three splits use disjoint calendar dates drawn from 1950-2049, so the held-out sets test
    dates the model never saw, not just new spellings of seen ones. Same ``seed``, same data.
    """
    total_days = (LAST_DAY - FIRST_DAY).days + 1
    wanted = num_train + num_valid + num_test
    if min(num_train, num_valid, num_test) < 0 or wanted > total_days:
        raise InvalidInputError(f"split sizes must be >= 0 and sum to at most {total_days} distinct dates")
    rng = random.Random(seed)
    offsets = rng.sample(range(total_days), wanted)
    dates = [FIRST_DAY + dt.timedelta(days=offset) for offset in offsets]
    pairs = date_pairs(dates, seed=rng.randrange(2**31))
    return pairs[:num_train], pairs[num_train : num_train + num_valid], pairs[num_train + num_valid :]


def _require_file(path: str | Path) -> Path:
    return check_input_file(path, missing_hint="; check the --data / --target-file paths")


#: Bytes at the start of a data file looked at for line ends.
CR_PROBE_BYTES = 1 << 16


def _numbered_lines(path: Path, max_bytes: int) -> Iterator[tuple[int, str]]:
    """``(number, text)`` of each line of a UTF-8 file (``\n`` or ``\r\n`` ends) of at most
    ``max_bytes``, one at a time; longer lines are skipped (one warning gives the count) and their
    numbers missing. The last item is ``(lines in the file + 1, "")``, so a caller knows the count."""
    with open_bounded(path) as handle:
        if handle.seekable():
            head = handle.read(CR_PROBE_BYTES)
            handle.seek(0)
        else:  # a compressed file's stream cannot seek back: its buffer is looked at, not read
            head = handle.peek(CR_PROBE_BYTES)[:CR_PROBE_BYTES]
        if b"\r" in head and b"\n" not in head and len(head.split(b"\r")) > 2:
            raise FileFormatError(f"{path}: its lines end in a carriage return alone (classic Mac OS), so "
                                  f"it reads as one line; convert them: tr '\\r' '\\n' < {path} > fixed.tsv")
        reader = BoundedLines(handle, max_bytes, str(path))
        for number, line in reader:
            try:
                text = line.decode("utf-8").removesuffix("\r")
            except UnicodeDecodeError as exc:
                raise FileFormatError(
                    f"{path}: line {number} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
            yield number, text.removeprefix("\ufeff") if number == 1 else text  # a byte-order mark
        reader.warn_skipped()
        yield reader.number + 1, ""


def _read_lines(path: Path, max_bytes: int) -> list[str | None]:
    """The lines of a UTF-8 file, None for each line longer than ``max_bytes``."""
    lines: list[str | None] = []
    for number, text in _numbered_lines(path, max_bytes):
        lines += [None] * (number - 1 - len(lines))
        lines.append(text)
    return lines[:-1]


def read_aligned_files(
    source_path: str | Path, target_path: str | Path, max_line_bytes: int = MAX_SENTENCE_BYTES
) -> list[Pair]:
    """Pairs from two line-aligned files (line i of one translates line i of the other).

    Lines where both sides are blank are skipped, and so is a pair with a side longer than
    ``max_line_bytes``; a blank on one side only, or files with different line counts, are
    errors because they mean the files are out of alignment.
    """
    src_file, tgt_file = _require_file(source_path), _require_file(target_path)
    sources, targets = _read_lines(src_file, max_line_bytes), _read_lines(tgt_file, max_line_bytes)
    if len(sources) != len(targets):
        raise FileFormatError(
            f"{src_file} has {len(sources)} lines but {tgt_file} has {len(targets)}; aligned files "
            "need one translation per line"
        )
    pairs = []
    for number, (src, tgt) in enumerate(zip(sources, targets, strict=True), start=1):
        if src is None or tgt is None:
            continue
        src, tgt = src.strip(), tgt.strip()
        if not src and not tgt:
            continue
        if not src or not tgt:
            raise FileFormatError(f"line {number} is blank on one side only; the files are misaligned")
        pairs.append((src, tgt))
    if not pairs:
        raise FileFormatError(f"{src_file} and {tgt_file} hold no sentence pairs")
    return pairs


def _column_index(column: str, header: list[str] | None, path: Path) -> int:
    if column.isdigit():
        return int(column)
    if header is None or column not in header:
        raise InvalidInputError(
            f"column {column!r} is not in the header of {path} ({header}); give a name from the "
            "header or a 0-based column number"
        )
    return header.index(column)


#: A first row holding these names (any case) is a header, not a pair, when columns go by number.
HEADER_NAMES = {("source", "target"), ("src", "tgt"), ("input", "output")}


def _filled(row: list[str]) -> int:
    """The columns of ``row`` up to its last non-empty cell (a spreadsheet pads rows with tabs)."""
    while row and not row[-1].strip():
        row = row[:-1]
    return len(row)


def read_tsv(
    path: str | Path,
    source_column: str = "0",
    target_column: str = "1",
    max_line_bytes: int = MAX_SENTENCE_BYTES,
) -> list[Pair]:
    """Pairs from a tab-separated file (no quoting: a tab always separates columns).

    Columns are 0-based numbers, or names from a header row (a header is assumed when a column is
    given by name, or when the first row reads ``source<TAB>target``, ``src``/``tgt`` or
    ``input``/``output``). Rows with too few columns, or with more filled columns than the header or
    the first row (a tab inside a sentence), are errors naming the row; rows longer than
    ``max_line_bytes`` are skipped and counted.
    """
    tsv = _require_file(path)
    lines = _numbered_lines(tsv, max_line_bytes)  # a line at a time: only the pairs are kept
    by_name = not (source_column.isdigit() and target_column.isdigit())
    header = None
    if by_name:
        number, text = next(lines)
        if number != 1:
            raise FileFormatError(f"{tsv}: its header row is longer than {max_line_bytes:,} bytes")
        header = text.split("\t")
    src_col = _column_index(source_column, header, tsv)
    tgt_col = _column_index(target_column, header, tsv)
    pairs: list[Pair] = []
    width = None if header is None else _filled(header)  # a row with more had a tab inside a sentence
    for number, text in lines:
        row = text.split("\t")
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(src_col, tgt_col):
            raise FileFormatError(
                f"{tsv} row {number} has {len(row)} tab-separated columns; columns {src_col} and "
                f"{tgt_col} are needed"
            )
        filled = _filled(row)
        if width is not None and filled > width:
            first = "the header" if header is not None else "the first row"
            raise FileFormatError(
                f"{tsv} row {number} has {filled} tab-separated columns where {first} has {width}; "
                "a tab inside a sentence would cut it short (write it as a space)"
            )
        src, tgt = row[src_col].strip(), row[tgt_col].strip()
        if not src or not tgt:
            raise FileFormatError(f"{tsv} row {number} has an empty source or target")
        if width is None and not by_name and (src.lower(), tgt.lower()) in HEADER_NAMES:
            log.info("%s: row %d reads as a header (%s, %s) and is skipped", tsv, number, src, tgt)
        else:
            pairs.append((src, tgt))
        width = filled if width is None else width
    if not pairs:
        raise FileFormatError(f"{tsv} holds no sentence pairs")
    return pairs


def split_pairs(
    pairs: Sequence[Pair], valid_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Shuffle with ``seed`` and cut into train / valid / test (each held-out split gets >= 1 pair).

    Pairs that share a source stay in one split (repeated lines, several targets of one source), so
    no held-out source was seen in training and the scores measure generalisation, not recall.
    With every source distinct this is a plain shuffle-and-cut of the pairs.
    """
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise InvalidInputError("valid_fraction and test_fraction (--valid-fraction, --test-fraction) "
                                "must be in [0, 1) and sum to < 1")
    by_source: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_source.setdefault(pair[0], []).append(pair)
    groups = list(by_source.values())
    random.Random(seed).shuffle(groups)
    n_valid = max(1, round(len(pairs) * valid_fraction)) if valid_fraction else 0
    n_test = max(1, round(len(pairs) * test_fraction)) if test_fraction else 0
    if n_valid + n_test >= len(pairs):
        raise InvalidInputError(f"{len(pairs)} pairs are too few to hold out {n_valid} for validation and "
                                f"{n_test} for test; add pairs, or lower --valid-fraction / --test-fraction "
                                "(0 holds none out)")
    train: list[Pair] = []
    valid: list[Pair] = []
    test: list[Pair] = []
    for group in groups:
        (valid if len(valid) < n_valid else test if len(test) < n_test else train).extend(group)
    if not train:
        raise InvalidInputError(
            f"{len(pairs)} pairs have only {len(groups)} distinct sources: too few to hold out "
            "validation and test sources that training never sees"
        )
    return train, valid, test
