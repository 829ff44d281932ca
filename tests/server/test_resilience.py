"""The live service (gunicorn + uvicorn workers) under the faults an operator or an attacker causes.

Each test drives ``nlp182 serve`` on 127.0.0.1 with a bounded load (a few client threads for a
few seconds): a worker stopped with TERM, the master told to HUP after ``nlp182 index`` rebuilt
the index, 100 connections sending one byte per second, and malformed or oversized requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest
import requests

from nlp182.embeddings.vectors import Vectors
from nlp182.server.config import IndexConfig
from nlp182.server.index import SimilarityIndex
from nlp182.server.loadtest import Load, SlowClients
from nlp182.server.process import ServeProcess

PATHS = [f"/v1/neighbors?word=w{i}&k=5" for i in range(0, 2000, 37)]


def _workers(server: ServeProcess) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _index_kinds(url: str, asks: int = 12) -> set[str]:
    """Index kinds reported by ``asks`` fresh connections (spread over the workers)."""
    kinds = set()
    for _ in range(asks):
        kinds.add(requests.get(f"{url}/readyz", headers={"Connection": "close"}, timeout=10).json()["index"])
    return kinds


def test_term_one_worker_then_hup_reload_under_load(tmp_path: Path, synthetic_run: Path,
                                                    synthetic_vectors: Vectors) -> None:
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    pid_file = tmp_path / "serve.pid"
    server = ServeProcess(run, "--workers", "2", "--threads", "4", "--pid-file", str(pid_file))
    try:
        first = {p.pid for p in server.workers(2)}
        load = Load(server.url, PATHS, clients=4, seconds=60)
        time.sleep(0.5)
        os.kill(min(first), signal.SIGTERM)  # one worker exits gracefully; the master replaces it
        _wait_for(lambda: len({p.pid for p in _workers(server)} - first) == 1)
        server.workers(2)
        time.sleep(0.5)
        # Rebuild the index as `nlp182 index` does (atomic replace), then HUP: every worker must
        # serve the new index, and no request may fail meanwhile.
        SimilarityIndex.build(synthetic_vectors, IndexConfig(kind="hnsw", recall_queries=50)).save(run)
        os.kill(int(pid_file.read_text()), signal.SIGHUP)  # the master's pid, as documented
        _wait_for(lambda: _index_kinds(server.url) == {"hnsw"})
        time.sleep(0.5)
        result = load.stop()
        metrics = requests.get(f"{server.url}/metrics", timeout=10)
    finally:
        code, output = server.stop()
    assert result.server_errors == 0, (result.summary(), output[-3000:])
    assert result.errors == [], result.errors[:5]
    assert set(result.statuses) == {200} and sum(result.statuses.values()) > 50, result.summary()
    assert metrics.status_code == 200 and "nlp182_http_requests_total" in metrics.text
    assert code == 0 and "Traceback" not in output, output[-3000:]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_slow_clients_do_not_hold_workers(tmp_path: Path, synthetic_vectors: Vectors,
                                          synthetic_run: Path, kind: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    if kind == "hnsw":
        SimilarityIndex.build(synthetic_vectors, IndexConfig(kind="hnsw", recall_queries=50)).save(run)
    # The defaults: 16 request threads per worker for flat, 1 for HNSW; 100 slow clients outnumber both.
    server = ServeProcess(run, "--workers", "2")
    try:
        server.workers(2)
        Load(server.url, PATHS, clients=2, seconds=1).stop()  # warm up
        alone = Load(server.url, PATHS, clients=2, seconds=2.5)
        time.sleep(2.5)
        alone = alone.stop()
        slow = SlowClients(server.url, count=100, interval=1.0, seconds=30)
        try:
            beside = Load(server.url, PATHS, clients=2, seconds=2.5)
            time.sleep(2.5)
            beside = beside.stop()
        finally:
            slow.close()
    finally:
        server.stop()
    for result in (alone, beside):
        assert set(result.statuses) == {200} and result.errors == [], result.summary()
    # Sync workers answered 2 of 13 requests here. 10 ms of slack absorbs scheduler noise on 2 busy
    # cores (a p99 of a few hundred requests is nearly their maximum); bench.serve measures the ratio.
    assert beside.p99_ms() <= 2 * alone.p99_ms() + 10.0, (alone.summary(), beside.summary())


def _raw(url: str, data: bytes, last: bool = False) -> tuple[int, dict, dict]:
    """Send raw bytes, read until the server closes; (status, headers, JSON body) of the first
    answer, or with ``last`` of the last one."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    received = b"".join(chunks)
    if last:
        received = received[received.rindex(b"HTTP/1.1 ") :]
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_an_unfinished_request_gets_408_after_the_request_timeout(synthetic_run: Path) -> None:
    server = ServeProcess(synthetic_run, "--workers", "1", "--threads", "2", "--request-timeout", "1")
    try:
        started = time.monotonic()
        post = (b"POST /v1/neighbors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 40\r\n\r\n{\"words\"")
        answered = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # kept alive, then a second request
        for partial in (b"GET /v1/neighbors?wo", b"", post, answered + b"GET /healthz HTTP/1.1\r\nX-Slow: "):
            status, _, body = _raw(server.url, partial, last=True)
            assert (status, body["error"]["code"]) == (408, "request_timeout")
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:  # answered, then slow
            sock.sendall(answered)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.2)  # the whole answer is in before the next request starts
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            rest = b""
            while chunk := sock.recv(65536):
                rest += chunk
            assert b"HTTP/1.1 408" in rest
        assert time.monotonic() - started < 12
        assert requests.get(f"{server.url}/v1/neighbors?word=w1", timeout=10).status_code == 200
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output[-2000:]


def test_every_refusal_is_json(live_server: ServeProcess) -> None:
    url = live_server.url
    cases = {
        b"GARBAGE\r\n\r\n": (400, "bad_request"),
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n": (414, "uri_too_long"),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n":
            (431, "request_header_fields_too_large"),
        # Header bytes count as sent, ": " and CRLF included: 17 (Host) + 32 755 (X-Big) > 32 KiB.
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 32_746 + b"\r\n\r\n":
            (431, "request_header_fields_too_large"),
        b"GET /v1/neighbors?word=w1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n":
            (400, "host_not_allowed"),
    }
    for data, (status, code) in cases.items():
        got, headers, body = _raw(url, data)
        assert (got, body["error"]["code"]) == (status, code), body
        assert headers["content-type"] == "application/json"
    answered = b"GET /v1/neighbors?word=w1&k=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for refused, status in ((b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"414"),
                            (b"GARBAGE\r\n\r\n", b"400")):  # pipelined after a good request
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(answered * 2 + refused)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
        assert statuses == [b"200", b"200", status], received[:600]  # the good ones' answers first
    neighbors = b"GET /v1/neighbors?word=w1&k=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade"
    got, headers, body = _raw(url, neighbors + b", HTTP2-Settings\r\nUpgrade: h2c\r\n"
                              b"HTTP2-Settings: AAMAAABkAAQAoAAA\r\n\r\n")  # curl --http2
    assert got == 200 and len(body["neighbors"]) == 2, body  # declined: answered over HTTP/1.1
    assert headers["connection"] == "close"
    got, _, body = _raw(url, neighbors + b"\r\nUpgrade: websocket\r\n\r\n")
    assert got == 400 and "no WebSocket" in body["error"]["message"]
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # asks before sending 100 MB
        sock.sendall(b"POST /v1/neighbors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower(), answer[:200]
    big = json.dumps({"words": ["w1"] * 700_000}).encode()  # ~5 MB: read and dropped, then a clean 413
    response = requests.post(f"{url}/v1/neighbors", data=big, headers={"Content-Type": "application/json"},
                             timeout=30)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_entity_too_large"
    chunked = requests.post(f"{url}/v1/neighbors", data=iter([big[:3_000_000], big[3_000_000:]]),
                            headers={"Content-Type": "application/json"}, timeout=30)
    assert chunked.status_code == 413
    # A body of unknown length (a generator: requests, httpx, Go, Java send it chunked) reads whole.
    body = b'{"words": ["w1", "w2"], "k": 3}'
    sized = requests.post(f"{url}/v1/neighbors", data=body, headers={"Content-Type": "application/json"},
                          timeout=10)
    streamed = requests.post(f"{url}/v1/neighbors", data=iter([body[:9], body[9:]]),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert streamed.request.headers["Transfer-Encoding"] == "chunked"
    assert streamed.status_code == sized.status_code == 200 and streamed.json() == sized.json()
    plain = requests.post(f"{url}/v1/neighbors", data='{"words": ["w1"]}',
                          headers={"Content-Type": "text/plain"}, timeout=10)
    assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
    assert requests.get(f"{url}/v1/neighbors?word=w1", timeout=10).status_code == 200  # still serving
    # Refusals made before any route are counted too, as endpoint "unmatched".
    scraped = requests.get(f"{url}/metrics", timeout=10).text
    for status in ("400", "413", "414", "431"):
        assert 'endpoint="unmatched"' in scraped and f'status="{status}"' in scraped, status
        assert any(line.startswith("nlp182_http_requests_total{") and 'endpoint="unmatched"' in line
                   and f'status="{status}"' in line for line in scraped.splitlines()), status
    # The method is named once the request line got that far (the 414's did; GARBAGE's did not).
    assert 'endpoint="unmatched",method="GET",status="414"' in scraped


def test_hup_with_a_damaged_index_keeps_serving_the_previous_one(tmp_path: Path, synthetic_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    server = ServeProcess(run, "--workers", "2", "--threads", "2")
    try:
        before = {p.pid for p in server.workers(2)}
        data = (run / "index.faiss").read_bytes()
        # A damaged index put in place as a new file (rewriting the mapped file in place would
        # pull the pages from under the running workers, which no tool of the project does).
        (run / "damaged").write_bytes(data[: len(data) // 2])
        os.replace(run / "damaged", run / "index.faiss")
        os.kill(server.process.pid, signal.SIGHUP)
        _wait_for(lambda: "reload refused" in server.output())
        time.sleep(1.0)
        answer = requests.get(f"{server.url}/v1/neighbors?word=w1&k=3", timeout=10)
        after = {p.pid for p in _workers(server)}
    finally:
        code, output = server.stop()
    assert answer.status_code == 200 and after == before, output[-2000:]
    assert "not the index index.json describes" in output and code == 0


def test_a_worker_lost_while_the_run_cannot_load_is_replaced_once_it_can(tmp_path: Path,
                                                                          synthetic_run: Path) -> None:
    """A retrain rewrites the run before its re-index; a worker killed then cannot load it. The
    server keeps serving from the other worker and boots a replacement once the run loads again."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    server = ServeProcess(run, "--workers", "2", "--threads", "2")
    try:
        survivor, victim = server.workers(2)
        meta = (run / "index.json").read_bytes()
        (run / "index.json").write_text("{}")  # the index is being rebuilt
        os.kill(victim.pid, signal.SIGKILL)
        _wait_for(lambda: "cannot load" in server.output())
        statuses = {requests.get(f"{server.url}/v1/neighbors?word=w{i}&k=3", timeout=10).status_code
                    for i in range(20)}
        assert statuses == {200} and server.process.poll() is None and survivor.is_running()
        (run / "index.json").write_bytes(meta)
        time.sleep(8.0)  # the waiting worker exits; its replacement loads the run
        failures = server.output().count("cannot load")
        time.sleep(2.0)
        assert server.output().count("cannot load") == failures and len(_workers(server)) == 2
    finally:
        code, output = server.stop()
    assert code == 0 and "Worker failed to boot" not in output, output[-3000:]


def test_a_request_on_a_kept_alive_connection_as_its_worker_stops_is_answered(synthetic_run: Path) -> None:
    """A reload (or a TERM) closed idle kept-alive connections at once, so a client's next request,
    already on its way, met a reset. Now it is answered, with ``connection: close``."""
    import http.client

    server = ServeProcess(synthetic_run, "--workers", "1", "--threads", "2")
    host, port = server.url.removeprefix("http://").split(":")
    try:
        (worker,) = server.workers(1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/v1/neighbors?word=w3&k=2")
        first = connection.getresponse()
        assert first.status == 200 and first.getheader("connection") != "close" and first.read()
        worker.send_signal(signal.SIGTERM)  # its graceful stop begins with this connection idle
        time.sleep(0.5)
        connection.request("GET", "/v1/neighbors?word=w3&k=2")  # on the same kept-alive connection
        second = connection.getresponse()
        assert second.status == 200 and second.getheader("connection") == "close"
        assert len(json.loads(second.read())["neighbors"]) == 2
        connection.close()
    finally:
        server.stop()


def test_a_request_whose_headers_are_arriving_as_its_worker_stops_is_answered(synthetic_run: Path) -> None:
    """A client still sending its headers when a reload began was cut off after the 2 s grace for
    idle connections, though it was within the request timeout."""
    server = ServeProcess(synthetic_run, "--workers", "1", "--threads", "2")
    host, port = server.url.removeprefix("http://").split(":")
    try:
        (worker,) = server.workers(1)
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(b"GET /v1/neighbors?word=w3&k=2 HTTP/1.1\r\nHost: 12")
            time.sleep(0.3)
            worker.send_signal(signal.SIGTERM)
            time.sleep(3)  # past the grace an idle connection gets
            sock.sendall(b"7.0.0.1\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer.lower(), answer[:300]
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_a_quick_shutdown_of_the_master_stops_its_workers_at_once(synthetic_run: Path, sig: int) -> None:
    """SIGINT or SIGQUIT to the master (Ctrl-C reaching it alone, as in a foreground container)
    hung for the graceful timeout and ended in SIGKILLs logged as "Perhaps out of memory?"."""
    server = ServeProcess(synthetic_run, "--workers", "2")
    workers = server.workers(2)
    started = time.monotonic()
    server.process.send_signal(sig)
    server.process.wait(timeout=60)
    took = time.monotonic() - started
    _, output = server.stop()
    assert took < 9, (took, output[-2000:])  # the master kills what is left after the graceful timeout
    assert "SIGKILL" not in output and not any(worker.is_running() for worker in workers), output[-2000:]


def test_pipelined_requests_are_read_as_answers_go_out_not_all_at_once(tmp_path: Path,
                                                                       synthetic_run: Path) -> None:
    """A worker parsed every pipelined request a client sent before answering any: 30 connections
    that each sent 4 MiB of GET /healthz and read nothing took it past 2 GB, until gunicorn killed
    it. It now parses a few dozen ahead of their answers and leaves the rest in the socket; a client
    that reads gets every answer, in order."""
    server = ServeProcess(synthetic_run, "--workers", "1", "--threads", "2")
    host, port = server.url.removeprefix("http://").split(":")
    health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    hoarders = []
    try:
        (worker,) = server.workers(1)
        before = worker.memory_info().rss
        for _ in range(12):  # never read: their answers fill the socket, then the worker waits
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.setblocking(False)
            hoarders.append(sock)
        sent = 0
        deadline = time.monotonic() + 8
        while sent < 12 * (2 << 20) and time.monotonic() < deadline:
            for sock in hoarders:
                with contextlib.suppress(BlockingIOError):  # its buffers are full
                    sent += sock.send(health * 400)
            time.sleep(0.001)
        time.sleep(2.0)
        grown = (worker.memory_info().rss - before) >> 20
        last = b"GET /v1/neighbors?word=w1&k=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=30) as sock:  # one that reads
            sock.sendall(health * 5000 + last)
            received = bytearray()
            while chunk := sock.recv(1 << 16):
                received += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    finally:
        for sock in hoarders:
            sock.close()
        code, output = server.stop()
    assert sent >= 4 << 20, sent  # megabytes of requests on their way to the worker
    assert grown < 100, f"the worker grew by {grown} MiB"
    assert len(statuses) == 5001 and set(statuses) == {b"200"} and b'"neighbors"' in received[-400:]
    assert code == 0 and "WORKER TIMEOUT" not in output, output[-2000:]
