"""Settings of the similarity service, as dataclasses the CLI maps its flags onto one to one.

Kept free of heavy imports so ``nlp182 --help`` does not load FAISS or gunicorn.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field, fields

from nlp182.errors import InvalidInputError
from nlp182.settings import MAX_THREADS, check_settings, same_setting, seed_setting, setting

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Bind addresses meaning "every interface": no client sends them as its Host.
WILDCARD_ADDRESSES = ("0.0.0.0", "::")
#: Answers per query when a request gives no ``k`` (gensim's ``topn``).
DEFAULT_K = 10


@dataclass
class Limits:
    """The most work one request may ask for; each is a ``nlp182 serve`` flag.

    A request over a limit is refused before any search with a JSON error naming the limit: 400
    for one parameter out of range, 413 for a request whose total size is over.

    Args:
        max_k: answers per query (``k``).
        max_batch: words or vectors in one ``POST /v1/neighbors``. An exact search costs one pass
            over the matrix per query (64 queries at 300,000 x 300: 5.8 GFLOP).
        max_results: queries x ``k`` in one request, which bounds both the search and the answer
            (20,000 neighbours is about 1 MB of JSON).
        max_analogy_words: positive words, and negative words, of one analogy (3CosMul costs one
            pass over the matrix per word: 8 words take ~0.2 s at 300,000 x 300).
        max_body_bytes: request bodies above this size get 413 (read no further).
    """

    max_k: int = setting(1000, positive=True, help="most answers per query (k); more is a 400")
    max_batch: int = setting(
        64,
        positive=True, help="most words or vectors in one POST /v1/neighbors; more is a 400",
    )
    max_results: int = setting(
        20_000, positive=True,
        help="most queries x k in one request (bounds search time and answer size); more is a 413",
    )
    max_analogy_words: int = setting(
        4,
        positive=True, help="most positive words, and most negative words, in one analogy; more is a 400",
    )
    max_body_bytes: int = setting(1 << 20, minimum=1024, help="request bodies above this size get 413")

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def default_k(self) -> int:
        """Answers per query when a request gives no ``k``: ``DEFAULT_K``, or ``max_k`` if lower."""
        return min(DEFAULT_K, self.max_k)


def host_name(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8000`` -> ``::1``, ``Example.org:80`` -> ``example.org``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def machine_names() -> tuple[str, ...]:
    """This machine's host name and the addresses it resolves to (the names a client of a service
    bound to every interface may send as its ``Host``); empty where they cannot be read."""
    try:
        name = socket.gethostname()
        addresses = [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
    except OSError:
        return ()
    return tuple(dict.fromkeys(host_name(item) for item in (name, *addresses)))


@dataclass
class AppConfig:
    """Settings of one app instance (each is a ``nlp182 serve`` flag).

    Args:
        batch_window_ms: how long a worker waits to gather concurrent single-word searches into one
            FAISS call; 0 (default) takes what queued up while the previous search ran, which
            batches by itself under load and adds no latency when idle.
        batch_max: the most queries per gathered call; 1 turns micro-batching off (each request
            searches on its own thread).
        omp_threads: OpenMP threads FAISS may use on each request thread (0 leaves OpenMP's
            default). OpenMP keeps this setting per thread, and a thread that never set it uses
            one per core, so the app sets it on every request thread itself.
        limits: the most work one request may ask for.
        allowed_hosts: the names a request's ``Host`` header may carry (port ignored); any other
            gets 400, so a web page cannot reach the API through DNS rebinding. ``("*",)`` allows
            every name (only behind a proxy that checks it).
        ef_search: HNSW's candidate list while serving, in place of the one ``index.json`` holds
            (a query-time setting in FAISS: no rebuild); ``None`` keeps the index's.
        nprobe: IVF cells searched while serving, in place of the index's; ``None`` keeps it.
    """

    batch_window_ms: float = setting(
        0.0, minimum=0, maximum=1000,
        help="milliseconds a worker waits to gather concurrent searches into one call",
    )
    batch_max: int = setting(
        64, positive=True,
        help="most searches per gathered call (1 turns micro-batching off)",
    )
    omp_threads: int = setting(
        0, minimum=0, maximum=MAX_THREADS,
        help="OpenMP threads FAISS may use on each request thread (0: OpenMP's default)",
    )
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    ef_search: int | None = setting(
        None, positive=True,
        help="HNSW candidates per search while serving (default: the index's own, in index.json)",
    )
    nprobe: int | None = setting(
        None, positive=True, help="IVF cells searched while serving (default: the index's own)",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.allowed_hosts:
            raise InvalidInputError("allowed_hosts must name at least one host (or '*')")
        # as a request's Host is read: "localhost:8000" and "[::1]" name localhost and ::1
        self.allowed_hosts = tuple(dict.fromkeys(name if name == "*" else host_name(name)
                                                 for name in self.allowed_hosts))


@dataclass
class IndexConfig:
    """How ``nlp182 index RUN`` builds the index (each field is one CLI flag).

    Args:
        kind: ``"flat"`` (exact), ``"hnsw"`` (approximate graph), ``"ivf"`` (approximate inverted
            lists: the nearest ``nprobe`` of ``ivf_lists`` k-means cells searched, candidates
            re-scored exactly) or ``"auto"``: flat up to ``flat_max_words`` words, HNSW above
            (exact search costs O(V·D) per query).
        flat_max_words: the size threshold of ``"auto"``.
        hnsw_m: HNSW neighbours per node (memory and recall grow with it).
        ef_construction: HNSW candidate-list size while building (build time vs graph quality).
        ef_search: HNSW candidate-list size while searching (latency vs recall); stored in the
            metadata and applied on every load. 64: on ~95,000 trained skip-gram vectors (300-d)
            recall@10 is 0.995 at 64 against 0.999 at 128, in 60% of the time per query
            (``python -m bench.hnsw_recall``, bench/results/hnsw-recall-cpu.json).
        ivf_lists: IVF k-means cells (0: 4 x sqrt(V), FAISS's usual choice, with at least 39
            training vectors per cell).
        nprobe: IVF cells searched per query (recall vs latency); stored and applied on every load.
        recall_queries: vocabulary words used as queries to measure an approximate index's
            recall@10 at build time.
        seed: seed of the choice of those query words.
    """

    kind: str = setting(
        "auto", choices=INDEX_KINDS,
        help="index kind: flat (exact), hnsw or ivf (approximate) or auto (flat up to --flat-max-words, "
        "hnsw above)",
    )
    flat_max_words: int = setting(
        50_000, minimum=0, positive=True,
        help="largest vocabulary that auto indexes exactly",
    )
    hnsw_m: int = setting(32, positive=True, help="HNSW neighbours per node")
    ef_construction: int = setting(80, positive=True, help="HNSW build-time candidate list size")
    ef_search: int = setting(
        64,
        positive=True, help="HNSW search-time candidate list size (recall vs latency)",
    )
    ivf_lists: int = setting(
        0, minimum=0, help="IVF k-means cells (0: 4 x sqrt(words), at least 39 words a cell)"
    )
    nprobe: int = setting(32, positive=True, help="IVF cells searched per query (recall vs latency)")
    recall_queries: int = setting(
        1000,
        positive=True, help="words used to measure an approximate index's recall@10 at build time",
    )
    seed: int = seed_setting(0, help="seed for choosing those words (and for IVF's k-means)")

    def __post_init__(self) -> None:
        check_settings(self)

    def ivf_cells(self, count: int) -> int:
        """IVF cells for ``count`` words: ``ivf_lists``, or 4 x sqrt(count) with at least 39 words
        a cell (below that FAISS's k-means has too few points to place its centroids)."""
        if self.ivf_lists:
            return max(1, min(self.ivf_lists, count))
        return max(1, min(round(4 * math.sqrt(count)), count // 39))

    def resolve_kind(self, count: int) -> str:
        """The concrete kind for a vocabulary of ``count`` words."""
        if self.kind != "auto":
            return self.kind
        return "flat" if count <= self.flat_max_words else "hnsw"


@dataclass
class ServeConfig:
    """``nlp182 serve`` settings; each field is one flag. Defaults suit a 2-core machine.

    Args:
        host: address to bind; loopback by default (put a reverse proxy in front to expose it).
        port: TCP port.
        workers: gunicorn worker processes (one per core).
        threads: request threads per worker; 0 (default) picks by index kind (``resolve_threads``):
            16 for an exact index, whose concurrent queries a worker gathers into one search, 1 for
            HNSW, one search at a time per process (a graph search gains nothing from gathering,
            and threads of one process queue for its GIL: measured at 32 connections on 2 cores,
            p99 16 ms with one thread per worker vs 30-45 ms with 16, at the same throughput).
            Requests are read in full by each worker's event loop first, so these threads only
            run complete requests; slow clients never hold one.
        timeout: seconds before gunicorn restarts a silent worker.
        request_timeout: seconds a client has to send a whole request (from its connection or the
            request's first byte); later it gets 408 and the connection is closed.
        omp_threads: OpenMP threads FAISS may use per worker.
        blas_threshold: FAISS uses BLAS for exact searches of at least this many queries.
        batch_window_ms: see ``AppConfig``.
        batch_max: see ``AppConfig``.
        max_k, max_batch, max_results, max_analogy_words, max_body_bytes: see ``Limits``.
        ef_search, nprobe: see ``AppConfig``.
        buffered_body_bytes: the most bytes of request bodies a worker holds at once, counted as
            they arrive, until the app has answered (at least ``max_body_bytes``). Each worker
            reads whole bodies before the app sees them, so without it slow clients that send
            large bodies make it hold ``max_body_bytes`` per connection; a request whose next bytes
            would pass it gets 503 with ``Retry-After`` at once, the rest of its body unread.
        allowed_hosts: comma-separated ``Host`` names the API answers (see ``AppConfig``); empty
            (default): the bind address and the loopback names.
        access_log: log every request to stderr.
        pid_file: write the master's process id here (for ``kill -HUP $(cat FILE)``, which reloads
            the index without downtime); empty: none.
        malloc_arenas: glibc malloc arenas per process (0 leaves glibc's default of 8 per core).
            Every request thread otherwise gets its own arena, and their freed memory is kept:
            under a mixed load a worker's heap grew ~25% before levelling off; with 2 it stays flat.
    """

    host: str = setting("127.0.0.1", help="address to listen on (this machine only by default)")
    port: int = setting(8000, minimum=0, maximum=65535, help="TCP port")
    workers: int = setting(2, positive=True, help="gunicorn worker processes")
    threads: int = setting(
        0, minimum=0, maximum=MAX_THREADS,
        help="request threads per worker (0: 16 for an exact index, 1 for an approximate one)",
    )
    timeout: int = setting(30, positive=True, help="seconds before a silent worker is restarted")
    request_timeout: float = setting(
        30.0, positive=True,
        help="seconds a client has to send its whole request (408 after)",
    )
    omp_threads: int = setting(
        1, positive=True, maximum=MAX_THREADS, help="OpenMP threads FAISS may use per worker"
    )
    blas_threshold: int = setting(
        4, minimum=0, positive=True,
        help="exact searches of at least this many queries use BLAS",
    )
    batch_window_ms: float = same_setting(AppConfig, "batch_window_ms")
    batch_max: int = same_setting(AppConfig, "batch_max")
    max_k: int = same_setting(Limits, "max_k")
    max_batch: int = same_setting(Limits, "max_batch")
    max_results: int = same_setting(Limits, "max_results")
    max_analogy_words: int = same_setting(Limits, "max_analogy_words")
    max_body_bytes: int = same_setting(Limits, "max_body_bytes")
    ef_search: int | None = same_setting(AppConfig, "ef_search")
    nprobe: int | None = same_setting(AppConfig, "nprobe")
    buffered_body_bytes: int = setting(
        64 << 20, minimum=1024,
        help="most bytes of request bodies a worker holds at once; a request past it gets 503",
    )
    allowed_hosts: str = setting(
        "",
        help="comma-separated Host names served ('' = the bind address, or for 0.0.0.0 this machine's name "
        "and addresses, and localhost; '*' = any)",
    )
    access_log: bool = setting(False, help="log every request")
    pid_file: str = setting(
        "",
        help="write the master's pid here: `kill -HUP $(cat FILE)` serves a rebuilt index, no downtime",
    )
    malloc_arenas: int = setting(
        2, minimum=0,
        help="memory pools per worker process (0: the system's choice); fewer keep memory use flat",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.host.strip():  # gunicorn reads ":8000" as every interface
            raise InvalidInputError(f"--host must name an address (127.0.0.1, or 0.0.0.0 for every "
                                    f"interface), got {self.host!r}")
        if self.buffered_body_bytes < self.max_body_bytes:
            raise InvalidInputError(f"--buffered-body-bytes ({self.buffered_body_bytes}) must be at least "
                                    f"--max-body-bytes ({self.max_body_bytes}), or a body of that size "
                                    f"could never be read")
        if self.host.startswith("[") and self.host.endswith("]"):  # an IPv6 address as URLs write it
            self.host = self.host[1:-1]
        self.app_config()  # validate the app's settings here, not in every worker

    def address(self, port: int | None = None) -> str:
        """``host:port`` as gunicorn binds it and URLs write it (an IPv6 address in brackets);
        ``port`` is the one bound when ``--port 0`` let the system choose."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"

    @property
    def loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only."""
        return self.host == "localhost" or self.host.startswith("127.") or self.host == "::1"

    def resolve_threads(self, kind: str) -> int:
        """Request threads per worker for an index of ``kind`` ("flat", "hnsw" or "ivf")."""
        if self.threads:
            return self.threads
        return 16 if kind == "flat" else 1

    def app_config(self) -> AppConfig:
        """The settings each worker's app is built with (one request thread: nothing to gather)."""
        batch_max = 1 if self.threads == 1 else self.batch_max
        limits = Limits(**{item.name: getattr(self, item.name) for item in fields(Limits)})
        hosts = tuple(name.strip() for name in self.allowed_hosts.split(",") if name.strip())
        if not hosts:  # a wildcard bind is no name: this machine's name and addresses are
            bound = machine_names() if self.host in WILDCARD_ADDRESSES else (self.host,)
            hosts = tuple(dict.fromkeys((*bound, *LOOPBACK_NAMES)))
        return AppConfig(self.batch_window_ms, batch_max, self.omp_threads, limits, hosts,
                         ef_search=self.ef_search, nprobe=self.nprobe)
