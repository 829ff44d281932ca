"""One declaration per route: the Flask rule and its OpenAPI 3 operation, written once.

``RouteTable.route`` registers a view on the blueprint and records its parameters, request body
and responses; ``RouteTable.spec`` turns the records into the OpenAPI document. Values that depend
on the served run or the settings are written as ``Setting("max_k")`` (a field of
``nlp182.server.config.Limits``) or ``DIM`` (the vector dimension) and filled in when the spec is built, so
the document states the limits the server applies. The schemas are as strict as the handlers:
what the spec calls invalid the server rejects with a 4xx, and every response body matches its
schema (a schemathesis test holds both sides to that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

from nlp182.server.validation import MAX_WORD_LENGTH


@dataclass(frozen=True)
class Setting:
    """A placeholder for the value of a ``Limits`` field (or ``"dim"``) in a schema."""

    name: str


DIM = Setting("dim")
WORD = {"type": "string", "minLength": 1, "maxLength": MAX_WORD_LENGTH}
ERROR_REASONS = {
    400: "missing or malformed parameters, or one over its limit",
    404: "unknown word (with suggestions for the first, and every unknown word of the request)",
    413: "request body, or the work it asks for, over a limit (the message names it)",
    415: "a POST body that is not application/json",
    503: "the index does not answer",
}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], additional: bool = False, **properties: Any) -> dict[str, Any]:
    """A JSON object schema with these properties."""
    return {"type": "object", "required": required, "additionalProperties": additional,
            "properties": properties}


def query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    """A query-string parameter."""
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


K = {"type": "integer", "minimum": 1, "maximum": Setting("max_k"), "default": Setting("default_k")}
K_PARAM = query("k", K, "number of answers")
VECTOR = {"type": "array", "items": {"type": "number"}, "minItems": DIM, "maxItems": DIM}
NEIGHBORS = {"type": "array", "items": ref("Neighbor"), "maxItems": Setting("max_k")}
SCHEMAS: dict[str, Any] = {
    "Neighbor": obj(["word", "score"], word={"type": "string"}, score={"type": "number"}),
    "Error": obj(["error"], error={
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "limit": {"type": "string"},
                       "suggestions": {"type": "array", "items": {"type": "string"}},
                       "unknown": {"type": "array", "items": {"type": "string"}}},
    }),
    "WordsBatch": obj(["words"], k=K, words={
        "type": "array", "items": WORD, "minItems": 1, "maxItems": Setting("max_batch")}),
    "VectorsBatch": obj(["vectors"], k=K, vectors={
        "type": "array", "items": VECTOR, "minItems": 1, "maxItems": Setting("max_batch")}),
    "AnalogyRequest": obj(
        ["positive"], k=K,
        positive={"type": "array", "items": WORD, "minItems": 1, "maxItems": Setting("max_analogy_words")},
        negative={"type": "array", "items": WORD, "maxItems": Setting("max_analogy_words")},
        method={"type": "string", "enum": ["3CosAdd", "3CosMul"], "default": "3CosAdd"},
    ),
}


@dataclass(frozen=True)
class Operation:
    """What the spec says about one route and method."""

    path: str
    method: str
    summary: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    body: str | None = None
    responses: dict[str, Any] = field(default_factory=dict)


def json_response(schema: dict[str, Any], description: str, media: str = "application/json") -> dict:
    """A response whose body follows ``schema`` in the ``media`` type."""
    return {"description": description, "content": {media: {"schema": schema}}}


def _openapi_path(rule: str) -> str:
    """``/v1/vectors/<word:word>`` -> ``/v1/vectors/{word}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _fill(value: Any, settings: dict[str, Any]) -> Any:
    """``value`` with every ``Setting`` replaced by its value from ``settings``."""
    if isinstance(value, Setting):
        return settings[value.name]
    if isinstance(value, dict):
        return {key: _fill(item, settings) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, settings) for item in value]
    return value


class RouteTable:
    """Routes of ``blueprint`` and their OpenAPI operations, declared together by ``route``."""

    def __init__(self, blueprint: Blueprint) -> None:
        self.blueprint = blueprint
        self.operations: list[Operation] = []

    def route(
        self,
        rule: str,
        method: str,
        summary: str,
        ok: dict[str, Any],
        *,
        parameters: list[dict[str, Any]] | None = None,
        body: str | None = None,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated view for ``method`` on ``rule`` and document it.

        Args:
            ok: the 200 response (``json_response(schema, description)``).
            parameters: OpenAPI parameter objects (path parameters of ``rule`` included).
            body: the component schema name(s) of the JSON request body, ``|``-separated for oneOf.
            errors: the error statuses the view can answer (each with the ``Error`` body).

        Slashes are never merged (Werkzeug's default answers ``/v1//neighbors`` with an HTML
        redirect): a path with a doubled slash is a JSON 404, and a word's slashes are its own.
        """

        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            options = {"methods": [method], "merge_slashes": False}
            self.blueprint.add_url_rule(rule, view.__name__, view, **options)
            responses = {"200": ok} | {
                str(status): json_response(ref("Error"), ERROR_REASONS[status]) for status in errors
            }
            self.operations.append(Operation(_openapi_path(rule), method.lower(), summary,
                                             parameters or [], body, responses))
            return view

        return register

    def spec(self, dim: int, settings: dict[str, Any], description: str) -> dict[str, Any]:
        """The OpenAPI 3.0 document for vectors of ``dim`` dimensions under ``settings`` (Limits)."""
        paths: dict[str, Any] = {}
        for operation in self.operations:
            entry: dict[str, Any] = {"summary": operation.summary, "responses": operation.responses}
            if operation.parameters:
                entry["parameters"] = operation.parameters
            if operation.body:
                names = operation.body.split("|")
                schema = ref(names[0]) if len(names) == 1 else {"oneOf": [ref(name) for name in names]}
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
            paths.setdefault(operation.path, {})[operation.method] = entry
        document = {
            "openapi": "3.0.3",
            "info": {"title": "nlp182 similarity service", "version": "1", "description": description},
            "paths": paths,
            "components": {"schemas": SCHEMAS},
        }
        return _fill(document, {**settings, "dim": dim})
