"""Bounded work per request, cheap word lookups, closed metric labels and browser-safety checks.

In-process (Flask's test client) except the import check, which needs a clean interpreter.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from nlp182 import cli
from nlp182.embeddings.lookup import WordLookup
from nlp182.embeddings.projection import pca_2d
from nlp182.embeddings.vectors import Vectors
from nlp182.server.app import create_app
from nlp182.server.asgi import build_environ
from nlp182.server.config import AppConfig, Limits, ServeConfig, host_name
from nlp182.server.metrics import MULTIPROC_ENV, Metrics

from .conftest import ROOT


@pytest.fixture(scope="module")
def client(real_run: Path) -> FlaskClient:
    return create_app(real_run, AppConfig(limits=Limits(max_results=2000, max_batch=100))).test_client()


def _limit_error(response, status: int, limit: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "over_limit" and error["limit"] == limit and limit in error["message"]


def test_work_per_request_is_bounded_with_named_limits(client: FlaskClient, real_vectors: Vectors) -> None:
    words = real_vectors.words[:50]
    _limit_error(client.post("/v1/neighbors", json={"words": words, "k": 41}), 413, "max_results")
    at_limit = client.post("/v1/neighbors", json={"words": words, "k": 40})  # 50 x 40 = 2000
    assert at_limit.status_code == 200
    _limit_error(client.post("/v1/neighbors", json={"words": real_vectors.words[:101]}), 400, "max_batch")
    vectors = np.ones((30, real_vectors.dim)).tolist()
    _limit_error(client.post("/v1/neighbors", json={"vectors": vectors, "k": 100}), 413, "max_results")
    _limit_error(client.post("/v1/neighbors", json={"vectors": vectors * 4}), 400, "max_batch")
    analogy = {"positive": real_vectors.words[:5], "negative": ["police"], "method": "3CosMul"}
    _limit_error(client.post("/v1/analogy", json=analogy), 400, "max_analogy_words")
    _limit_error(client.get("/v1/neighbors?word=police&k=1001"), 400, "max_k")  # it did not name its limit
    _limit_error(client.post("/v1/neighbors", json={"words": ["police"], "k": 1001}), 400, "max_k")
    _limit_error(client.post("/v1/analogy", json={"positive": ["police"], "k": 1001}), 400, "max_k")
    zero = client.get("/v1/neighbors?word=police&k=0").get_json()["error"]["message"]
    assert zero == "k must be at least 1, got 0"


def test_integer_parameters_at_their_maximum_are_taken(client: FlaskClient) -> None:
    """A bound is inclusive, as the spec's ``maximum`` says: the largest allowed value answers 200
    and only the next one is refused."""
    vocab = client.get("/v1/vocab?limit=100")
    assert vocab.status_code == 200 and len(vocab.get_json()["words"]) == 100
    assert client.get("/v1/vocab?limit=101").get_json()["error"]["message"] == (
        "limit must be between 1 and 100, got 101"
    )
    map_50 = client.get("/v1/map?word=police&k=50")
    assert map_50.status_code == 200 and len(map_50.get_json()["points"]) == 51
    assert client.get("/v1/map?word=police&k=51").status_code == 400


@pytest.mark.parametrize("k", ["%D9%A5", "%EF%BC%93", "1_0", "%205", "5%20", "%2B5", "5.0", "1" * 30])
def test_integer_parameters_take_plain_ascii_digits_only(client: FlaskClient, k: str) -> None:
    response = client.get(f"/v1/neighbors?word=police&k={k}")
    assert response.status_code == 400 and "must be an integer" in response.get_json()["error"]["message"]


def test_a_query_string_that_is_not_utf8_is_named(client: FlaskClient) -> None:
    latin = client.get("/v1/neighbors?word=caf%E9")  # Latin-1 é: Werkzeug reads U+FFFD
    assert latin.status_code == 400, latin.get_data(as_text=True)
    assert latin.get_json()["error"]["code"] == "bad_encoding"
    assert client.get("/v1/neighbors?word=%C3%A9").status_code in (200, 404)  # UTF-8 é is a word query
    in_path = client.get("/v1/vectors/caf%E9", environ_overrides={"RAW_URI": "/v1/vectors/caf%E9"})
    assert in_path.status_code == 400 and in_path.get_json()["error"]["code"] == "bad_encoding"
    assert build_environ(_scope(b"/v1/vectors/caf%E9"), b"")["RAW_URI"] == "/v1/vectors/caf%E9"


def test_a_post_refuses_parameters_in_its_query_string(client: FlaskClient) -> None:
    refused = client.post("/v1/neighbors?k=500", json={"words": ["police"]})
    assert refused.status_code == 400 and "'k'" in refused.get_json()["error"]["message"]
    assert client.post("/v1/neighbors", json={"words": ["police"], "k": 5}).status_code == 200


def _scope(raw_path: bytes) -> dict:
    """An ASGI HTTP scope as uvicorn makes it: ``path`` decoded with U+FFFD, ``raw_path`` as sent."""
    return {"type": "http", "method": "GET", "path": raw_path.decode("latin1").replace("%E9", "\ufffd"),
            "raw_path": raw_path, "query_string": b"", "http_version": "1.1", "headers": []}


def test_long_path_words_and_huge_json_integers_get_short_400s(client: FlaskClient) -> None:
    response = client.get("/v1/vectors/" + "z" * 8000)
    assert response.status_code == 400 and len(response.get_data()) < 500
    response = client.post("/v1/neighbors", data='{"words": ["police"], "k": ' + "9" * 5000 + "}",
                           content_type="application/json")
    message = response.get_json()["error"]["message"]
    assert response.status_code == 400 and "5000 digits" in message and "sys" not in message


def test_limits_are_settings_and_the_spec_states_them(real_run: Path) -> None:
    config = ServeConfig(max_k=50, max_batch=7, max_results=99, max_analogy_words=2, max_body_bytes=4096)
    assert config.app_config().limits == Limits(50, 7, 99, 2, 4096)
    spec = create_app(real_run, config.app_config()).test_client().get("/openapi.json").get_json()
    k = next(p for p in spec["paths"]["/v1/neighbors"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 50
    assert spec["components"]["schemas"]["WordsBatch"]["properties"]["words"]["maxItems"] == 7
    assert spec["components"]["schemas"]["AnalogyRequest"]["properties"]["positive"]["maxItems"] == 2
    assert "4096 bytes" in spec["info"]["description"]
    vector = spec["components"]["schemas"]["VectorsBatch"]["properties"]["vectors"]["items"]
    assert vector["minItems"] == vector["maxItems"] == 32  # the run's dimension
    with pytest.raises(ValueError, match="max_results must be at least 1"):
        Limits(max_results=0)


def test_prefix_lookup_and_suggestions_match_a_full_scan(real_vectors: Vectors) -> None:
    words = [*real_vectors.words, "zürich", "zúñiga", "z"]  # non-ASCII and a one-letter word at the end
    vocab = WordLookup(words, {word: row for row, word in enumerate(words)})

    def scan(prefix: str, limit: int) -> list[str]:  # the brute force: every word, frequency order
        return [word for word in words if word.startswith(prefix)][:limit]

    for prefix in ["", "p", "po", "pol", "police", "policex", "z", "zü", "th", "a", "qqq"]:
        for limit in (1, 5, 100):
            assert vocab.with_prefix(prefix, limit) == scan(prefix, limit), (prefix, limit)
    for word in ["policex", "governmentt", "zürichsee", "qqqq", "xylophone", "s", "Police", "ZÜRICH", "Qqq"]:
        assert vocab.suggest(word) == Vectors(words, np.zeros((len(words), 1), np.float32)).suggest(word)
    assert vocab.suggest("policex")[0] == "police"
    assert vocab.suggest("Police")[0] == "police"  # the word, lower-cased, first
    assert vocab.suggest("ZÜRICH")[0] == "zürich"
    # a vocabulary that kept case (--tokens whitespace): the word as it is written there comes first
    cased = ["the", "King", "USA", "Paris", "kingdom"]
    kept = WordLookup(cased, {word: row for row, word in enumerate(cased)})
    store = Vectors(cased, np.zeros((len(cased), 1), np.float32))
    for word, first in (("king", "King"), ("usa", "USA"), ("PARIS", "Paris"), ("The", "the")):
        assert kept.suggest(word)[0] == store.suggest(word)[0] == first, word
    assert kept.suggest("king") == store.suggest("king") == ["King", "kingdom"]


def test_a_word_sharing_only_its_first_letter_gets_the_words_of_that_letter() -> None:
    """Suggestions fall back to the longest prefix found, down to one letter: a typo that shares
    only its first letter with the vocabulary still gets words, most frequent first."""
    words = ["the", "police", "paris", "of"]
    vocab = WordLookup(words, {word: row for row, word in enumerate(words)})
    store = Vectors(words, np.eye(4, dtype=np.float32))
    assert vocab.suggest("pzzz") == store.suggest("pzzz") == ["police", "paris"]
    assert vocab.suggest("tx") == store.suggest("tx") == ["the"]
    assert vocab.suggest("zzz") == store.suggest("zzz") == []


def test_a_word_in_another_unicode_form_is_served_as_the_library_finds_it() -> None:
    words = ["café", "finance", "tea"]
    vocab = WordLookup(words, {word: row for row, word in enumerate(words)})
    store = Vectors(words, np.eye(3, dtype=np.float32))
    assert vocab.row("cafe\u0301") == store.get_index("cafe\u0301") == 0  # decomposed: the same text
    assert vocab.rows(["tea", "cafe\u0301"]) == [2, 0]
    assert vocab.suggest("\ufb01nance")[0] == store.suggest("\ufb01nance")[0] == "finance"  # ligature


def test_unknown_words_get_cheap_suggestions_through_the_api(client: FlaskClient) -> None:
    body = client.post("/v1/analogy", json={"positive": ["police", "governmnt"]}).get_json()
    assert body["error"]["code"] == "unknown_word" and body["error"]["suggestions"][0] == "government"
    assert client.get("/v1/vocab?prefix=pol&limit=3").get_json()["words"][0] == "police"


def test_metric_labels_come_from_closed_sets(real_run: Path) -> None:
    client = create_app(real_run).test_client()
    for i in range(40):
        client.open(f"/v1/neighbors?word=police&n={i}", method=f"MADEUP{i}")
        client.get(f"/no/such/path/{i}")
    text = client.get("/metrics").get_data(as_text=True)
    lines = [line for line in text.splitlines() if line.startswith("nlp182_http_requests_total{")]
    assert 'nlp182_http_requests_total{endpoint="unmatched",method="other",status="405"} 40.0' in lines
    assert 'nlp182_http_requests_total{endpoint="unmatched",method="GET",status="404"} 40.0' in lines
    assert not any("MADEUP" in line or "/no/such" in line for line in text.splitlines())


def test_metric_status_fold_and_latency_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Statuses 100-599 are labels of their own and any other is ``other``; the latency histogram
    has the documented buckets, from half a millisecond to five seconds."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    metrics = Metrics()
    for status in (100, 599, 600, 99):
        metrics.observe("/v1/neighbors", "GET", status, 0.0003)
    lines = metrics.render().decode().splitlines()
    counts = {line.split('status="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
              for line in lines if line.startswith("nlp182_http_requests_total{")}
    assert counts == {"100": "1.0", "599": "1.0", "other": "2.0"}
    bounds = [line.split('le="')[1].split('"')[0] for line in lines
              if line.startswith("nlp182_http_request_duration_seconds_bucket{")]
    assert bounds == ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                      "1.0", "2.5", "5.0", "+Inf"]
    assert 'nlp182_http_request_duration_seconds_bucket{endpoint="/v1/neighbors",le="0.0005"} 4.0' in lines


def test_json_bodies_in_the_utf8_charset_alias_and_bare_ipv6_hosts_are_taken(real_run: Path) -> None:
    """``charset=utf8`` names UTF-8 as ``utf-8`` does; a bare IPv6 host is not cut at its last colon."""
    client = create_app(real_run).test_client()
    response = client.post("/v1/neighbors", data='{"words": ["police"]}',
                           content_type="application/json; charset=utf8")
    assert response.status_code == 200
    assert host_name("::1") == "::1" and host_name("localhost:8000") == "localhost"


def test_host_header_and_json_bodies_are_checked(real_run: Path) -> None:
    client = create_app(real_run).test_client()
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get("/v1/neighbors?word=police", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]"):
        response = client.get("/v1/neighbors?word=police", headers={"Host": host})
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "host_not_allowed"
    missing = client.get("/healthz", environ_base={"SERVER_PROTOCOL": "HTTP/1.1"},
                         environ_overrides={"HTTP_HOST": None})
    assert missing.status_code == 400 and "must name its Host" in missing.get_json()["error"]["message"]
    twice = client.get("/healthz", headers={"Host": "localhost,evil.example"})
    assert twice.status_code == 400 and "several Host headers" in twice.get_json()["error"]["message"]
    # A cross-site form or fetch without a preflight can send text/plain; the API refuses it.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = client.post("/v1/neighbors", data='{"words": ["police"]}', content_type=content_type)
        assert response.status_code == 415
        assert response.get_json()["error"]["code"] == "unsupported_media_type"
    latin = client.post("/v1/neighbors", data='{"words": ["police"]}'.encode("latin-1"),
                        content_type="application/json; charset=latin-1")  # was read as UTF-8
    assert latin.status_code == 415 and "UTF-8" in latin.get_json()["error"]["message"]
    utf8 = client.post("/v1/neighbors", data='{"words": ["police"]}',
                       content_type="application/json; charset=UTF-8")
    assert utf8.status_code == 200
    wide = create_app(real_run, AppConfig(allowed_hosts=("*",))).test_client()
    assert wide.get("/healthz", headers={"Host": "anything.example"}).status_code == 200
    assert ServeConfig(host="10.0.0.5").app_config().allowed_hosts[0] == "10.0.0.5"
    assert ServeConfig(allowed_hosts="a.example, b.example").app_config().allowed_hosts == ("a.example",
                                                                                          "b.example")
    assert host_name("[::1]:80") == "::1" and host_name("Example.ORG") == "example.org"


def test_one_query_s_k_is_bounded_by_max_results_as_a_batch_s_is(real_run: Path) -> None:
    """``max_results`` (queries x k) held for POST /v1/neighbors only: a GET or an analogy asking
    for more answers than it allows was answered."""
    small = create_app(real_run, AppConfig(limits=Limits(max_results=50))).test_client()
    _limit_error(small.get("/v1/neighbors?word=police&k=51"), 413, "max_results")
    _limit_error(small.post("/v1/analogy", json={"positive": ["police"], "k": 51}), 413, "max_results")
    assert small.get("/v1/neighbors?word=police&k=50").status_code == 200
    assert small.post("/v1/analogy", json={"positive": ["police"], "k": 50}).status_code == 200


def test_request_details_a_client_may_get_wrong_are_named(client: FlaskClient) -> None:
    """A query parameter /v1/vectors does not take, a JSON field given twice (the last won), a body
    in UTF-16 (json.loads guessed it) or a compressed one (read as bad UTF-8) are refused."""
    response = client.get("/v1/vectors/police?k=5")
    assert response.status_code == 400 and "takes none" in response.get_json()["error"]["message"]
    twice = client.post("/v1/neighbors", data=b'{"words": ["police"], "k": 1, "k": 2}',
                        content_type="application/json")
    assert twice.status_code == 400 and "'k' more than once" in twice.get_json()["error"]["message"]
    wide = client.post("/v1/neighbors", data='{"words": ["police"]}'.encode("utf-16"),
                       content_type="application/json")
    assert wide.status_code == 400 and "not valid JSON" in wide.get_json()["error"]["message"]
    marked = client.post("/v1/neighbors", data=b'\xef\xbb\xbf{"words": ["police"]}',
                         content_type="application/json")
    assert marked.status_code == 200  # a UTF-8 byte-order mark is skipped (RFC 8259 8.1)
    packed = client.post("/v1/neighbors", data=gzip.compress(b'{"words": ["police"]}'),
                         content_type="application/json", headers={"Content-Encoding": "gzip"})
    assert packed.status_code == 415 and "uncompressed" in packed.get_json()["error"]["message"]


def test_answers_and_probes_are_not_cached(client: FlaskClient) -> None:
    answers = ("/v1/neighbors?word=police", "/v1/neighbors?word=zzzq")  # an answer and an error
    for path in (*answers, "/healthz", "/readyz", "/openapi.json"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    assert client.get("/").headers["Cache-Control"] == "no-cache"  # the page revalidates by its ETag


def test_allowed_hosts_are_read_as_host_headers_are_and_a_wildcard_bind_serves_this_machine(
    real_run: Path,
) -> None:
    """``--allowed-hosts localhost:8000,[::1]`` refused every request (the Host's port and brackets
    were dropped, the setting's kept), and ``--host 0.0.0.0`` served only a Host of 0.0.0.0."""
    config = AppConfig(allowed_hosts=("LocalHost:18114", "[::1]"))
    assert config.allowed_hosts == ("localhost", "::1")
    client = create_app(real_run, config).test_client()
    for host in ("localhost:18114", "localhost", "[::1]:80"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    everywhere = ServeConfig(host="0.0.0.0").app_config().allowed_hosts
    assert "0.0.0.0" not in everywhere and socket.gethostname().lower() in everywhere
    assert {"localhost", "127.0.0.1", "::1"} <= set(everywhere)


def test_neighbourhood_map_is_the_pca_of_the_word_and_its_neighbours(
    client: FlaskClient, real_vectors: Vectors
) -> None:
    from sklearn.decomposition import PCA

    body = client.get("/v1/map?word=police&k=8").get_json()
    words = [point["word"] for point in body["points"]]
    assert words == ["police", *(w for w, _ in real_vectors.most_similar("police", topn=8))]
    got = np.array([[point["x"], point["y"]] for point in body["points"]])
    unit = real_vectors.normed[[real_vectors.key_to_index[w] for w in words]].astype(np.float64)
    want = PCA(n_components=2, svd_solver="full").fit_transform(unit)
    for axis in range(2):  # PCA axes are defined up to sign
        sign = np.sign(got[:, axis] @ want[:, axis])
        np.testing.assert_allclose(got[:, axis], sign * want[:, axis], atol=1e-5)
    np.testing.assert_array_equal(pca_2d(np.ones((3, 4))), np.zeros((3, 2)))  # no spread: all at the origin
    assert client.get("/v1/map?word=police&k=51").status_code == 400


def test_the_map_axes_have_one_orientation_whatever_the_order_of_the_points() -> None:
    """Each axis points where its largest loading is positive (scikit-learn's ``svd_flip`` rule),
    so the same words give the same picture, not its mirror, in any order."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    for _ in range(20):
        points, order = rng.standard_normal((12, 8)), rng.permutation(12)
        want = PCA(n_components=2, svd_solver="full").fit_transform(points)
        np.testing.assert_allclose(pca_2d(points), want, atol=1e-9)
        np.testing.assert_allclose(pca_2d(points[order]), want[order], atol=1e-9)


def test_cli_refuses_unreadable_runs_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path, real_vectors: Vectors
) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("nlp182.commands.server",))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "vectors.npy").write_bytes(b"")
    (empty / "vocab.txt").write_text("a\nb\n")
    latin = tmp_path / "latin"
    real_vectors.save(latin)
    (latin / "vocab.txt").write_bytes((latin / "vocab.txt").read_bytes().replace(b"police", b"polic\xe9"))
    for run, fragment in ((empty, "empty or truncated"), (latin, "not UTF-8")):
        for command in ("serve", "index"):
            assert cli.main([command, str(run)]) == 2
            err = capsys.readouterr().err.strip()
            assert fragment in err and err.count("\n") == 0 and "Traceback" not in err, err


def test_serving_processes_import_neither_torch_nor_pyarrow(real_run: Path) -> None:
    code = (
        "import sys\n"
        "from nlp182.server.serve import run_server\n"
        "from nlp182.server.worker import Worker\n"
        "from nlp182.server.app import create_app\n"
        f"create_app({str(real_run)!r}).test_client().get('/v1/neighbors?word=police')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyarrow'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_query_whose_words_cancel_out_is_refused(client: FlaskClient, real_run: Path, capsys) -> None:
    """police - police is the zero vector: every word scored 0 and the answer was arbitrary rows."""
    cancelled = client.post("/v1/analogy", json={"positive": ["police"], "negative": ["police"]})
    assert cancelled.status_code == 400 and "cancel out" in cancelled.get_json()["error"]["message"]
    assert client.post("/v1/analogy", json={"positive": ["police"], "negative": ["court"]}).status_code == 200
    assert cli.main(["neighbors", str(real_run), "police", "--negative", "police"]) == 2
    assert "cancel out" in capsys.readouterr().err
