"""The keyed-vector store: words plus a float32 matrix, with a unit-normalised copy made once.

Queries follow gensim's ``KeyedVectors`` semantics (same words, same order, same scores) so that
evaluation figures and the similarity service agree with the reference library. Files are the
word2vec text and binary formats (readable and writable by gensim) and ``vectors.npy`` +
``vocab.txt`` (loaded with ``mmap_mode="r"`` so several processes share one copy).
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, ShapeError, UnknownWordError
from nlp182.io import atomic_open, atomic_save_npy, atomic_write_text

VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.txt"


class Vectors:
    """Words and their vectors.

    Args:
        words: the vocabulary, most frequent first (``restrict_vocab`` relies on that order).
        vectors: ``(V, D)`` array; stored as float32 (a memory map is kept as is).
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray) -> None:
        matrix = vectors if isinstance(vectors, np.memmap) else np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise ShapeError(f"vectors must be a (V, D) matrix, got shape {matrix.shape}")
        if matrix.shape[0] != len(words):
            raise ShapeError(f"{len(words)} words but {matrix.shape[0]} vectors")
        if matrix.dtype != np.float32:
            raise ShapeError(f"vectors must be float32, got {matrix.dtype}")
        self.words: list[str] = list(words)
        self.vectors = matrix
        self.key_to_index: dict[str, int] = {}
        for index, word in enumerate(self.words):
            if not word or any(ch.isspace() for ch in word):
                raise InvalidInputError(f"word #{index} {word!r} is empty or contains whitespace")
            if word in self.key_to_index:
                raise InvalidInputError(f"word {word!r} appears twice in the vocabulary")
            self.key_to_index[word] = index

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        """The raw ``(D,)`` vector of ``word``."""
        return np.asarray(self.vectors[self.index_of(word)])

    def __repr__(self) -> str:
        return f"Vectors({len(self)} words x {self.dim} dims)"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def norms(self) -> np.ndarray:
        """``(V,)`` Euclidean norm of every vector."""
        return np.linalg.norm(np.asarray(self.vectors, dtype=np.float32), axis=1)

    @cached_property
    def normed(self) -> np.ndarray:
        """``(V, D)`` unit-normalised copy (zero vectors stay zero), computed once."""
        norms = self.norms.copy()
        norms[norms == 0] = 1.0
        return (np.asarray(self.vectors, dtype=np.float32) / norms[:, None]).astype(np.float32)

    @cached_property
    def _sorted_words(self) -> list[str]:
        return sorted(self.words)

    def index_of(self, word: str) -> int:
        """Row of ``word``; an unknown word raises ``UnknownWordError`` with suggestions."""
        try:
            return self.key_to_index[word]
        except (KeyError, TypeError):
            raise UnknownWordError(str(word), self.suggest(str(word))) from None

    def suggest(self, word: str, limit: int = 5) -> list[str]:
        """Up to ``limit`` vocabulary words sharing the longest prefix with ``word``, frequent first."""
        for length in range(len(word), 0, -1):
            matches = self.with_prefix(word[:length], limit=None)
            if matches:
                return matches[:limit]
        return []

    def with_prefix(self, prefix: str, limit: int | None = 10) -> list[str]:
        """Vocabulary words that start with ``prefix``, most frequent first (for autocomplete)."""
        start = bisect.bisect_left(self._sorted_words, prefix)
        found = []
        for word in self._sorted_words[start:]:
            if not word.startswith(prefix):
                break
            found.append(word)
        found.sort(key=self.key_to_index.__getitem__)
        return found if limit is None else found[:limit]

    def vocab_checksum(self) -> str:
        """SHA-256 of the vocabulary in order: ties an index or a run to exactly these words."""
        digest = hashlib.sha256()
        for word in self.words:
            digest.update(word.encode("utf-8") + b"\n")
        return digest.hexdigest()

    # ------------------------------------------------------------------ similarity queries
    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two words."""
        a, b = self.normed[self.index_of(first)], self.normed[self.index_of(second)]
        return float(np.dot(a, b))

    def _weighted_terms(
        self, positive: Sequence[str] | str, negative: Sequence[str] | str
    ) -> tuple[list[int], list[float]]:
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive and not negative:
            raise InvalidInputError("give at least one positive or negative word")
        indices = [self.index_of(word) for word in (*positive, *negative)]
        weights = [1.0] * len(positive) + [-1.0] * len(negative)
        return indices, weights

    def _top(self, scores: np.ndarray, exclude: Iterable[int], topn: int) -> list[tuple[str, float]]:
        if topn < 1:
            raise InvalidInputError(f"topn must be >= 1, got {topn}")
        scores = scores.astype(np.float64, copy=True)
        excluded = [i for i in set(exclude) if i < len(scores)]
        scores[excluded] = -np.inf
        count = min(topn, len(scores) - len(excluded))
        if count <= 0:
            return []
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.lexsort((best, -scores[best]))]
        return [(self.words[i], float(scores[i])) for i in best]

    def most_similar(
        self,
        positive: Sequence[str] | str = (),
        negative: Sequence[str] | str = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Words closest (cosine) to the normalised sum of positive minus negative unit vectors.

        The query words themselves are excluded, as in gensim (3CosAdd when used for analogies).
        """
        indices, weights = self._weighted_terms(positive, negative)
        query = (self.normed[indices] * np.asarray(weights, dtype=np.float32)[:, None]).mean(axis=0)
        query_norm = np.linalg.norm(query)
        if query_norm > 0:
            query = query / query_norm
        return self._top(self._candidates(restrict_vocab) @ query, indices, topn)

    def most_similar_cosmul(
        self,
        positive: Sequence[str] | str = (),
        negative: Sequence[str] | str = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """3CosMul (Levy and Goldberg, 2014): product of shifted cosines, divided by the negatives'."""
        indices, weights = self._weighted_terms(positive, negative)
        shifted = (1.0 + self._candidates(restrict_vocab) @ self.normed[indices].T) / 2.0  # (V, terms)
        is_positive = np.asarray(weights) > 0
        numerator = np.prod(shifted[:, is_positive], axis=1)
        denominator = np.prod(shifted[:, ~is_positive], axis=1)
        return self._top(numerator / (denominator + 1e-6), indices, topn)

    def similar_to_vector(self, vector: np.ndarray, topn: int = 10) -> list[tuple[str, float]]:
        """Words closest (cosine) to a raw ``(D,)`` vector; nothing is excluded."""
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.dim,):
            raise ShapeError(f"vector must have shape ({self.dim},), got {vector.shape}")
        if not np.all(np.isfinite(vector)):
            raise InvalidInputError("vector contains NaN or infinity")
        norm = np.linalg.norm(vector)
        return self._top(self.normed @ (vector / norm if norm > 0 else vector), (), topn)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the (unit) vectors of ``words``."""
        words = list(words)
        if len(words) < 2:
            raise InvalidInputError("doesnt_match needs at least two words")
        rows = self.normed[[self.index_of(w) for w in words]]
        mean = rows.mean(axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        return words[int(np.argmin(rows @ mean))]

    def _candidates(self, restrict_vocab: int | None) -> np.ndarray:
        if restrict_vocab is None:
            return self.normed
        if restrict_vocab < 1:
            raise InvalidInputError(f"restrict_vocab must be >= 1, got {restrict_vocab}")
        return self.normed[:restrict_vocab]

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``vectors.npy`` and ``vocab.txt`` (one word per line, in row order) atomically."""
        folder = Path(folder)
        atomic_save_npy(folder / VECTORS_FILE, np.asarray(self.vectors, dtype=np.float32))
        atomic_write_text(folder / VOCAB_FILE, "".join(f"{word}\n" for word in self.words))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], mmap: bool = True) -> Vectors:
        """Load a folder written by ``save``; with ``mmap`` the matrix is a read-only memory map."""
        folder = Path(folder)
        vectors_path, vocab_path = folder / VECTORS_FILE, folder / VOCAB_FILE
        for path in (vectors_path, vocab_path):
            if not path.is_file():
                raise MissingFileError(f"{path} does not exist; is {folder} a trained run folder?")
        try:
            matrix = np.load(vectors_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FileFormatError(f"{vectors_path} is not a readable .npy matrix: {exc}") from exc
        words = vocab_path.read_text(encoding="utf-8").splitlines()
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise FileFormatError(
                f"{vectors_path} has shape {matrix.shape} but {vocab_path} lists {len(words)} words"
            )
        return cls(words, matrix if matrix.dtype == np.float32 else matrix.astype(np.float32))

    def save_word2vec_format(self, path: str | os.PathLike[str], binary: bool = False) -> None:
        """Write the word2vec C format (text, or binary little-endian float32) atomically."""
        matrix = np.asarray(self.vectors, dtype="<f4")
        with atomic_open(path, "wb") as handle:
            handle.write(f"{len(self)} {self.dim}\n".encode())
            for word, row in zip(self.words, matrix, strict=True):
                if binary:
                    handle.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
                else:
                    values = " ".join(np.format_float_positional(v, unique=True, trim="-") for v in row)
                    handle.write(f"{word} {values}\n".encode())

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike[str], binary: bool = False) -> Vectors:
        """Read the word2vec C format, text or binary (as written by gensim or the C tool)."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist")
        with path.open("rb") as handle:
            count, dim = _read_header(handle.readline(), path)
            reader = _read_binary_rows if binary else _read_text_rows
            words, matrix = reader(handle, count, dim, path)
        return cls(words, matrix)


def _read_header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    try:
        count, dim = int(parts[0]), int(parts[1])
        if len(parts) != 2 or count < 0 or dim < 1:
            raise ValueError
    except (ValueError, IndexError):
        raise FileFormatError(f"{path}: first line must be '<words> <dims>', got {line[:80]!r}") from None
    return count, dim


def _read_text_rows(handle, count: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32)
    for row in range(count):
        line = handle.readline()
        if not line:
            raise FileFormatError(f"{path}: header promises {count} words but the file ends after {row}")
        parts = line.decode("utf-8").rstrip("\n").rstrip().split(" ")
        if len(parts) != dim + 1:
            raise FileFormatError(f"{path}: line {row + 2} has {len(parts) - 1} values, expected {dim}")
        try:
            matrix[row] = np.asarray(parts[1:], dtype=np.float32)
        except ValueError as exc:
            raise FileFormatError(f"{path}: line {row + 2} has a non-numeric value: {exc}") from None
        words.append(parts[0])
    return words, matrix


def _read_binary_rows(handle, count: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32)
    row_bytes = 4 * dim
    for row in range(count):
        word = bytearray()
        while True:
            char = handle.read(1)
            if not char:
                raise FileFormatError(f"{path}: file ends inside word #{row} of {count}")
            if char == b" ":
                break
            if char != b"\n":  # the C tool ends each vector with a newline; gensim does not
                word.extend(char)
        data = handle.read(row_bytes)
        if len(data) != row_bytes:
            raise FileFormatError(f"{path}: file ends inside the vector of word #{row} of {count}")
        matrix[row] = np.frombuffer(data, dtype="<f4")
        try:
            words.append(word.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{path}: word #{row} is not UTF-8: {exc}") from None
    return words, matrix
