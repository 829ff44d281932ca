"""`nlp182 index` and `nlp182 serve` end to end: gunicorn workers, shared mmap, metrics, clean stop."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from nlp182 import cli
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.server.process import SERVE_COMMAND, ServeProcess

from .conftest import ROOT, write_run


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", SERVE_COMMAND, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_index_command_writes_index_and_metadata(tmp_path: Path, synthetic_vectors: Vectors) -> None:
    run = write_run(tmp_path / "run", synthetic_vectors)
    result = _cli("index", str(run), "--kind", "hnsw", "--hnsw-m", "8", "--recall-queries", "100")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    meta = json.loads((run / "index.json").read_text())
    assert summary["kind"] == meta["kind"] == "hnsw" and meta["params"]["m"] == 8
    assert meta["vocab_checksum"] == synthetic_vectors.vocab_checksum() and meta["recall_queries"] == 100
    assert cli.main(["index", str(run), "--kind", "ivf", "--ivf-lists", "16", "--nprobe", "4"]) == 0
    meta = json.loads((run / "index.json").read_text())
    assert meta["kind"] == "ivf" and meta["params"]["lists"] == 16 and meta["params"]["nprobe"] == 4
    from nlp182.server.app import create_app

    client = create_app(run).test_client()  # the service answers from it, the word itself left out
    answer = client.get("/v1/neighbors?word=w5&k=5").get_json()
    assert client.get("/readyz").get_json()["index"] == "ivf" and len(answer["neighbors"]) == 5
    assert "w5" not in [n["word"] for n in answer["neighbors"]]


def test_cli_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                 tmp_path: Path, synthetic_vectors: Vectors) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("nlp182.commands.server",))
    run = write_run(tmp_path / "run", synthetic_vectors)
    assert cli.main(["serve", str(run)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(SystemExit) as stop:  # refused while the flags are parsed
        cli.main(["index", str(run), "--kind", "annoy"])
    assert stop.value.code == 2 and "--kind: invalid choice: 'annoy'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # refused while the flags are parsed
        cli.main(["serve", str(run), "--workers", "0"])
    assert stop.value.code == 2 and "--workers must be at least 1" in capsys.readouterr().err


def test_gunicorn_workers_share_the_mapped_index_and_aggregate_metrics(live_server: ServeProcess) -> None:
    workers = live_server.workers(2)  # each worker maps index.faiss itself: one copy in the page cache
    assert len(psutil.Process(live_server.process.pid).children(recursive=True)) == 2

    def fetch(i: int) -> int:
        params = {"word": f"w{i}", "k": 5}
        return requests.get(f"{live_server.url}/v1/neighbors", params=params, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(fetch, range(200)))
    assert statuses == [200] * 200
    assert requests.get(f"{live_server.url}/v1/neighbors?word=nope", timeout=10).status_code == 404
    text = requests.get(f"{live_server.url}/metrics", timeout=10).text
    # One scrape sees both workers' counts (multiprocess store), whichever worker answers it.
    assert 'nlp182_http_requests_total{endpoint="/v1/neighbors",method="GET",status="200"} 200.0' in text
    assert 'nlp182_http_requests_total{endpoint="/v1/neighbors",method="GET",status="404"} 1.0' in text
    code, output = live_server.stop()
    assert code == 0, output
    assert "Shutting down: Master" in output
    assert "Using worker: nlp182.server.worker.Worker" in output
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)


def test_the_service_processes_load_none_of_the_trainers(live_server: ServeProcess) -> None:
    """The ``nlp182`` entry builds only the server's commands for ``serve``: the master and every
    worker map neither torch nor pyarrow nor matplotlib (they took 180 MiB and 3 s more a start)."""
    processes = [psutil.Process(live_server.process.pid), *live_server.workers(2)]
    heavy = {
        Path(mapped.path).name
        for process in processes
        for mapped in process.memory_maps()
        if any(library in mapped.path for library in ("libtorch", "libarrow", "matplotlib"))
    }
    assert heavy == set()


def test_ipv6_hosts_are_bound_and_the_chosen_port_is_logged(
    tmp_path: Path, synthetic_vectors: Vectors
) -> None:
    """``--host ::1`` crashed gunicorn (an unbracketed bind); ``[::1]`` is the same host; with
    ``--port 0`` the log names the port the system chose, not 0."""
    from nlp182.server.config import ServeConfig

    assert ServeConfig(host="[::1]", port=8000).address() == "[::1]:8000" == ServeConfig(host="::1").address()
    assert ServeConfig(host="::1").loopback
    assert ServeConfig(host="127.0.0.1").address(4242) == "127.0.0.1:4242"
    run = write_run(tmp_path / "run", synthetic_vectors)
    assert cli.main(["index", str(run)]) == 0
    process = subprocess.Popen([sys.executable, "-c", SERVE_COMMAND, "serve", str(run), "--host", "::1",
                                "--port", "0", "--workers", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        line = next(line for line in process.stdout if " on http://" in line)
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://[::1]:") and not url.endswith(":0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{url}/v1/neighbors", params={"word": "w1", "k": 3}, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert answer.status_code == 200 and len(answer.json()["neighbors"]) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_default_threads_follow_the_index_kind(tmp_path: Path, synthetic_vectors: Vectors) -> None:
    from nlp182.server.config import IndexConfig, ServeConfig
    from nlp182.server.index import SimilarityIndex

    assert ServeConfig().resolve_threads("hnsw") == 1  # one request thread per process
    assert ServeConfig().resolve_threads("flat") == 16  # concurrent queries are gathered
    assert ServeConfig(threads=4).resolve_threads("hnsw") == 4  # an explicit count wins
    assert ServeConfig(threads=1).app_config().batch_max == 1  # one thread: nothing to gather
    assert ServeConfig(threads=8).app_config().batch_max == ServeConfig().batch_max
    with pytest.raises(InvalidInputError, match="threads must be at least 0, got -1"):
        ServeConfig(threads=-1)
    # End to end: an HNSW run served with the defaults runs one request thread per worker, and answers.
    run = write_run(tmp_path / "run", synthetic_vectors)
    SimilarityIndex.build(synthetic_vectors, IndexConfig(kind="hnsw", recall_queries=50)).save(run)
    server = ServeProcess(run, "--workers", "2")
    try:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(
                lambda i: requests.get(f"{server.url}/v1/neighbors?word=w{i}&k=5", timeout=10).status_code,
                range(40)))
        # Re-indexed as flat and reloaded: the default threads follow the new kind.
        SimilarityIndex.build(synthetic_vectors, IndexConfig(kind="flat")).save(run)
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "flat index, 16 threads per worker" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code, output = server.stop()
    assert statuses == [200] * 40
    assert code == 0, output
    assert "x 1 threads" in output and "hnsw index" in output
    assert "reloading" in output and "flat index, 16 threads per worker" in output


PROBE = [sys.executable, "-m", "nlp182.server.probe"]


def test_probe_waits_for_the_server_and_prints_the_answer(live_server: ServeProcess) -> None:
    ok = subprocess.run([*PROBE, live_server.url, "/v1/neighbors?word=w1&k=3"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    header, body = ok.stdout.split("\n", 1)
    assert header == "GET /v1/neighbors?word=w1&k=3 -> 200" and len(json.loads(body)["neighbors"]) == 3
    missing = subprocess.run([*PROBE, live_server.url, "/v1/neighbors?word=zz"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "unknown_word" in missing.stdout
    down = subprocess.run([*PROBE, "http://127.0.0.1:9", "/", "--timeout", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert down.returncode == 2 and "not ready" in down.stderr


def test_demo_path_train_index_serve_agrees_with_vector_store(tmp_path: Path) -> None:
    """`nlp182 train w2v` (the project's trainer, tiny) -> `nlp182 index` -> API answers == most_similar."""
    from gensim.test.utils import datapath

    from nlp182.server.app import create_app

    run = tmp_path / "w2v"
    nlp182 = [sys.executable, "-m", "nlp182.cli"]
    corpus = datapath("lee_background.cor")
    flags = ["--vector-size", "32", "--epochs", "2", "--backend", "torch", "--threads", "1"]
    train = subprocess.run([*nlp182, "train", "w2v", "--corpus", corpus, "--out", str(run), *flags],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    index = subprocess.run([*nlp182, "index", str(run)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert index.returncode == 0, index.stderr[-2000:]
    vectors = Vectors.load(run)
    client = create_app(run).test_client()
    exact_order = 0
    for word in vectors.words[5:200:15]:
        answer = client.get("/v1/neighbors", query_string={"word": word, "k": 10}).get_json()["neighbors"]
        expected = vectors.most_similar(word, topn=10)
        for got, (_, score) in zip(answer, expected, strict=True):
            assert abs(got["score"] - score) < 1e-5
            # The word at each rank truly has that rank's score: order differs only inside float32 ties
            # (this barely trained run has many near-equal cosines).
            assert abs(vectors.similarity(word, got["word"]) - score) < 1e-6
        exact_order += [n["word"] for n in answer] == [w for w, _ in expected]
    assert exact_order >= 10  # of 13 queries; the rest differ only by swapped ties


def test_serve_flags_reach_gunicorn_and_each_worker_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        synthetic_vectors: Vectors) -> None:
    """``nlp182 serve`` as a worker takes it (gunicorn's settings, ``post_fork``, ``load``): the master
    validates its own copy of the settings, so a flag lost on the way to a worker goes unseen there."""
    import faiss

    import nlp182.server.app  # noqa: F401  (prometheus_client in one-process mode, as this test process is)
    from nlp182.server import serve
    from nlp182.server.config import IndexConfig
    from nlp182.server.index import SimilarityIndex
    from nlp182.server.worker import JsonErrorsProtocol

    run = write_run(tmp_path / "run", synthetic_vectors)
    hnsw = IndexConfig(kind="hnsw", ef_search=16, recall_queries=10)
    SimilarityIndex.build(synthetic_vectors, hnsw).save(run)
    started, arenas = [], []
    monkeypatch.setattr(serve._Gunicorn, "run", lambda gunicorn: started.append(gunicorn))
    monkeypatch.setattr(serve, "limit_malloc_arenas", arenas.append)
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda threads: None)  # the test process keeps its own
    blas_threshold = faiss.cvar.distance_compute_blas_threshold
    monkeypatch.setattr(faiss.cvar, "distance_compute_blas_threshold", blas_threshold)
    monkeypatch.setattr(JsonErrorsProtocol, "read_timeout", JsonErrorsProtocol.read_timeout)
    monkeypatch.setattr(JsonErrorsProtocol, "on_refusal", JsonErrorsProtocol.on_refusal)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert cli.main(["serve", str(run), "--host", "127.0.0.2", "--port", "0", "--workers", "1",
                     "--ef-search", "200", "--timeout", "77", "--blas-threshold", "7",
                     "--malloc-arenas", "0", "--request-timeout", "12.5"]) == 0
    (gunicorn,) = started
    assert arenas == [0]  # 0: glibc's own choice, not the default cap of 2
    assert gunicorn.cfg.timeout == 77 and gunicorn.cfg.workers == 1
    # a stop waits for a request as long as it may take to arrive, then 2 s for its answer (a fixed
    # 10 s cut an upload the 30 s request timeout allowed, with no answer)
    assert gunicorn.cfg.graceful_timeout == 15
    gunicorn.cfg.post_fork(None, None)
    assert faiss.cvar.distance_compute_blas_threshold == 7
    app = gunicorn.load().app
    assert app.extensions["nlp182"].index.index.hnsw.efSearch == 200  # index.json says 16
    # The bound address is an allowed Host name beside the loopback ones (DNS-rebinding check).
    answer = app.test_client().get("/v1/neighbors?word=w1&k=3", headers={"Host": "127.0.0.2:8000"})
    assert answer.status_code == 200 and len(answer.get_json()["neighbors"]) == 3


def test_malloc_arena_cap_is_applied_only_when_asked() -> None:
    from nlp182.server.serve import limit_malloc_arenas

    assert limit_malloc_arenas(0) is False
    assert limit_malloc_arenas(2) is (platform.libc_ver()[0] == "glibc")


def test_the_access_log_has_time_latency_and_escaped_fields(synthetic_run: Path) -> None:
    """An operator's access log: gunicorn's default format (it lacked the time, the size and the
    user agent), the milliseconds taken, one line per answer (413s answered before the app too),
    and quotes or escapes sent by a client cannot forge a line."""
    server = ServeProcess(synthetic_run, "--workers", "1", "--access-log", "--max-body-bytes", "1024")
    try:
        assert requests.get(f"{server.url}/v1/neighbors", params={"word": "w1", "k": 2},
                            headers={"User-Agent": 'probe "1"\\x'}, timeout=10).status_code == 200
        assert requests.post(f"{server.url}/v1/batch", data=b"x" * 5000, timeout=10).status_code == 413
    finally:
        output = server.stop()[1]
    lines = [line for line in output.splitlines()
             if line.startswith("127.0.0.1 - - [") and "/readyz" not in line]
    pattern = (r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(?P<request>[^"]*)" '
               r'(?P<status>\d{3}) (?P<size>\d+) "-" "(?P<agent>(?:[^"\\]|\\.)*)" (?P<ms>\d+\.\d)ms')
    fields = [re.fullmatch(pattern, line) for line in lines]
    assert len(lines) == 2 and all(fields), lines
    get, post = (match.groupdict() for match in fields)
    assert get["request"] == "GET /v1/neighbors?word=w1&k=2 HTTP/1.1" and get["status"] == "200"
    assert get["agent"] == 'probe \\"1\\"\\\\x' and int(get["size"]) > 50 and float(get["ms"]) < 10_000
    assert post["request"] == "POST /v1/batch HTTP/1.1" and post["status"] == "413"


def test_answers_keep_http_s_header_rules_and_stay_json(live_server: ServeProcess) -> None:
    """``/v1//neighbors`` got an HTML 308, OPTIONS an empty text/html 200, the page two Date headers
    and its 304 a ``Content-Length: 0``."""
    url = live_server.url
    doubled = requests.get(f"{url}/v1//neighbors?word=w1", allow_redirects=False, timeout=10)
    assert doubled.status_code == 404 and doubled.json()["error"]["code"] == "not_found"
    options = requests.options(f"{url}/v1/neighbors", timeout=10)
    allowed = set(options.headers["Allow"].replace(" ", "").split(","))
    assert options.status_code == 204 and {"GET", "POST"} <= allowed
    assert "content-type" not in options.headers
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and len(page.raw.headers.getlist("date")) == 1
    again = requests.get(f"{url}/", headers={"If-None-Match": page.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and "content-length" not in again.headers
