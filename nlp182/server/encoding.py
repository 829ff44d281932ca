"""The service's JSON: standard JSON only, so a float that is nan or inf is sent as ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which RFC 8259 does not allow and
most clients refuse. Vectors are checked where they enter (``nlp182 import`` refuses non-finite
rows), so a body needing this is rare; when one does, the answer stays parseable.
"""

from __future__ import annotations

import math
from typing import Any

from flask.json.provider import DefaultJSONProvider


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(value) for value in obj]
    return obj


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON with ``allow_nan=False``; a body holding nan or inf is written with ``null``."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs["allow_nan"] = False
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # "Out of range float values are not JSON compliant"
            return super().dumps(finite(obj), **kwargs)
