"""``nlp182 import``: vectors a user already has, turned into a run folder that ``index`` and ``serve`` take.

The run folder is the one training writes (``vectors.npy`` float32, ``vocab.txt``, ``config.json``,
``metrics.json``, and ``counts.tsv`` when the file came with counts), written as a whole or not at
all. Text and binary word2vec files stream row by row into a memory-mapped ``vectors.npy`` inside
the staging folder, so importing a multi-GB file needs memory for the vocabulary, not the matrix.

What is safe: word2vec, GloVe and fastText ``.vec`` files are plain numbers and words. gensim's
``.kv`` files are pickles: they are read by a restricted unpickler that admits numpy arrays and the
fields of gensim's ``KeyedVectors`` only, so no code from the file runs; a file naming anything else
is refused. Still import ``.kv`` files only from sources you trust.

Every file is read under ``nlp182.bounded``'s limits (longest line or word, decompression ratio
and total), and the numbers are checked where they enter: a vector with nan, inf or a float32
overflow is refused with its line (or dropped and counted, ``nonfinite="drop"``), so the service
never serves a value JSON cannot carry; a file that yields no vector is refused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlp182.bounded import ReadLimits
from nlp182.embeddings import formats
from nlp182.embeddings.runs import CONFIG_FILE, METRICS_FILE
from nlp182.embeddings.vectors import VECTORS_FILE, Vectors
from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError
from nlp182.io import atomic_write_json, check_input_file, staged_directory, written_by

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What ``import_vectors`` wrote."""

    run: Path
    format: str
    words: int
    dim: int
    has_counts: bool


def import_vectors(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    file_format: str = "auto",
    limit: int | None = None,
    encoding: str = "utf-8",
    unicode_errors: str = "strict",
    fvocab: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    nonfinite: str = "error",
    limits: ReadLimits | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Write the run folder ``out`` from the vector file ``source`` (a run already there is replaced
    only with ``overwrite``).

    Args:
        file_format: one of ``formats.FORMATS`` (``auto`` sniffs the file's first bytes).
        limit: keep only the first ``limit`` words (the most frequent, in files sorted by frequency).
        fvocab: ``word count`` file giving the counts of a word2vec file.
        nonfinite: ``"error"`` refuses a vector with nan, inf or a float32 overflow; ``"drop"``
            leaves such words out and logs how many.
        limits: longest line (text) or word (binary), and the decompression caps.
    """
    if file_format not in formats.FORMATS:
        raise InvalidInputError(f"unknown format {file_format!r}; use one of {', '.join(formats.FORMATS)}")
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit must be >= 1, got {limit}")
    if nonfinite not in formats.NONFINITE:
        raise InvalidInputError(f"nonfinite must be one of {', '.join(formats.NONFINITE)}, got {nonfinite!r}")
    limits = limits or ReadLimits()
    given, source = source, check_input_file(source).resolve()
    if fvocab is not None:
        check_input_file(fvocab, "--fvocab")
    kind = formats.sniff_format(source, limits)
    if file_format != "auto":
        _check_given_format(given, file_format, kind)
        kind = file_format
    with staged_directory(out, overwrite) as staging:
        if kind == "kv":
            log.info("reading %s with a restricted unpickler (numpy arrays and KeyedVectors only)", source)
            loaded = _finite_rows(formats.read_gensim_kv(source, limit=limit), given, nonfinite)
            _require_words(loaded, given)
            vectors = Vectors(loaded.words, loaded.vectors, loaded.counts)
            vectors.save(staging)
        else:
            loaded = _stream_word2vec(
                source, staging / VECTORS_FILE, kind, limit, encoding, unicode_errors, fvocab, show_progress,
                nonfinite, limits,
            )
            _require_words(loaded, given)
            vectors = Vectors(loaded.words, loaded.vectors, loaded.counts)  # checks the words
            vectors.save_words(staging)  # vectors.npy is already there, written as it was read
        config = {"method": "import", "source": str(source), "format": kind, "limit": limit,
                  "words": len(vectors), "dim": vectors.dim}
        atomic_write_json(staging / CONFIG_FILE, config)
        atomic_write_json(staging / METRICS_FILE, {"written_by": written_by()})
    return ImportReport(Path(out), kind, len(vectors), vectors.dim, loaded.counts is not None)


def _stream_word2vec(
    source: Path,
    target: Path,
    kind: str,
    limit: int | None,
    encoding: str,
    unicode_errors: str,
    fvocab: str | os.PathLike[str] | None,
    show_progress: bool,
    nonfinite: str,
    limits: ReadLimits,
) -> formats.Loaded:
    """Read a word2vec/GloVe file straight into the memory-mapped ``target`` ``.npy``."""

    allocated: list[np.memmap] = []

    def allocate(rows: int, dim: int, dtype: np.dtype) -> np.ndarray:
        allocated.append(np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(rows, dim)))
        return allocated[0]

    loaded = formats.read_word2vec(
        source, binary=kind == "word2vec-binary", no_header=kind == "glove", limit=limit, encoding=encoding,
        unicode_errors=unicode_errors, fvocab=fvocab, allocate=allocate, show_progress=show_progress,
        nonfinite=nonfinite, limits=limits,
    )
    allocated[0].flush()
    if len(loaded.words) < allocated[0].shape[0]:  # repeated words were dropped: fewer rows
        shrunk = target.with_name(f".{target.name}.shrunk.npy")
        np.save(shrunk, loaded.vectors, allow_pickle=False)
        os.replace(shrunk, target)
    del allocated[:]
    return formats.Loaded(loaded.words, np.load(target, mmap_mode="r"), loaded.counts)


def _require_words(loaded: formats.Loaded, source: str | os.PathLike[str]) -> None:
    """Refuse a file that gave no vector (a ``0 300`` header, every row dropped)."""
    if not loaded.words:
        raise EmptyCorpusError(f"{source} holds no vector to import")


#: Rows checked for finiteness at a time (bounds the temporary of a memory-mapped matrix).
FINITE_BLOCK = 1 << 16


def _check_given_format(path: str | os.PathLike[str], given: str, seen: str) -> None:
    """Refuse ``--format word2vec-binary`` for a file whose first rows are text (no byte of them
    binary): read so, it imported garbage without a word (words like ``36462408``). The other way
    round the text parser refuses the first byte that does not decode."""
    if given == "word2vec-binary" and seen == "word2vec-text":
        raise FileFormatError(f"{path} reads as word2vec-text (no byte of its first rows is binary), not "
                              "word2vec-binary: leave --format out (it is detected) or give --format "
                              "word2vec-text")


def _finite_rows(loaded: formats.Loaded, source: str | os.PathLike[str], nonfinite: str) -> formats.Loaded:
    """``loaded`` with every vector finite in float32, its length too: a row with nan, inf or an
    overflow is refused, or dropped when ``nonfinite == "drop"`` (a warning gives the count). Checked
    ``FINITE_BLOCK`` rows at a time, so a memory-mapped matrix is never copied whole."""
    vectors = loaded.vectors
    if not (np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)):
        raise FileFormatError(f"{source}: its vectors are {vectors.dtype}, not real numbers")
    bad: list[int] = []
    for start in range(0, len(vectors), FINITE_BLOCK):
        block = vectors[start : start + FINITE_BLOCK]
        bad += (start + np.flatnonzero(~formats.scorable_rows(block))).tolist()
    if not bad:
        return loaded
    if nonfinite != "drop":
        where = f"row {bad[0] + 1} (word {loaded.words[bad[0]]!r})"
        raise formats.nonfinite_problem(source, where, np.dtype(np.float32))
    log.warning("%s: dropped %d vectors with nan, inf or an overflow (first: row %d)",
                source, len(bad), bad[0] + 1)
    keep = np.setdiff1d(np.arange(len(vectors)), bad)
    counts = None if loaded.counts is None else loaded.counts[keep]
    return formats.Loaded([loaded.words[i] for i in keep], np.asarray(vectors[keep]), counts)
