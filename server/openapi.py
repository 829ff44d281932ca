"""The OpenAPI 3 description of the service, generated for one run (its vector dimension).

The schemas are as strict as the handlers: what the spec calls invalid the server rejects with a
4xx, and every response body matches its schema. A schemathesis test holds both sides to that.
"""

from __future__ import annotations

from typing import Any

from server.validation import MAX_ANALOGY_WORDS, MAX_BATCH, MAX_K, MAX_WORD_LENGTH

WORD = {"type": "string", "minLength": 1, "maxLength": MAX_WORD_LENGTH}
K_PARAM = {
    "name": "k", "in": "query", "required": False, "description": "number of answers",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "missing or malformed parameters",
        404: "unknown word (with suggestions)",
        413: "request body over the size limit",
    }
    return {str(status): _json(_ref("Error"), reasons[status]) for status in statuses}


def _word_query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": True, "description": description, "schema": WORD}


def build_spec(dim: int, max_body_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the API for vectors of ``dim`` dimensions."""
    vector = {"type": "array", "items": {"type": "number"}, "minItems": dim, "maxItems": dim}
    neighbor = {
        "type": "object", "required": ["word", "score"], "additionalProperties": False,
        "properties": {"word": {"type": "string"}, "score": {"type": "number"}},
    }
    neighbor_list = {"type": "array", "items": _ref("Neighbor"), "maxItems": MAX_K}
    schemas = {
        "Neighbor": neighbor,
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": False,
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "suggestions": {"type": "array", "items": {"type": "string"}},
                },
            }},
        },
        "NeighborsAnswer": {
            "type": "object", "required": ["word", "k", "neighbors"], "additionalProperties": False,
            "properties": {"word": {"type": "string"}, "k": {"type": "integer"}, "neighbors": neighbor_list},
        },
        "WordsBatch": {
            "type": "object", "required": ["words"], "additionalProperties": False,
            "properties": {
                "words": {"type": "array", "items": WORD, "minItems": 1, "maxItems": MAX_BATCH},
                "k": K_PARAM["schema"],
            },
        },
        "VectorsBatch": {
            "type": "object", "required": ["vectors"], "additionalProperties": False,
            "properties": {
                "vectors": {"type": "array", "items": vector, "minItems": 1, "maxItems": MAX_BATCH},
                "k": K_PARAM["schema"],
            },
        },
        "BatchAnswer": {
            "type": "object", "required": ["k", "results"], "additionalProperties": False,
            "properties": {
                "k": {"type": "integer"},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["neighbors"], "additionalProperties": False,
                    "properties": {"word": {"type": "string"}, "neighbors": neighbor_list},
                }},
            },
        },
        "AnalogyRequest": {
            "type": "object", "required": ["positive"], "additionalProperties": False,
            "properties": {
                "positive": {"type": "array", "items": WORD, "minItems": 1, "maxItems": MAX_ANALOGY_WORDS},
                "negative": {"type": "array", "items": WORD, "maxItems": MAX_ANALOGY_WORDS},
                "k": K_PARAM["schema"],
                "method": {"type": "string", "enum": ["3CosAdd", "3CosMul"], "default": "3CosAdd"},
            },
        },
        "AnalogyAnswer": {
            "type": "object", "required": ["positive", "negative", "method", "k", "answers"],
            "additionalProperties": False,
            "properties": {
                "positive": {"type": "array", "items": {"type": "string"}},
                "negative": {"type": "array", "items": {"type": "string"}},
                "method": {"type": "string"}, "k": {"type": "integer"}, "answers": neighbor_list,
            },
        },
    }
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    paths: dict[str, Any] = {
        "/v1/neighbors": {
            "get": {
                "summary": "Nearest words of one word (the word itself left out)",
                "parameters": [_word_query("word", "the query word"), K_PARAM],
                "responses": {"200": _json(_ref("NeighborsAnswer"), "neighbours, best first"),
                              **_errors(400, 404)},
            },
            "post": {
                "summary": f"Nearest words of a batch of up to {MAX_BATCH} words or raw vectors",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"oneOf": [_ref("WordsBatch"), _ref("VectorsBatch")]}}}},
                "responses": {"200": _json(_ref("BatchAnswer"), "one neighbour list per query, in order"),
                              **_errors(400, 404, 413)},
            },
        },
        "/v1/similarity": {"get": {
            "summary": "Cosine similarity of two words",
            "parameters": [_word_query("a", "first word"), _word_query("b", "second word")],
            "responses": {"200": _json({
                "type": "object", "required": ["a", "b", "similarity"], "additionalProperties": False,
                "properties": {"a": {"type": "string"}, "b": {"type": "string"},
                               "similarity": {"type": "number", "minimum": -1.001, "maximum": 1.001}},
            }, "cosine similarity"), **_errors(400, 404)},
        }},
        "/v1/analogy": {"post": {
            "summary": "Analogy (positive - negative) by 3CosAdd or 3CosMul, query words left out",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("AnalogyRequest")}}},
            "responses": {"200": _json(_ref("AnalogyAnswer"), "answers, best first"),
                          **_errors(400, 404, 413)},
        }},
        "/v1/vectors/{word}": {"get": {
            "summary": "The raw vector of a word",
            "parameters": [{"name": "word", "in": "path", "required": True, "schema": WORD}],
            "responses": {"200": _json({
                "type": "object", "required": ["word", "dim", "vector"], "additionalProperties": False,
                "properties": {"word": {"type": "string"}, "dim": {"type": "integer"}, "vector": vector},
            }, "the stored vector"), **_errors(400, 404)},
        }},
        "/v1/vocab": {"get": {
            "summary": "Vocabulary words starting with a prefix, most frequent first (autocomplete)",
            "parameters": [
                {"name": "prefix", "in": "query", "required": False,
                 "schema": {"type": "string", "maxLength": MAX_WORD_LENGTH}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
            ],
            "responses": {"200": _json({
                "type": "object", "required": ["prefix", "words"], "additionalProperties": False,
                "properties": {"prefix": {"type": "string"},
                               "words": {"type": "array", "items": {"type": "string"}, "maxItems": 100}},
            }, "matching words"), **_errors(400)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({
            "type": "object", "required": ["status"], "properties": {"status": {"type": "string"}},
        }, "alive")}}},
        "/readyz": {"get": {"summary": "Readiness: the index answers a probe search", "responses": {
            "200": _json({"type": "object", "required": ["status", "words", "dim", "index"], "properties": {
                "status": {"type": "string"}, "words": {"type": "integer"}, "dim": {"type": "integer"},
                "index": {"type": "string"}}}, "ready"),
            "503": _json(_ref("Error"), "the index does not answer"),
        }}},
        "/metrics": {"get": {"summary": "Prometheus metrics: request counts, latency histograms",
                             "responses": {"200": {"description": "text exposition format", **text}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _json({"type": "object"}, "OpenAPI 3 document")}}},
        "/": {"get": {"summary": "The web page (search, neighbours, similarity, analogy)", "responses": {
            "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "nlp182 similarity service",
            "version": "1",
            "description": f"Nearest neighbours over {dim}-dimensional word vectors (FAISS). "
            f"Request bodies are limited to {max_body_bytes} bytes (413 above). "
            "Every error body is {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
