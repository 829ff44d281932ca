"""The service's routes: one blueprint, each view declared once with its OpenAPI operation.

A view reads the app's ``Service`` (``service()``), checks its input against the ``Limits`` before
any search (``nlp182.server.validation``), and returns JSON. Adding an endpoint is one decorated function
here (its route and its spec) plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from werkzeug.routing import PathConverter

from nlp182.embeddings.lookup import WordLookup
from nlp182.embeddings.projection import pca_2d
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.server.config import Limits
from nlp182.server.index import SimilarityIndex
from nlp182.server.metrics import Metrics
from nlp182.server.openapi import (
    K_PARAM,
    NEIGHBORS,
    VECTOR,
    WORD,
    K,
    RouteTable,
    Setting,
    json_response,
    obj,
    query,
)
from nlp182.server.queries import METHODS, Answer, QueryService
from nlp182.server.validation import (
    MAX_WORD_LENGTH,
    answers_wanted,
    at_most,
    body_int,
    json_object,
    query_args,
    query_int,
    query_string,
    vector_list,
    word_list,
)

MAX_VOCAB_LIMIT = 100
MAX_MAP_K = 50


@dataclass
class Service:
    """Everything the views read; built once per app (``create_app``), never changed by a request."""

    run_name: str
    vectors: Vectors
    lookup: WordLookup
    index: SimilarityIndex
    queries: QueryService
    limits: Limits
    metrics: Metrics
    spec: dict[str, Any]
    static_dir: str


def spec_settings(limits: Limits) -> dict[str, int]:
    """The values of the spec's ``Setting`` placeholders under ``limits``: its fields and the bounds
    derived from them."""
    map_k = min(MAX_MAP_K, limits.max_k)
    return {**vars(limits), "default_k": limits.default_k, "max_map_k": map_k, "max_map_points": map_k + 1}


def service() -> Service:
    """The app's query service (vectors and index)."""
    return current_app.extensions["nlp182"]


api = Blueprint("api", __name__)
routes = RouteTable(api)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """The service's JSON error ``{"error": {"code", "message", ...extra}}`` with ``status``."""
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def _neighbors_json(answer: Answer) -> list[dict[str, Any]]:
    return [{"word": word, "score": score} for word, score in answer]


def _word(name: str, description: str) -> dict[str, Any]:
    return query(name, WORD, description, required=True)


def _k(args: Any, most: int | None = None) -> int:
    """The query's ``k``: the default when absent, at most ``max_k`` (and ``most``), and as one
    query's answers at most ``max_results``."""
    limits = service().limits
    return _one_query(answers_wanted(query_int(args, "k", limits.default_k, 1, most), limits.max_k))


def _one_query(k: int) -> int:
    """``k`` answers of one query, within ``max_results`` (queries x k) as a batch's are (413)."""
    at_most("k", k, service().limits.max_results, "max_results")
    return k


@routes.route("/v1/neighbors", "GET", "Nearest words of one word (the word itself left out)",
              json_response(obj(["word", "k", "neighbors"], word={"type": "string"}, k={"type": "integer"},
                                neighbors=NEIGHBORS), "neighbours, best first"),
              parameters=[_word("word", "the query word"), K_PARAM], errors=(400, 404))
def neighbors() -> Response:
    args = query_args(request.args, {"word", "k"})
    word, k = query_string(args, "word"), _k(args)
    state = service()
    answer = state.queries.neighbors(state.lookup.row(word), k)
    return jsonify({"word": word, "k": k, "neighbors": _neighbors_json(answer)})


BATCH_ANSWER = obj(["k", "results"], k={"type": "integer"}, results={"type": "array", "items": obj(
    ["neighbors"], word={"type": "string"}, neighbors=NEIGHBORS)})


@routes.route("/v1/neighbors", "POST", "Nearest words of a batch of words or of raw vectors",
              json_response(BATCH_ANSWER, "one neighbour list per query, in order"),
              body="WordsBatch|VectorsBatch", errors=(400, 404, 413, 415))
def neighbors_batch() -> Response:
    state, limits = service(), service().limits
    data = json_object(request.get_data(cache=False), {"words", "vectors", "k"})
    k = answers_wanted(body_int(data, "k", limits.default_k, 1, None), limits.max_k)
    if ("words" in data) == ("vectors" in data):
        raise InvalidInputError("send exactly one of 'words' (a list of words) or 'vectors' (of vectors)")
    if "words" in data:
        words = word_list(data, "words", 1)
        at_most("the number of words", len(words), limits.max_batch, "max_batch", status=400)
        at_most("words x k", len(words) * k, limits.max_results, "max_results")
        answers = state.queries.neighbors_batch(state.lookup.rows(words), k)
        results = [{"word": w, "neighbors": _neighbors_json(a)} for w, a in zip(words, answers, strict=True)]
    else:
        queries = vector_list(data, "vectors", state.queries.dim, limits.max_batch)
        at_most("vectors x k", len(queries) * k, limits.max_results, "max_results")
        results = [{"neighbors": _neighbors_json(a)} for a in state.queries.neighbors_of_vectors(queries, k)]
    return jsonify({"k": k, "results": results})


@routes.route("/v1/similarity", "GET", "Cosine similarity of two words",
              json_response(obj(["a", "b", "similarity"], a={"type": "string"}, b={"type": "string"},
                                similarity={"type": "number", "minimum": -1.001, "maximum": 1.001}),
                            "cosine similarity"),
              parameters=[_word("a", "first word"), _word("b", "second word")], errors=(400, 404))
def similarity() -> Response:
    args = query_args(request.args, {"a", "b"})
    a, b = query_string(args, "a"), query_string(args, "b")
    state = service()
    return jsonify({"a": a, "b": b, "similarity": state.queries.similarity(*state.lookup.rows([a, b]))})


ANALOGY_ANSWER = obj(["positive", "negative", "method", "k", "answers"],
                     positive={"type": "array", "items": {"type": "string"}},
                     negative={"type": "array", "items": {"type": "string"}},
                     method={"type": "string"}, k={"type": "integer"}, answers=NEIGHBORS)


@routes.route("/v1/analogy", "POST", "Analogy (positive - negative) by 3CosAdd or 3CosMul",
              json_response(ANALOGY_ANSWER, "answers, best first"), body="AnalogyRequest",
              errors=(400, 404, 413, 415))
def analogy() -> Response:
    state, limits = service(), service().limits
    data = json_object(request.get_data(cache=False), {"positive", "negative", "k", "method"})
    positive, negative = word_list(data, "positive", 1), word_list(data, "negative", 0)
    for name, words in (("positive", positive), ("negative", negative)):
        at_most(f"the number of {name} words", len(words), limits.max_analogy_words, "max_analogy_words", 400)
    k = _one_query(answers_wanted(body_int(data, "k", limits.default_k, 1, None), limits.max_k))
    method = data.get("method", "3CosAdd")
    if method not in METHODS:
        raise InvalidInputError(f"'method' must be one of {', '.join(METHODS)}, got {str(method)[:40]!r}")
    rows = state.lookup.rows(positive + negative)
    answers = state.queries.analogy(rows[: len(positive)], rows[len(positive) :], k, method)
    return jsonify({"positive": positive, "negative": negative, "method": method, "k": k,
                    "answers": _neighbors_json(answers)})


class WordConverter(PathConverter):
    """A word in a URL path: any characters, slashes included, a leading one too (``/a``, ``/``),
    which Werkzeug's ``path`` refuses (it redirected ``/v1/vectors//a`` to another word's URL)."""

    regex = ".+"
    part_isolating = False  # it spans path segments (Werkzeug would infer True: no "/" in the regex)


#: The URL converters the routes use, registered on the app before them.
CONVERTERS = {"word": WordConverter}


@routes.route("/v1/vectors/<word:word>", "GET", "The raw vector of a word",
              json_response(obj(["word", "dim", "vector"], word={"type": "string"}, dim={"type": "integer"},
                                vector=VECTOR), "the stored vector"),
              parameters=[{"name": "word", "in": "path", "required": True, "schema": WORD}],
              errors=(400, 404))
def vector(word: str) -> Response:
    query_args(request.args, set())
    if len(word) > MAX_WORD_LENGTH:  # as for the words of query parameters
        raise InvalidInputError(f"the word in the path is longer than {MAX_WORD_LENGTH} characters")
    state = service()
    values = np.asarray(state.vectors.vectors[state.lookup.row(word)], dtype=np.float64)
    return jsonify({"word": word, "dim": state.vectors.dim, "vector": values.tolist()})


VOCAB_ANSWER = obj(["prefix", "words"], prefix={"type": "string"},
                   words={"type": "array", "items": {"type": "string"}, "maxItems": MAX_VOCAB_LIMIT})


@routes.route("/v1/vocab", "GET", "Words starting with a prefix, most frequent first (autocomplete)",
              json_response(VOCAB_ANSWER, "matching words"),
              parameters=[
                  query("prefix", {"type": "string", "maxLength": MAX_WORD_LENGTH}, "start of the words"),
                  query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_VOCAB_LIMIT, "default": 10},
                        "most words to return"),
              ], errors=(400,))
def vocab() -> Response:
    args = query_args(request.args, {"prefix", "limit"})
    prefix = args.get("prefix", "")
    if len(prefix) > MAX_WORD_LENGTH:
        raise InvalidInputError(f"query parameter 'prefix' is longer than {MAX_WORD_LENGTH} characters")
    limit = query_int(args, "limit", 10, 1, MAX_VOCAB_LIMIT)
    return jsonify({"prefix": prefix, "words": service().lookup.with_prefix(prefix, limit)})


POINT = obj(["word", "x", "y", "score"], word={"type": "string"}, x={"type": "number"}, y={"type": "number"},
            score={"type": "number"})


@routes.route("/v1/map", "GET", "2-D map (PCA) of a word and its nearest words, the word first",
              json_response(obj(["word", "points"], word={"type": "string"}, points={
                  "type": "array", "items": POINT, "minItems": 1, "maxItems": Setting("max_map_points")}),
                  "map points"),
              parameters=[_word("word", "the query word"),
                          query("k", {**K, "maximum": Setting("max_map_k")}, "number of neighbours drawn")],
              errors=(400, 404))
def neighbourhood_map() -> Response:
    args = query_args(request.args, {"word", "k"})
    word, k = query_string(args, "word"), _k(args, MAX_MAP_K)
    state = service()
    row = state.lookup.row(word)
    answer = state.queries.neighbors(row, k)
    rows = [row, *(state.lookup.row(other) for other, _ in answer)]
    coords = pca_2d(state.index.unit[rows]).tolist()
    scores = [1.0, *(score for _, score in answer)]
    words = [word, *(other for other, _ in answer)]
    points = [{"word": w, "x": x, "y": y, "score": s}
              for w, (x, y), s in zip(words, coords, scores, strict=True)]
    return jsonify({"word": word, "points": points})


@routes.route("/healthz", "GET", "Liveness",
              json_response(obj(["status"], True, status={"type": "string"}), "alive"))
def healthz() -> Response:
    return jsonify({"status": "ok"})


READY = obj(["status", "run", "words", "dim", "index"], True, status={"type": "string"},
            run={"type": "string"}, words={"type": "integer"}, dim={"type": "integer"},
            index={"type": "string"})


@routes.route("/readyz", "GET", "Readiness (the index answers a probe search) and what is served",
              json_response(READY, "ready"), errors=(503,))
def readyz() -> Response:
    state = service()
    _, ids = state.index.search(state.index.unit[:1], 1)
    if ids[0, 0] < 0:
        return error_response(503, "not_ready", "the index returned no result for a probe query")
    return jsonify({"status": "ready", "run": state.run_name, "words": len(state.vectors),
                    "dim": state.index.dim, "index": state.index.kind})


@routes.route("/metrics", "GET", "Prometheus metrics: request counts, latency histograms",
              json_response({"type": "string"}, "text exposition format", media="text/plain"))
def prometheus() -> Response:
    metrics = service().metrics
    return Response(metrics.render(), content_type=metrics.content_type)


@routes.route("/openapi.json", "GET", "This document",
              json_response({"type": "object"}, "OpenAPI 3 document"))
def openapi() -> Response:
    return jsonify(service().spec)


@routes.route("/", "GET", "The web page (search, neighbourhood map, similarity, analogy)",
              json_response({"type": "string"}, "HTML page", media="text/html"))
def page() -> Response:
    return send_from_directory(service().static_dir, "index.html")

