"""The service's JSON: standard JSON only, so a float that is nan or inf is sent as ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which RFC 8259 does not allow and
most clients refuse. Vectors are checked where they enter (``nlp182 import`` refuses non-finite
rows), so a body needing this is rare; when one does, the answer stays parseable.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from nlp182.io import finite_or_null


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON with ``allow_nan=False``; a body holding nan or inf is written with ``null``."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs["allow_nan"] = False
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # "Out of range float values are not JSON compliant"
            return super().dumps(finite_or_null(obj), **kwargs)
