"""Schemathesis fuzzes the API from its own /openapi.json: no 5xx, every response matches the spec.

Bounded (a few examples per operation) so the suite stays fast; the checks are schemathesis's
defaults: no server error, status codes, content types and bodies as documented, invalid input
rejected, undocumented methods answered with 405. The schema is loaded at collection time (the
lazy-fixture loader of schemathesis 4 does not work with pytest 9), from an app over a small
synthetic run in a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from nlp182.server.app import create_app
from nlp182.server.config import AppConfig, Limits

from .conftest import make_synthetic_run

_RUN = tempfile.TemporaryDirectory(prefix="nlp182-fuzz-")  # removed when the session ends
# Bodies up to 4 MB: an over-long batch must be answered 400 (the 413 path is tested in test_api).
APP = create_app(make_synthetic_run(Path(_RUN.name)),
                 AppConfig(batch_window_ms=0.0, limits=Limits(max_body_bytes=4 << 20, max_results=10**6)))
# max_results (queries x k, a bound no schema can state) is lifted here so that every schema-valid
# request is answerable; its 413 is tested in test_api. The baseline is taken before schemathesis
# runs (at collection), so test_fuzzing_changed_nothing compares against the answers of a server
# no fuzzed request has touched.
BASELINE = APP.test_client().get("/v1/neighbors?word=w1&k=5").get_json()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_spec(case) -> None:
    case.call_and_validate()


def test_fuzzing_changed_nothing() -> None:
    client = APP.test_client()
    assert client.get("/v1/neighbors?word=w1&k=5").get_json() == BASELINE
    assert client.get("/readyz").status_code == 200
