"""Bounded load on a local service: a closed-loop load of normal requests, and slow clients.

Used by the tests and ``bench/serve.py`` against ``ServeProcess`` on 127.0.0.1 only. Both are
bounded in time and count: ``Load`` runs ``clients`` threads until ``stop()`` or ``seconds``,
each sending one request at a time on a fresh connection (so a worker being replaced never
breaks a kept-alive connection mid-request, and each request is a new accept); ``SlowClients``
opens ``count`` connections and sends each one's request one byte per ``interval`` seconds, for at
most ``seconds``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    """What a ``Load`` saw: status counts, connection errors and latencies of 2xx answers."""

    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """Answers >= 500."""
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def p99_ms(self) -> float:
        """The 99th percentile latency of 2xx answers in milliseconds (NaN with none)."""
        return float(np.percentile(self.latencies, 99) * 1000) if self.latencies else float("nan")

    def summary(self) -> dict:
        """Requests, status counts, connection errors and p50/p99 latency, for a JSON report."""
        return {"requests": sum(self.statuses.values()), "statuses": dict(self.statuses),
                "connection_errors": len(self.errors), "p50_ms": round(float(np.percentile(
                    self.latencies, 50) * 1000), 2) if self.latencies else None,
                "p99_ms": round(self.p99_ms(), 2)}


class Load:
    """``clients`` threads GETting ``paths`` (in turn) from ``url`` until ``stop()`` or ``seconds``."""

    def __init__(self, url: str, paths: list[str], clients: int = 4, seconds: float = 60.0,
                 timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.paths, self.timeout = paths, timeout
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def _client(self, offset: int) -> None:
        count = offset
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            path = self.paths[count % len(self.paths)]
            count += 1
            start = time.perf_counter()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                connection.close()
            with self._lock:
                self.result.statuses[status] += 1
                if 200 <= status < 300:
                    self.result.latencies.append(time.perf_counter() - start)

    def stop(self) -> LoadResult:
        """Stop the clients (each finishes its request) and return what they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.result


class SlowClients:
    """``count`` connections each sending ``request`` one byte per ``interval`` s, for at most ``seconds``.

    Returns once every connection is open; ``close()`` ends them. Half send a GET whose request line
    trickles in, half a POST whose JSON body does (after complete headers), so both the header
    and the body reader are held.
    """

    def __init__(self, url: str, count: int = 100, interval: float = 1.0, seconds: float = 60.0,
                 path: str = "/v1/neighbors?word=w1&k=5") -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        body = b'{"words": ["w1"], "k": 5}'
        requests = [
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
            (f"POST /v1/neighbors HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body,
        ]
        self.interval, self.deadline = interval, time.monotonic() + seconds
        self.sockets = []
        self.pending = []
        for i in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            request = requests[i % 2]
            start = 1 if i % 2 == 0 else request.index(b"\r\n\r\n") + 4  # GET: 1 byte; POST: headers
            sock.sendall(request[:start])
            self.sockets.append(sock)
            self.pending.append(request[start:])
        self.sent = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval) and time.monotonic() < self.deadline:
            for i, sock in enumerate(self.sockets):
                if len(self.pending[i]) > 1:  # never the last byte: each request stays incomplete
                    try:
                        sock.sendall(self.pending[i][:1])
                    except OSError:
                        continue
                    self.pending[i] = self.pending[i][1:]
                    self.sent += 1

    def close(self) -> int:
        """Stop trickling and close every connection; returns the bytes sent in all."""
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()
        return self.sent
