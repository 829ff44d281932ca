"""The front of each worker: read a request in full on the event loop, then hand it to a thread.

``BufferedWSGI`` is an ASGI app (run by uvicorn inside each gunicorn worker) around the Flask WSGI
app. uvicorn parses the request line and headers on its event loop; this class then reads the
body there too, up to ``max_body_bytes``, and only then submits the complete request to a pool of
``threads`` request threads. A client that sends its request slowly (1 byte/s) therefore costs one
idle socket on the event loop, never a request thread: the threads only ever run complete requests.
The answer is produced in the thread as a whole (the API's answers are small JSON documents) and
written back by the event loop, so a client that reads slowly does not hold a thread either.

A body over the limit is answered 413 with a JSON error after the rest of the body has been read
and dropped (up to ``max_drain_bytes``), so the client reads the answer instead of a reset
connection.

The bodies a worker holds at once are bounded too, by ``buffered_body_bytes``: otherwise slow
clients that each declare a body of ``max_body_bytes`` and send part of it would make the worker
hold ``max_body_bytes`` for each of them (300 such connections took one worker from 73 MB to 376
MB). A request holds each chunk of its body as it arrives, whatever its ``Content-Length``
declares, until the app has answered it. One whose next chunk would take the worker's total past
the budget is answered 503 at once, with ``Retry-After`` and the connection closed, the rest of
its body left unread; the app is never called.

With ``access_log``, each answer is one line of the ``nlp182.server.access`` logger: gunicorn's
default access format (client, time, request line, status, body bytes, referrer, user agent) and
the milliseconds from the request's headers to its answer's last byte (gunicorn's ``%(M)s``, to
a tenth).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACCESS_LOGGER = "nlp182.server.access"
access_log = logging.getLogger(ACCESS_LOGGER)


#: Seconds a request refused for a full body budget is told to wait (``Retry-After``): the bodies
#: held are answered, or time out, within the request timeout, most of them far sooner.
RETRY_AFTER_S = 1


class _Disconnected(Exception):
    """The client went away before its request was complete: there is no one to answer."""


class _Refused(Exception):
    """A request answered here with a JSON error, never reaching the app."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status)
        self.status, self.body = status, body
        self.headers = [(b"content-type", b"application/json"), *(headers or [])]


class _BodyClaim:
    """One request's share of its worker's ``buffered_body_bytes``, given back in full when its
    ``with`` block ends (answered, refused or disconnected).

    Every request of a worker runs on its one event loop, so the shared total needs no lock.
    """

    def __init__(self, owner: BufferedWSGI) -> None:
        self.owner, self.size = owner, 0

    def take(self, size: int) -> bool:
        """Add ``size`` bytes to the claim; False, taking nothing, when the worker's total would
        pass its budget."""
        if self.owner.buffered + size > self.owner.buffered_body_bytes:
            return False
        self.owner.buffered += size
        self.size += size
        return True

    def __enter__(self) -> _BodyClaim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.owner.buffered -= self.size
        self.size = 0


def json_error_body(code: str, message: str, **extra: str) -> bytes:
    """The service's error document ``{"error": {"code", "message", ...extra}}`` as bytes."""
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


def build_environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP ``scope`` whose whole body is ``body``."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf8").decode("latin1"),
        "PATH_INFO": scope["path"].encode("utf8").decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "RAW_URI": (scope.get("raw_path") or scope["path"].encode()).decode("latin1"),  # as gunicorn's
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin1").upper().replace("-", "_")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is complete and de-chunked: its real length was set above
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        value = raw_value.decode("latin1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _run_wsgi(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call ``app`` on a request thread; returns (status, headers, the whole body)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = [status, headers]

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    status, headers = started
    encoded = [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]
    return int(status.split(" ", 1)[0]), encoded, body


def access_line(scope: dict[str, Any], status: int, size: int, seconds: float) -> str:
    """One access-log line for an answered request: gunicorn's default format
    (``%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"``), then the milliseconds
    ``seconds`` took, to a tenth, and ``ms``."""
    client = (scope.get("client") or ("-",))[0]
    headers = dict(scope["headers"])
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    request = f"{scope['method']} {target.decode('latin1')} HTTP/{scope['http_version']}"
    referrer, agent = (headers.get(name, b"-").decode("latin1") for name in (b"referer", b"user-agent"))
    when = time.strftime("[%d/%b/%Y:%H:%M:%S %z]")
    fields = " ".join(f'"{_quoted(text)}"' for text in (referrer, agent))
    return f'{client} - - {when} "{_quoted(request)}" {status} {size} {fields} {seconds * 1000:.1f}ms'


def _quoted(text: str) -> str:
    """``text`` safe inside an access-log field: quotes, backslashes and control characters
    escaped, so a request cannot forge a line."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


class BufferedWSGI:
    """ASGI app serving ``app`` (WSGI) on ``threads`` request threads, each request read in full first.

    Args:
        app: the WSGI app (Flask).
        threads: request threads (concurrent requests in the app).
        max_body_bytes: larger bodies get 413 without reaching the app.
        max_drain_bytes: a refused body is read and dropped up to this size (at least
            ``max_body_bytes``), then answered with ``connection: close`` and the connection closed.
        buffered_body_bytes: the most bytes of request bodies held at once (from a body's first
            byte until the app has answered it); a request that would pass it gets 503.
        refused: called with the method and status of each request answered here (413, 503), so
            the service's metrics count what never reached the app.
        access_log: log one line per answer (see the module's docstring).
    """

    def __init__(
        self,
        app: WSGIApp,
        threads: int,
        max_body_bytes: int,
        max_drain_bytes: int = 64 << 20,
        buffered_body_bytes: int = 64 << 20,
        refused: Callable[[str, int], None] | None = None,
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.refused = refused  # told (method, status) of each request answered here, not by the app
        self.max_body_bytes = max_body_bytes
        self.max_drain_bytes = max(max_drain_bytes, max_body_bytes)  # a body it accepts is read whole
        self.buffered_body_bytes = buffered_body_bytes
        self.buffered = 0  # bytes held by the bodies of this worker's requests (_BodyClaim)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="request")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not served
            return
        started = time.perf_counter()
        try:
            with _BodyClaim(self) as claim:
                status, headers, content = await self._answer(scope, receive, claim)
        except _Disconnected:
            return
        except _Refused as refusal:
            status, headers, content = refusal.status, refusal.headers, refusal.body
            await self._respond(send, status, headers, content)
            if self.refused is not None:
                self.refused(scope["method"], status)
        else:
            await self._respond(send, status, headers, content)
        if self.access_log:
            access_log.info(access_line(scope, status, len(content), time.perf_counter() - started))

    async def _answer(
        self, scope: dict[str, Any], receive: Receive, claim: _BodyClaim
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Read the request's body into ``claim`` and run the app on it in a request thread.

        The body is held only in this call, so it is dropped before the claim is given back.
        """
        environ = build_environ(scope, bytes(await self._read_body(scope, receive, claim)))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _run_wsgi, self.app, environ)

    async def _read_body(self, scope: dict[str, Any], receive: Receive, claim: _BodyClaim) -> bytearray:
        """The whole body, in one buffer counted in ``claim``.

        Raises ``_Refused``: 413 for a body over ``max_body_bytes`` (once the rest of it has been
        read and dropped, up to ``max_drain_bytes``), 503 at once for one whose next chunk would
        take the worker's held bodies past ``buffered_body_bytes`` (the rest of it unread). Bytes
        are counted as they arrive, not as declared: a connection that declares a megabyte and
        sends nothing holds nothing.
        """
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        too_large = length is not None and length > self.max_body_bytes
        text = f"request body is over max_body_bytes ({self.max_body_bytes} bytes)"
        if too_large and headers.get(b"expect", b"").lower() == b"100-continue":
            # The client waits for a go-ahead before it sends the body (curl asks so above 1 MiB):
            # no at once, rather than "100 Continue" and megabytes read only to be dropped.
            raise _Refused(413, json_error_body("request_entity_too_large", text, limit="max_body_bytes"),
                           [(b"connection", b"close")])
        body = bytearray()
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            too_large = too_large or size > self.max_body_bytes
            if too_large:
                body.clear()  # only its size matters now
            elif not claim.take(len(chunk)):
                raise self._busy()
            else:
                body += chunk
            more = message.get("more_body", False)
            if more and too_large and size > self.max_drain_bytes:  # the rest unread: the connection ends
                raise _Refused(413, json_error_body("request_entity_too_large", text, limit="max_body_bytes"),
                               [(b"connection", b"close")])
        if too_large:
            raise _Refused(413, json_error_body("request_entity_too_large", text, limit="max_body_bytes"))
        return body

    def _busy(self) -> _Refused:
        """The 503 of a request whose body would take the worker past ``buffered_body_bytes``;
        its connection is closed after the answer, as the rest of its body is not read."""
        message = (f"the server holds its most request body bytes at once (buffered_body_bytes, "
                   f"{self.buffered_body_bytes} bytes); retry in {RETRY_AFTER_S} s")
        body = json_error_body("server_busy", message, limit="buffered_body_bytes")
        return _Refused(503, body, [(b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")])

    @staticmethod
    async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [(name, value) for name, value in headers if name != b"date"]  # uvicorn writes the one Date
        bodiless = status < 200 or status in (204, 304)  # a Content-Length there must not be 0 (RFC 9110)
        if not bodiless and not any(name == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
