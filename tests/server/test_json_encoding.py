"""The service's bodies are standard JSON: a nan or inf float is sent as null, never ``NaN``."""

from __future__ import annotations

import json

import numpy as np
from flask import Flask, jsonify

from nlp182.embeddings.vectors import Vectors
from nlp182.io import finite_or_null
from nlp182.server.app import create_app
from nlp182.server.config import AppConfig, IndexConfig
from nlp182.server.encoding import FiniteJSONProvider
from nlp182.server.index import SimilarityIndex


def _strict(body: bytes) -> object:
    """Parse as RFC 8259 JSON: ``NaN``/``Infinity`` are errors."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_finite_replaces_nan_and_inf_at_any_depth() -> None:
    given = {"a": [1.5, float("nan"), {"b": (float("inf"), -float("inf"), 2)}], "c": "nan"}
    assert finite_or_null(given) == {"a": [1.5, None, {"b": [None, None, 2]}], "c": "nan"}


def test_provider_writes_null_for_non_finite_floats() -> None:
    app = Flask("finite")
    app.json = FiniteJSONProvider(app)
    with app.app_context():
        assert _strict(jsonify({"v": [1.0, float("nan")]}).get_data()) == {"v": [1.0, None]}
        assert _strict(jsonify({"v": [1.0, 2.0]}).get_data()) == {"v": [1.0, 2.0]}


def test_a_vector_with_nan_is_served_as_json_with_null(tmp_path) -> None:
    """A run with non-finite rows is refused where it is loaded (``tests/server/test_nonfinite.py``);
    should one be served anyway (vectors spoiled in memory here), the answer is still standard JSON."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((50, 8)).astype(np.float32)
    vectors = Vectors([f"w{i}" for i in range(50)], matrix)
    vectors.save(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "test", "dim": 8}))
    (tmp_path / "metrics.json").write_text("{}")
    SimilarityIndex.build(vectors, IndexConfig(kind="flat")).save(tmp_path)
    app = create_app(tmp_path, AppConfig())
    state = app.extensions["nlp182"]
    state.vectors = Vectors(state.vectors.words, np.array(state.vectors.vectors))  # a copy to spoil
    served = state.vectors.vectors
    served[3, 2] = np.nan  # after the store checked its rows: only an edit in memory gets here
    response = app.test_client().get("/v1/vectors/w3")
    assert response.status_code == 200
    body = _strict(response.get_data())
    assert body["vector"][2] is None and body["vector"][0] == float(served[3, 0])
