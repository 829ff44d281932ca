"""The similarity service under load, beside the same search in-process (FAISS) and gensim.

``python -m bench.serve [--words 100000] [--dim 300] [--seconds 20] [--connections 32]
[--soak-seconds 60]`` builds a synthetic run (unit-normal random vectors: the worst case for HNSW
recall, fine for speed), indexes it both ways, and measures, in one run on this machine, loopback
only:

- in-process, one query at a time with 1 OpenMP thread: FAISS exact, FAISS HNSW, gensim's
  ``most_similar`` (the reference), and FAISS exact on batches of 256;
- over HTTP (``nlp182 serve``: gunicorn, 2 workers): ``GET /v1/neighbors?k=10`` under a bounded
  load from ``wrk`` (bounded by time: ``--seconds`` per run), for the exact index with and without
  micro-batching (threaded workers, the default for exact), for HNSW with the server's defaults
  (sync workers; also at 8 and 128 connections) and, for comparison, HNSW on 16 threads per worker;
  ``POST /v1/neighbors`` with 256 words per request;
- proportional (PSS) and resident (RSS) memory of the server with 1 and with 4 workers;
- a soak: the same load for ``--soak-seconds`` with 10% bad requests mixed in, counting 5xx and
  memory growth.

It prints the goals first (ratios), then the table, and writes ``bench/results/serve-cpu.json``
with the machine's load average (other engineers share these 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from bench.machine import faiss_machine
from nlp182.embeddings.vectors import Vectors
from nlp182.io import atomic_write_json
from server.config import IndexConfig
from server.index import SimilarityIndex
from server.process import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
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


def build_run(folder: Path, words: int, dim: int, seed: int = 0) -> Vectors:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((words, dim), dtype=np.float32)
    vectors = Vectors([f"w{i}" for i in range(words)], matrix)
    vectors.save(folder)
    (folder / "config.json").write_text(json.dumps({"model": "synthetic", "dim": dim}))
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


def write_script(folder: Path, words: int, bad_every: int) -> Path:
    """A wrk script asking for random words' neighbours; every ``bad_every``-th request is bad (0: none)."""
    rng = np.random.default_rng(2)
    sample = ", ".join(f'"w{i}"' for i in rng.integers(0, words, 2000))
    path = folder / f"load-{bad_every}.lua"
    path.write_text(WRK_SCRIPT % {"words": sample, "bad_every": bad_every})
    return path


def batch_endpoint(
    url: str, words: int, batch: int = 256, requests_count: int = 40, clients: int = 2
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20, help="length of each load run")
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--queries", type=int, default=300, help="in-process one-at-a-time queries")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.serve: error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="nlp182-bench-serve-"))
    try:
        report = run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["machine"] = faiss_machine(load_before) | {
        "note": "2 shared cores: other engineers ran CPU work during the run; "
        "wrk shares the cores with the server",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "serve-cpu.json", report)
    print_report(report)
    print(f"\nwrote {RESULTS / 'serve-cpu.json'}")
    return 0


def run(work: Path, args: argparse.Namespace) -> dict:
    flat_run, hnsw_run = work / "flat", work / "hnsw"
    print(f"building {args.words} x {args.dim} synthetic run ...", flush=True)
    vectors = build_run(flat_run, args.words, args.dim)
    faiss.omp_set_num_threads(2)
    flat = SimilarityIndex.build(vectors, IndexConfig(kind="flat"))
    flat.save(flat_run)
    shutil.copytree(flat_run, hnsw_run)
    hnsw = SimilarityIndex.build(vectors, IndexConfig(kind="hnsw"))
    hnsw.save(hnsw_run)
    print(
        f"HNSW built in {hnsw.meta['build_seconds']} s, "
        f"recall@10 {hnsw.meta['recall_at_10']} (random vectors)"
    )
    hnsw_index = {
        **hnsw.meta["params"],
        "recall_at_10_random_vectors": hnsw.meta["recall_at_10"],
        "note": "random 300-d vectors are HNSW's worst case; recall on trained vectors per efSearch: "
        "bench/results/hnsw-recall-cpu.json",
    }
    flat = SimilarityIndex.load(flat_run, Vectors.load(flat_run))
    hnsw = SimilarityIndex.load(hnsw_run, Vectors.load(hnsw_run))
    inproc = in_process(vectors, flat, hnsw, args.queries)
    print("in-process:", json.dumps({k: round(v, 1) for k, v in inproc.items()}), flush=True)
    del vectors, flat, hnsw

    load_script = write_script(work, args.words, 0)
    http = {}
    cases = {  # the server's defaults pick the worker model by index kind (ServeConfig.threads)
        "flat_batched": (flat_run, []),
        "flat_unbatched": (flat_run, ["--batch-max", "1"]),
        "hnsw": (hnsw_run, []),
        "hnsw_threaded": (hnsw_run, ["--threads", "16"]),
    }
    for name, (run_dir, flags) in cases.items():
        server = Server(run_dir, "--workers", "2", *flags)
        try:
            wrk(server.url, load_script, args.connections, 3)  # warm up: page in the index
            http[name] = wrk(server.url, load_script, args.connections, args.seconds)
            http[name]["flags"] = " ".join(["--workers", "2", *flags])
            if name == "flat_batched":
                http["batch_endpoint_flat"] = batch_endpoint(server.url, args.words)
            if name == "hnsw":
                http["batch_endpoint_hnsw"] = batch_endpoint(server.url, args.words)
                for connections in (8, 128):  # beside the headline's 32: lighter and heavier load
                    row = wrk(server.url, load_script, connections, args.seconds / 2)
                    http[f"hnsw_{connections}_connections"] = {**row, "flags": "--workers 2"}
        finally:
            server.stop()
        print(f"{name}:", json.dumps(http[name]), flush=True)

    memory = {}
    for workers in (1, 4):
        server = Server(flat_run, "--workers", str(workers))
        try:
            wrk(server.url, load_script, 16, 10)  # every worker scans the index
            memory[f"workers_{workers}"] = server.memory()
        finally:
            server.stop()
    print("memory:", json.dumps(memory), flush=True)

    server = Server(hnsw_run, "--workers", "2")
    try:
        wrk(server.url, load_script, args.connections, 20)  # warm up: fault in the HNSW graph pages
        before = server.memory()
        soak = wrk(server.url, write_script(work, args.words, 10), args.connections, args.soak_seconds)
        after = server.memory()
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    soak.update(
        index="hnsw",
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
        "memory": memory,
        "soak": soak,
        "goals": goals(inproc, http, memory, soak),
    }


def goals(inproc: dict, http: dict, memory: dict, soak: dict) -> dict:
    def check(value: float, goal: float, higher_is_better: bool = True) -> dict:
        met = value >= goal if higher_is_better else value <= goal
        return {"value": round(value, 3), "goal": goal, "met": bool(met)}

    result = {}
    for kind, case in (("flat", "flat_batched"), ("hnsw", "hnsw")):
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
    result["flat: batching speed-up (rps batched / unbatched)"] = {
        "value": round(http["flat_batched"]["rps"] / http["flat_unbatched"]["rps"], 3)
    }
    result["memory PSS 4 workers / 1"] = check(
        memory["workers_4"]["pss_mib"] / memory["workers_1"]["pss_mib"],
        GOALS["memory_4_vs_1"],
        higher_is_better=False,
    )
    result["memory RSS-sum 4 workers / 1 (counts shared pages 4x)"] = {
        "value": round(memory["workers_4"]["rss_mib"] / memory["workers_1"]["rss_mib"], 3)
    }
    result["soak: 5xx"] = check(soak["status_5xx"], 0, higher_is_better=False)
    result["soak: memory growth (PSS)"] = check(
        soak["pss_growth"], GOALS["soak_growth"], higher_is_better=False
    )
    result["soak: anonymous memory growth (heap; a leak shows here)"] = check(
        soak["pss_anon_growth"], GOALS["soak_growth"], higher_is_better=False
    )
    return result


def print_report(report: dict) -> None:
    print("\ngoals (value vs goal)")
    for name, row in report["goals"].items():
        mark = "" if "met" not in row else ("  met" if row["met"] else "  NOT MET")
        goal = f"  goal {row['goal']}" if "goal" in row else ""
        print(f"  {name:58s} {row['value']:>10}{goal}{mark}")
    print("\nin-process, one query at a time, 1 OpenMP thread (queries/s)")
    for name, value in report["in_process"].items():
        print(f"  {name:40s} {value:10.1f}")
    print("\nHTTP GET /v1/neighbors k=10 (wrk, 2 threads)")
    print(f"  {'case':22s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'requests':>9s} {'errors':>7s}")
    rows = ["flat_batched", "flat_unbatched", "hnsw", "hnsw_threaded"]
    rows += [name for name in report["http"] if name.endswith("_connections")]
    for name in rows:
        row = report["http"][name]
        errors = row["socket_errors"] + row["status_4xx"] + row["status_5xx"]
        print(
            f"  {name:22s} {row['rps']:8.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['requests']:9d} {errors:7d}"
        )
    for name in ("batch_endpoint_flat", "batch_endpoint_hnsw"):
        row = report["http"][name]
        print(f"  POST {name[15:]:5s} 256 words/request: {row['qps']:.1f} queries/s, {row['errors']} errors")
    for workers, row in report["memory"].items():
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
