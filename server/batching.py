"""Micro-batching: queries that arrive together in one worker go to FAISS as one search.

Exact search scans the whole matrix once per call whatever the number of queries (with BLAS, a
batch of 16 costs little more than one query), so a worker whose request threads each searched
alone would do the same scan many times over. Request threads ``submit`` a query and block; one
background thread takes the first waiting query, gathers more until ``window_s`` has passed or
``max_batch`` are waiting, runs one search with the largest ``k`` asked, and hands each thread its
rows.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class MicroBatcher:
    """Gather single-query searches from many threads into batched calls of ``search``.

    Args:
        search: ``search(queries (B, D), k) -> (scores (B, k), ids (B, k))``.
        window_s: how long to wait for more queries after the first one arrives.
        max_batch: the most queries per call.
    """

    def __init__(self, search: SearchFn, window_s: float = 0.002, max_batch: int = 64) -> None:
        self._search = search
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[np.ndarray, int, Future]] = queue.SimpleQueue()
        self.batches = 0
        self.queries = 0
        self._thread = threading.Thread(target=self._run, name="faiss-batcher", daemon=True)
        self._thread.start()

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search one ``(D,)`` query; returns ``(k,)`` scores and ``(k,)`` ids (blocks until done)."""
        future: Future = Future()
        self._queue.put((np.asarray(query, dtype=np.float32), int(k), future))
        return future.result()

    def _gather(self) -> list[tuple[np.ndarray, int, Future]]:
        items = [self._queue.get()]
        deadline = time.perf_counter() + self.window_s
        while len(items) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            items.append(item)
        return items

    def _run(self) -> None:
        while True:
            items = self._gather()
            k = max(item[1] for item in items)
            try:
                scores, ids = self._search(np.stack([item[0] for item in items]), k)
            except Exception as exc:  # hand the failure to every waiting request, keep serving
                for _, _, future in items:
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.queries += len(items)
            for row, (_, wanted, future) in enumerate(items):
                future.set_result((scores[row, :wanted], ids[row, :wanted]))
