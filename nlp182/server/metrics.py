"""Prometheus metrics: request counts and latency histograms per endpoint.

Every label value comes from a closed set, so no request can add a series: the endpoint is a route
of the app or ``unmatched``, the method one of ``METHODS`` or ``other``, the status a code the
server sends (``100``-``599``, anything else ``other``).

Under gunicorn every worker is its own process, so the counters live in prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by ``nlp182 serve``) and ``/metrics``
aggregates all workers whichever one answers the scrape. Without that variable (tests, a single
process) each app keeps its own registry.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's counters; ``observe`` after each request, ``render`` for ``GET /metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values go to files and a fresh registry collects them at scrape time.
        self.registry = None if self.multiprocess else CollectorRegistry()
        self.requests = Counter(
            "nlp182_http_requests",
            "HTTP requests answered, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nlp182_http_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple] = {}
        self.lost = 0  # requests whose count could not be written (a full or unwritable metrics folder)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and record its latency.

        ``endpoint`` must be a route rule or ``unmatched`` (the caller's closed set); ``method`` and
        ``status`` are folded into theirs here.
        """
        method = method if method in METHODS else "other"
        key = (endpoint, method, status if 100 <= status <= 599 else 0)
        try:
            children = self._children.get(key)
            if children is None:  # labels() takes a lock and builds its key on every call: look up once
                children = (
                    self.requests.labels(endpoint=endpoint, method=method, status=str(key[2] or "other")),
                    self.latency.labels(endpoint=endpoint),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(seconds)
        except OSError as exc:  # out of files or room: the answer stands, its count is lost (logged once)
            if not self.lost:
                log.warning("request metrics are not being counted: %s", exc)
            self.lost += 1

    def render(self) -> bytes:
        """The Prometheus text exposition of every worker's metrics."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def mark_worker_dead(pid: int) -> None:
    """Tell the multiprocess store a worker exited (gunicorn's ``child_exit`` hook)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
