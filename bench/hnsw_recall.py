"""HNSW recall@10 and search time per efSearch, on trained vectors beside random ones.

``python -m bench.hnsw_recall [--min-count 1] [--dim 300] [--queries 1000]`` trains skip-gram
vectors with gensim (the reference library) on the default corpus (``corpora/wiki.txt``, lower-cased,
whitespace tokens; min_count 1 gives a ~95,000-word vocabulary, the scale of the serve bench),
builds the server's HNSW index over them with the default ``IndexConfig`` (M, efConstruction), and
for each efSearch measures recall@10 against the exact index (``nlp182.server.index.measure_recall``: the
query word left out, as the server answers) and microseconds per query, one query at a time on one
OpenMP thread. The same is measured on unit-normal random vectors of the same shape: the worst case
for HNSW (in 300 dimensions a random point's nearest neighbours are barely nearer than the rest), so
their recall says little about trained vectors. The default efSearch is chosen from this table.

Writes ``bench/results/hnsw-recall-cpu.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from bench.machine import faiss_machine
from nlp182.io import atomic_write_json
from nlp182.server.config import IndexConfig
from nlp182.server.index import measure_recall

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CORPUS = ROOT / "corpora" / "wiki.txt"
EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192)


def trained_vectors(min_count: int, dim: int, seed: int) -> np.ndarray:
    """Skip-gram vectors of ``corpora/wiki.txt`` trained by gensim (5 epochs, window 5, 2 workers)."""
    from gensim.models import Word2Vec

    class Sentences:
        def __iter__(self):
            with open(CORPUS, encoding="utf-8") as handle:
                for line in handle:
                    tokens = line.lower().split()
                    for start in range(0, len(tokens), 1000):
                        yield tokens[start : start + 1000]

    model = Word2Vec(Sentences(), vector_size=dim, window=5, min_count=min_count, sg=1, negative=5,
                     epochs=5, workers=2, seed=seed)
    return model.wv.vectors.astype(np.float32)


def sweep(matrix: np.ndarray, queries: int, seed: int) -> dict:
    """Build the default HNSW over the unit rows of ``matrix``; recall@10 and us/query per efSearch."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    config = IndexConfig(kind="hnsw")
    faiss.omp_set_num_threads(2)
    exact = faiss.IndexFlatIP(unit.shape[1])
    exact.add(unit)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(unit.shape[1], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = config.ef_construction
    index.add(unit)
    build = time.perf_counter() - start
    rows = np.random.default_rng(seed + 1).integers(0, len(unit), 2000)
    table = []
    for ef in EF_SEARCH:
        index.hnsw.efSearch = ef
        recall, used = measure_recall(index, exact, unit, queries, seed)
        faiss.omp_set_num_threads(1)
        begin = time.perf_counter()
        for row in rows:
            index.search(unit[row][None, :], 11)
        us = (time.perf_counter() - begin) / len(rows) * 1e6
        faiss.omp_set_num_threads(2)
        table.append({"ef_search": ef, "recall_at_10": round(recall, 4), "us_per_query": round(us, 1)})
        print(f"  efSearch {ef:4d}: recall@10 {recall:.4f}, {us:7.1f} us/query", flush=True)
    return {"words": len(unit), "dim": unit.shape[1], "m": config.hnsw_m,
            "ef_construction": config.ef_construction, "build_seconds": round(build, 1),
            "recall_queries": used, "by_ef_search": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--queries", type=int, default=1000, help="recall query words")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    print(f"training skip-gram {args.dim}-d on {CORPUS.name} (min_count {args.min_count}) ...", flush=True)
    trained = trained_vectors(args.min_count, args.dim, args.seed)
    print(f"trained vectors: {trained.shape[0]} x {trained.shape[1]}")
    report = {"config": vars(args), "default_ef_search": IndexConfig().ef_search}
    report["trained"] = sweep(trained, args.queries, args.seed)
    print(f"random unit-normal vectors: {trained.shape[0]} x {trained.shape[1]}")
    rng = np.random.default_rng(args.seed)
    report["random"] = sweep(rng.standard_normal(trained.shape, dtype=np.float32), args.queries, args.seed)
    report["machine"] = faiss_machine(load_before)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "hnsw-recall-cpu.json", report)
    print(f"wrote {RESULTS / 'hnsw-recall-cpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
