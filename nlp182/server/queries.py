"""The similarity queries the API answers, on the index's shared unit matrix.

Every computation is the query core's (``nlp182.embeddings.query``, shared with the vector store
and the evaluation), with the FAISS index as its ``indexer``: neighbours of a word leave the word
out, analogies leave every query word out, 3CosAdd searches the normalised mean of the signed unit
vectors, 3CosMul multiplies shifted cosines. Queries take rows: the routes look each word up
once, in :class:`nlp182.embeddings.lookup.WordLookup` (which also answers an unknown word with
suggestions). Nothing here allocates a per-process copy of the matrix: queries read
``SimilarityIndex.unit``, a view into the memory-mapped index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlp182.embeddings import query
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.server.index import SimilarityIndex
from nlp182.server.microbatch import MicroBatcher

Answer = list[tuple[str, float]]
METHODS = ("3CosAdd", "3CosMul")


class _BatchedIndex:
    """The index as the query core's ``indexer``: single queries go through the micro-batcher."""

    def __init__(self, index: SimilarityIndex, batcher: MicroBatcher | None) -> None:
        self.index, self.batcher = index, batcher

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.batcher is not None and len(queries) == 1:
            scores, ids = self.batcher.search(queries[0], k)
            return scores[None, :], ids[None, :]
        return self.index.search(queries, k)


class QueryService:
    """Row and vector queries over one run; answers name words.

    Args:
        vectors: the run's vocabulary and raw vectors (loaded memory-mapped): rows back to words.
        index: the run's FAISS index (its ``unit`` rows are the unit vectors of ``vectors``).
        batcher: if given, single-query searches go through it (micro-batching).
    """

    def __init__(self, vectors: Vectors, index: SimilarityIndex, batcher: MicroBatcher | None = None) -> None:
        self.vectors = vectors
        self.index = index
        self.rows = query.Rows(index.unit)  # unit rows already: no norms, no copy
        self._single = _BatchedIndex(index, batcher)

    @property
    def dim(self) -> int:
        """The served vectors' dimension ``D``."""
        return self.index.dim

    def _answers(self, found: list[tuple[np.ndarray, np.ndarray]]) -> list[Answer]:
        words = self.vectors.words  # Python floats and ints below: no numpy scalars in JSON
        pairs = [zip(ids.tolist(), scores.tolist(), strict=True) for ids, scores in found]
        return [[(words[i], s) for i, s in answer] for answer in pairs]

    def neighbors(self, row: int, k: int) -> Answer:
        """The ``k`` words closest to the word of ``row`` (cosine), best first, the word itself left out."""
        found = query.search(self.rows, self.index.unit[[row]], k, [{row}], indexer=self._single)
        return self._answers(found)[0]

    def neighbors_batch(self, rows: Sequence[int], k: int) -> list[Answer]:
        """``neighbors`` of the words of many ``rows`` in one FAISS call."""
        exclude = [{row} for row in rows]
        return self._answers(query.search(self.rows, self.index.unit[rows], k, exclude, indexer=self.index))

    def neighbors_of_vectors(self, queries: np.ndarray, k: int) -> list[Answer]:
        """Words closest to each raw query vector (cosine); nothing left out.

        Args:
            queries: ``(B, D)`` finite values; each row is normalised (a zero row scores 0 everywhere).
        """
        unit = query.as_queries(queries, self.dim)
        return self._answers(query.search(self.rows, unit, k, indexer=self.index))

    def similarity(self, a: int, b: int) -> float:
        """Cosine similarity of the words of rows ``a`` and ``b``."""
        return float(np.dot(self.index.unit[a], self.index.unit[b]))

    def analogy(
        self, positive: Sequence[int], negative: Sequence[int], k: int, method: str = "3CosAdd"
    ) -> Answer:
        """Answers to ``positive - negative`` rows (e.g. king - man + woman), query words left out.

        3CosAdd searches the index with the normalised mean of the signed unit vectors; 3CosMul scans
        the unit matrix (no index shortcut exists for a product of cosines).
        """
        if method not in METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not positive and not negative:
            raise InvalidInputError("give at least one positive or negative word")
        pos, neg = list(positive), list(negative)
        exclude = [set(pos) | set(neg)]
        if method == "3CosMul":
            unit = self.index.unit
            found = query.search_cosmul(self.rows, unit[pos][None], unit[neg][None], k, exclude)
        else:
            weights = np.array([1.0] * len(pos) + [-1.0] * len(neg))
            mean = query.mean_vector(self.index.unit[pos + neg], weights)
            if not mean.any():
                raise InvalidInputError(query.CANCELLED)
            found = query.search(self.rows, mean[None, :], k, exclude, indexer=self._single)
        return self._answers(found)[0]
