"""The Flask app factory of the similarity service.

``create_app(run_dir)`` loads the run's vectors (memory-mapped) and its FAISS index (memory-mapped,
checked against the vocabulary), then serves the JSON API described by ``/openapi.json``, the
Prometheus ``/metrics`` and the web page at ``/``. The app holds no state a request can change:
every answer is a pure function of the run folder. Production serving is gunicorn
(``nlp182 serve``); Flask's development server is never used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from flask import Flask, Response, g, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError, Nlp182Error, UnknownWordError
from server.batching import MicroBatcher
from server.config import AppConfig
from server.index import SimilarityIndex
from server.metrics import Metrics
from server.openapi import build_spec
from server.queries import METHODS, Answer, QueryService
from server.validation import (
    MAX_ANALOGY_WORDS,
    MAX_BATCH,
    MAX_K,
    MAX_WORD_LENGTH,
    body_int,
    json_object,
    query_int,
    query_string,
    vector_list,
    word_list,
)

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")


def _neighbors_json(answer: Answer) -> list[dict[str, Any]]:
    return [{"word": word, "score": score} for word, score in answer]


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def create_app(run_dir: str | os.PathLike[str], config: AppConfig | None = None) -> Flask:
    """Build the app over the run folder ``run_dir`` (which must hold an index: ``nlp182 index``)."""
    config = config or AppConfig()
    vectors = Vectors.load(run_dir, mmap=True)
    index = SimilarityIndex.load(run_dir, vectors)
    index.prefault()
    batcher = None
    if config.batch_max > 1:
        batcher = MicroBatcher(index.search, config.batch_window_ms / 1000.0, config.batch_max)
    service = QueryService(vectors, index, batcher)
    metrics = Metrics()
    spec = build_spec(index.dim, config.max_body_bytes)
    log.info("serving %s: %d words x %d dims, %s index", run_dir, len(vectors), index.dim, index.kind)

    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    pinned = threading.local()  # OpenMP's thread count is per thread: set it once on each

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()
        if config.omp_threads and getattr(pinned, "threads", 0) != config.omp_threads:
            faiss.omp_set_num_threads(config.omp_threads)
            pinned.threads = config.omp_threads

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - g.started)
        return response

    @app.errorhandler(Nlp182Error)
    def _package_error(exc: Nlp182Error) -> Response:
        extra = {"suggestions": exc.suggestions} if isinstance(exc, UnknownWordError) else {}
        return _error(exc.status, exc.code, str(exc), **extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = _error(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", "the server failed to answer; the error is logged")

    def body(allowed: set[str]) -> dict[str, Any]:
        return json_object(request.get_data(cache=False), allowed)

    @app.get("/v1/neighbors")
    def neighbors() -> Response:
        word = query_string(request.args, "word")
        k = query_int(request.args, "k", 10, 1, MAX_K)
        return jsonify({"word": word, "k": k, "neighbors": _neighbors_json(service.neighbors(word, k))})

    @app.post("/v1/neighbors")
    def neighbors_batch() -> Response:
        data = body({"words", "vectors", "k"})
        k = body_int(data, "k", 10, 1, MAX_K)
        if ("words" in data) == ("vectors" in data):
            raise InvalidInputError("send exactly one of 'words' (a list of words) or 'vectors' (of vectors)")
        if "words" in data:
            words = word_list(data, "words", 1, MAX_BATCH)
            answers = service.neighbors_batch(words, k)
            pairs = zip(words, answers, strict=True)
            results = [{"word": w, "neighbors": _neighbors_json(a)} for w, a in pairs]
        else:
            queries = vector_list(data, "vectors", service.dim, MAX_BATCH)
            results = [{"neighbors": _neighbors_json(a)} for a in service.neighbors_of_vectors(queries, k)]
        return jsonify({"k": k, "results": results})

    @app.get("/v1/similarity")
    def similarity() -> Response:
        a, b = query_string(request.args, "a"), query_string(request.args, "b")
        return jsonify({"a": a, "b": b, "similarity": service.similarity(a, b)})

    @app.post("/v1/analogy")
    def analogy() -> Response:
        data = body({"positive", "negative", "k", "method"})
        positive = word_list(data, "positive", 1, MAX_ANALOGY_WORDS)
        negative = word_list(data, "negative", 0, MAX_ANALOGY_WORDS)
        k = body_int(data, "k", 10, 1, MAX_K)
        method = data.get("method", "3CosAdd")
        if method not in METHODS:
            raise InvalidInputError(f"'method' must be one of {', '.join(METHODS)}, got {str(method)[:40]!r}")
        answers = service.analogy(positive, negative, k, method)
        return jsonify({"positive": positive, "negative": negative, "method": method, "k": k,
                        "answers": _neighbors_json(answers)})

    @app.get("/v1/vectors/<path:word>")
    def vector(word: str) -> Response:
        values = np.asarray(vectors[word], dtype=np.float64)
        return jsonify({"word": word, "dim": vectors.dim, "vector": values.tolist()})

    @app.get("/v1/vocab")
    def vocab() -> Response:
        prefix = request.args.get("prefix", "")
        if len(prefix) > MAX_WORD_LENGTH:
            raise InvalidInputError(f"query parameter 'prefix' is longer than {MAX_WORD_LENGTH} characters")
        limit = query_int(request.args, "limit", 10, 1, 100)
        words = vectors.with_prefix(prefix, limit) if prefix else vectors.words[:limit]
        return jsonify({"prefix": prefix, "words": words})

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        _, ids = index.search(index.unit[:1], 1)
        if ids[0, 0] < 0:
            return _error(503, "not_ready", "the index returned no result for a probe query")
        return jsonify({"status": "ready", "words": len(vectors), "dim": index.dim, "index": index.kind})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), content_type=metrics.content_type)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(spec)

    @app.get("/")
    def page() -> Response:
        return send_from_directory(STATIC_DIR, "index.html")

    return app
