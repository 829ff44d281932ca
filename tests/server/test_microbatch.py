"""Micro-batching: concurrent single queries are gathered into fewer FAISS calls, same answers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from nlp182.embeddings.vectors import Vectors
from nlp182.server.index import SimilarityIndex
from nlp182.server.microbatch import MicroBatcher


def test_concurrent_queries_are_gathered_and_answered_correctly(synthetic_run: Path) -> None:
    index = SimilarityIndex.load(synthetic_run, Vectors.load(synthetic_run))
    calls: list[int] = []

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(queries))
        return index.search(queries, k)

    batcher = MicroBatcher(search, window_s=0.02, max_batch=16)
    rows = list(range(48))
    ks = [3 + row % 5 for row in rows]  # mixed k: each caller gets exactly the k it asked for
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    start = threading.Barrier(len(rows))

    def worker(row: int) -> None:
        start.wait()
        results[row] = batcher.search(index.unit[row], ks[row])

    threads = [threading.Thread(target=worker, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected_scores, expected_ids = index.search(index.unit[rows], 8)
    for row in rows:
        scores, ids = results[row]
        np.testing.assert_array_equal(ids, expected_ids[row, : ks[row]])
        np.testing.assert_allclose(scores, expected_scores[row, : ks[row]], atol=1e-6)
    assert sum(calls) == len(rows) and max(calls) <= 16
    assert len(calls) < len(rows) / 2  # gathered, not one call per query
    assert batcher.batches == len(calls) and batcher.queries == len(rows)


def test_a_failing_search_fails_only_its_callers() -> None:
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if np.any(queries < 0):
            raise ValueError("negative query")
        return queries[:, :k], np.zeros((len(queries), k), dtype=np.int64)

    batcher = MicroBatcher(search, window_s=0.0, max_batch=4)
    with pytest.raises(ValueError, match="negative query"):
        batcher.search(-np.ones(3, dtype=np.float32), 2)
    scores, _ = batcher.search(np.array([1.0, 2.0, 3.0], dtype=np.float32), 2)
    np.testing.assert_array_equal(scores, [1.0, 2.0])


@pytest.mark.parametrize("failing", ["key", "window"])
def test_a_leader_that_fails_before_its_search_still_hands_on(failing: str) -> None:
    """A failure outside the search itself (the index's batch key, an impossible window) left the
    batcher busy with no leader: every later query of the worker waited for good."""
    calls = {"key": 0}

    def key(k: int) -> object:
        calls["key"] += 1
        if failing == "key" and calls["key"] == 1:
            raise RuntimeError("key failed")
        return None

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return queries[:, :k], np.zeros((len(queries), k), dtype=np.int64)

    batcher = MicroBatcher(search, window_s=1e300 if failing == "window" else 0.0, max_batch=4, key=key)
    with pytest.raises((RuntimeError, OverflowError)):
        batcher.search(np.ones(3, dtype=np.float32), 2)
    batcher.window_s = 0.0
    answered: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: answered.append(batcher.search(np.arange(3.0), 2)[0]))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the next query waits for a leader that never hands on"
    np.testing.assert_array_equal(answered[0], [0.0, 1.0])


def test_hnsw_queries_share_a_search_only_with_those_it_answers_alike(tmp_path: Path,
                                                                       synthetic_vectors: Vectors) -> None:
    """A batch ran with its largest k, and HNSW widens its walk (efSearch) to k past 64: a k=10
    query batched with a k=100 one found other neighbours than alone."""
    from nlp182.server.config import IndexConfig

    index = SimilarityIndex.build(synthetic_vectors, IndexConfig(kind="hnsw", recall_queries=50))
    ef = index.index.hnsw.efSearch
    assert index.batch_key(10) == index.batch_key(ef) == ef and index.batch_key(ef + 36) == ef + 36
    calls: list[tuple[int, int]] = []

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append((len(queries), k))
        return index.search(queries, k)

    batcher = MicroBatcher(search, window_s=0.05, max_batch=16, key=index.batch_key)
    ks = [10, ef + 36, 10, ef + 36, 5]
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    start = threading.Barrier(len(ks))

    def worker(row: int) -> None:
        start.wait()
        results[row] = batcher.search(index.unit[row], ks[row])

    threads = [threading.Thread(target=worker, args=(row,)) for row in range(len(ks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for row, k in enumerate(ks):
        np.testing.assert_array_equal(results[row][1], index.search(index.unit[row : row + 1], k)[1][0])
    assert sum(size for size, _ in calls) == len(ks)
    assert all(size <= 2 for size, k in calls if k > ef)  # the two wide walks shared no batch with the rest
    assert any(size > 1 for size, _ in calls)  # and queries of one key were still gathered
