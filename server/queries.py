"""The similarity queries the API answers, on the index's shared unit matrix.

Semantics follow gensim (and ``nlp182.embeddings.vectors.Vectors``): neighbours of a word leave
the word out, analogies leave every query word out, 3CosAdd searches the normalised mean of the
signed unit vectors, 3CosMul multiplies shifted cosines. Nothing here allocates a per-process
copy of the matrix: queries read ``SimilarityIndex.unit``, a view into the memory-mapped index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError, ShapeError
from server.batching import MicroBatcher
from server.index import SimilarityIndex

Answer = list[tuple[str, float]]
METHODS = ("3CosAdd", "3CosMul")


class QueryService:
    """Word and vector queries over one run.

    Args:
        vectors: the run's vocabulary and raw vectors (loaded memory-mapped).
        index: the run's FAISS index (its ``unit`` rows are the unit vectors of ``vectors``).
        batcher: if given, single-query searches go through it (micro-batching).
    """

    def __init__(self, vectors: Vectors, index: SimilarityIndex, batcher: MicroBatcher | None = None) -> None:
        self.vectors = vectors
        self.index = index
        self.batcher = batcher

    @property
    def dim(self) -> int:
        return self.index.dim

    def _search_one(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.batcher is not None:
            return self.batcher.search(query, k)
        scores, ids = self.index.search(query[None, :], k)
        return scores[0], ids[0]

    def _answers(self, scores: np.ndarray, ids: np.ndarray, exclude: set[int], k: int) -> Answer:
        words = self.vectors.words
        pairs = zip(scores.tolist(), ids.tolist(), strict=True)  # Python floats and ints: no numpy scalars
        found = [(words[i], s) for s, i in pairs if i >= 0 and i not in exclude]
        return found[:k]

    def neighbors(self, word: str, k: int) -> Answer:
        """The ``k`` words closest to ``word`` (cosine), best first, ``word`` itself left out."""
        row = self.vectors.index_of(word)
        scores, ids = self._search_one(self.index.unit[row], k + 1)
        return self._answers(scores, ids, {row}, k)

    def neighbors_batch(self, words: Sequence[str], k: int) -> list[Answer]:
        """``neighbors`` of many words in one FAISS call."""
        rows = [self.vectors.index_of(word) for word in words]
        scores, ids = self.index.search(self.index.unit[rows], k + 1)
        return [self._answers(s, i, {row}, k) for s, i, row in zip(scores, ids, rows, strict=True)]

    def neighbors_of_vectors(self, queries: np.ndarray, k: int) -> list[Answer]:
        """Words closest to each raw query vector (cosine); nothing left out.

        Args:
            queries: ``(B, D)`` finite values; each row is normalised (a zero row scores 0 everywhere).
        """
        queries = np.asarray(queries, dtype=np.float64)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ShapeError(f"vectors must be {self.dim}-dimensional, got shape {queries.shape[1:]}")
        if not np.all(np.isfinite(queries)):
            raise InvalidInputError("vectors contain NaN or infinity; send finite numbers")
        scale = np.abs(queries).max(axis=1, keepdims=True)  # divide by the largest entry first so
        scale[scale == 0] = 1.0  # that squaring cannot overflow (entries may be up to ~1e308)
        queries = queries / scale
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        scores, ids = self.index.search((queries / norms).astype(np.float32), k)
        return [self._answers(s, i, set(), k) for s, i in zip(scores, ids, strict=True)]

    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two words."""
        a, b = self.vectors.index_of(first), self.vectors.index_of(second)
        return float(np.dot(self.index.unit[a], self.index.unit[b]))

    def analogy(
        self, positive: Sequence[str], negative: Sequence[str], k: int, method: str = "3CosAdd"
    ) -> Answer:
        """Answers to ``positive - negative`` (e.g. king - man + woman), query words left out."""
        if method not in METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not positive and not negative:
            raise InvalidInputError("give at least one positive or negative word")
        pos = [self.vectors.index_of(word) for word in positive]
        neg = [self.vectors.index_of(word) for word in negative]
        exclude = set(pos) | set(neg)
        if method == "3CosMul":
            return self._cosmul(pos, neg, exclude, k)
        weights = np.asarray([1.0] * len(pos) + [-1.0] * len(neg), dtype=np.float32)
        query = (self.index.unit[pos + neg] * weights[:, None]).mean(axis=0)
        norm = np.linalg.norm(query)
        if norm > 0:
            query = query / norm
        scores, ids = self._search_one(query.astype(np.float32), k + len(exclude))
        return self._answers(scores, ids, exclude, k)

    def _cosmul(self, pos: list[int], neg: list[int], exclude: set[int], k: int) -> Answer:
        """3CosMul (Levy and Goldberg, 2014) by one pass over the unit matrix (no index shortcut)."""
        unit = self.index.unit
        numerator = np.ones(unit.shape[0], dtype=np.float32)
        for row in pos:
            numerator *= (1.0 + unit @ unit[row]) / 2.0
        denominator = np.ones(unit.shape[0], dtype=np.float32)
        for row in neg:
            denominator *= (1.0 + unit @ unit[row]) / 2.0
        scores = (numerator / (denominator + 1e-6)).astype(np.float64)
        scores[list(exclude)] = -np.inf
        count = min(k, len(scores) - len(exclude))
        if count <= 0:
            return []
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.lexsort((best, -scores[best]))]
        return [(self.vectors.words[i], float(scores[i])) for i in best]
