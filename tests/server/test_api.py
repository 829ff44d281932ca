"""The JSON API in-process: answers agree with the vector store, bad input is a clean 4xx."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from nlp182.embeddings.vectors import Vectors
from nlp182.server.app import create_app
from nlp182.server.config import AppConfig, IndexConfig, Limits, ServeConfig
from nlp182.server.index import SimilarityIndex

from .conftest import write_run

QUERY_WORDS = ("government", "police", "president", "fire", "australia", "year")


@pytest.fixture(scope="module", params=[64, 1], ids=["batched", "unbatched"])
def real_app(request: pytest.FixtureRequest, real_run: Path) -> Flask:
    return create_app(real_run, AppConfig(batch_window_ms=1.0, batch_max=request.param))


@pytest.fixture
def client(real_app: Flask) -> FlaskClient:
    return real_app.test_client()


def _pairs(answer: list[dict]) -> list[tuple[str, float]]:
    return [(item["word"], item["score"]) for item in answer]


def _assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_neighbors_agree_with_vector_store(client: FlaskClient, real_vectors: Vectors) -> None:
    for word in QUERY_WORDS:
        response = client.get(f"/v1/neighbors?word={word}&k=10")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["word"] == word and body["k"] == 10
        _assert_same(_pairs(body["neighbors"]), real_vectors.most_similar(word, topn=10))
    default_k = client.get("/v1/neighbors?word=police").get_json()
    assert len(default_k["neighbors"]) == 10


def test_batch_of_words_and_of_vectors(client: FlaskClient, real_vectors: Vectors) -> None:
    body = client.post("/v1/neighbors", json={"words": list(QUERY_WORDS), "k": 7}).get_json()
    assert [r["word"] for r in body["results"]] == list(QUERY_WORDS)
    for word, result in zip(QUERY_WORDS, body["results"], strict=True):
        _assert_same(_pairs(result["neighbors"]), real_vectors.most_similar(word, topn=7))
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((3, real_vectors.dim)).tolist()
    raw.append([0] * real_vectors.dim)  # integers are numbers too; a zero vector scores 0 everywhere
    body = client.post("/v1/neighbors", json={"vectors": raw, "k": 5}).get_json()
    for vector, result in zip(raw[:3], body["results"][:3], strict=True):
        _assert_same(_pairs(result["neighbors"]), real_vectors.similar_to_vector(np.array(vector), topn=5))
    assert all(abs(item["score"]) < 1e-6 for item in body["results"][3]["neighbors"])


def test_a_batch_of_neighbouring_words_leaves_out_only_each_word_itself(
    client: FlaskClient, real_vectors: Vectors
) -> None:
    """Each answer of a batch is that word's single-word answer: the other batch words are left in,
    so batching a word with its nearest neighbour changes neither answer."""
    nearest = real_vectors.most_similar("police", topn=1)[0][0]
    body = client.post("/v1/neighbors", json={"words": ["police", nearest], "k": 5}).get_json()
    for word, result in zip(["police", nearest], body["results"], strict=True):
        _assert_same(_pairs(result["neighbors"]), real_vectors.most_similar(word, topn=5))
    assert body["results"][0]["neighbors"][0]["word"] == nearest


def test_similarity_vectors_and_vocab(client: FlaskClient, real_vectors: Vectors) -> None:
    body = client.get("/v1/similarity?a=police&b=government").get_json()
    assert body["similarity"] == pytest.approx(real_vectors.similarity("police", "government"), abs=1e-6)
    body = client.get("/v1/vectors/police").get_json()
    assert body["dim"] == real_vectors.dim
    np.testing.assert_array_equal(np.asarray(body["vector"], dtype=np.float32), real_vectors["police"])
    body = client.get("/v1/vocab?prefix=pol&limit=5").get_json()
    assert body["words"] == real_vectors.with_prefix("pol", 5)
    assert client.get("/v1/vocab?limit=3").get_json()["words"] == real_vectors.words[:3]


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul"])
def test_analogy_agrees_with_vector_store(client: FlaskClient, real_vectors: Vectors, method: str) -> None:
    positive, negative = ["president", "australia"], ["government"]
    payload = {"positive": positive, "negative": negative, "k": 8, "method": method}
    response = client.post("/v1/analogy", json=payload)
    assert response.status_code == 200
    body = response.get_json()
    reference = real_vectors.most_similar if method == "3CosAdd" else real_vectors.most_similar_cosmul
    _assert_same(_pairs(body["answers"]), reference(positive, negative, topn=8))
    assert not {"president", "australia", "government"} & {a["word"] for a in body["answers"]}
    assert body["method"] == method and body["positive"] == positive and body["negative"] == negative


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul"])
def test_an_analogy_never_answers_its_negative_word(tmp_path: Path, method: str) -> None:
    """king + queen - royal points at royal itself (the mean of the other two): a query word, so
    not an answer, as in gensim."""
    rng = np.random.default_rng(0)
    others = rng.normal(size=(40, 6)) * np.array([0.1, 0.1, 1, 1, 1, 1])  # far from the first two axes
    rows = np.vstack([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [1, 1, 0.01, 0, 0, 0], others])
    words = ["king", "queen", "royal", *(f"w{i}" for i in range(40))]
    vectors = Vectors(words, rows.astype(np.float32))
    run = write_run(tmp_path / "run", vectors)
    SimilarityIndex.build(vectors, IndexConfig(kind="flat")).save(run)
    client = create_app(run).test_client()
    payload = {"positive": ["king", "queen"], "negative": ["royal"], "k": 5, "method": method}
    answers = [a["word"] for a in client.post("/v1/analogy", json=payload).get_json()["answers"]]
    assert len(answers) == 5 and "royal" not in answers
    reference = vectors.most_similar if method == "3CosAdd" else vectors.most_similar_cosmul
    assert answers == [word for word, _ in reference(["king", "queen"], ["royal"], topn=5)]


BAD_REQUESTS = [
    ("get", "/v1/neighbors", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&k=0", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&k=1001", None, 400, "over_limit"),
    ("get", "/v1/neighbors?word=police&k=ten", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&k=2.5", None, 400, "invalid_input"),
    ("get", "/v1/similarity?a=police", None, 400, "invalid_input"),
    ("get", "/v1/vocab?limit=0", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&topn=3", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&word=fire", None, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=police&k=2&k=3", None, 400, "invalid_input"),
    ("get", "/v1/similarity?a=police&b=fire&c=year", None, 400, "invalid_input"),
    ("get", "/v1/map?word=police&n=3", None, 400, "invalid_input"),
    ("get", "/v1/vocab?prefix=po&prefix=fi", None, 400, "invalid_input"),
    ("post", "/v1/neighbors", "not json", 400, "invalid_input"),
    ("post", "/v1/neighbors", "[1, 2]", 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": "police"}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": [1, 2]}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": []}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": ["police"], "k": "10"}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": ["police"], "k": True}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": ["police"], "vectors": [[0.0] * 32]}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"words": ["police"], "extra": 1}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"vectors": [[0.5] * 31]}, 400, "wrong_shape"),
    ("post", "/v1/neighbors", {"vectors": [[0.5] * 31 + ["x"]]}, 400, "invalid_input"),
    ("post", "/v1/neighbors", {"vectors": [[0.5] * 31 + [True]]}, 400, "invalid_input"),
    ("post", "/v1/neighbors", '{"vectors": [[' + ", ".join(["0.1"] * 31 + ["NaN"]) + "]]}", 400,
     "invalid_input"),
    ("post", "/v1/neighbors", '{"vectors": [[' + ", ".join(["0.1"] * 31 + ["Infinity"]) + "]]}", 400,
     "invalid_input"),
    ("post", "/v1/neighbors", '{"vectors": [[' + ", ".join(["0.1"] * 31 + ["1e999"]) + "]]}", 400,
     "invalid_input"),
    ("post", "/v1/neighbors", '{"vectors": [[' + ", ".join(["0.1"] * 31 + ["1" + "0" * 400]) + "]]}", 400,
     "invalid_input"),
    ("post", "/v1/analogy", {"positive": []}, 400, "invalid_input"),
    ("post", "/v1/analogy", {"positive": ["police"], "method": "3CosSub"}, 400, "invalid_input"),
    ("post", "/v1/analogy", {"positive": ["police"], "negative": "fire"}, 400, "invalid_input"),
    ("get", "/v1/neighbors?word=policee", None, 404, "unknown_word"),
    ("get", "/v1/vectors/nosuchword", None, 404, "unknown_word"),
    ("post", "/v1/analogy", {"positive": ["police", "qqqq"]}, 404, "unknown_word"),
    ("get", "/v1/nothing", None, 404, "not_found"),
    ("put", "/v1/neighbors", None, 405, "method_not_allowed"),
    ("delete", "/v1/analogy", None, 405, "method_not_allowed"),
    ("post", "/v1/similarity", {}, 405, "method_not_allowed"),
]


def _body(payload: object) -> dict:
    """Test-client keyword for a raw string body, a JSON body, or none."""
    if payload is None:
        return {}
    if isinstance(payload, str):
        return {"data": payload, "content_type": "application/json"}
    return {"json": payload}


@pytest.mark.parametrize(("method", "url", "payload", "status", "code"), BAD_REQUESTS)
def test_bad_input_is_a_json_4xx(
    client: FlaskClient, method: str, url: str, payload: object, status: int, code: str
) -> None:
    response = getattr(client, method)(url, **_body(payload))
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    if status == 405:
        assert "GET" in response.headers["Allow"] or "POST" in response.headers["Allow"]


def test_unknown_word_suggests_words_by_prefix(client: FlaskClient, real_vectors: Vectors) -> None:
    body = client.get("/v1/neighbors?word=policex").get_json()
    assert body["error"]["suggestions"] == real_vectors.suggest("policex")
    assert body["error"]["suggestions"][0] == "police"
    assert body["error"]["unknown"] == ["policex"]


def test_a_batch_names_every_unknown_word_at_once(client: FlaskClient, real_vectors: Vectors) -> None:
    words = ["police", "policex", "qqqq", "government", "policex"]
    response = client.post("/v1/neighbors", json={"words": words, "k": 3})
    error = response.get_json()["error"]
    assert response.status_code == 404 and error["code"] == "unknown_word"
    assert error["unknown"] == ["policex", "qqqq"] and error["suggestions"] == real_vectors.suggest("policex")
    assert "'policex' is not in the vocabulary" in error["message"]
    assert "and 1 more unknown word: see 'unknown'" in error["message"]
    analogy = client.post("/v1/analogy", json={"positive": ["zzzz", "police"], "negative": ["yyyy"]})
    assert analogy.status_code == 404 and analogy.get_json()["error"]["unknown"] == ["zzzz", "yyyy"]


def test_a_misspelt_query_parameter_is_named_with_the_allowed_ones(client: FlaskClient) -> None:
    """gensim's ``topn`` was ignored and 10 answers came back; the body's rule holds in the URL too."""
    error = client.get("/v1/neighbors?word=police&topn=3").get_json()["error"]
    assert error["message"] == "unknown query parameter 'topn'; allowed: k, word"
    error = client.get("/v1/neighbors?word=police&k=2&k=3").get_json()["error"]
    assert error["message"] == "query parameter 'k' is given 2 times; give it once"


def test_a_max_k_below_the_default_k_lowers_the_default(real_run: Path) -> None:
    """With --max-k 5 every request without k was refused for the server's own default of 10, the
    spec said default 10 and maximum 5, and /v1/map answered 50 neighbours."""
    client = create_app(real_run, AppConfig(limits=Limits(max_k=5))).test_client()
    assert len(client.get("/v1/neighbors?word=police").get_json()["neighbors"]) == 5
    batch = client.post("/v1/neighbors", json={"words": ["police", "fire"]}).get_json()
    assert batch["k"] == 5 and [len(result["neighbors"]) for result in batch["results"]] == [5, 5]
    assert len(client.post("/v1/analogy", json={"positive": ["police"]}).get_json()["answers"]) == 5
    assert len(client.get("/v1/map?word=police").get_json()["points"]) == 6
    over = client.get("/v1/map?word=police&k=6")
    assert over.status_code == 400 and over.get_json()["error"]["limit"] == "max_k"
    spec = client.get("/openapi.json").get_json()
    k = next(p for p in spec["paths"]["/v1/neighbors"]["get"]["parameters"] if p["name"] == "k")["schema"]
    assert (k["default"], k["maximum"]) == (5, 5)
    drawn = next(p for p in spec["paths"]["/v1/map"]["get"]["parameters"] if p["name"] == "k")["schema"]
    assert (drawn["default"], drawn["maximum"]) == (5, 5)
    default = create_app(real_run).test_client().get("/openapi.json").get_json()
    drawn = next(p for p in default["paths"]["/v1/map"]["get"]["parameters"] if p["name"] == "k")["schema"]
    assert (drawn["default"], drawn["maximum"]) == (10, 50)


def test_oversized_body_is_413(real_run: Path) -> None:
    client = create_app(real_run, AppConfig(limits=Limits(max_body_bytes=4096))).test_client()
    response = client.post("/v1/neighbors", data=json.dumps({"words": ["police"] * 1000}),
                           content_type="application/json")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "request_entity_too_large" and error["limit"] == "max_body_bytes"
    assert error["message"] == "request body is over max_body_bytes (4096 bytes)"


def test_tied_scores_come_back_as_the_library_gives_them(tmp_path: Path) -> None:
    """FAISS returns equal scores highest row first: the service answered d, c, b where the library
    answers b, c, d, and at the cut a zero vector's neighbours were other words than the library's."""
    words = ["a", "b", "c", "d", "zero", "far", "farther"]
    matrix = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 0], [0, 1], [-1, 0.5]], dtype=np.float32)
    vectors = Vectors(words, matrix)
    run = write_run(tmp_path / "ties", vectors)
    SimilarityIndex.build(vectors, IndexConfig(kind="flat")).save(run)
    client = create_app(run).test_client()

    def words_of(response) -> list[str]:
        body = response.get_json()
        answers = body.get("neighbors") or body.get("answers") or body["results"][0]["neighbors"]
        return [answer["word"] for answer in answers]

    for word, k in (("a", 3), ("zero", 2), ("far", 4)):
        expected = [w for w, _ in vectors.most_similar(word, topn=k)]
        assert words_of(client.get(f"/v1/neighbors?word={word}&k={k}")) == expected, word
    analogy = client.post("/v1/analogy", json={"positive": ["a"], "negative": ["far"], "k": 2})
    assert words_of(analogy) == [w for w, _ in vectors.most_similar(positive=["a"], negative=["far"], topn=2)]
    by_vector = client.post("/v1/neighbors", json={"vectors": [[0.0, 0.0]], "k": 2})
    assert words_of(by_vector) == [w for w, _ in vectors.similar_by_vector(np.zeros(2), topn=2)] == ["a", "b"]


def test_a_word_with_slashes_has_its_vector_url(tmp_path: Path) -> None:
    """Werkzeug's path converter refused a leading slash: /v1/vectors//a redirected to the URL of
    another word, a, and the words / and // were not found."""
    words = ["a", "/a", "/", "//", "a/b", "b/"]
    vectors = Vectors(words, np.arange(12, dtype=np.float32).reshape(6, 2) + 1)
    run = write_run(tmp_path / "slashes", vectors)
    SimilarityIndex.build(vectors, IndexConfig(kind="flat")).save(run)
    client = create_app(run).test_client()
    for word in words:
        for path in (f"/v1/vectors/{word}", f"/v1/vectors/{word.replace('/', '%2F')}"):
            response = client.get(path)
            assert response.status_code == 200, path
            body = response.get_json()
            assert body["word"] == word and body["vector"] == vectors[word].tolist()


def test_bad_requests_change_nothing(client: FlaskClient) -> None:
    reference = client.get("/v1/neighbors?word=police&k=20").get_data()
    for method, url, payload, _, _ in BAD_REQUESTS:
        getattr(client, method)(url, **_body(payload))
    assert client.get("/v1/neighbors?word=police&k=20").get_data() == reference
    assert client.get("/readyz").status_code == 200


def test_each_request_thread_pins_openmp_threads(real_run: Path) -> None:
    # OpenMP's thread count is per thread: a new thread gets one per core whatever the worker's
    # main thread set, so the app must set it on the request thread itself.
    import faiss

    wanted = faiss.omp_get_max_threads() + 3  # differs from what a fresh thread starts with
    seen: dict[str, int] = {}

    def in_new_thread(config: AppConfig, name: str) -> None:
        client = create_app(real_run, config).test_client()
        seen[f"{name} before"] = faiss.omp_get_max_threads()
        assert client.get("/v1/neighbors?word=police").status_code == 200
        seen[name] = faiss.omp_get_max_threads()

    for config, name in ((AppConfig(omp_threads=wanted), "pinned"), (AppConfig(), "default")):
        thread = threading.Thread(target=in_new_thread, args=(config, name))
        thread.start()
        thread.join()
    assert seen["pinned before"] != wanted
    assert seen["pinned"] == wanted
    assert seen["default"] == seen["default before"]  # 0 leaves OpenMP alone
    assert ServeConfig(omp_threads=3).app_config().omp_threads == 3  # `nlp182 serve` passes it on


def test_metrics_count_requests_and_latency(real_run: Path) -> None:
    client = create_app(real_run).test_client()
    for _ in range(3):
        client.get("/v1/neighbors?word=police")
    client.get("/v1/neighbors?word=zzzz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'nlp182_http_requests_total{endpoint="/v1/neighbors",method="GET",status="200"} 3.0' in text
    assert 'nlp182_http_requests_total{endpoint="/v1/neighbors",method="GET",status="404"} 1.0' in text
    assert 'nlp182_http_request_duration_seconds_count{endpoint="/v1/neighbors"} 4.0' in text
    assert 'nlp182_http_request_duration_seconds_bucket{endpoint="/v1/neighbors",le="+Inf"} 4.0' in text


def test_health_page_and_openapi_cover_every_route(real_app: Flask) -> None:
    client = real_app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["index"] == "flat" and ready["dim"] == 32
    page = client.get("/")
    assert page.status_code == 200 and b'id="word"' in page.data and b"/static/app.js" in page.data
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    served = set()
    for rule in real_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<word:word>", "{word}")
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_huge_finite_vector_entries_do_not_overflow(client: FlaskClient, real_vectors: Vectors) -> None:
    direction = np.zeros(real_vectors.dim)
    direction[:2] = [1e308, -1e308]
    body = client.post("/v1/neighbors", json={"vectors": [direction.tolist()], "k": 3}).get_json()
    expected = real_vectors.similar_to_vector(np.array([1.0, -1.0] + [0.0] * (real_vectors.dim - 2)), topn=3)
    _assert_same(_pairs(body["results"][0]["neighbors"]), expected)


def test_query_words_are_looked_up_once_in_the_served_vocabulary(
    client: FlaskClient, real_vectors: Vectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = client.get("/v1/neighbors?word=police&k=5").get_json()
    looked_up: list[str] = []
    vocab = client.application.extensions["nlp182"].lookup
    row = vocab.row
    monkeypatch.setattr(vocab, "row", lambda word: looked_up.append(word) or row(word))
    monkeypatch.setattr(Vectors, "index_of", lambda self, word: pytest.fail(f"{word!r} looked up twice"))
    assert client.get("/v1/neighbors?word=police&k=5").get_json() == want
    client.get("/v1/similarity?a=police&b=government")
    client.post("/v1/analogy", json={"positive": ["president", "police"], "negative": ["government"], "k": 3})
    client.post("/v1/neighbors", json={"words": ["fire", "year"], "k": 3})
    assert looked_up == [
        "police", "police", "government", "president", "police", "government", "fire", "year"
    ]
