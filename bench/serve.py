"""The similarity service under load, beside the same search in-process (FAISS) and gensim.

``python -m bench.serve [--seconds 10] [--repeats 3] [--connections 32] [--soak-seconds 30]
[--big-words 300000]`` trains skip-gram vectors with gensim on ``corpora/wiki.txt`` (~95,000 x
300, as ``bench.hnsw_recall``; run ``nlp182 corpus prepare`` first), indexes them both ways, and
measures, in one run on this machine, loopback only:

- in-process, one query at a time with 1 OpenMP thread: FAISS exact, FAISS HNSW, gensim's
  ``most_similar`` (the reference), and FAISS exact on batches of 256;
- over HTTP (``nlp182 serve``: gunicorn master, 2 uvicorn workers): ``GET /v1/neighbors?k=10``
  under a bounded load from ``wrk`` (``--seconds`` per run, the median of ``--repeats`` runs, as
  for the in-process rows) for the exact index with and without micro-batching, and for HNSW,
  whose rows are reported only when the index's recall@10 against exact search, measured on the
  same vectors, is at least 0.95 (printed beside the throughput);
  ``POST /v1/neighbors`` with 64 words per request (the default max_batch);
- slow clients: the same load alone, then beside 100 connections that send their request one
  byte per second (bounded to 60 s), for both index kinds: the ratio of the normal requests' p99;
- reload: the load running while ``nlp182 index RUN`` rebuilds the index and the master gets
  ``kill -HUP``: errors seen by wrk (kept-alive connections) and by fresh-connection clients;
- costly requests on a ``--big-words`` x 300 run (random unit-normal vectors: their content does not
  change the cost): the time of the largest request each limit allows, and prefix lookup and
  suggestions against a scan of the vocabulary for the prefix (in frequency order, so the first
  matches are the most frequent);
- proportional (PSS) and resident (RSS) memory of the server with 1 and with 4 workers on that run;
- a soak: the load for ``--soak-seconds`` with 10% bad requests mixed in, counting 5xx and
  memory growth.

It prints the goals first (ratios), then the table, and writes ``bench/results/serve-cpu.json``
with the machine's load average (other jobs share these 2 cores, so compare ratios measured
in the same run, not absolute figures across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import psutil
import requests

from bench.hnsw_recall import CORPUS, trained_vectors
from bench.machine import faiss_machine
from nlp182.embeddings.lookup import WordLookup
from nlp182.embeddings.vectors import Vectors
from nlp182.io import atomic_write_json
from nlp182.server.config import IndexConfig, Limits
from nlp182.server.index import SimilarityIndex
from nlp182.server.loadtest import Load, SlowClients
from nlp182.server.process import SERVE_COMMAND, ServeProcess

ROOT = Path(__file__).resolve().parents[1]
#: FAISS's default: searches of fewer queries than this scan without BLAS (the server lowers it).
FAISS_BLAS_THRESHOLD = faiss.cvar.distance_compute_blas_threshold
RESULTS = ROOT / "bench" / "results"
GOALS = {
    "http_vs_inprocess": 0.5,
    "p99_ms": 25.0,
    "vs_gensim": 5.0,
    "memory_4_vs_1": 1.5,
    "soak_growth": 0.10,
}

WRK_SCRIPT = """
local words = {%(words)s}
local bad_every = %(bad_every)d
local bad = {
  "/v1/neighbors?word=zzzznotaword&k=10", "/v1/neighbors?word=w1&k=0", "/v1/neighbors?word=w1&k=abc",
  "/v1/neighbors", "/v1/similarity?a=w1", "/v1/vectors/notaword", "/v1/vocab?limit=1000",
}
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent, n2xx, n4xx, n5xx, nother = 0, 0, 0, 0, 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  sent = sent + 1
  if bad_every > 0 and sent %% bad_every == 0 then
    return wrk.format("GET", bad[math.random(#bad)])
  end
  return wrk.format("GET", "/v1/neighbors?k=10&word=" .. words[math.random(#words)])
end

function response(status, headers, body)
  if status >= 500 then n5xx = n5xx + 1
  elseif status >= 400 then n4xx = n4xx + 1
  elseif status >= 200 and status < 300 then n2xx = n2xx + 1
  else nother = nother + 1 end
end

function done(summary, latency, requests)
  local t = {n2xx = 0, n4xx = 0, n5xx = 0, nother = 0}
  for _, thread in ipairs(threads) do
    for key, _ in pairs(t) do t[key] = t[key] + thread:get(key) end
  end
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "connect_errors": %%d, "read_errors": %%d, "write_errors": %%d, "timeouts": %%d, ' ..
    '"n2xx": %%d, "n4xx": %%d, "n5xx": %%d, "nother": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, t.n2xx, t.n4xx, t.n5xx, t.nother))
end
"""


def build_run(folder: Path, matrix: np.ndarray) -> Vectors:
    """A run folder of ``matrix`` with words ``w0..``; returns its vectors."""
    vectors = Vectors([f"w{i}" for i in range(len(matrix))], matrix)
    vectors.save(folder)
    (folder / "config.json").write_text(json.dumps({"model": "bench", "dim": matrix.shape[1]}))
    return vectors


def per_second(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def in_process(vectors: Vectors, flat: SimilarityIndex, hnsw: SimilarityIndex, queries: int) -> dict:
    """Queries/s of one-at-a-time searches (k=10, query word left out) with 1 OpenMP thread."""
    from gensim.models import KeyedVectors

    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = FAISS_BLAS_THRESHOLD  # one query: FAISS's own path
    rng = np.random.default_rng(1)
    rows = rng.integers(0, len(vectors), size=max(queries, 2000))
    unit = flat.unit
    result = {
        "faiss_flat_qps": per_second(lambda i: flat.search(unit[rows[i]][None, :], 11), queries),
        "faiss_hnsw_qps": per_second(lambda i: hnsw.search(unit[rows[i]][None, :], 11), 2000),
    }
    faiss.cvar.distance_compute_blas_threshold = 4  # as the server workers set it
    batch = unit[rows[:256]]
    start = time.perf_counter()
    for _ in range(4):
        flat.search(batch, 11)
    result["faiss_flat_batch256_qps"] = 4 * 256 / (time.perf_counter() - start)
    kv = KeyedVectors(vectors.dim)
    kv.add_vectors(vectors.words, np.asarray(vectors.vectors))
    kv.fill_norms()
    words = vectors.words
    kv.most_similar(words[0], topn=10)  # builds gensim's normalised copy outside the timing
    result["gensim_most_similar_qps"] = per_second(
        lambda i: kv.most_similar(words[rows[i]], topn=10), queries
    )
    return result


class Server(ServeProcess):
    """``nlp182 serve`` for a measurement: returns once every worker has mapped the index."""

    def __init__(self, run: Path, *flags: str) -> None:
        super().__init__(run, *flags, timeout=120)
        try:
            self.workers(int(flags[flags.index("--workers") + 1]) if "--workers" in flags else 2, timeout=120)
        except RuntimeError:
            self.stop()
            raise

    def memory(self) -> dict:
        """Summed PSS (shared pages split between processes; anonymous and file-backed) and RSS, MiB."""
        master = psutil.Process(self.process.pid)
        processes = [master, *master.children(recursive=True)]
        totals = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_File": 0}
        for process in processes:
            for line in Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in totals:
                    totals[key] += int(value.split()[0])  # kB
        return {
            "processes": len(processes),
            "pss_mib": round(totals["Pss"] / 1024, 1),
            "pss_anon_mib": round(totals["Pss_Anon"] / 1024, 1),
            "pss_file_mib": round(totals["Pss_File"] / 1024, 1),
            "rss_mib": round(totals["Rss"] / 1024, 1),
        }


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict:
    """Run wrk (2 threads) against ``url`` for ``seconds``; latency percentiles and status counts."""
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(row for row in output.splitlines() if row.startswith("WRKJSON "))
    stats = json.loads(line[len("WRKJSON ") :])
    seconds_taken = stats["duration_us"] / 1e6
    return {
        "requests": stats["requests"],
        "seconds": round(seconds_taken, 2),
        "rps": round(stats["requests"] / seconds_taken, 1),
        "p50_ms": stats["p50_us"] / 1000,
        "p90_ms": stats["p90_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "max_ms": stats["max_us"] / 1000,
        "socket_errors": stats["connect_errors"]
        + stats["read_errors"]
        + stats["write_errors"]
        + stats["timeouts"],
        "status_2xx": stats["n2xx"],
        "status_4xx": stats["n4xx"],
        "status_5xx": stats["n5xx"],
    }


def median_run(runs: list[dict]) -> dict:
    """The load run of median throughput (its latencies come with it), every run's req/s beside it:
    on a shared host one run can be half as fast as the next."""
    row = dict(sorted(runs, key=lambda run: run["rps"])[len(runs) // 2])
    row["rps_runs"] = [run["rps"] for run in runs]
    return row


def write_script(folder: Path, words: int, bad_every: int) -> Path:
    """A wrk script asking for random words' neighbours; every ``bad_every``-th request is bad (0: none)."""
    rng = np.random.default_rng(2)
    sample = ", ".join(f'"w{i}"' for i in rng.integers(0, words, 2000))
    path = folder / f"load-{bad_every}.lua"
    path.write_text(WRK_SCRIPT % {"words": sample, "bad_every": bad_every})
    return path


def batch_endpoint(
    url: str, words: int, batch: int = 64, requests_count: int = 40, clients: int = 2
) -> dict:
    rng = np.random.default_rng(3)
    payloads = [
        {"words": [f"w{i}" for i in rng.integers(0, words, batch)], "k": 10} for _ in range(requests_count)
    ]
    session_per_client = [requests.Session() for _ in range(clients)]

    def send(i: int) -> int:
        response = session_per_client[i % clients].post(f"{url}/v1/neighbors", json=payloads[i], timeout=60)
        return response.status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(send, range(requests_count)))
    elapsed = time.perf_counter() - start
    return {
        "words_per_request": batch,
        "requests": requests_count,
        "clients": clients,
        "qps": round(batch * requests_count / elapsed, 1),
        "errors": sum(s != 200 for s in statuses),
    }


MIN_RECALL = 0.95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10, help="length of each load run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each throughput row (HTTP load and in-process); the median is kept")
    parser.add_argument("--soak-seconds", type=float, default=30)
    parser.add_argument("--queries", type=int, default=300, help="in-process one-at-a-time queries")
    parser.add_argument("--big-words", type=int, default=300_000, help="rows of the costly-request run")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--min-count", type=int, default=1, help="trained vocabulary (1: ~95,000 words)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.serve: error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if not CORPUS.is_file():
        print(f"bench.serve: error: {CORPUS} is missing; run `nlp182 corpus prepare`", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="nlp182-bench-serve-"))
    try:
        report = run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["machine"] = faiss_machine(load_before) | {
        "note": f"{os.cpu_count()} cores shared by the server, wrk and the slow clients (and by other "
        "jobs on the host): compare ratios within this run, not absolute figures across runs",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "serve-cpu.json", report)
    print_report(report)
    print(f"\nwrote {RESULTS / 'serve-cpu.json'}")
    return 0


def slow_clients_row(url: str, script: Path, args: argparse.Namespace) -> dict:
    """Normal load alone, then beside 100 connections sending 1 byte/s; p99 ratio."""
    alone = wrk(url, script, args.connections, args.seconds)
    slow = SlowClients(url, count=100, interval=1.0, seconds=60)
    try:
        beside = wrk(url, script, args.connections, args.seconds)
    finally:
        sent = slow.close()
    return {
        "alone": alone,
        "beside_100_slow": beside,
        "slow_bytes_sent": sent,
        "p99_ratio": round(beside["p99_ms"] / alone["p99_ms"], 3),
        "rps_ratio": round(beside["rps"] / alone["rps"], 3),
    }


def reload_row(run_dir: Path, url: str, master: int, script: Path, seconds: float) -> dict:
    """wrk and fresh-connection clients while ``nlp182 index`` rebuilds the index and the master HUPs."""
    paths = [f"/v1/neighbors?k=10&word=w{i}" for i in range(0, 5000, 7)]
    with ThreadPoolExecutor(1) as pool:
        kept_alive = pool.submit(wrk, url, script, 16, seconds)
        fresh = Load(url, paths, clients=2, seconds=seconds + 5)
        time.sleep(seconds / 4)
        rebuild = subprocess.run(
            [sys.executable, "-c", SERVE_COMMAND, "index", str(run_dir), "--kind", "flat"],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        os.kill(master, signal.SIGHUP)
        row = kept_alive.result()
        fresh_result = fresh.stop()
    return {
        "wrk_keepalive": row,
        "fresh_connections": fresh_result.summary(),
        "rebuild": json.loads(rebuild.stdout.strip().splitlines()[-1]),
        "errors_wrk": row["socket_errors"] + row["status_5xx"] + row["status_4xx"],
        "errors_fresh": len(fresh_result.errors)
        + sum(n for status, n in fresh_result.statuses.items() if status != 200),
    }


def _median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(f"{np.median(times):.3g}")


def scan_prefix(words: list[str], prefix: str, limit: int) -> list[str]:
    """The first ``limit`` words starting with ``prefix`` by a scan of the vocabulary (most frequent
    first): what a lookup without a sorted index does."""
    return [word for word in words if word.startswith(prefix)][:limit]


def scan_suggest(words: list[str], word: str, limit: int) -> list[str]:
    """Words sharing the longest prefix with ``word``, one scan of the vocabulary per prefix length."""
    for length in range(len(word), 0, -1):
        found = scan_prefix(words, word[:length], limit)
        if found:
            return found
    return []


def _lookup_row(seconds: float, scan_seconds: float) -> dict:
    speedup = round(scan_seconds / max(seconds, 1e-7), 1)
    return {"seconds": seconds, "scan_seconds": scan_seconds, "speedup": speedup}


def costly_rows(url: str, vectors: Vectors) -> dict:
    """Time of the largest request each default limit allows, on the big run; lookups in-process."""
    limits = Limits()
    session = requests.Session()
    words = vectors.words

    def post(path: str, payload: dict) -> None:
        response = session.post(f"{url}{path}", json=payload, timeout=120)
        assert response.status_code == 200, response.text[:300]

    k_for_batch = limits.max_results // limits.max_batch
    analogy = {
        "positive": words[1 : 1 + limits.max_analogy_words],
        "negative": words[100 : 100 + limits.max_analogy_words],
        "k": 10,
    }
    rows = {
        f"POST neighbors {limits.max_batch} words x k={k_for_batch}": lambda: post(
            "/v1/neighbors", {"words": words[: limits.max_batch], "k": k_for_batch}
        ),
        f"POST neighbors {limits.max_results // limits.max_k} words x k={limits.max_k}": lambda: post(
            "/v1/neighbors", {"words": words[: limits.max_results // limits.max_k], "k": limits.max_k}
        ),
        f"POST analogy 3CosMul {limits.max_analogy_words}+{limits.max_analogy_words} words": lambda: post(
            "/v1/analogy", {**analogy, "method": "3CosMul"}
        ),
        f"POST analogy 3CosAdd {limits.max_analogy_words}+{limits.max_analogy_words} words": lambda: post(
            "/v1/analogy", {**analogy, "method": "3CosAdd"}
        ),
    }
    result = {name: {"seconds": _median_seconds(fn)} for name, fn in rows.items()}
    over = session.post(f"{url}/v1/neighbors", json={"words": words[:1000], "k": 1000}, timeout=60)
    result["refused: 1000 words x k=1000"] = {
        "status": over.status_code,
        "seconds": over.elapsed.total_seconds(),
        "limit": over.json()["error"].get("limit"),
    }
    vocab = WordLookup(words, vectors.key_to_index)
    lookups = {}
    for prefix in ("w", "w1", "w12345"):
        new = _median_seconds(lambda p=prefix: vocab.with_prefix(p, 10), 5)
        old = _median_seconds(lambda p=prefix: scan_prefix(words, p, 10), 5)
        lookups[f"prefix {prefix!r}"] = _lookup_row(new, old)
    new = _median_seconds(lambda: vocab.suggest("w1234567"), 5)
    old = _median_seconds(lambda: scan_suggest(words, "w1234567", 5), 5)
    lookups["suggest 'w1234567'"] = _lookup_row(new, old)
    return {"limits": vars(limits), "requests": result, "lookups": lookups}


def run(work: Path, args: argparse.Namespace) -> dict:
    flat_run, hnsw_run, big_run = work / "flat", work / "hnsw", work / "big"
    print(f"training skip-gram {args.dim}-d on {CORPUS.name} (as bench.hnsw_recall) ...", flush=True)
    vectors = build_run(flat_run, trained_vectors(args.min_count, args.dim, 0))
    faiss.omp_set_num_threads(2)
    flat = SimilarityIndex.build(vectors, IndexConfig(kind="flat"))
    flat.save(flat_run)
    shutil.copytree(flat_run, hnsw_run)
    hnsw = SimilarityIndex.build(vectors, IndexConfig(kind="hnsw"))
    hnsw.save(hnsw_run)
    recall = hnsw.meta["recall_at_10"]
    hnsw_ok = recall >= MIN_RECALL
    print(f"{len(vectors)} x {vectors.dim}; HNSW built in {hnsw.meta['build_seconds']} s, recall@10 {recall}")
    hnsw_index = {
        **hnsw.meta["params"],
        "recall_at_10": recall,
        "recall_queries": hnsw.meta["recall_queries"],
        "reported": hnsw_ok,
        "vectors": "skip-gram trained by gensim on corpora/wiki.txt",
    }
    flat = SimilarityIndex.load(flat_run, Vectors.load(flat_run))
    hnsw = SimilarityIndex.load(hnsw_run, Vectors.load(hnsw_run))
    rounds = [in_process(vectors, flat, hnsw, args.queries) for _ in range(args.repeats)]
    inproc = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}
    print("in-process:", json.dumps({k: round(v, 1) for k, v in inproc.items()}), flush=True)
    words = len(vectors)
    del vectors, flat, hnsw

    load_script = write_script(work, words, 0)
    http, slow, reload = {}, {}, {}
    cases = {  # the server's defaults pick the request threads by index kind (ServeConfig.threads)
        "flat_batched": (flat_run, []),
        "flat_unbatched": (flat_run, ["--batch-max", "1"]),
        "hnsw": (hnsw_run, []),
    }
    for name, (run_dir, flags) in cases.items():
        server = Server(run_dir, "--workers", "2", *flags)
        try:
            wrk(server.url, load_script, args.connections, 3)  # warm up: page in the index
            runs = [wrk(server.url, load_script, args.connections, args.seconds) for _ in range(args.repeats)]
            http[name] = median_run(runs)
            http[name]["flags"] = " ".join(["--workers", "2", *flags])
            if name in ("flat_batched", "hnsw"):
                kind = name.split("_")[0]
                http[f"batch_endpoint_{kind}"] = batch_endpoint(server.url, words)
                slow[kind] = slow_clients_row(server.url, load_script, args)
                print(
                    f"slow clients {kind}:",
                    json.dumps({k: slow[kind][k] for k in ("p99_ratio", "rps_ratio")}),
                    flush=True,
                )
            if name == "flat_batched":
                reload = reload_row(run_dir, server.url, server.process.pid, load_script, args.seconds)
                print(
                    "reload:", json.dumps({k: reload[k] for k in ("errors_wrk", "errors_fresh")}), flush=True
                )
        finally:
            server.stop()
        print(f"{name}:", json.dumps(http[name]), flush=True)
    if not hnsw_ok:  # an approximate index below the recall bar is not a like-for-like row
        for key in ("hnsw", "batch_endpoint_hnsw"):
            http.pop(key)

    print(f"building the costly-request run: {args.big_words} x {args.dim} ...", flush=True)
    rng = np.random.default_rng(0)
    big = build_run(big_run, rng.standard_normal((args.big_words, args.dim), dtype=np.float32))
    SimilarityIndex.build(big, IndexConfig(kind="flat")).save(big_run)
    big_script = write_script(work, args.big_words, 0)
    memory = {}
    costly = {}
    for workers in (1, 4):
        server = Server(big_run, "--workers", str(workers))
        try:
            wrk(server.url, big_script, 16, args.seconds)  # every worker scans the index
            memory[f"workers_{workers}"] = server.memory()
            if workers == 1:
                costly = costly_rows(server.url, big)
        finally:
            server.stop()
    memory["run"] = f"{args.big_words} x {args.dim} flat"
    print("memory:", json.dumps(memory), flush=True)
    print("costly:", json.dumps(costly["requests"]), flush=True)
    del big

    server = Server(flat_run, "--workers", "2")
    try:
        wrk(server.url, load_script, args.connections, 5)
        before = server.memory()
        soak = wrk(server.url, write_script(work, words, 10), args.connections, args.soak_seconds)
        after = server.memory()
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    soak.update(
        index="flat",
        memory_before=before,
        memory_after=after,
        pss_growth=round(after["pss_mib"] / before["pss_mib"] - 1, 4),
        pss_anon_growth=round(after["pss_anon_mib"] / before["pss_anon_mib"] - 1, 4),
        metrics_5xx_lines=[line for line in metrics.splitlines() if 'status="5' in line],
    )
    print("soak:", json.dumps(soak), flush=True)
    return {
        "config": vars(args),
        "hnsw_index": hnsw_index,
        "in_process": inproc,
        "http": http,
        "slow_clients": slow,
        "reload": reload,
        "costly": costly,
        "memory": memory,
        "soak": soak,
        "goals": goals(inproc, http, slow, reload, memory, soak, hnsw_index),
    }


def goals(
    inproc: dict, http: dict, slow: dict, reload: dict, memory: dict, soak: dict, hnsw_index: dict
) -> dict:
    def check(value: float, goal: float, higher_is_better: bool = True) -> dict:
        met = value >= goal if higher_is_better else value <= goal
        return {"value": round(value, 3), "goal": goal, "met": bool(met)}

    result = {
        "hnsw: recall@10 vs exact (rows shown only if met)": check(hnsw_index["recall_at_10"], MIN_RECALL)
    }
    for kind, case in (("flat", "flat_batched"), ("hnsw", "hnsw")):
        if case not in http:
            continue
        row = http[case]
        base = inproc[f"faiss_{kind}_qps"]
        result[f"{kind}: HTTP rps / in-process FAISS qps"] = check(
            row["rps"] / base, GOALS["http_vs_inprocess"]
        )
        result[f"{kind}: p99 ms"] = check(row["p99_ms"], GOALS["p99_ms"], higher_is_better=False)
        result[f"{kind}: HTTP rps / gensim qps"] = check(
            row["rps"] / inproc["gensim_most_similar_qps"], GOALS["vs_gensim"]
        )
        result[f"{kind}: errors"] = check(
            row["socket_errors"] + row["status_4xx"] + row["status_5xx"], 0, higher_is_better=False
        )
    for kind, row in slow.items():
        result[f"{kind}: p99 beside 100 slow clients / alone"] = check(row["p99_ratio"], 2.0, False)
    result["HUP reload under load: errors (fresh connections)"] = check(reload["errors_fresh"], 0, False)
    result["HUP reload under load: errors (wrk, kept-alive connections)"] = check(
        reload["errors_wrk"], 0, False
    )
    result["flat: batching speed-up (rps batched / unbatched)"] = {
        "value": round(http["flat_batched"]["rps"] / http["flat_unbatched"]["rps"], 3)
    }
    result["memory PSS 4 workers / 1"] = check(
        memory["workers_4"]["pss_mib"] / memory["workers_1"]["pss_mib"], GOALS["memory_4_vs_1"], False
    )
    result["memory RSS-sum 4 workers / 1 (counts shared pages 4x)"] = {
        "value": round(memory["workers_4"]["rss_mib"] / memory["workers_1"]["rss_mib"], 3)
    }
    result["soak: 5xx"] = check(soak["status_5xx"], 0, higher_is_better=False)
    result["soak: memory growth (PSS)"] = check(soak["pss_growth"], GOALS["soak_growth"], False)
    result["soak: anonymous memory growth (heap; a leak shows here)"] = check(
        soak["pss_anon_growth"], GOALS["soak_growth"], False
    )
    return result


def print_report(report: dict) -> None:
    print("\ngoals (value vs goal)")
    for name, row in report["goals"].items():
        mark = "" if "met" not in row else ("  met" if row["met"] else "  NOT MET")
        goal = f"  goal {row['goal']}" if "goal" in row else ""
        print(f"  {name:60s} {row['value']:>10}{goal}{mark}")
    print("\nin-process, one query at a time, 1 OpenMP thread (queries/s)")
    for name, value in report["in_process"].items():
        print(f"  {name:40s} {value:10.1f}")
    recall = report["hnsw_index"]["recall_at_10"]
    print(f"\nHTTP GET /v1/neighbors k=10 (wrk, 2 threads); HNSW recall@10 {recall}")
    print(
        f"  {'case':22s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'requests':>9s} {'errors':>7s}"
        " recall@10"
    )
    for name in ("flat_batched", "flat_unbatched", "hnsw"):
        if name not in report["http"]:
            print(f"  {name:22s} omitted: recall@10 {recall} < {MIN_RECALL}")
            continue
        row = report["http"][name]
        errors = row["socket_errors"] + row["status_4xx"] + row["status_5xx"]
        print(
            f"  {name:22s} {row['rps']:8.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['requests']:9d} {errors:7d} {recall if name == 'hnsw' else 1.0}"
        )
    for name in ("batch_endpoint_flat", "batch_endpoint_hnsw"):
        if name in report["http"]:
            row = report["http"][name]
            print(
                f"  POST {name[15:]:5s} {row['words_per_request']} words/request: {row['qps']:.1f} q/s, "
                f"{row['errors']} errors"
            )
    for kind, row in report["slow_clients"].items():
        print(
            f"  {kind}: p99 {row['alone']['p99_ms']:.2f} ms alone, {row['beside_100_slow']['p99_ms']:.2f} ms "
            f"beside 100 slow clients (x{row['p99_ratio']}); req/s x{row['rps_ratio']}"
        )
    reload = report["reload"]
    print(
        f"  HUP reload under load: {reload['errors_wrk']} errors of "
        f"{reload['wrk_keepalive']['requests']} (wrk), "
        f"{reload['errors_fresh']} of {reload['fresh_connections']['requests']} (fresh connections)"
    )
    print("\ncostly requests (defaults), seconds")
    for name, row in {**report["costly"]["requests"], **report["costly"]["lookups"]}.items():
        print(f"  {name:45s} {json.dumps(row)}")
    for workers, row in report["memory"].items():
        if isinstance(row, dict):
            print(
                f"  memory {workers}: PSS {row['pss_mib']} MiB, RSS-sum {row['rss_mib']} MiB "
                f"({row['processes']} procs)"
            )
    soak = report["soak"]
    print(
        f"  soak {soak['seconds']} s: {soak['rps']} req/s, 2xx {soak['status_2xx']}, "
        f"4xx {soak['status_4xx']}, 5xx {soak['status_5xx']}, "
        f"PSS {soak['memory_before']['pss_mib']} -> {soak['memory_after']['pss_mib']} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
