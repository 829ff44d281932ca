"""The keyed-vector store: words plus a ``(V, D)`` matrix, speaking gensim's ``KeyedVectors`` API.

Queries follow gensim 4.4 (same words, same order, scores within float32 rounding) so that code
written for gensim runs unchanged, and evaluation figures and the similarity service agree with the
reference library. Every query goes through the one query core, ``nlp182.embeddings.query``, which
scores the rows a block at a time: a store memory-mapped from ``vectors.npy`` answers in bounded
memory, and no unit-normalised copy of the matrix is made (only the ``(V,)`` norms).

Rows handed out (``kv[word]``, ``get_vector``) are read-only views, as gensim's are: writing into
them would silently change a file other processes map. Edit a store with ``kv[word] = vector``,
``add_vector(s)`` and ``set_vecattr``; a memory-mapped store is copied into memory on its first edit,
so the file on disk never changes.

Where this store differs from gensim on purpose (see the guide ``docs/howto/gensim.md``): words are
strings without whitespace (a run folder lists them one per line); an integer key always addresses a
row, also when setting (gensim adds a new key ``3``); a zero vector scores 0 rather than NaN; an
``indexer`` answer leaves the query words out, as the exact search does; ``most_similar_cosmul``
applies ``restrict_vocab`` (gensim 4.4 accepts and ignores it); errors are ``nlp182.errors`` classes,
which subclass the ``KeyError``/``ValueError`` gensim raises.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from nlp182.bounded import ReadLimits
from nlp182.embeddings import formats, query
from nlp182.embeddings.lookup import WordLookup, row_of
from nlp182.errors import (
    FileFormatError,
    InvalidInputError,
    MissingExtraError,
    MissingFileError,
    ShapeError,
    UnknownWordError,
    shown,
)
from nlp182.io import atomic_save_npy, atomic_write_text, check_input_file
from nlp182.text.vocab import Vocabulary

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.txt"
COUNTS_FILE = "counts.tsv"  # word<TAB>count, as the vocabulary writes it
Key = str | int | np.integer
_KEY_TYPES = (str, int, np.integer)
Answer = list[tuple[str, float]]


def _ensure_list(value: Any) -> list[Any]:
    """gensim's rule: one key or one ``(D,)`` vector becomes a list; a ``(N, D)`` array, its rows."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    return list(value)


#: The first bytes of every ``.npy`` file.
NPY_MAGIC = b"\x93NUMPY"
#: gensim's default ``restrict_vocab``: the evaluations score among this many most frequent words.
RESTRICT_VOCAB = 300_000
# Held while a store builds what it computes on first use (lookup, norms, unit rows), so threads
# that query a fresh store at once wait for one build: each used to build its own copy (a
# million-word store's unit rows are 1.2 GB). Re-entrant: the unit rows build the norms. Taken
# only while something is missing: a query of a built store reads its attributes without it.
_BUILDING = threading.RLock()


class Vectors:
    """Words and their vectors.

    Args:
        words: the vocabulary, most frequent first (``restrict_vocab`` relies on that order).
        vectors: ``(V, D)`` array; stored as ``dtype`` (a memory map of that dtype is kept as is).
        counts: optional ``(V,)`` corpus counts (``get_vecattr(word, "count")``).
        dtype: element type of the matrix (float32; float16 halves memory, as gensim's ``datatype``).
    """

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        counts: Sequence[int] | np.ndarray | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise ShapeError(f"vectors must be stored as floating point, got {dtype}")
        given = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)
        if given.dtype.kind not in "fiu":  # complex would lose its imaginary part, bool and text mean nothing
            raise ShapeError(f"vectors must be real numbers, got {given.dtype}")
        matrix = given if isinstance(given, np.memmap) and given.dtype == dtype else None
        if matrix is None:
            matrix = np.asarray(given, dtype=dtype)
        if matrix.ndim != 2:
            raise ShapeError(f"vectors must be a (V, D) matrix, got shape {matrix.shape}")
        if matrix.shape[0] != len(words):
            raise ShapeError(f"{len(words)} words but {matrix.shape[0]} vectors")
        if matrix.shape[1] < 1:
            raise ShapeError(f"vectors must have at least 1 dimension, got shape {matrix.shape}")
        if not isinstance(matrix, np.memmap):  # a mapped file is checked as its norms are computed
            _check_finite(matrix, words)
        self.vectors = matrix
        self.words: list[str] = list(words)
        self.key_to_index: dict[str, int] = _index_words(self.words)
        self.expandos: dict[str, np.ndarray] = {}
        if counts is not None:
            self.expandos["count"] = _column(counts, len(self.words), "counts")
        self._changed()

    @classmethod
    def empty(cls, dim: int, dtype: type | np.dtype = np.float32) -> Vectors:
        """A store with no words (gensim's ``KeyedVectors(vector_size)``), to fill with ``add_vectors``."""
        return cls([], np.zeros((0, dim), dtype=dtype), dtype=dtype)

    def _changed(self) -> None:
        """Forget what was derived from the words or vectors (norms, the sorted words of ``lookup``)."""
        self._norms: np.ndarray | None = None
        self._rows: query.Rows | None = None
        self._lookup: WordLookup | None = None
        self._normed: np.ndarray | None = None

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, key: object) -> bool:
        return self.has_index_for(key)

    def __getitem__(self, key_or_keys: Key | Iterable[Key]) -> np.ndarray:
        """The ``(D,)`` read-only row of one key, or a new ``(N, D)`` array for a list of keys."""
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        return np.vstack([self.get_vector(key) for key in key_or_keys])

    def __setitem__(self, keys: Key | list[Key], weights: np.ndarray | Sequence[np.ndarray]) -> None:
        """Set (replace or add) the vectors of one key or a list of keys."""
        if not isinstance(keys, list):
            keys, weights = [keys], np.asarray(weights).reshape(1, -1)
        self.add_vectors(keys, weights, replace=True)

    def __repr__(self) -> str:
        return f"Vectors({len(self)} words x {self.dim} dims)"

    @property
    def dim(self) -> int:
        """The vectors' dimension ``D``."""
        return int(self.vectors.shape[1])

    @property
    def vector_size(self) -> int:
        """gensim's name for ``dim``."""
        return self.dim

    @property
    def index_to_key(self) -> list[str]:
        """gensim's name for ``words`` (row order)."""
        return self.words

    def has_index_for(self, key: object) -> bool:
        """True for a vocabulary word or a row number in range."""
        return self.get_index(key, default=-1) >= 0

    def get_index(self, key: object, default: int | None = None) -> int:
        """Row of ``key``: a word, or an integer row number (as gensim); ``default`` if absent. A
        word the vocabulary holds in another canonical Unicode form (``unicode_forms``: NFC or NFD,
        the same text) is found too."""
        if isinstance(key, str):
            row = row_of(self.key_to_index, key)
            if row is not None:
                return row
        elif isinstance(key, Integral) and not isinstance(key, bool) and 0 <= int(key) < len(self.words):
            return int(key)
        if default is not None:
            return default
        raise UnknownWordError(str(key), self.suggest(key) if isinstance(key, str) else [])

    def index_of(self, word: str) -> int:
        """Row of a word given as text (never a row number: for words that come from users)."""
        if not isinstance(word, str):
            raise UnknownWordError(str(word))
        return self.get_index(word)

    def get_vector(self, key: Key, norm: bool = False) -> np.ndarray:
        """The ``(D,)`` vector of ``key`` (unit length with ``norm``), read-only."""
        row = self.get_index(key)
        result = self.vectors[row] if not norm else self.rows.unit([row])[0]
        result = result.view(np.ndarray) if isinstance(result, np.memmap) else result
        result = result.view()
        result.flags.writeable = False
        return result

    @property
    def lookup(self) -> WordLookup:
        """Prefix completion and suggestions over the vocabulary (built on first use: a sorted copy
        of the words), the ones the similarity service answers with."""
        return self._built("_lookup", lambda: WordLookup(self.words, self.key_to_index))

    def suggest(self, word: str, limit: int = 5) -> list[str]:
        """Up to ``limit`` vocabulary words sharing the longest prefix with ``word``, frequent first;
        the word in another spelling first when the vocabulary has it (``case_variants``: ``King``
        in a lower-cased vocabulary, ``king`` in one that kept case, ``ﬁnance`` as ``finance``)."""
        return self.lookup.suggest(word, limit)

    def with_prefix(self, prefix: str, limit: int | None = 10) -> list[str]:
        """Vocabulary words that start with ``prefix`` (or with the same text in another canonical
        Unicode form: a prefix typed on macOS is NFD), most frequent first (for autocomplete);
        ``limit=None`` gives them all."""
        return self.lookup.with_prefix(prefix, limit)

    def vocab_checksum(self) -> str:
        """SHA-256 of the vocabulary in order: ties an index or a run to exactly these words."""
        digest = hashlib.sha256()
        for word in self.words:
            digest.update(word.encode("utf-8") + b"\n")
        return digest.hexdigest()

    # ------------------------------------------------------------------ norms
    @property
    def vectors(self) -> np.ndarray:
        """The ``(V, D)`` matrix. Assigning a new one (gensim's ``kv.vectors = ...``) drops what was
        computed from the old (norms, unit rows), so every query reads the new."""
        return self._vectors

    @vectors.setter
    def vectors(self, matrix: np.ndarray) -> None:
        self._vectors = matrix
        self._changed()

    @property
    def norms(self) -> np.ndarray:
        """``(V,)`` Euclidean norm of every vector (computed once, block by block). Assigning
        ``None`` (gensim's reset) has them computed again on the next query."""
        self.fill_norms()
        assert self._norms is not None
        return self._norms

    @norms.setter
    def norms(self, value: np.ndarray | None) -> None:
        if value is not None:
            value = np.asarray(value, dtype=np.float32)
            if value.shape != (len(self),):
                raise ShapeError(f"norms must have shape ({len(self)},), got {value.shape}")
        self._norms, self._rows, self._normed = value, None, None

    def fill_norms(self, force: bool = False) -> None:
        """Compute the norms now (gensim computes them on the first query too)."""
        if self._norms is None or force:
            with _BUILDING:
                if self._norms is None or force:
                    self._compute_norms()

    def _compute_norms(self) -> None:
        """Every row's norm, in float64 block by block; a non-finite one is refused by word."""
        step = max(1, query.SCORE_BUDGET // max(1, self.dim))
        parts = [  # in float64: a float32 sum of squares of rows near 1e-20 underflows to 0
            np.linalg.norm(np.asarray(self.vectors[i : i + step], dtype=np.float64), axis=1)
            for i in range(0, len(self), step)
        ]
        with np.errstate(over="ignore"):  # a norm past float32's range is refused below
            norms = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
        if not np.isfinite(norms).all():  # a NaN or inf written into the rows (or an overflow)
            row = int(np.flatnonzero(~np.isfinite(norms))[0])
            raise InvalidInputError(
                f"the vector of {self.words[row]!r} (row {row}) holds NaN or inf, or is too large to "
                "score in float32; cosine neighbours are undefined for it"
            )
        self._norms = norms
        self._rows = None

    @property
    def rows(self) -> query.Rows:
        """The matrix and norms in the form the query core searches."""
        return self._built("_rows", lambda: query.Rows(self.vectors, self.norms))

    def _built(self, attribute: str, build: Callable[[], Any]) -> Any:
        """The cached ``attribute``, built by ``build`` once (under ``_BUILDING``) when missing."""
        value = getattr(self, attribute)
        if value is None:
            with _BUILDING:
                value = getattr(self, attribute)
                if value is None:
                    value = build()
                    setattr(self, attribute, value)
        return value

    def get_normed_vectors(self) -> np.ndarray:
        """A new ``(V, D)`` float32 array of unit vectors (zero vectors stay zero)."""
        return self.rows.unit(np.arange(len(self)))

    @property
    def normed(self) -> np.ndarray:
        """``(V, D)`` unit vectors, computed on first use and kept (for building an index, plots)."""
        return self._built("_normed", self.get_normed_vectors)

    def unit_normalize_all(self) -> None:
        """Scale every vector to unit length in place (a memory-mapped store is copied first)."""
        unit = self.get_normed_vectors().astype(self.vectors.dtype)
        self.vectors = unit  # the setter forgets the old norms and unit rows

    # ------------------------------------------------------------------ building and editing
    def add_vector(self, key: str, vector: np.ndarray) -> int:
        """Add one word (or replace nothing if present, as gensim); return its row."""
        self.add_vectors([key], [vector])
        return self.get_index(key)

    def add_vectors(
        self,
        keys: Key | Sequence[Key],
        weights: np.ndarray | Sequence[np.ndarray],
        extras: dict[str, np.ndarray] | None = None,
        replace: bool = False,
    ) -> None:
        """Append new words with their vectors; existing words keep theirs unless ``replace``.

        Args:
            keys: words (new or existing) or row numbers (existing rows).
            weights: ``(N, D)`` vectors (or a list of ``(D,)``).
            extras: per-word attributes, ``{name: (N,) values}`` (e.g. ``{"count": counts}``).
        """
        if isinstance(keys, _KEY_TYPES):
            keys, weights = [keys], np.asarray(weights).reshape(1, -1)
        keys = list(keys)
        weights = np.asarray(weights, dtype=np.float64).reshape(len(keys), -1)
        if weights.shape[1] != self.dim:
            raise ShapeError(f"vectors must have {self.dim} values each, got {weights.shape[1]}")
        _check_finite(weights.astype(self.vectors.dtype), [str(key) for key in keys])
        extras = {name: _column(values, len(keys), name) for name, values in (extras or {}).items()}
        # a word is new unless spelled as stored: adding keeps gensim's keys, code point for code point
        known = np.array(
            [key in self.key_to_index if isinstance(key, str) else self.has_index_for(key) for key in keys],
            dtype=bool,
        )
        new_keys = [key for key, old in zip(keys, known, strict=True) if not old]
        for key in new_keys:
            if not isinstance(key, str):
                raise InvalidInputError(f"row {key} does not exist; new keys must be words (strings)")
        new_index = _index_words(new_keys, start=len(self.words))
        old_size = len(self.words)
        if new_keys:
            self.vectors = np.concatenate([self.vectors, weights[~known].astype(self.vectors.dtype)])
            self.words.extend(new_keys)
            self.key_to_index.update(new_index)
            for name, column in self.expandos.items():
                self.expandos[name] = np.concatenate([column, np.zeros(len(new_keys), dtype=column.dtype)])
        for name, values in extras.items():
            self._column_for(name, values.dtype)[old_size:] = values[~known]
        if replace and known.any():
            self._writable()
            rows = [self.get_index(key) for key, old in zip(keys, known, strict=True) if old]
            self.vectors[rows] = weights[known]
            for name, values in extras.items():
                self.expandos[name][rows] = values[known]
        self._changed()

    def _writable(self) -> None:
        """Copy a read-only (memory-mapped) matrix into memory before an in-place edit."""
        if isinstance(self.vectors, np.memmap) or not self.vectors.flags.writeable:
            self.vectors = np.array(self.vectors)

    def _column_for(self, name: str, dtype: np.dtype) -> np.ndarray:
        """The attribute column ``name``, made of ``dtype`` if new; a value of a type the column
        cannot hold is a ``TypeError``, as in gensim (NumPy would cut 0.75 to 0 in an int column)."""
        if name not in self.expandos:
            self.expandos[name] = np.zeros(len(self.words), dtype=dtype)
        column = self.expandos[name]
        if not np.can_cast(dtype, column.dtype, casting="same_kind"):
            raise TypeError(f"attribute {name!r} holds {column.dtype} values; a {dtype} value would be "
                            "cut to fit")
        return column

    def set_vecattr(self, key: Key, attr: str, val: Any) -> None:
        """Set a per-word attribute (such as ``"count"``)."""
        kind: Any = object
        if isinstance(val, Integral):  # Python's and NumPy's integers
            kind = np.int64
        elif isinstance(val, Real):  # Python's and NumPy's floats: a float32 fits a float32 column
            kind = np.float64
        self._column_for(attr, np.dtype(kind))[self.get_index(key)] = val

    def get_vecattr(self, key: Key, attr: str) -> Any:
        """A per-word attribute; ``KeyError`` if the store has no such attribute."""
        if attr not in self.expandos:
            known = ", ".join(self.expandos) or "none"
            raise KeyError(f"the store has no attribute {attr!r} (it has: {known})")
        return self.expandos[attr][self.get_index(key)]

    def sort_by_descending_frequency(self) -> None:
        """Reorder rows by descending ``count`` (as gensim: equal counts, later rows first)."""
        if not len(self):
            return
        if "count" not in self.expandos:
            raise InvalidInputError("the store has no counts to sort by; set them with set_vecattr")
        counts = np.asarray(self.expandos["count"], dtype=np.int64)
        order = np.lexsort((-np.arange(len(counts)), -counts))
        self.vectors = np.asarray(self.vectors)[order]
        self.words = [self.words[i] for i in order]
        self.key_to_index = {word: i for i, word in enumerate(self.words)}
        self.expandos = {name: column[order] for name, column in self.expandos.items()}
        self._changed()

    def vectors_for_all(
        self, keys: Iterable[Key], allow_inference: bool = True, copy_vecattrs: bool = False
    ) -> Vectors:
        """A new store of the known keys among ``keys`` (first occurrence order, unknown ones skipped).

        Without ``copy_vecattrs`` the new store's counts descend from ``len`` to 1 (as gensim's).
        ``allow_inference`` is accepted for gensim's signature: this store infers no vectors.
        """
        rows, seen = [], set()
        for key in keys:
            if key not in seen:
                seen.add(key)
                if self.has_index_for(key):
                    rows.append(self.get_index(key))
        picked = Vectors([self.words[i] for i in rows], self.vectors[rows], dtype=self.vectors.dtype)
        if copy_vecattrs:
            picked.expandos = {name: column[rows] for name, column in self.expandos.items()}
        else:
            picked.expandos["count"] = np.arange(len(rows), 0, -1, dtype=np.int64)
        return picked

    # ------------------------------------------------------------------ query terms
    def _term(self, key: Any) -> tuple[np.ndarray, int | None]:
        """A query term: ``(unit vector, row)`` for a key, ``(raw vector, None)`` for a vector."""
        if isinstance(key, np.ndarray):
            return self._raw_vector(key), None
        row = self.get_index(key)
        return self.rows.unit([row])[0], row

    def _raw_vector(self, vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.dim,):
            raise ShapeError(f"vector must have shape ({self.dim},), got {vector.shape}")
        if not np.all(np.isfinite(vector)):
            raise InvalidInputError("vector contains NaN or infinity")
        return vector

    def get_mean_vector(
        self,
        keys: Sequence[Any],
        weights: Sequence[float] | np.ndarray | None = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        ignore_missing: bool = True,
    ) -> np.ndarray:
        """Weighted mean of keys' vectors (unit first with ``pre_normalize``) and raw vectors.

        The sum is divided by the total absolute weight of the terms used; unknown keys are skipped
        (or raise without ``ignore_missing``).
        """
        if len(keys) == 0:
            raise InvalidInputError("cannot compute the mean of no input")
        weights = np.ones(len(keys)) if weights is None else np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(keys),):
            raise InvalidInputError(f"{len(keys)} keys but {weights.shape[0]} weights")
        terms, used = [], []
        for key, weight in zip(keys, weights, strict=True):
            if isinstance(key, np.ndarray):
                terms.append(self._raw_vector(key))
            elif self.has_index_for(key):
                terms.append(self.get_vector(key, norm=pre_normalize))
            elif not ignore_missing:
                self.get_index(key)  # raises UnknownWordError with suggestions
            else:
                continue
            used.append(weight)
        if not terms:
            return np.zeros(self.dim, dtype=np.float32)
        return query.mean_vector(np.stack(terms), np.asarray(used), normalize=post_normalize)

    def _weighted(self, positive: Any, negative: Any) -> tuple[list[Any], np.ndarray]:
        """gensim's most_similar inputs: keys or vectors, optionally ``(key, weight)`` pairs."""
        positive, negative = _ensure_list(positive), _ensure_list(negative)
        items = positive + negative
        weights = np.concatenate([np.ones(len(positive)), -np.ones(len(negative))])
        keys = []
        for i, item in enumerate(items):
            if isinstance(item, (*_KEY_TYPES, np.ndarray)):
                keys.append(item)
            else:
                keys.append(item[0])
                weights[i] = item[1]
        return keys, weights

    def _clip(self, clip_start: int, clip_end: int | None, restrict_vocab: int | None) -> tuple[int, int]:
        if restrict_vocab:
            if restrict_vocab < 0:
                raise InvalidInputError(f"restrict_vocab must be >= 1, got {restrict_vocab}")
            return 0, min(int(restrict_vocab), len(self))
        return int(clip_start), min(int(clip_end or len(self)), len(self))

    def _answer(self, found: tuple[np.ndarray, np.ndarray]) -> Answer:
        return [(self.words[i], float(s)) for i, s in zip(found[0].tolist(), found[1].tolist(), strict=True)]

    # ------------------------------------------------------------------ similarity queries
    def most_similar(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: int | None = 10,
        clip_start: int = 0,
        clip_end: int | None = None,
        restrict_vocab: int | None = None,
        indexer: query.Indexer | None = None,
    ) -> Answer | np.ndarray:
        """Keys closest (cosine) to the weighted mean of the unit vectors of ``positive`` minus ``negative``.

        ``positive``/``negative`` hold words, row numbers, raw ``(D,)`` vectors or ``(key, weight)``
        pairs. Query keys are never returned (3CosAdd when used for analogies). ``topn=None`` returns
        the ``(n,)`` scores of every searched row; ``topn=0`` returns ``[]``. ``restrict_vocab`` (or
        ``clip_start:clip_end``) limits the search to those rows; ``indexer`` (e.g. the service's FAISS
        index) answers instead of the exact scan.
        """
        if isinstance(topn, Integral) and topn < 1:
            return []
        keys, weights = self._weighted(positive, negative)
        if not keys:
            raise InvalidInputError("give at least one positive or negative word or vector")
        terms = [self._term(key) for key in keys]
        mean = query.mean_vector(np.stack([t for t, _ in terms]), weights)
        start, stop = self._clip(clip_start, clip_end, restrict_vocab)
        if topn is None:
            return query.all_scores(self.rows, mean, start, stop)
        exclude = {row for _, row in terms if row is not None}
        found = query.search(self.rows, mean[None, :], int(topn), [exclude], start, stop, indexer)
        return self._answer(found[0])

    def most_similar_cosmul(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: int | None = 10,
        restrict_vocab: int | None = None,
    ) -> Answer | np.ndarray:
        """3CosMul (Levy and Goldberg, 2014): product of shifted cosines over the negatives'.

        Words enter as unit vectors, raw vectors as given (as gensim). Unlike gensim 4.4, which accepts
        ``restrict_vocab`` and ignores it, the search here keeps to the first ``restrict_vocab`` rows.
        """
        if isinstance(topn, Integral) and topn < 1:
            return []
        pos = [self._term(key) for key in _ensure_list(positive)]
        neg = [self._term(key) for key in _ensure_list(negative)]
        if not pos:
            raise InvalidInputError("3CosMul needs at least one positive word or vector")
        pos_terms = np.stack([t for t, _ in pos])
        neg_terms = np.stack([t for t, _ in neg]) if neg else np.zeros((0, self.dim), dtype=np.float32)
        start, stop = self._clip(0, None, restrict_vocab)
        if topn is None:
            return query.all_scores_cosmul(self.rows, pos_terms, neg_terms, start, stop)
        exclude = {row for _, row in pos + neg if row is not None}
        found = query.search_cosmul(
            self.rows, pos_terms[None], neg_terms[None], int(topn), [exclude], start, stop
        )
        return self._answer(found[0])

    def similar_by_key(
        self, key: Key, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> Answer | np.ndarray:
        """``most_similar([key])``: ``(key, score)`` pairs, or every score ``(N,)`` for ``topn=None``."""
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(
        self, word: Key, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> Answer | np.ndarray:
        """``most_similar([word])`` (gensim's name for :meth:`similar_by_key`)."""
        return self.similar_by_key(word, topn, restrict_vocab)

    def similar_by_vector(
        self, vector: np.ndarray, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> Answer | np.ndarray:
        """Keys closest (cosine) to a raw ``(D,)`` vector; nothing is left out."""
        return self.most_similar(positive=[np.asarray(vector)], topn=topn, restrict_vocab=restrict_vocab)

    similar_to_vector = similar_by_vector

    def _unit_now(self, keys: Sequence[Key]) -> np.ndarray:
        """``(n, D)`` unit vectors of ``keys`` from the rows as they are now (zero rows stay zero),
        not from cached norms: an edit of ``vectors`` in place is seen, as gensim's pointwise calls see it."""
        return query.as_queries(self.vectors[[self.get_index(key) for key in keys]], self.dim)

    def similarity(self, w1: Key, w2: Key) -> float:
        """Cosine similarity of two keys."""
        first, second = self._unit_now([w1, w2])
        return float(np.dot(first, second))

    def n_similarity(self, ws1: Sequence[Key], ws2: Sequence[Key]) -> float:
        """Cosine similarity of the mean (raw) vectors of two lists of keys (unknown keys skipped)."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("at least one of the lists of keys is empty")
        first = self.get_mean_vector(ws1, pre_normalize=False, post_normalize=True)
        second = self.get_mean_vector(ws2, pre_normalize=False, post_normalize=True)
        return float(np.dot(first, second))

    def distance(self, w1: Key, w2: Key) -> float:
        """Cosine distance ``1 - similarity``."""
        return 1.0 - self.similarity(w1, w2)

    @staticmethod
    def cosine_similarities(vector_1: np.ndarray, vectors_all: np.ndarray) -> np.ndarray:
        """``(N,)`` cosines between one ``(D,)`` vector and the rows of ``(N, D)``."""
        vectors_all = np.asarray(vectors_all)
        dots = vectors_all @ np.asarray(vector_1)
        return dots / (np.linalg.norm(vector_1) * np.linalg.norm(vectors_all, axis=1))

    def distances(self, word_or_vector: Key | np.ndarray, other_words: Sequence[Key] = ()) -> np.ndarray:
        """Cosine distances from a key or vector to ``other_words`` (default: every row, itself included)."""
        if isinstance(word_or_vector, _KEY_TYPES):
            unit = self._unit_now([word_or_vector])[0]
        else:
            unit = query.as_queries(word_or_vector, self.dim)[0]
        if not other_words:
            if self.vectors.flags.writeable:  # rows edited in place since the norms: as fresh as gensim's
                self.fill_norms(force=True)
            return 1.0 - query.all_scores(self.rows, unit)
        return 1.0 - self._unit_now(other_words) @ unit

    def closer_than(self, key1: Key, key2: Key) -> list[str]:
        """Keys closer to ``key1`` than ``key2`` is, in row order (``key1`` itself left out)."""
        distances = self.distances(key1)
        first, second = self.get_index(key1), self.get_index(key2)
        closer = np.flatnonzero(distances < distances[second])
        return [self.words[i] for i in closer.tolist() if i != first]

    def words_closer_than(self, word1: Key, word2: Key) -> list[str]:
        """:meth:`closer_than` under gensim's other name."""
        return self.closer_than(word1, word2)

    def rank(self, key1: Key, key2: Key) -> int:
        """1 + the number of keys closer to ``key1`` than ``key2``."""
        return len(self.closer_than(key1, key2)) + 1

    def most_similar_to_given(self, key1: Key, keys_list: Sequence[Key]) -> Key:
        """The key of ``keys_list`` most similar to ``key1``."""
        return keys_list[int(np.argmax([self.similarity(key1, key) for key in keys_list]))]

    def relative_cosine_similarity(self, wa: Key, wb: Key, topn: int = 10) -> float:
        """Similarity of ``wa`` and ``wb`` over the summed similarities of ``wa``'s ``topn`` neighbours
        (Leeuwenberg et al., 2016)."""
        neighbours = self.similar_by_key(wa, topn)
        if not neighbours:
            raise InvalidInputError("relative cosine similarity needs at least one neighbour (topn >= 1)")
        return self.similarity(wa, wb) / sum(score for _, score in neighbours)

    def rank_by_centrality(self, words: Sequence[Key], use_norm: bool = True) -> list[tuple[float, Key]]:
        """``(cosine to the centroid, word)`` pairs, most central first; unknown words skipped (warning)."""
        used = [word for word in words if word in self]
        if len(used) != len(words):
            unknown = sorted(set(map(str, words)) - set(map(str, used)))
            warnings.warn(f"ignoring words not in the vocabulary: {unknown}", UserWarning, stacklevel=2)
        if not used:
            raise InvalidInputError("none of the words is in the vocabulary")
        vectors = np.vstack([self.get_vector(word, norm=use_norm) for word in used]).astype(np.float32)
        mean = query.mean_vector(vectors, np.ones(len(vectors)))
        return sorted(zip((float(s) for s in vectors @ mean), used, strict=True), reverse=True)

    def doesnt_match(self, words: Sequence[Key]) -> Key:
        """The word furthest from the centroid of ``words``; unknown words are skipped with a warning."""
        return self.rank_by_centrality(words)[-1][1]

    def wmdistance(self, document1: Sequence[str], document2: Sequence[str], norm: bool = True) -> float:
        """Word Mover's Distance (Kusner et al., 2015) between two token lists, solved by POT's ``emd2``.

        Unknown tokens are dropped; a document left empty gives ``inf``. Needs the optional extra:
        ``pip install 'nlp182[wmd]'``.
        """
        try:
            from ot import emd2
        except ImportError:
            raise MissingExtraError(
                "wmdistance needs the POT package (Python Optimal Transport): pip install 'nlp182[wmd]'"
            ) from None
        doc1 = [token for token in document1 if token in self]
        doc2 = [token for token in document2 if token in self]
        if not doc1 or not doc2:
            log.warning("at least one document has no word in the vocabulary; the distance is infinite")
            return float("inf")
        vocab = sorted(set(doc1) | set(doc2))
        if len(vocab) == 1:
            return 0.0
        position = {word: i for i, word in enumerate(vocab)}
        first, second = sorted(set(doc1)), sorted(set(doc2))
        v1 = np.array([self.get_vector(t, norm=norm) for t in first], dtype=np.float64)
        v2 = np.array([self.get_vector(t, norm=norm) for t in second], dtype=np.float64)
        cost = np.zeros((len(vocab), len(vocab)))
        pairwise = np.sqrt(np.maximum(((v1[:, None, :] - v2[None, :, :]) ** 2).sum(axis=2), 0.0))
        cost[np.ix_([position[t] for t in first], [position[t] for t in second])] = pairwise
        if abs(cost.sum()) < 1e-8:
            return float("inf")  # as gensim: emd stalls on an all-zero cost matrix
        return float(emd2(_bag(doc1, position), _bag(doc2, position), cost))

    # ------------------------------------------------------------------ gensim's evaluation methods
    def evaluate_word_pairs(
        self,
        pairs: str | os.PathLike[str],
        delimiter: str = "\t",
        encoding: str = "utf8",
        restrict_vocab: int = RESTRICT_VOCAB,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> tuple[tuple[float, float], tuple[float, float], float]:
        """gensim's call: ``((pearson, p), (spearman, p), oov_ratio in percent)`` on a word-pair file.

        ``nlp182.embeddings.evaluate.evaluate_word_pairs`` returns the same as a ``PairScore``.
        """
        from nlp182.embeddings import evaluate  # evaluation builds on this module

        if encoding.replace("-", "").lower() != "utf8":
            raise InvalidInputError(f"evaluation files are read as UTF-8; got encoding={encoding!r}")
        score = evaluate.evaluate_word_pairs(
            self, pairs, restrict_vocab, delimiter, case_insensitive, dummy4unknown
        )
        return score.as_gensim()

    def evaluate_word_analogies(
        self,
        analogies: str | os.PathLike[str],
        restrict_vocab: int = RESTRICT_VOCAB,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
        similarity_function: str = "most_similar",
    ) -> tuple[float, list[dict[str, Any]]]:
        """gensim's call: ``(accuracy, sections)``, each section ``{"section", "correct", "incorrect"}``
        listing its ``(a, b, c, d)`` questions, the last one ``"Total accuracy"``.

        ``similarity_function`` is ``most_similar`` (3CosAdd) or ``most_similar_cosmul`` (3CosMul);
        gensim 4.4 accepts the argument but answers with 3CosAdd whatever it names.
        """
        from nlp182.embeddings import evaluate  # evaluation builds on this module

        methods = {"most_similar": "3cosadd", "most_similar_cosmul": "3cosmul"}
        if similarity_function not in methods:
            raise InvalidInputError(
                f"similarity_function must be one of {', '.join(methods)}; got {similarity_function!r}"
            )
        score = evaluate.evaluate_analogies(
            self, analogies, restrict_vocab, methods[similarity_function],
            case_insensitive=case_insensitive, dummy4unknown=dummy4unknown, keep_questions=True,
        )
        return score.as_gensim()

    def init_sims(self, replace: bool = False) -> None:
        """gensim's older call: compute the norms, or with ``replace`` make every vector unit length."""
        if replace:
            self.unit_normalize_all()
        else:
            self.fill_norms()

    def word_vec(self, key: Key, norm: bool = False) -> np.ndarray:
        """gensim's older name for :meth:`get_vector`."""
        return self.get_vector(key, norm=norm)

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike[str], counts: bool = True) -> None:
        """Write ``vectors.npy`` atomically, then :meth:`save_words`."""
        atomic_save_npy(Path(folder) / VECTORS_FILE, np.asarray(self.vectors, dtype=np.float32))
        self.save_words(folder, counts)

    def save_words(self, folder: str | os.PathLike[str], counts: bool = True) -> None:
        """Write ``vocab.txt`` (one word per line, in row order) atomically, and ``counts.tsv`` when
        the store has counts (and ``counts``: a trained run writes its vocabulary's own, with the
        corpus's total): all of a run folder's vectors but the matrix, which an import streams to
        disk itself."""
        folder = Path(folder)
        atomic_write_text(folder / VOCAB_FILE, "".join(f"{word}\n" for word in self.words))
        if counts and "count" in self.expandos:
            kept = np.asarray(self.expandos["count"], dtype=np.int64)
            Vocabulary(self.words, kept, sum(kept.tolist())).save(folder / COUNTS_FILE)  # no int64 wrap

    @classmethod
    def load(cls, folder: str | os.PathLike[str], mmap: bool = True, counts: bool = True) -> Vectors:
        """Load a folder written by ``save``; with ``mmap`` the matrix is a read-only memory map.

        ``counts`` also reads ``counts.tsv`` when the folder has one (a trained run does), for
        ``get_vecattr(word, "count")`` and ``fvocab``; a caller that needs no counts skips it.

        ``vectors.npy`` is refused (:class:`FileFormatError`, one line) unless its size is what its
        header's shape needs, before anything is allocated or mapped. A row holding NaN or inf is
        refused (:class:`InvalidInputError` naming the word) on load without ``mmap``, where the
        matrix is read into memory anyway, and with ``mmap`` at the first query, when the norms
        are computed: a memory-mapped load reads none of the matrix, so a large file is read once.
        """
        folder = Path(folder)
        vectors_path, vocab_path = folder / VECTORS_FILE, folder / VOCAB_FILE
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(
                f"{folder} is not a folder (a run is one): a gensim .kv file opens with "
                "Vectors.load_gensim, a word2vec or GloVe file with Vectors.load_word2vec_format "
                "(CLI: nlp182 import FILE --out RUN)"
            )
        if not folder.exists():
            raise MissingFileError(f"run folder {folder} does not exist")
        for path in (vectors_path, vocab_path):
            check_input_file(path, missing_hint=f"; is {folder} a trained run folder?")
        with vectors_path.open("rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:  # NumPy would guess a pickle, or find nothing to read
            cut = NPY_MAGIC.startswith(magic)
            problem = "is empty or truncated; retrain or re-import the run" if cut else "is not a .npy file"
            raise FileFormatError(f"{vectors_path} {problem}")
        formats.check_npy(vectors_path)  # its size matches its header's shape, before any allocation
        try:
            matrix = np.load(vectors_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FileFormatError(f"{vectors_path} is not a readable .npy matrix: {exc}") from exc
        try:
            words = vocab_path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{vocab_path} is not UTF-8 text: {exc}") from None
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise FileFormatError(
                f"{vectors_path} has shape {matrix.shape} but {vocab_path} lists {len(words)} words"
            )
        return cls(words, matrix, _saved_counts(folder / COUNTS_FILE, words) if counts else None)

    def save_word2vec_format(
        self,
        fname: str | os.PathLike[str],
        fvocab: str | os.PathLike[str] | None = None,
        binary: bool = False,
        write_header: bool = True,
        prefix: str = "",
        limit: int | None = None,
        sort_attr: str = "count",
    ) -> None:
        """Write the word2vec C format (binary or text; no header: GloVe) atomically, as gensim does.

        Rows go by descending ``sort_attr`` when the store has that attribute (file order
        otherwise); ``limit`` writes only the first rows; ``fvocab`` also writes the ``word count``
        file, and the two files are replaced together or, when a write fails, neither is.
        """
        order = np.arange(len(self))
        if sort_attr in self.expandos:
            order = np.argsort(-np.asarray(self.expandos[sort_attr]), kind="stable")
        if fvocab is not None and "count" not in self.expandos:
            raise InvalidInputError("the store has no counts to write to fvocab")
        order = order[:limit] if limit is not None else order
        words = [self.words[i] for i in order]
        counts = self.expandos["count"][order] if fvocab is not None else None
        formats.write_word2vec(
            fname, words, _Rows(self.vectors, order), binary, write_header, prefix, fvocab, counts
        )

    @classmethod
    def load_word2vec_format(
        cls,
        fname: str | os.PathLike[str],
        fvocab: str | os.PathLike[str] | None = None,
        binary: bool = False,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
        limit: int | None = None,
        datatype: type | np.dtype = np.float32,
        no_header: bool = False,
        limits: ReadLimits | None = None,
    ) -> Vectors:
        """Read the word2vec C format, text or binary (GloVe with ``no_header``), as gensim does.

        ``limit`` reads the first words only. Without ``fvocab`` the counts descend from the file's
        length to 1, as gensim makes them up, so that the file order is the frequency order.
        ``limits`` bounds the longest line (a text row's bound grows with the header's dimension)
        and the decompression of ``.gz``/``.bz2`` files (``nlp182.bounded.ReadLimits``).
        """
        loaded = formats.read_word2vec(
            fname, binary, no_header, limit, encoding, unicode_errors, datatype, fvocab, limits=limits
        )
        counts = loaded.counts
        if counts is None:
            counts = np.arange(len(loaded.words), 0, -1, dtype=np.int64)
        return cls(loaded.words, loaded.vectors, counts, dtype=datatype)

    @classmethod
    def load_gensim(cls, path: str | os.PathLike[str], mmap: bool = True) -> Vectors:
        """Read a gensim ``KeyedVectors.save`` file (``.kv``) without running code from it.

        A restricted unpickler admits numpy arrays and gensim's ``KeyedVectors`` fields only (see
        ``nlp182.embeddings.formats``); arrays stored beside the file are memory-mapped with ``mmap``.
        """
        loaded = formats.read_gensim_kv(path, mmap=mmap)
        return cls(loaded.words, loaded.vectors, loaded.counts)


class _Rows:
    """Rows of a matrix in a given order, one at a time (writing never copies the whole matrix)."""

    def __init__(self, matrix: np.ndarray, order: np.ndarray) -> None:
        self.matrix, self.order = matrix, order

    def __iter__(self):
        return (self.matrix[i] for i in self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.order), int(self.matrix.shape[1]))


def _check_finite(matrix: np.ndarray, words: Sequence[str]) -> None:
    """Refuse a ``(V, D)`` matrix with NaN or inf, or a row whose length its dtype cannot hold (a
    file of it would be refused on reading): no cosine is defined for such a row."""
    with np.errstate(over="ignore", invalid="ignore"):
        row = formats.first_nonfinite_row(matrix)
    if row is not None:
        raise InvalidInputError(
            f"the vector of {words[row]!r} (row {row}) holds NaN or inf, or a length beyond "
            f"{np.dtype(matrix.dtype).name}'s range; replace or drop it (files: --nonfinite drop)"
        )


def _saved_counts(path: Path, words: list[str]) -> np.ndarray | None:
    """The counts ``counts.tsv`` gives the words (a run's vocabulary), or None without that file.

    A file that does not cover every word, or cannot be read, is left out with a warning: the
    vectors stay usable.
    """
    if not path.exists():
        return None
    try:
        saved = Vocabulary.load(path)
    except FileFormatError as exc:
        log.warning("%s; the vectors load without counts", exc)
        return None
    if saved.words == words:
        return saved.counts
    by_word = dict(zip(saved.words, saved.counts.tolist(), strict=True))
    missing = [word for word in words if word not in by_word]
    if missing:
        log.warning("%s has no count for %d words (e.g. %r); the vectors load without counts",
                    path, len(missing), missing[0])
        return None
    return np.array([by_word[word] for word in words], dtype=np.int64)


def _bag(document: Sequence[str], position: dict[str, int]) -> np.ndarray:
    """Normalised bag of words of ``document`` over the positions of ``position``."""
    weights = np.zeros(len(position))
    for token in document:
        weights[position[token]] += 1.0 / len(document)
    return weights


def _column(values: Sequence[Any] | np.ndarray, size: int, name: str) -> np.ndarray:
    column = np.asarray(values)
    if column.shape != (size,):
        raise ShapeError(f"{name} must have one value per word ({size}), got shape {column.shape}")
    return column


def _index_words(words: Sequence[str], start: int = 0) -> dict[str, int]:
    """``word -> row`` for words that are non-empty strings without a space, tab or line break,
    and not repeated."""
    index = {word: start + i for i, word in enumerate(words)}
    if len(index) != len(words):
        seen: set[str] = set()
        repeated = next(word for word in words if word in seen or seen.add(word))
        raise InvalidInputError(f"word {shown(repeated)} appears twice in the vocabulary")
    if not formats.storable_words(list(words)):
        bad = next((i, w) for i, w in enumerate(words) if not formats.storable_words([w]))
        raise InvalidInputError(
            f"word #{start + bad[0]} {bad[1]!r} is empty or holds a space, tab or line break"
        )
    return index
