"""Production serving: a gunicorn master over uvicorn workers, each running ``create_app``.

gunicorn's master binds the socket, forks the workers, restarts one that dies and, on
``kill -HUP``, starts fresh workers (which load the run's index as it is now on disk) before it
stops the old ones gracefully (each finishes its requests in flight): that is how a rebuilt index
is served without downtime. Each worker (``nlp182.server.worker.Worker``) parses requests on uvicorn's
event loop and reads each one in full before a request thread sees it (``nlp182.server.asgi``), so slow
clients cost sockets, not threads. With the default ``--threads 0`` an exact index gets 16 request
threads per worker, whose concurrent queries are gathered into one search, and an HNSW index one.

The app is built after the fork (no ``preload_app``), so each worker maps the index file itself
and the kernel shares those pages between workers. The heavy libraries are imported here, in the
master, so their code pages are shared too. Each worker pins FAISS to ``omp_threads`` OpenMP threads
(threads slow single queries down and fight the other workers for cores) and lowers FAISS's BLAS
threshold so gathered batches use one matrix product. OpenMP keeps the thread count per thread, so
``post_fork`` pins the worker's main thread and the app pins each request thread (``AppConfig``).

The Prometheus multiprocess folder belongs to the master: it creates it before forking and removes
it when it stops; a worker that exits (HUP, TERM, a crash) only has its files marked dead. A master
killed outright cleans nothing: its workers notice and stop (``nlp182.server.worker``), and the next
``serve`` removes its pid file and metrics folder (``nlp182.server.leftovers``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import flask  # noqa: F401  (imported in the master so workers share its pages)
import numpy  # noqa: F401
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from nlp182.server.config import ServeConfig
from nlp182.server.index import SimilarityIndex, load_vectors
from nlp182.server.leftovers import (
    check_port_free,
    claim_pid_file,
    clear_dead_metrics_folders,
    metrics_folder,
)
from nlp182.server.resources import ensure_metrics_room, ensure_open_files

log = logging.getLogger(__name__)


#: Seconds a worker that cannot load the run waits before it exits to be replaced (and tries again).
LOAD_RETRY_S = 5.0
#: Seconds a graceful stop (TERM, HUP) gives workers beyond the request timeout: to answer.
GRACEFUL_MARGIN_S = 2


class _Master(Arbiter):
    """gunicorn's master, checking the run before a ``kill -HUP`` replaces the workers.

    New workers that cannot load the index fail to boot, and gunicorn then stops the whole server.
    So the master first loads the run as the workers will (vectors, index, checksums); if that
    fails (an index being rebuilt, a damaged file) it logs why and keeps the current workers. A
    reload that changes the index kind also changes the request threads the default gives it.
    """

    def reload(self) -> None:
        run_dir = self.app.run_dir
        try:
            kind = _served_kind(run_dir, self.app.serve_config)
        except Exception as exc:  # any failure here would have been a failed boot of every worker
            log.error("reload refused, still serving the previous index: %s", exc)
            return
        self.app.use_kind(kind)
        threads = self.app.serve_config.threads
        log.info("reloading %s (%s index, %d threads per worker)", run_dir, kind, threads)
        super().reload()


class _Gunicorn(BaseApplication):
    """gunicorn's documented custom-application hook: options from ``ServeConfig``, app per worker."""

    def __init__(self, run_dir: Path, config: ServeConfig, kind: str) -> None:
        self.run_dir = run_dir
        self.requested = config  # as the operator gave it (threads 0: chosen by the index kind)
        self.use_kind(kind)
        super().__init__()

    def use_kind(self, kind: str) -> None:
        """Resolve the settings that follow the index kind (request threads, micro-batching)."""
        self.kind = kind
        self.serve_config = dataclasses.replace(self.requested, threads=self.requested.resolve_threads(kind))

    def load_config(self) -> None:
        config = self.serve_config
        omp_threads, blas_threshold = config.omp_threads, config.blas_threshold
        request_timeout = config.request_timeout

        def pre_fork(server, worker) -> None:
            gc.freeze()  # the master's objects: a worker's collector never touches (so copies) their pages

        def post_fork(server, worker) -> None:
            from nlp182.server.worker import JsonErrorsProtocol

            JsonErrorsProtocol.read_timeout = request_timeout
            faiss.omp_set_num_threads(omp_threads)
            faiss.cvar.distance_compute_blas_threshold = blas_threshold

        def when_ready(server) -> None:  # the socket is bound: its real port (--port 0 lets the system pick)
            port = server.LISTENERS[0].sock.getsockname()[1]
            log.info("serving %s (%s index) on http://%s with %d workers x %d threads",
                     self.run_dir, self.kind, config.address(port), config.workers, config.threads)

        def child_exit(server, worker) -> None:
            from nlp182.server.metrics import mark_worker_dead

            mark_worker_dead(worker.pid)

        options = {
            "bind": config.address(),
            "workers": config.workers,
            "worker_class": "nlp182.server.worker.Worker",
            "timeout": config.timeout,
            # a stop waits for a request still arriving as long as the request timeout lets it
            # arrive, then for its answer: with 10 s, a client's upload was cut with no answer
            "graceful_timeout": math.ceil(config.request_timeout) + GRACEFUL_MARGIN_S,
            "keepalive": 5,
            "preload_app": False,
            "accesslog": "-" if config.access_log else None,
            "pidfile": config.pid_file or None,
            "pre_fork": pre_fork,
            "post_fork": post_fork,
            "child_exit": child_exit,
            "when_ready": when_ready,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no shared ~/.gunicorn socket
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def run(self) -> None:
        _Master(self).run()

    def load(self):
        from nlp182.server.app import create_app
        from nlp182.server.asgi import BufferedWSGI

        config = self.serve_config
        try:
            app = create_app(self.run_dir, config.app_config())
        except Exception as exc:
            # The run changed on disk after the master checked it (a retrain before its re-index):
            # a failed boot would make gunicorn stop every worker, so this one waits, exits as an
            # ordinary crash and is replaced, while the others keep serving what they loaded.
            log.error("worker %d cannot load %s (%s); the other workers keep serving, retrying in %g s",
                      os.getpid(), self.run_dir, exc, LOAD_RETRY_S)
            time.sleep(LOAD_RETRY_S)
            sys.exit(1)
        from nlp182.server.worker import JsonErrorsProtocol

        metrics = app.extensions["nlp182"].metrics

        def refused(method: str, status: int) -> None:  # answered before any route: "unmatched"
            metrics.observe("unmatched", method, status, 0.0)

        JsonErrorsProtocol.on_refusal = staticmethod(refused)
        return BufferedWSGI(app, config.threads, config.max_body_bytes,
                            buffered_body_bytes=config.buffered_body_bytes, refused=refused,
                            access_log=config.access_log)


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process and the workers it forks; False if not glibc."""
    if arenas == 0:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)


def _served_kind(run_dir: str | os.PathLike[str], config: ServeConfig) -> str:
    """Load ``run_dir`` as every worker will (vectors, index, the search settings of ``config``:
    ``--ef-search`` on an IVF index is refused) and return its index kind; run in the master, so
    what would fail every worker's boot fails here, with one line."""
    index = SimilarityIndex.load(run_dir, load_vectors(run_dir))
    index.set_search(config.ef_search, config.nprobe)
    return index.kind


def run_server(run_dir: str | os.PathLike[str], config: ServeConfig | None = None) -> None:
    """Serve ``run_dir`` with gunicorn until SIGTERM/SIGINT (graceful stop)."""
    config = config or ServeConfig()
    run_dir = Path(run_dir)
    # Fail here with one clear line (a missing or mismatched index) rather than in every worker.
    kind = _served_kind(run_dir, config)
    gunicorn = _Gunicorn(run_dir, config, kind)
    if config.pid_file:
        claim_pid_file(config.pid_file)
    clear_dead_metrics_folders()
    check_port_free(config.host, config.port)
    ensure_open_files(config.workers)
    # Set before any worker imports prometheus_client, which reads it at import time.
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        ensure_metrics_room(tempfile.gettempdir(), config.workers)  # before a folder is made there
        own_dir = metrics_folder()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    else:
        ensure_metrics_room(os.environ["PROMETHEUS_MULTIPROC_DIR"], config.workers)
    importlib.import_module("nlp182.server.app")  # in the master, so workers share its modules' pages
    limit_malloc_arenas(config.malloc_arenas)  # before any worker or thread exists
    if not config.loopback:
        log.warning("--host %s: the service answers other machines too; put a proxy with TLS and "
                    "access control in front of it (see the production guide). Requests must name one "
                    "of these hosts (--allowed-hosts sets them): %s", config.host,
                    ", ".join(config.app_config().allowed_hosts))
    master = os.getpid()
    try:
        gunicorn.run()
    finally:
        # Workers are forked inside run() and unwind through here when they exit: only the master
        # may remove the folder every worker writes to.
        if own_dir is not None and os.getpid() == master:
            shutil.rmtree(own_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
