"""A worker's budget of request-body bytes held at once (``BufferedWSGI(buffered_body_bytes=...)``).

In-process: the ASGI app is driven with fake ``receive``/``send`` callables on one event loop, as
uvicorn drives it, and requests whose bodies arrive when the test releases them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest

from nlp182.cli import build_parser
from nlp182.errors import InvalidInputError
from nlp182.server.asgi import BufferedWSGI
from nlp182.server.config import ServeConfig

MAX_BODY = 4096
BUDGET = 6000


def _echo_length(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A WSGI app answering the length of the body it was given."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(body)).encode()]


def _scope(content_length: int | None) -> dict[str, Any]:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    return {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
            "http_version": "1.1", "headers": headers}


class _Request:
    """One request in flight: its body chunks are queued by the test, its answer collected."""

    def __init__(self, app: BufferedWSGI, content_length: int | None) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received = 0  # receive() calls the app made
        self.sent: list[dict[str, Any]] = []
        self.task = asyncio.create_task(app(_scope(content_length), self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def chunk(self, size: int, more: bool = True) -> None:
        self.incoming.put_nowait({"type": "http.request", "body": b"x" * size, "more_body": more})

    async def answer(self) -> tuple[int, dict[bytes, bytes], bytes]:
        await asyncio.wait_for(self.task, 5)
        start, body = self.sent
        return start["status"], dict(start["headers"]), body["body"]


async def _settle() -> None:
    """Let every request task run until it waits for a body chunk (or is done)."""
    for _ in range(20):
        await asyncio.sleep(0)


def _assert_busy(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
    assert status == 503
    assert headers[b"retry-after"] == b"1" and headers[b"connection"] == b"close"
    error = json.loads(body)["error"]
    assert error["code"] == "server_busy" and error["limit"] == "buffered_body_bytes"
    assert str(BUDGET) in error["message"]


def test_bodies_are_counted_as_they_arrive_and_503_past_the_budget() -> None:
    async def scenario() -> None:
        refused: list[tuple[str, int]] = []
        app = BufferedWSGI(_echo_length, threads=2, max_body_bytes=MAX_BODY, buffered_body_bytes=BUDGET,
                           refused=lambda method, status: refused.append((method, status)))
        first = _Request(app, MAX_BODY)  # a slow client holds the bytes it has sent, not its declared length
        first.chunk(1000)
        await _settle()
        assert app.buffered == 1000 and not first.task.done()

        stalled = [_Request(app, MAX_BODY) for _ in range(3)]  # 3 x 4096 declared, nothing sent
        await _settle()
        assert app.buffered == 1000

        second = _Request(app, MAX_BODY)
        second.chunk(3000)
        await _settle()
        assert app.buffered == 4000

        chunked = _Request(app, None)  # no Content-Length: counted the same way
        chunked.chunk(1000)
        await _settle()
        assert app.buffered == 5000
        chunked.chunk(1500)  # 5000 + 1500 > 6000: refused, the rest unread
        _assert_busy(*await chunked.answer())
        assert app.buffered == 4000
        assert refused == [("POST", 503)]

        second.chunk(MAX_BODY - 3000, more=False)
        assert (await second.answer())[::2] == (200, b"4096")
        first.chunk(MAX_BODY - 1000, more=False)
        assert await first.answer() == (200, {b"content-type": b"text/plain", b"content-length": b"4"},
                                        b"4096")
        assert app.buffered == 0
        for request in stalled:
            request.incoming.put_nowait({"type": "http.disconnect"})
            await asyncio.wait_for(request.task, 5)

        again = _Request(app, MAX_BODY)  # the budget is free again once the first is answered
        again.chunk(MAX_BODY, more=False)
        assert (await again.answer())[::2] == (200, b"4096")

        gone = _Request(app, MAX_BODY)  # a client that leaves mid-body gives its share back
        gone.chunk(10)
        gone.incoming.put_nowait({"type": "http.disconnect"})
        await asyncio.wait_for(gone.task, 5)
        assert gone.sent == [] and app.buffered == 0

        too_large = _Request(app, MAX_BODY + 1)  # over max_body_bytes: 413, never held
        too_large.chunk(MAX_BODY + 1, more=False)
        status, _, body = await too_large.answer()
        assert status == 413 and json.loads(body)["error"]["limit"] == "max_body_bytes"
        assert app.buffered == 0
        app.executor.shutdown(wait=True)

    asyncio.run(scenario())


def test_the_budget_is_a_serve_setting_of_at_least_max_body_bytes() -> None:
    assert ServeConfig().buffered_body_bytes == 64 << 20
    args = build_parser().parse_args(["serve", "run", "--buffered-body-bytes", "8192"])
    assert args.buffered_body_bytes == 8192
    assert ServeConfig(max_body_bytes=4096, buffered_body_bytes=4096).buffered_body_bytes == 4096
    with pytest.raises(InvalidInputError, match=r"--buffered-body-bytes .* at least --max-body-bytes"):
        ServeConfig(max_body_bytes=8192, buffered_body_bytes=4096)


def test_a_refused_body_is_drained_up_to_its_bound_then_the_connection_is_closed() -> None:
    """Past max_drain_bytes the 413 said nothing of the connection, so uvicorn kept it open and read
    the rest, a gigabyte if sent; a body max_body_bytes accepts is read whole, whatever the bound."""
    async def scenario() -> None:
        app = BufferedWSGI(_echo_length, threads=1, max_body_bytes=MAX_BODY, max_drain_bytes=3 * MAX_BODY,
                           buffered_body_bytes=BUDGET)
        flood = _Request(app, 1 << 30)
        for _ in range(4):
            flood.chunk(MAX_BODY)
        status, headers, _ = await flood.answer()
        assert status == 413 and headers[b"connection"] == b"close" and flood.received == 4
        drained = _Request(app, 2 * MAX_BODY)  # over the limit, within the drain: read, then 413
        drained.chunk(MAX_BODY)
        drained.chunk(MAX_BODY, more=False)
        status, headers, _ = await drained.answer()
        assert status == 413 and b"connection" not in headers
        roomy = BufferedWSGI(_echo_length, threads=1, max_body_bytes=4 * MAX_BODY, max_drain_bytes=MAX_BODY,
                             buffered_body_bytes=8 * MAX_BODY)
        whole = _Request(roomy, 3 * MAX_BODY)
        for more in (True, True, False):
            whole.chunk(MAX_BODY, more=more)
        assert (await whole.answer())[::2] == (200, str(3 * MAX_BODY).encode())
        for wsgi in (app, roomy):
            wsgi.executor.shutdown(wait=True)

    asyncio.run(scenario())
