"""The Flask app factory of the similarity service.

``create_app(run_dir)`` loads the run's vectors (memory-mapped) and its FAISS index (memory-mapped,
checked against the vocabulary), registers the API blueprint (``nlp182.server.routes``, whose
declarations also produce ``/openapi.json``) and the checks every request passes: its ``Host`` is
an allowed name, a POST body is ``application/json``, and every refusal is a JSON error. The app
holds no state a request can change: every answer is a pure function of the run folder.
Production serving is gunicorn with uvicorn workers (``nlp182 serve``); Flask's development server
is never used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

import faiss
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from nlp182.errors import Nlp182Error, UnknownWordError
from nlp182.server.config import AppConfig, Limits, host_name
from nlp182.server.encoding import FiniteJSONProvider
from nlp182.server.index import SimilarityIndex, load_vectors
from nlp182.server.metrics import Metrics
from nlp182.server.microbatch import MicroBatcher
from nlp182.server.queries import QueryService
from nlp182.server.routes import CONVERTERS, Service, api, error_response, routes, spec_settings
from nlp182.server.validation import OverLimitError

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")


def _is_utf8(raw: bytes) -> bool:
    """Whether a raw path or query string decodes as UTF-8: Werkzeug reads ``%E9`` (Latin-1 é)
    as U+FFFD, which would be looked up as a word and answered 404 instead of naming the encoding."""
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _post_refusal() -> Response | None:
    """The error answer to a POST whose body is not UTF-8 JSON or that has query parameters (``?k=500``
    would be dropped unseen: a POST takes its parameters in the body), else ``None``."""
    if request.mimetype != "application/json":
        return error_response(415, "unsupported_media_type",
                              f"POST bodies must be application/json, got {request.mimetype[:60]!r}")
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("identity", ""):
        return error_response(415, "unsupported_media_type",
                              f"JSON bodies are sent uncompressed, got Content-Encoding {coding[:40]!r}")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):  # RFC 8259 8.1
        return error_response(415, "unsupported_media_type",
                              f"JSON bodies are UTF-8, got charset={charset[:40]!r}")
    if request.args:
        names = ", ".join(repr(name[:40]) for name in list(request.args)[:5])
        return error_response(400, "bad_request", f"a POST takes its parameters in the JSON body, not the "
                              f"query string; got {names}")
    return None


def _spec_description(limits: Limits) -> str:
    return (f"Nearest neighbours over word vectors (FAISS). Request bodies are limited to "
            f"{limits.max_body_bytes} bytes and each request's work by the settings max_k, max_batch, "
            f"max_results and max_analogy_words (400 or 413 above, naming the setting). POST bodies must be "
            "application/json (415 otherwise); a query parameter not listed (a POST takes none), or "
            "given twice, is a 400. Every error body is {\"error\": {\"code\", \"message\"}}.")


def create_app(run_dir: str | os.PathLike[str], config: AppConfig | None = None) -> Flask:
    """Build the app over the run folder ``run_dir`` (which must hold an index: ``nlp182 index``)."""
    config = config or AppConfig()
    vectors = load_vectors(run_dir)
    index = SimilarityIndex.load(run_dir, vectors)
    index.set_search(config.ef_search, config.nprobe)
    index.prefault()
    batcher = None
    if config.batch_max > 1:
        batcher = MicroBatcher(index.search, config.batch_window_ms / 1000.0, config.batch_max,
                               key=index.batch_key)
    limits = config.limits
    spec = routes.spec(index.dim, spec_settings(limits), _spec_description(limits))
    service = Service(Path(run_dir).resolve().name, vectors, vectors.lookup,
                      index, QueryService(vectors, index, batcher), limits, Metrics(), spec, str(STATIC_DIR))
    log.info("serving %s: %d words x %d dims, %s index", run_dir, len(vectors), index.dim, index.kind)

    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.json = FiniteJSONProvider(app)  # nan/inf as null: every body is standard JSON
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.extensions["nlp182"] = service
    app.url_map.converters.update(CONVERTERS)
    app.url_map.merge_slashes = False  # the static files' rule too: no HTML redirect for "//"
    app.register_blueprint(api)
    allowed_hosts = set(config.allowed_hosts)
    pinned = threading.local()  # OpenMP's thread count is per thread: set it once on each

    @app.before_request
    def _guard() -> Response | None:
        g.started = time.perf_counter()
        if config.omp_threads and getattr(pinned, "threads", 0) != config.omp_threads:
            faiss.omp_set_num_threads(config.omp_threads)
            pinned.threads = config.omp_threads
        given = request.environ.get("HTTP_HOST")
        if given is None and request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1":  # RFC 9112 3.2
            return error_response(400, "bad_request", "an HTTP/1.1 request must name its Host")
        if given is not None and "," in given:  # two Host headers, joined: which one is meant?
            return error_response(400, "bad_request", "the request has several Host headers; send one")
        if "*" not in allowed_hosts and host_name(request.host) not in allowed_hosts:
            return error_response(400, "host_not_allowed",
                                  f"Host {request.host[:80]!r} is not served here; allowed: "
                                  f"{', '.join(sorted(allowed_hosts))} (nlp182 serve --allowed-hosts)")
        routed = request.routing_exception is None  # an unknown route or method answers 404/405 first
        raw_path = request.environ.get("RAW_URI", "").partition("?")[0].encode("latin1")
        if routed and not (_is_utf8(raw_path) and _is_utf8(request.query_string)):
            return error_response(400, "bad_encoding",
                                  "the URL is not UTF-8 once percent-decoded: percent-encode each "
                                  "word's UTF-8 bytes (café is caf%C3%A9)")
        return _post_refusal() if routed and request.method == "POST" else None

    @app.after_request
    def _count(response: Response) -> Response:
        # Answers change with a reload and probes must reach the worker: no cache keeps them; the
        # web page and its files carry their own validators (ETag, no-cache)
        response.headers.setdefault("Cache-Control", "no-store")
        if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
            response.status_code = 204  # Flask's automatic answer: the Allow header, no (HTML) body
            del response.headers["Content-Type"]
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started = g.get("started", time.perf_counter())
        service.metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - started)
        return response

    @app.errorhandler(Nlp182Error)
    def _package_error(exc: Nlp182Error) -> Response:
        extra: dict = {}
        if isinstance(exc, UnknownWordError):
            extra = {"suggestions": exc.suggestions, "unknown": exc.unknown}
        if isinstance(exc, OverLimitError):
            extra["limit"] = exc.limit
        return error_response(exc.status, exc.code, str(exc), **extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:  # Flask's own body cap: named as every limit is
            message = f"request body is over max_body_bytes ({config.limits.max_body_bytes} bytes)"
            return error_response(413, code, message, limit="max_body_bytes")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to answer; the error is logged")

    return app
