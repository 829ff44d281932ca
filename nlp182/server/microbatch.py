"""Micro-batching: queries that arrive together in one worker go to FAISS as one search.

Exact search scans the whole matrix once per call whatever the number of queries (with BLAS, a
batch of 16 costs little more than one query), so a worker whose request threads each searched
alone would do the same scan many times over.

There is no dispatcher thread (each hand-off to one would cost a GIL switch, up to 5 ms under
load). The first request thread to arrive becomes the leader: it optionally waits ``window_s``,
takes up to ``max_batch`` waiting queries of the first one's ``key`` (the index says which ``k``
may share a search and still answer each as alone), runs one search with the largest ``k`` asked (FAISS
releases the GIL, so more queries queue up meanwhile), wakes their threads, and hands leadership to
the oldest query still waiting, which runs the next batch. Under light load a query is searched at
once, alone; under heavy load batches grow by themselves.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class _Slot:
    """One waiting query: its input, then its result or error; ``lead`` when it must run a batch."""

    __slots__ = ("done", "error", "k", "lead", "query", "result")

    def __init__(self, query: np.ndarray, k: int) -> None:
        self.query, self.k = query, k
        self.done = threading.Event()
        self.lead = False
        self.result: tuple[np.ndarray, np.ndarray] | None = None
        self.error: BaseException | None = None


class MicroBatcher:
    """Gather single-query searches from many threads into batched calls of ``search``.

    Args:
        search: ``search(queries (B, D), k) -> (scores (B, k), ids (B, k))``.
        window_s: how long a leader waits for more queries before taking a batch (0: take what waits).
        max_batch: the most queries per call.
        key: ``key(k)``; only queries of equal keys share a call (default: all may).
    """

    def __init__(self, search: SearchFn, window_s: float = 0.0, max_batch: int = 64,
                 key: Callable[[int], object] = lambda k: None) -> None:
        self._search = search
        self._key = key
        self.window_s = window_s
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: deque[_Slot] = deque()
        self._busy = False
        self.batches = 0
        self.queries = 0

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search one ``(D,)`` query; returns ``(k,)`` scores and ``(k,)`` ids (blocks until done)."""
        slot = _Slot(np.asarray(query, dtype=np.float32), int(k))
        with self._lock:
            self._waiting.append(slot)
            slot.lead = not self._busy
            self._busy = True
        if not slot.lead:
            slot.done.wait()
        if slot.lead:  # first to arrive, or promoted by the previous leader
            self._lead()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _lead(self) -> None:
        """Run one batch, then hand leadership on, whatever failed: a leader that stopped without
        handing on would leave every later query of the worker waiting for good."""
        batch: list[_Slot] = []
        try:
            if self.window_s > 0:
                time.sleep(self.window_s)
            with self._lock:
                batch = self._take_batch()
            k = max(slot.k for slot in batch)
            scores, ids = self._search(np.stack([slot.query for slot in batch]), k)
        except Exception as exc:  # every query of the batch fails; the batcher keeps serving
            with self._lock:
                if not batch:  # failed before taking a batch: the leader's own query fails alone
                    batch = [self._waiting.popleft()]
            for slot in batch:
                slot.error = exc
        else:
            for row, slot in enumerate(batch):
                slot.result = (scores[row, : slot.k], ids[row, : slot.k])
        finally:
            with self._lock:
                self.batches += 1
                self.queries += len(batch)
                if self._waiting:
                    self._waiting[0].lead = True
                    self._waiting[0].done.set()
                else:
                    self._busy = False
            for slot in batch:
                slot.lead = False
                slot.done.set()

    def _take_batch(self) -> list[_Slot]:
        """Up to ``max_batch`` waiting queries of the first one's key, in order (called under the
        lock; the keys are read before anything leaves the queue, so a failing key changes nothing)."""
        keys = [self._key(slot.k) for slot in self._waiting]
        batch: list[_Slot] = []
        others: deque[_Slot] = deque()
        for slot, key in zip(self._waiting, keys, strict=True):
            (batch if key == keys[0] and len(batch) < self.max_batch else others).append(slot)
        self._waiting = others  # the queries of other keys wait for the next batch, in order
        return batch
