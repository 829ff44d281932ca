"""Parsing and checking of request parameters and JSON bodies.

Every failure raises ``InvalidInputError`` (HTTP 400), ``ShapeError`` (400) or ``OverLimitError``
(413) with a message that names the parameter, what was wrong and what is accepted (for a limit,
the setting that sets it), so a bad request is never a 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.settings import flag

MAX_WORD_LENGTH = 200


class OverLimitError(InvalidInputError):
    """A request asks for more work than a ``nlp182.server.config.Limits`` setting allows.

    HTTP 400 when one field is over (the spec states that field's bound), 413 when the request as
    a whole is (a product or sum of fields, which a schema cannot state).
    """

    code = "over_limit"

    def __init__(self, message: str, limit: str, status: int = 413) -> None:
        super().__init__(f"{message}; the limit is the setting {limit} (nlp182 serve {flag(limit)})")
        self.limit = limit
        self.status = status


def at_most(what: str, count: int, limit: int, name: str, status: int = 413) -> None:
    """Raise ``OverLimitError`` if ``count`` (of ``what``) is over ``limit``, the setting ``name``."""
    if count > limit:
        raise OverLimitError(f"{what} is {count}, over {limit}", name, status)


def query_args(args: Any, allowed: set[str]) -> Mapping[str, str]:
    """``args`` (a request's query parameters, Werkzeug's ``MultiDict``) when every name is one of
    ``allowed`` and given once: a misspelt name (gensim's ``topn`` for ``k``) would otherwise be
    ignored and answered with the default, and of a repeated one only the first would count."""
    unknown = sorted(set(args) - allowed)
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        takes = f"allowed: {', '.join(sorted(allowed))}" if allowed else "this endpoint takes none"
        raise InvalidInputError(f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names}; {takes}")
    for name in args:
        if (times := len(args.getlist(name))) > 1:
            raise InvalidInputError(f"query parameter {name!r} is given {times} times; give it once")
    return args


def query_string(args: Mapping[str, str], name: str, default: str | None = None) -> str:
    """A string query parameter; missing or empty is an error unless ``default`` is given."""
    value = args.get(name)
    if value is None or value == "":
        if default is not None:
            return default
        raise InvalidInputError(f"query parameter {name!r} is required")
    if len(value) > MAX_WORD_LENGTH:
        raise InvalidInputError(f"query parameter {name!r} is longer than {MAX_WORD_LENGTH} characters")
    return value


_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,18}")


def query_int(args: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    """An integer query parameter in ``low..high`` (``default`` when absent; ``high`` None: no bound)."""
    raw = args.get(name)
    if raw is None:
        return default
    if not _PLAIN_INTEGER.fullmatch(raw):  # int() also takes "1_0", " 5", "+5" and non-ASCII digits
        raise InvalidInputError(f"query parameter {name!r} must be an integer, got {raw[:40]!r}")
    return in_range(name, int(raw), low, high)


def in_range(name: str, value: int, low: int, high: int | None) -> int:
    """``value`` when it is in ``low..high`` (``None``: no upper bound here)."""
    if high is None and value < low:
        raise InvalidInputError(f"{name} must be at least {low}, got {value}")
    if high is not None and not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")
    return value


def answers_wanted(k: int, max_k: int) -> int:
    """``k`` answers per query, at most the setting ``max_k`` (over it: an ``OverLimitError``
    naming the setting, 400, as every limit's)."""
    at_most("k", k, max_k, "max_k", status=400)
    return k


def _bounded_int(text: str) -> int:
    if len(text) > 18:  # beyond any limit here; Python's own refusal would name sys internals
        raise InvalidInputError(f"JSON body holds an integer of {len(text)} digits; no field takes one")
    return int(text)


def _reject_constant(name: str) -> float:
    raise InvalidInputError(f"JSON body contains {name}; send finite numbers only")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's fields, refusing one given twice (``json.loads`` keeps the last silently: which
    did the client mean?)."""
    fields = dict(pairs)
    if len(fields) < len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidInputError(f"JSON body gives field {twice[:40]!r} more than once; give it once")
    return fields


def json_object(raw: bytes, allowed: set[str]) -> dict[str, Any]:
    """Parse a UTF-8 JSON object body (RFC 8259 8.1; a leading byte-order mark is skipped); reject
    NaN/Infinity literals, a field given twice and unknown keys. ``json.loads`` would also take
    UTF-16 and UTF-32 bytes, which a body labelled with that charset is refused for."""
    try:
        text = raw.decode("utf-8-sig")
        body = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int,
                          object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInputError(f"request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInputError(f"unknown fields {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


def body_int(body: Mapping[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    """An integer field of a JSON body in ``low..high`` (booleans and floats are refused)."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"field {name!r} must be an integer, got {type(value).__name__}")
    return in_range(name, value, low, high)


def word_list(body: Mapping[str, Any], name: str, min_items: int) -> list[str]:
    """A list of non-empty strings from a JSON body (its length is the caller's limit to check)."""
    value = body.get(name, [])
    if not isinstance(value, list):
        raise InvalidInputError(f"field {name!r} must be a list of words, got {type(value).__name__}")
    if len(value) < min_items:
        raise InvalidInputError(f"{name!r} must hold at least {min_items} words, got {len(value)}")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_WORD_LENGTH:
            raise InvalidInputError(
                f"{name!r} must hold strings of 1 to {MAX_WORD_LENGTH} characters, got {str(item)[:40]!r}"
            )
    return value


def vector_list(body: Mapping[str, Any], name: str, dim: int, max_items: int) -> np.ndarray:
    """A ``(B, dim)`` float64 matrix from a JSON list of lists of finite numbers (B <= ``max_items``,
    the ``max_batch`` setting)."""
    value = body.get(name)
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"field {name!r} must be a non-empty list of vectors")
    at_most(f"the number of {name}", len(value), max_items, "max_batch", status=400)
    for position, row in enumerate(value):
        if not isinstance(row, list):
            raise InvalidInputError(f"{name}[{position}] must be a list of {dim} numbers")
        if len(row) != dim:
            raise ShapeError(f"{name}[{position}] has {len(row)} numbers; the vectors are {dim}-dimensional")
        for item in row:
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise InvalidInputError(f"{name}[{position}] must hold numbers only, got {str(item)[:40]!r}")
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidInputError(f"{name}[{position}] holds NaN or infinity; send finite numbers")
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise InvalidInputError(f"{name} holds an integer too large for a float") from None
    if not np.all(np.isfinite(matrix)):
        raise InvalidInputError(f"{name} holds values too large for a float; send finite numbers")
    return matrix
