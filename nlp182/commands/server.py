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
                                                        "build_seconds", "recall_at_10",
                                                        "analogy_recall_at_10")}))
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
    add_config_flags(index, IndexConfig)
    index.set_defaults(func=_index)

    serve = subparsers.add_parser("serve", help="serve a run's similarity API and web page with gunicorn")
    serve.add_argument("run", help="run folder with an index (nlp182 index RUN)")
    add_config_flags(serve, ServeConfig)
    serve.set_defaults(func=_serve)
