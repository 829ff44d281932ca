"""The vector store beside gensim's KeyedVectors on a 300k x 300 store: load time, most_similar time,
peak RSS.

``python -m bench.vectors`` writes a word2vec binary file of ``--file-words`` x ``--dim`` random
vectors in a temporary folder, then measures two ways of holding a ``--limit`` x ``--dim`` store:

- ``limit``: ``load_word2vec_format(path, binary=True, limit=N)`` on both sides (the usual way to
  load part of GoogleNews), the matrix in memory.
- ``mmap``: memory-mapped: gensim's ``KeyedVectors.load(kv, mmap="r")`` of the same vectors saved
  with ``KeyedVectors.save`` (vectors in a separate ``.npy``) beside nlp182's ``Vectors.load(run)``
  of the run folder ``nlp182 import --limit N`` wrote.

Each measurement runs in a fresh process (so peak RSS is that process's own ``ru_maxrss``), the two
sides interleaved, ``--repeats`` times; the table shows medians and nlp182/gensim ratios (below 1:
nlp182 needs less). The machine is shared, so absolute times move between runs; ratios less so.
Both sides answer the same queries and their top-10 words are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results")
SIDES = ("gensim", "nlp182")
SCENARIOS = ("limit", "mmap")


def write_file(path: Path, words: int, dim: int, seed: int = 0) -> None:
    """A word2vec binary file of ``words`` random vectors, written in chunks."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        handle.write(f"{words} {dim}\n".encode())
        for start in range(0, words, 10_000):
            block = rng.standard_normal((min(10_000, words - start), dim), dtype=np.float32)
            handle.write(
                b"".join(
                    f"w{start + i} ".encode() + row.astype("<f4").tobytes() for i, row in enumerate(block)
                )
            )


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries the parent's peak
    across fork and exec into it, which would hide the child's own figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(side: str, scenario: str, source: str, limit: int, queries: list[str]) -> dict:
    """Load one store and answer ``queries``; runs in its own process."""
    start = time.perf_counter()
    if side == "gensim":
        from gensim.models import KeyedVectors

        if scenario == "limit":
            kv = KeyedVectors.load_word2vec_format(source, binary=True, limit=limit)
        else:
            kv = KeyedVectors.load(source, mmap="r")
    else:
        from nlp182.embeddings.vectors import Vectors

        kv = (
            Vectors.load_word2vec_format(source, binary=True, limit=limit)
            if scenario == "limit"
            else Vectors.load(source)
        )
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    answers = [kv.most_similar(queries[0], topn=10)]
    first_s = time.perf_counter() - start
    times = []
    for word in queries[1:]:
        start = time.perf_counter()
        answers.append(kv.most_similar(word, topn=10))
        times.append(time.perf_counter() - start)
    return {
        "load_s": load_s,
        "first_query_s": first_s,
        "query_ms": 1000 * statistics.median(times),
        "peak_rss_mb": peak_rss_mb(),
        "words": len(kv),
        "top10": [[w for w, _ in answer] for answer in answers],
    }


def run_child(side: str, scenario: str, source: Path, limit: int, queries: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "bench.vectors",
        "--child",
        side,
        scenario,
        str(source),
        str(limit),
        json.dumps(queries),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(work: Path, words: int, dim: int, limit: int) -> dict[str, Path]:
    """The word2vec file, gensim's memory-mappable .kv and nlp182's run folder (first ``limit`` words)."""
    from gensim.models import KeyedVectors

    from nlp182.embeddings.importing import import_vectors

    source = work / "vectors.bin"
    write_file(source, words, dim)
    KeyedVectors.load_word2vec_format(str(source), binary=True, limit=limit).save(
        str(work / "kv"), sep_limit=0
    )
    import_vectors(source, work / "run", limit=limit, show_progress=False)
    return {"limit": source, "mmap_gensim": work / "kv", "mmap_nlp182": work / "run"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-words", type=int, default=350_000, help="words in the generated file")
    parser.add_argument("--limit", type=int, default=300_000, help="words loaded (limit=)")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, scenario, source, limit, queries = args.child
        print(json.dumps(child(side, scenario, source, int(limit), json.loads(queries))))
        return 0

    load_before = os.getloadavg()
    rows: dict[str, dict[str, list[dict]]] = {s: {side: [] for side in SIDES} for s in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as folder:
        print(f"writing a {args.file_words} x {args.dim} word2vec binary file ...", flush=True)
        paths = prepare(Path(folder), args.file_words, args.dim, args.limit)
        step = max(1, args.limit // args.queries)
        queries = [f"w{i}" for i in range(0, args.limit, step)][: args.queries]
        for repeat in range(args.repeats):
            for scenario in SCENARIOS:
                order = SIDES if repeat % 2 == 0 else SIDES[::-1]  # interleaved, alternating who goes first
                for side in order:
                    source = paths["limit"] if scenario == "limit" else paths[f"mmap_{side}"]
                    rows[scenario][side].append(run_child(side, scenario, source, args.limit, queries))
                    print(
                        f"  {scenario:<6}{side:<8} {rows[scenario][side][-1]['query_ms']:.1f} ms/query",
                        flush=True,
                    )
    report = summarise(rows)
    report["config"] = {
        "file_words": args.file_words,
        "limit": args.limit,
        "dim": args.dim,
        "queries": args.queries,
        "repeats": args.repeats,
        "blas_threads": 1,
    }
    report["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    report["note"] = (
        "Medians over repeats, each measurement in a fresh process, the two sides interleaved; "
        "ratio = nlp182 / gensim (below 1: nlp182 takes less). One BLAS thread on both sides: on the "
        "2-core machine shared by other jobs, a second BLAS thread waits on the scheduler (tens of ms per "
        "query). Absolute times move between runs; ratios less so. Peak RSS is each process's VmHWM."
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "vectors-cpu.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {path}")
    return 0


def summarise(rows: dict[str, dict[str, list[dict]]]) -> dict:
    """Medians per side and nlp182/gensim ratios per scenario, plus whether the answers agree."""
    metrics = ("query_ms", "first_query_s", "load_s", "peak_rss_mb")
    summary: dict = {"scenarios": {}}
    for scenario, sides in rows.items():
        medians = {
            side: {m: statistics.median(r[m] for r in runs) for m in metrics} for side, runs in sides.items()
        }
        summary["scenarios"][scenario] = {
            "ratio": {m: medians["nlp182"][m] / medians["gensim"][m] for m in metrics},
            "gensim": medians["gensim"],
            "nlp182": medians["nlp182"],
            "same_top10": sides["gensim"][0]["top10"] == sides["nlp182"][0]["top10"],
            "words": sides["nlp182"][0]["words"],
        }
    return summary


def print_table(report: dict) -> None:
    print(f"\n{'store':<8}{'metric':<15}{'ratio':>8}{'gensim':>12}{'nlp182':>12}")
    for scenario, row in report["scenarios"].items():
        for metric, value in row["ratio"].items():
            print(
                f"{scenario:<8}{metric:<15}{value:>8.2f}{row['gensim'][metric]:>12.3f}{row['nlp182'][metric]:>12.3f}"
            )
        print(f"{scenario:<8}{'same top-10':<15}{row['same_top10']!s:>8}")


if __name__ == "__main__":
    sys.exit(main())
