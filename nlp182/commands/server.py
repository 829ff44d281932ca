"""``nlp182 index RUN`` (build the FAISS index) and ``nlp182 serve RUN`` (gunicorn).

Flags map one to one onto ``nlp182.server.config.IndexConfig`` and ``nlp182.server.config.ServeConfig``. The
server package is imported inside the handlers: ``serve`` must set up the Prometheus multiprocess
folder before anything imports ``prometheus_client``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from typing import Any

from nlp182.commands.flags import add_config_flags

log = logging.getLogger(__name__)

_HELP = {
    "kind": "index kind: flat (exact), hnsw (approximate) or auto (flat up to --flat-max-words)",
    "flat_max_words": "largest vocabulary that auto indexes exactly",
    "hnsw_m": "HNSW neighbours per node",
    "ef_construction": "HNSW build-time candidate list size",
    "ef_search": "HNSW search-time candidate list size (recall vs latency)",
    "recall_queries": "words used to measure HNSW recall@10 at build time",
    "seed": "seed for choosing those words",
    "host": "address to listen on (this machine only by default)",
    "port": "TCP port",
    "workers": "gunicorn worker processes",
    "threads": "request threads per worker (0: 16 for an exact index, 1 for HNSW)",
    "timeout": "seconds before a silent worker is restarted",
    "request_timeout": "seconds a client has to send its whole request (408 after)",
    "omp_threads": "OpenMP threads FAISS may use per worker",
    "blas_threshold": "exact searches of at least this many queries use BLAS",
    "batch_window_ms": "milliseconds a worker waits to gather concurrent searches into one call",
    "batch_max": "most searches per gathered call (1 turns micro-batching off)",
    "max_k": "most answers per query (k); more is a 400",
    "max_batch": "most words or vectors in one POST /v1/neighbors; more is a 413",
    "max_results": "most queries x k in one request (bounds search time and answer size); more is a 413",
    "max_analogy_words": "most positive words, and most negative words, in one analogy; more is a 400",
    "max_body_bytes": "request bodies above this size get 413",
    "allowed_hosts": "comma-separated Host names served ('' = the bind address and localhost; '*' = any)",
    "access_log": "log every request",
    "pid_file": "write the master's pid here: `kill -HUP $(cat FILE)` serves a rebuilt index, no downtime",
    "malloc_arenas": "memory pools per worker process (0: the system's choice); fewer keep memory use flat",
}


def _config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    return config_class(**{item.name: getattr(args, item.name) for item in dataclasses.fields(config_class)})


def _index(args: argparse.Namespace) -> int:
    from nlp182.server.config import IndexConfig
    from nlp182.server.index import SimilarityIndex, load_vectors

    config = _config_from_args(IndexConfig, args)
    vectors = load_vectors(args.run)
    start = time.perf_counter()
    index = SimilarityIndex.build(vectors, config)
    path = index.save(args.run)
    log.info("wrote %s in %.1f s", path, time.perf_counter() - start)
    print(json.dumps({key: index.meta[key] for key in ("kind", "count", "dimension", "params",
                                                        "build_seconds", "recall_at_10")}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from nlp182.server.config import ServeConfig
    from nlp182.server.serve import run_server

    run_server(args.run, _config_from_args(ServeConfig, args))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``index`` and ``serve`` sub-commands."""
    from nlp182.server.config import IndexConfig, ServeConfig

    index = subparsers.add_parser("index", help="build the FAISS similarity index of a trained run")
    index.add_argument("run", help="run folder (vectors.npy + vocab.txt)")
    add_config_flags(index, IndexConfig, helps=_HELP)
    index.set_defaults(func=_index)

    serve = subparsers.add_parser("serve", help="serve a run's similarity API and web page with gunicorn")
    serve.add_argument("run", help="run folder with an index (nlp182 index RUN)")
    add_config_flags(serve, ServeConfig, helps=_HELP)
    serve.set_defaults(func=_serve)
