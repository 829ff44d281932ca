"""The gunicorn worker class: uvicorn's event loop, with every protocol-level refusal in JSON.

gunicorn (the master) keeps its process model: it binds the socket, forks the workers, replaces
them on ``kill -HUP`` and restarts one that dies. Each worker runs uvicorn's asyncio server with
the httptools parser, so requests are parsed on an event loop (see ``nlp182.server.asgi`` for why). The
protocol subclass bounds what the parser accepts and answers what it refuses as the API does:
a request line over ``MAX_URL_BYTES`` gets 414, headers over ``MAX_HEADER_BYTES`` in total get
431, a request not received in full within ``read_timeout`` seconds of its connection or its
first byte gets 408 (so slow clients hold a socket for a bounded time), anything else malformed
gets 400, each with a JSON ``{"error": {"code", "message"}}`` body.

A worker stops when its master is gone (killed with SIGKILL, which runs no cleanup): otherwise it
would keep the socket open and answer requests with nobody to restart or stop it, and the next
``serve`` could not bind the port. On Linux the kernel sends it SIGTERM when the master dies
(``prctl(PR_SET_PDEATHSIG)``); everywhere, the worker also checks once a second that its parent is
still the master and stops itself (the same graceful SIGTERM) when it is not, and exits at once
when that stop takes longer than gunicorn's graceful timeout, as its master would have made it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from nlp182.server.asgi import ACCESS_LOGGER, json_error_body
from nlp182.signals import die_with_parent

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
#: Requests of one connection parsed ahead of their answers (pipelined) at most; what the client
#: sent after them waits unparsed, and in the socket, until answers go out. Unbounded, 30
#: connections that pipelined 4 MiB of ``GET /healthz`` each took a worker past 2 GB.
MAX_QUEUED_REQUESTS = 32
#: Bytes handed to the parser at a time, so one read of tiny pipelined requests (up to 256 KiB,
#: thousands of them) cannot queue them all before the bound is looked at.
FEED_BYTES = 16 * 1024


class Refusal(Exception):
    """A request the parser stops reading: its status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _HoldingFlow(FlowControl):
    """uvicorn's flow control, except that reading stays paused while the connection holds bytes
    it has not parsed: each queued request's ``receive()`` resumed reading, however many waited."""

    def __init__(self, transport: asyncio.Transport, holding: Callable[[], bool]) -> None:
        super().__init__(transport)
        self._holding = holding

    def resume_reading(self) -> None:
        if not self._holding():
            super().resume_reading()


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request lines, headers and read time, refusing in JSON.

    ``read_timeout`` is set per worker from ``ServeConfig.request_timeout`` (``post_fork``).
    """

    read_timeout: ClassVar[float] = 30.0
    #: Seconds a connection accepted just before a graceful stop has to send its first request.
    shutdown_grace: ClassVar[float] = 2.0
    #: Told (method, status) of each refusal; the worker's app sets it to count them in its metrics.
    on_refusal: ClassVar[Callable[[str, int], None] | None] = None
    read_timer: asyncio.TimerHandle | None = None
    draining = False
    #: Between a request's first byte and the end of its headers; ``cycle`` is still the previous
    #: request's then (uvicorn makes a new one once the headers are in), already answered.
    reading_head = False
    #: The method of the request being read, once its request line got that far (for metrics).
    request_method: str | None = None
    #: A refusal of a pipelined request, held until the answers owed to the requests before it
    #: on the connection are sent (writing it at once closed the connection before them).
    pending_refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.held = bytearray()  # received, not yet parsed: MAX_QUEUED_REQUESTS are waiting
        self.held_from = 0
        self.flow = _HoldingFlow(transport, self._holding)
        self._arm()

    def _arm(self) -> None:
        if self.read_timer is None:
            self.read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _read_timed_out(self) -> None:
        self.read_timer = None
        if not self.reading_head and self.cycle is not None and self.cycle.response_started:
            return
        self.refuse(Refusal(408, "request_timeout",
                            f"the request was not received in full within {self.read_timeout:g} s"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.reading_head = True
        self.request_method = None
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.held, self.held_from = bytearray(), 0
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answer the request that was on its way, then close

    def shutdown(self) -> None:
        """Graceful stop (HUP, TERM): finish what is in flight, then close.

        uvicorn closes every connection without a request in progress. A request already on its
        way on such a connection (the kernel accepted a new connection, or a kept-alive client sent
        its next request) would then be reset, and its client would see an error for a request it
        sent in time. So an idle connection, new or kept alive, gets ``shutdown_grace`` seconds to
        deliver a request, which is answered with ``connection: close``; then it is closed.
        """
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.draining = True
            self.loop.call_later(self.shutdown_grace, self._close_if_idle)
            return
        super().shutdown()

    def _close_if_idle(self) -> None:
        if self.reading_head:  # a request is arriving (within the read timeout): answered, then closed
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next queued request: room for more
        if self._holding() and not self.transport.is_closing():
            self._feed_held()
        if self.pending_refusal is not None and not self._answers_owed():
            refusal, self.pending_refusal = self.pending_refusal, None
            self._send_refusal(refusal)
            return
        if not self.reading_head:  # the next request's head may already be on its way (and timed)
            self._disarm()  # an idle kept-alive connection is uvicorn's keep-alive timeout's to close

    def on_url(self, url: bytes) -> None:
        if self.request_method is None:  # the method is parsed once the target starts
            self.request_method = self.parser.get_method().decode("latin1")
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise Refusal(414, "uri_too_long", f"the request target is over {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            raise Refusal(431, "request_header_fields_too_large",
                          f"the request headers are over {MAX_HEADER_BYTES} bytes in total")
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        if self.pending_refusal is not None:  # what follows a refused request is not read
            return
        if not self._holding():
            self.held, self.held_from = bytearray(data), 0
        else:
            self.held += data
        self._feed_held()

    def _holding(self) -> bool:
        """Whether bytes received on this connection wait to be parsed."""
        return self.held_from < len(self.held)

    def _feed_held(self) -> None:
        """Parse what is held, ``FEED_BYTES`` at a time, while fewer than ``MAX_QUEUED_REQUESTS``
        requests wait for their answers; keep the rest, and stop reading, until answers go out."""
        while (self._holding() and len(self.pipeline) < MAX_QUEUED_REQUESTS
               and self.pending_refusal is None and not self.transport.is_closing()):
            start, self.held_from = self.held_from, min(self.held_from + FEED_BYTES, len(self.held))
            if not self._parse(memoryview(self.held)[start : self.held_from]):
                self.held, self.held_from = bytearray(), 0  # the parser reads nothing after
                return
        if self._holding():
            self.flow.pause_reading()
        else:
            self.held, self.held_from = bytearray(), 0

    def _parse(self, data: memoryview) -> bool:
        """Feed ``data`` to the parser; False when it reads no more on this connection."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._get_upgrade() == b"websocket":  # a client that can only speak WebSocket: this
                # request's own answer, in place of the app's
                self._send_refusal(Refusal(400, "bad_request", "this service offers no WebSocket: send HTTP"))
                return False
            # An offer to switch protocols (curl --http2 sends "Upgrade: h2c") is declined by
            # answering over HTTP/1.1, as RFC 9110 7.8 allows; the parser reads nothing after it,
            # so the connection closes once the answer is sent.
            self.logger.debug("answering over HTTP/1.1 a request that offered an upgrade")
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return False
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self.refuse(cause if isinstance(cause, Refusal) else Refusal(400, "bad_request", str(exc) or
                                                                         "malformed HTTP request"))
            return False
        return True

    def send_400_response(self, msg: str) -> None:
        self.refuse(Refusal(400, "bad_request", msg))

    def _answers_owed(self) -> bool:
        """Whether a request received in full on this connection is still to be answered."""
        received = self.cycle is not None and not self.cycle.more_body
        return bool(self.pipeline) or (received and not self.cycle.response_complete)

    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` as JSON and close the connection, after the answers owed to the
        requests before it (pipelined on the same connection)."""
        if self._answers_owed() and not self.transport.is_closing():
            self.pending_refusal = refusal
            return
        self._send_refusal(refusal)

    def _send_refusal(self, refusal: Refusal) -> None:
        self.logger.warning("refused a request: %s %s", refusal.status, refusal)
        body = json_error_body(refusal.code, str(refusal))
        head = [STATUS_LINE[refusal.status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                    % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        if self.on_refusal is not None:
            self.on_refusal(self.request_method or "other", refusal.status)


class Worker(UvicornWorker):
    """gunicorn worker running uvicorn's asyncio loop with ``JsonErrorsProtocol``; it stops when
    its master is gone (``parent_poll_s``: seconds between checks of the parent pid)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {  # the app writes the access log (with latency)
        "loop": "asyncio", "http": JsonErrorsProtocol, "ws": "none", "lifespan": "on", "access_log": False,
    }
    parent_poll_s: ClassVar[float] = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        access = logging.getLogger(ACCESS_LOGGER)  # to where gunicorn's --access-logfile points
        access.handlers = self.log.access_log.handlers
        access.setLevel(self.log.access_log.level)
        access.propagate = False

    def init_process(self) -> None:
        die_with_parent()
        if os.getppid() != self.ppid:  # the master died before the kernel could be asked
            sys.exit(0)
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGQUIT from the master, its quick shutdown (on SIGINT or SIGQUIT): gunicorn's handler
        only marks the worker as done, which uvicorn never reads, so the master waited its graceful
        timeout and then killed the workers ("was sent SIGKILL! Perhaps out of memory?"). Stop
        uvicorn as SIGTERM does: no new connections, the requests in flight answered."""
        super().handle_exit(sig, frame)
        os.kill(os.getpid(), signal.SIGTERM)

    async def _serve(self) -> None:
        watcher = asyncio.get_running_loop().create_task(self._watch_parent())
        try:
            await super()._serve()
        finally:
            watcher.cancel()

    async def _watch_parent(self) -> None:
        while os.getppid() == self.ppid:
            await asyncio.sleep(self.parent_poll_s)
        self.log.warning("worker %s: the master (pid %s) is gone; stopping", os.getpid(), self.ppid)
        os.kill(os.getpid(), signal.SIGTERM)
        # A master would kill a worker still busy after its graceful timeout (a request still
        # arriving, held by the read timeout); with none left, the worker does it itself.
        await asyncio.sleep(self.cfg.graceful_timeout)
        self.log.warning("worker %s: still busy %gs after its master died; exiting", os.getpid(),
                         self.cfg.graceful_timeout)
        os._exit(0)
