"""The one similarity query core: cosine top-k, 3CosAdd and 3CosMul, in bounded memory, numpy only.

The vector store (``nlp182.embeddings.vectors``), the evaluation (``nlp182.embeddings.evaluate``)
and the service (``nlp182.server.queries``) all answer their queries here. The arithmetic is gensim's
``KeyedVectors``: a candidate's score is ``(row . term) / |row|`` in float32, 3CosAdd searches the
normalised weighted mean of the (unit) query vectors, 3CosMul multiplies cosines shifted to
``[0, 1]`` and divides by the negatives' (Levy and Goldberg, 2014), query words are left out of the
answers, and ``restrict_vocab`` searches only the first rows.

Memory stays bounded whatever the vocabulary: the candidate rows are scored a block at a time (the
block shrinks as the batch of queries grows) and only a running top-k is kept, so a memory-mapped
``(V, D)`` matrix is read once per batch and never copied whole. An approximate index (the service's
FAISS index, or anything with ``search(queries (B, D), k) -> (scores (B, k), ids (B, k))``) can
answer instead of the exact scan, as gensim's ``indexer=`` does.

This module imports numpy only: the service's workers use it and must stay lean.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Protocol

import numpy as np

from nlp182.errors import InvalidInputError, ShapeError

#: Most float32 values a scoring step holds: scores (terms x rows) and a converted block (rows x D).
SCORE_BUDGET = 1 << 20  # 1M floats: 4 MB
#: Added to 3CosMul's denominator, as gensim does, so that a zero product cannot divide by zero.
COSMUL_EPSILON = 1e-6


class Indexer(Protocol):
    """An index over the unit vectors of the rows, answering inner-product top-k queries."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B, D)`` unit queries -> ``(B, k)`` scores and ``(B, k)`` row ids (-1: no answer)."""
        ...


class Rows:
    """The ``(V, D)`` matrix that queries search, with the norms that turn dot products into cosines.

    Args:
        matrix: ``(V, D)`` raw vectors (any float dtype; a memory map is read block by block).
        norms: ``(V,)`` Euclidean norms of the rows, or None when the rows are unit vectors already
            (the service's FAISS storage). A zero norm scores 0 everywhere (gensim gives NaN).
    """

    def __init__(self, matrix: np.ndarray, norms: np.ndarray | None = None) -> None:
        if matrix.ndim != 2:
            raise ShapeError(f"the matrix must be (V, D), got shape {matrix.shape}")
        self.matrix = matrix
        self.norms = None if norms is None else np.where(norms == 0, 1, norms).astype(np.float32)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        """The rows' dimension ``D``."""
        return int(self.matrix.shape[1])

    def unit(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 unit vectors of the given rows (a copy: safe to modify)."""
        block = np.array(self.matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
        if self.norms is not None:
            block /= self.norms[np.asarray(rows, dtype=np.int64), None]
        return block

    def step(self, terms: int) -> int:
        """Rows scored per step: ``terms x rows`` scores, and a converted or normalised ``rows x D``
        block, stay within ``SCORE_BUDGET`` values (a float32 matrix is read in place)."""
        rows = SCORE_BUDGET // max(1, terms)
        if self.matrix.dtype != np.float32:
            rows = min(rows, SCORE_BUDGET // self.dim)
        return max(256, rows)

    def cosines(self, terms: np.ndarray, start: int, stop: int) -> np.ndarray:
        """``(T, n)`` float32 ``(row . term) / |row|`` for rows ``start:stop`` and ``(T, D)`` terms.

        With more terms than dimensions the rows are divided by their norms first (less work).
        """
        block = np.asarray(self.matrix[start:stop], dtype=np.float32)
        if self.norms is None:
            return terms @ block.T
        if len(terms) > self.dim:
            return terms @ (block / self.norms[start:stop, None]).T
        scores = terms @ block.T
        scores /= self.norms[start:stop]
        return scores


def as_queries(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Raw query vectors ``(B, D)`` (or one ``(D,)``) as float32 unit rows; zero rows stay zero.

    Finite values of any size are accepted: each row is divided by its largest entry before
    squaring, so that entries up to ~1e308 cannot overflow.
    """
    queries = np.asarray(vectors, dtype=np.float64)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ShapeError(f"vectors must be {dim}-dimensional, got shape {queries.shape[1:]}")
    if not np.all(np.isfinite(queries)):
        raise InvalidInputError("vectors contain NaN or infinity; send finite numbers")
    scale = np.abs(queries).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    queries = queries / scale
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (queries / norms).astype(np.float32)


#: Why a query whose positive and negative words cancel out is refused.
CANCELLED = ("the positive and negative words cancel out: the query vector is zero, and every word "
             "would score 0")


def mean_vector(vectors: np.ndarray, weights: np.ndarray, normalize: bool = True) -> np.ndarray:
    """gensim's ``get_mean_vector``: ``sum(w_i v_i) / sum(|w_i|)`` over the terms, optionally unit.

    Args:
        vectors: ``(T, D)`` terms of one query, or ``(B, T, D)`` for a batch of queries.
        weights: ``(T,)`` weight of each term (+1 positive, -1 negative for analogies).

    Returns:
        ``(D,)`` or ``(B, D)`` float32; a zero mean stays zero when normalised.
    """
    weights = np.asarray(weights, dtype=np.float64)
    mean = (np.asarray(vectors, dtype=np.float32) * weights[:, None].astype(np.float32)).sum(axis=-2)
    total = float(np.abs(weights).sum())
    if total > 0:
        mean = mean / np.float32(total)
    if normalize:  # the norm in float64: in float32 that of a mean near 1e-20 underflows to 0
        norm = np.linalg.norm(mean.astype(np.float64), axis=-1, keepdims=True)
        mean = mean / np.where(norm > 0, norm, 1)
    return mean.astype(np.float32)


def _bounds(rows: Rows, start: int, stop: int | None) -> tuple[int, int]:
    """The rows ``start:stop`` searched, as slicing reads them (gensim slices its matrix so): a
    negative bound counts from the end, one past the end stops there, an empty range finds none."""
    start, stop, _ = slice(int(start), None if stop is None else int(stop)).indices(len(rows))
    return start, max(start, stop)


def _blocks(rows: Rows, start: int, stop: int, terms: int) -> Iterator[tuple[int, int]]:
    step = rows.step(terms)
    for first in range(start, stop, step):
        yield first, min(first + step, stop)


class _TopK:
    """The running best ``k`` (score, row) of each of ``B`` queries, merged block by block.

    Ties at the cut are broken toward the lower row, as a full sort by ``(-score, row)`` would
    (gensim's order): the held rows stay in row order, blocks arrive in row order, and among
    scores equal to the ``k``-th best the first columns are kept.
    """

    def __init__(self, batch: int, k: int) -> None:
        self.k = k
        self.scores = np.full((batch, 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((batch, 0), dtype=np.int64)

    def add(self, scores: np.ndarray, first: int) -> None:
        """Merge ``(B, n)`` scores of rows ``first:first + n`` (NaN counts as no score)."""
        if np.isnan(scores).any():
            scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
        held = self.scores.shape[1]
        merged = np.concatenate([self.scores, scores], axis=1)
        keep = np.broadcast_to(np.arange(merged.shape[1]), merged.shape)
        if merged.shape[1] > self.k:
            keep = self._first_best_columns(merged)
        old = np.take_along_axis(self.ids, np.minimum(keep, max(held - 1, 0)), axis=1) if held else 0
        self.ids = np.where(keep < held, old, keep - held + first)
        self.scores = np.take_along_axis(merged, keep, axis=1)

    def _first_best_columns(self, merged: np.ndarray) -> np.ndarray:
        """``(B, k)`` ascending columns of the ``k`` best scores of each row, ties to the first."""
        cut = merged.shape[1] - self.k
        kth = np.partition(merged, cut, axis=1)[:, cut : cut + 1]  # (B, 1): the k-th best score
        chosen = merged >= kth
        crowded = np.flatnonzero(chosen.sum(axis=1) > self.k)  # ties at the k-th score
        if crowded.size:
            above = merged[crowded] > kth[crowded]
            at = merged[crowded] == kth[crowded]
            room = self.k - above.sum(axis=1, keepdims=True)
            chosen[crowded] = above | (at & (np.cumsum(at, axis=1) <= room))
        return np.nonzero(chosen)[1].reshape(len(merged), self.k)

    def result(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: rows and float32 scores, best first (ties: lower row first), -inf dropped."""
        answers = []
        for scores, ids in zip(self.scores, self.ids, strict=True):
            order = np.lexsort((ids, -scores))
            order = order[np.isfinite(scores[order])]
            answers.append((ids[order], scores[order]))
        return answers


def _exclusions(exclude: Sequence[Collection[int]] | None) -> tuple[np.ndarray, np.ndarray]:
    """``exclude`` as two flat arrays: query numbers and the rows they must not return."""
    pairs = [(query, row) for query, rows in enumerate(exclude or ()) for row in rows]
    flat = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def _mask(scores: np.ndarray, exclusions: tuple[np.ndarray, np.ndarray], first: int) -> None:
    queries, rows = exclusions
    inside = (rows >= first) & (rows < first + scores.shape[1])
    scores[queries[inside], rows[inside] - first] = -np.inf


def _scan(
    rows: Rows,
    terms: np.ndarray,
    combine,
    batch: int,
    k: int,
    exclude: Sequence[Collection[int]] | None,
    start: int,
    stop: int | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    start, stop = _bounds(rows, start, stop)
    top, exclusions = _TopK(batch, k), _exclusions(exclude)
    for first, last in _blocks(rows, start, stop, len(terms)):
        scores = combine(rows.cosines(terms, first, last))
        _mask(scores, exclusions, first)
        top.add(scores, first)
    return top.result()


def search(
    rows: Rows,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]] | None = None,
    start: int = 0,
    stop: int | None = None,
    indexer: Indexer | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``k`` rows of highest cosine to each query (3CosAdd when the query is a mean vector).

    Args:
        rows: the candidates.
        queries: ``(B, D)`` float32 query vectors (unit, for cosine scores).
        k: answers per query (after leaving out ``exclude``).
        exclude: per query, rows never to return (the query words).
        start: search only rows from ``start`` on (gensim's ``clip_start``).
        stop: search only rows before ``stop``, ``None`` for all (gensim's ``clip_end`` / ``restrict_vocab``).
        indexer: answer from this index instead of scanning all rows; excluded rows are dropped
            from its answers. A part of the rows (``start:stop``) is scanned exactly instead: the
            index searches them all, and a word's nearest rows in a small part are often far
            below its first thousands over all (gensim ignores the range with an indexer).

    Returns:
        Per query, ``(ids (k,), scores (k,))`` best first.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if answers_wanted(k) == 0:
        return [_NO_ANSWER for _ in range(len(queries))]
    lo, hi = _bounds(rows, start, stop)
    if indexer is not None and (lo, hi) == (0, len(rows)):
        return _from_indexer(indexer, queries, k, exclude, lo, hi, len(rows))
    return _scan(rows, queries, lambda cos: cos, len(queries), k, exclude, start, stop)


#: The answer to a query for no answers: ``(ids (0,), scores (0,))``.
_NO_ANSWER = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def answers_wanted(k: object) -> int:
    """``k`` as a count of answers: a whole number of at least 0 (0 asks for none, as gensim's
    ``topn=0``); a negative ``k`` was read from the end of a candidate list (-1 gave all but one)
    or failed deep in numpy, and a float or bool is likely a mistaken argument."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InvalidInputError(f"k (answers per query) must be a whole number >= 0, got {k!r}")
    return int(k)


def _from_indexer(
    indexer: Indexer,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]] | None,
    start: int,
    stop: int,
    total: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The index's answers (over ``total`` rows) in the exact search's order (best first, equal
    scores lower row first).

    An index cuts its answers anywhere inside a run of equal scores (FAISS keeps the highest rows
    of a tie), and excluded or out-of-range rows leave holes. So it is asked for one answer more
    than needed, and asked again for twice as many while, for some query, that last answer ties
    the ``k``-th kept one or fewer than ``k`` were kept, up to ``TIE_ROWS`` (equal scores past it
    keep the index's choice). Ties are rare (duplicated rows), so one search nearly always does;
    an all-zero query, where every row ties at 0, is answered without the index: its first rows.
    """
    extra = max((len(rows) for rows in exclude), default=0) if exclude is not None else 0
    zero = ~queries.any(axis=1)
    want = min(total, k + extra + 1)
    while True:
        scores, ids = indexer.search(queries, want)
        kept = []
        for query, (found_scores, found_ids) in enumerate(zip(scores, ids, strict=True)):
            if zero[query]:  # every row scores 0: the exact scan's answer is the first rows
                found_ids = np.arange(start, min(stop, start + k + extra), dtype=np.int64)
                found_scores = np.zeros(len(found_ids), dtype=np.float32)
            kept.append(_kept(found_ids, found_scores, exclude, query, start, stop))
        settled = not any(
            _cut_too_soon(*kept[query], scores[query, -1], ids[query, -1], k)
            for query in np.flatnonzero(~zero).tolist()
        )
        if settled or want >= min(total, TIE_ROWS):
            break
        want = min(total, TIE_ROWS, 2 * want)
    answers = []
    for kept_ids, kept_scores in kept:
        order = np.lexsort((kept_ids, -kept_scores))[:k]
        answers.append((kept_ids[order], kept_scores[order]))
    return answers


#: Most rows the index is asked for to settle a tie at the cut (memory: queries x rows answers).
TIE_ROWS = 4096


def _kept(
    found_ids: np.ndarray,
    found_scores: np.ndarray,
    exclude: Sequence[Collection[int]] | None,
    query: int,
    start: int,
    stop: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The index's answers to one query that may be returned: in ``start:stop``, not excluded."""
    banned = set(exclude[query]) if exclude is not None else set()
    found_ids = np.asarray(found_ids)
    keep = [j for j, row in enumerate(found_ids.tolist()) if start <= row < stop and row not in banned]
    return found_ids[keep].astype(np.int64), np.asarray(found_scores)[keep]


def _cut_too_soon(
    kept_ids: np.ndarray, kept_scores: np.ndarray, last_score: float, last_id: int, k: int
) -> bool:
    """Whether a query's kept answers (``kept_ids``, ``kept_scores``) may miss rows: the index's
    last answer (``last_score``, ``last_id``) ties the ``k``-th kept one, so rows not returned may
    too, or fewer than ``k`` were kept though the index filled its answers."""
    if last_id < 0:  # the index has no more rows for it
        return False
    return len(kept_ids) < k or last_score >= np.sort(kept_scores)[::-1][k - 1]


def search_cosmul(
    rows: Rows,
    positive: np.ndarray,
    negative: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """3CosMul: the ``k`` rows maximising ``prod((1 + cos(r, p)) / 2) / (prod((1 + cos(r, n)) / 2) + eps)``.

    Args:
        rows: the candidates.
        positive: ``(B, P, D)`` positive term vectors per query (unit for word terms, as gensim).
        negative: ``(B, N, D)`` negative term vectors per query (``N`` may be 0).
        k: answers per query (after leaving out ``exclude``).
        exclude: per query, rows never to return (the query words).
        start: search only rows from ``start`` on.
        stop: search only rows before ``stop``, ``None`` for all.

    Returns:
        Per query, ``(ids (k,), scores (k,))`` best first.
    """
    if answers_wanted(k) == 0:
        return [_NO_ANSWER for _ in range(len(positive))]
    terms, combine = _cosmul_terms(positive, negative)
    return _scan(rows, terms, combine, positive.shape[0], k, exclude, start, stop)


def _cosmul_terms(positive: np.ndarray, negative: np.ndarray):
    positive = np.asarray(positive, dtype=np.float32)
    negative = np.asarray(negative, dtype=np.float32)
    batch, n_pos, dim = positive.shape
    n_neg = negative.shape[1]
    if n_pos == 0:
        raise InvalidInputError("3CosMul needs at least one positive word or vector")
    # term-major rows: the cosines of every query with its p-th term are one contiguous slice
    terms = np.concatenate([positive.transpose(1, 0, 2).reshape(-1, dim),
                            negative.transpose(1, 0, 2).reshape(-1, dim)])

    def combine(cosines: np.ndarray) -> np.ndarray:
        cosines += 1.0
        cosines *= 0.5  # shifted to [0, 1]
        numerator = cosines[:batch].copy()
        for p in range(1, n_pos):
            numerator *= cosines[p * batch : (p + 1) * batch]
        denominator = np.ones_like(numerator)
        for n in range(n_pos, n_pos + n_neg):
            denominator *= cosines[n * batch : (n + 1) * batch]
        denominator += np.float32(COSMUL_EPSILON)
        numerator /= denominator
        return numerator

    return terms, combine


def all_scores(rows: Rows, query: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """``(stop - start,)`` cosine of every row in range with one ``(D,)`` query (gensim's ``topn=None``)."""
    start, stop = _bounds(rows, start, stop)
    terms = np.asarray(query, dtype=np.float32)[None, :]
    parts = [rows.cosines(terms, first, last)[0] for first, last in _blocks(rows, start, stop, 1)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def all_scores_cosmul(
    rows: Rows, positive: np.ndarray, negative: np.ndarray, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """3CosMul score of every row in range for one query: ``positive (P, D)``, ``negative (N, D)``."""
    start, stop = _bounds(rows, start, stop)
    terms, combine = _cosmul_terms(positive[None], negative[None])
    blocks = _blocks(rows, start, stop, len(terms))
    parts = [combine(rows.cosines(terms, first, last))[0] for first, last in blocks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
