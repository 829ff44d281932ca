"""The FAISS similarity index over a run's unit-normalised vectors, saved beside the run.

Inner product on unit vectors is cosine similarity, so the index answers with cosine scores. Small
vocabularies get the exact ``IndexFlatIP``; above ``IndexConfig.flat_max_words`` the graph index
``IndexHNSWFlat``; on request (``--kind ivf``) inverted lists, ``IndexIVFFlat`` inside
``IndexRefineFlat``, whose candidates from the nearest ``nprobe`` k-means cells are re-scored
exactly. The recall@10 of an approximate kind against the exact index is measured at build time
and stored in the metadata. Every kind is read back with FAISS's ``IO_FLAG_MMAP_IFC``, which maps
the stored vectors from the file instead of copying them, so several server workers share one
copy of the data through the page cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import time
from pathlib import Path

import faiss
import numpy as np

from nlp182.embeddings.formats import first_nonfinite_row
from nlp182.embeddings.query import answers_wanted, as_queries
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError, InvalidInputError, ShapeError
from nlp182.io import atomic_open, check_input_file, json_text, read_json, written_by
from nlp182.server.config import IndexConfig
from nlp182.settings import flag, flags_set

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
#: Candidates an IVF search re-scores exactly, per answer wanted.
IVF_CANDIDATES = 4
#: Candidates searched beyond ``k`` and re-scored in one fixed routine, so that an answer does not
#: depend on how many queries FAISS searched at once: its BLAS path (batches of at least the
#: ``blas_threshold``, as micro-batching gathers them) rounds scores otherwise than its one-query
#: path, by about 3e-7, which reorders near ties and swaps the last answer.
RESCORE_MARGIN = 8
META_FILE = "index.json"
#: An analogy recall@10 below which building an index warns (trained vectors reach about 0.99).
ANALOGY_RECALL_WARNING = 0.9
FORMAT_VERSION = 1


def load_vectors(run_dir: str | os.PathLike[str]) -> Vectors:
    """The run's vectors, memory-mapped; a file the store cannot read is a one-line ``FileFormatError``.

    Covers what ``Vectors.load`` lets through as a bare exception: an empty (0-byte) or truncated
    ``vectors.npy``, a ``vocab.txt`` that is not UTF-8, and a run with fewer than 2 words; and
    refuses a matrix with a nan or inf value (a ``vectors.npy`` written by hand), naming its first row.
    """
    run_dir = Path(run_dir)
    try:
        vectors = Vectors.load(run_dir, mmap=True, counts=False)  # the service answers no counts
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{run_dir / 'vocab.txt'} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "write one word per line in UTF-8"
        ) from None
    if len(vectors) < 2:
        raise FileFormatError(f"{run_dir} holds {len(vectors)} words; an index needs at least 2")
    bad = first_nonfinite_row(vectors.vectors)
    if bad is not None:
        raise FileFormatError(
            f"{run_dir / 'vectors.npy'}: row {bad} (0-based; word {vectors.words[bad]!r}) has a value "
            "that is nan or inf, which no similarity can be computed from; retrain the run, or re-import "
            "its vectors with --nonfinite drop"
        )
    return vectors


def _flat_codes(index: faiss.Index) -> np.ndarray:
    """A read-only ``(V, D)`` float32 view (no copy) of the vectors an IndexFlat stores.

    For an index read with ``IO_FLAG_MMAP_IFC`` this is the memory map of the file itself, so every
    worker that loaded the file shares these pages. The caller must keep ``index`` alive.
    """
    codes = index.codes
    buffer = (ctypes.c_char * codes.size()).from_address(int(codes.c_ptr))
    view = np.frombuffer(buffer, dtype=np.float32).reshape(index.ntotal, index.d)
    view.flags.writeable = False
    return view


class SimilarityIndex:
    """A FAISS index over unit vectors whose rows are the run's vocabulary, in order.

    Use ``build`` then ``save``, or ``load``. ``unit`` is the ``(V, D)`` unit-normalised matrix the
    index holds (a view into the index's storage, shared between processes after ``load``).
    """

    def __init__(self, index: faiss.Index, meta: dict) -> None:
        self.index = index
        self.meta = meta
        flat = index
        if isinstance(index, faiss.IndexHNSW):
            flat = faiss.downcast_index(index.storage)
            index.hnsw.efSearch = int(meta["params"]["ef_search"])
        elif isinstance(index, faiss.IndexRefine):
            flat = faiss.downcast_index(index.refine_index)
            faiss.downcast_index(index.base_index).nprobe = int(meta["params"]["nprobe"])
        self._storage = flat  # keeps the storage wrapper (and so ``unit``'s memory) referenced
        self.unit = _flat_codes(flat)

    def set_search(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Search with HNSW's ``ef_search`` or IVF's ``nprobe`` in place of the built index's
        (query-time settings in FAISS: no rebuild); ``None`` keeps each. ``meta["params"]`` says
        what is served; its ``recall_at_10`` was measured with the build's settings."""
        for name, value, kind in (("ef_search", ef_search, "hnsw"), ("nprobe", nprobe, "ivf")):
            if value is not None and self.kind != kind:
                raise InvalidInputError(f"{flag(name)} sets a {kind.upper()} index's search; "
                                        f"this index is {self.kind}")
        if ef_search is not None:
            self.index.hnsw.efSearch = int(ef_search)
            self.meta["params"]["ef_search"] = int(ef_search)
        if nprobe is not None:
            ivf = faiss.downcast_index(self.index.base_index)
            ivf.nprobe = min(int(nprobe), ivf.nlist)
            self.meta["params"]["nprobe"] = int(ivf.nprobe)
        given = [f"{name} {value}" for name, value in (("efSearch", ef_search), ("nprobe", nprobe))
                 if value is not None]
        if given:
            log.info("searching with %s in place of the index's own; its recall@10 of %s was measured "
                     "with those", ", ".join(given), self.meta.get("recall_at_10"))

    @property
    def kind(self) -> str:
        """The FAISS index kind: ``flat``, ``hnsw`` or ``ivf``."""
        return str(self.meta["kind"])

    @property
    def dim(self) -> int:
        """The indexed vectors' dimension ``D``."""
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: Vectors, config: IndexConfig | None = None) -> SimilarityIndex:
        """Index ``vectors.normed``; for an approximate kind also measure recall@10 against the
        exact index."""
        config = config or IndexConfig()
        count, dim = len(vectors), vectors.dim
        if count < 2:
            raise InvalidInputError(f"an index needs at least 2 words, the run has {count}")
        kind = config.resolve_kind(count)
        _warn_unused(config, kind)
        unit = np.ascontiguousarray(vectors.normed, dtype=np.float32)
        start = time.perf_counter()
        if kind != "flat":  # minutes for a large vocabulary: the log says what is under way
            log.info("building a %s index over %d words x %d dimensions (%s)", kind.upper(), count, dim,
                     f"M {config.hnsw_m}, efConstruction {config.ef_construction}" if kind == "hnsw"
                     else f"{config.ivf_cells(count)} cells")
        exact = faiss.IndexFlatIP(dim)
        exact.add(unit)
        params: dict[str, int] = {}
        index: faiss.Index = exact
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
            index.add(unit)
            params = {"m": config.hnsw_m, "ef_construction": config.ef_construction}
        elif kind == "ivf":
            index, params = _ivf(unit, config)
        params["ef_search"] = config.ef_search
        build_seconds = time.perf_counter() - start
        if kind != "flat":
            log.info("built in %.1f s; measuring its recall@10 against the exact index", build_seconds)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "metric": "inner_product",
            "normalized": True,
            "dimension": dim,
            "count": count,
            "vocab_checksum": vectors.vocab_checksum(),
            "params": params,
            "build_seconds": round(build_seconds, 3),
            "faiss_version": faiss.__version__,
            "written_by": written_by(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "recall_at_10": 1.0,
            "analogy_recall_at_10": 1.0,
            "recall_queries": 0,
        }
        if kind == "hnsw":
            index.hnsw.efSearch = config.ef_search
        if kind != "flat":
            recall, used = measure_recall(index, exact, unit, config.recall_queries, config.seed)
            analogy = measure_analogy_recall(index, exact, unit, config.recall_queries, config.seed)
            meta.update(recall_at_10=round(recall, 4), recall_queries=used,
                        analogy_recall_at_10=None if analogy is None else round(analogy, 4))
            log.info("%s recall@10 = %.4f over %d word queries, %s over as many analogy queries (%s)",
                     kind.upper(), recall, used, "-" if analogy is None else f"{analogy:.4f}",
                     f"efSearch {config.ef_search}" if kind == "hnsw" else f"nprobe {params['nprobe']}")
            if analogy is not None and analogy < ANALOGY_RECALL_WARNING:
                log.warning("analogy queries (3CosAdd) find only %.2f of their exact top 10 through this "
                            "index; raise %s to serve them better", analogy,
                            "--ef-search" if kind == "hnsw" else "--nprobe")
        return cls(index, meta)

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write ``index.faiss`` and ``index.json`` into ``run_dir`` atomically, as a pair: both are
        written in full as temporary files before either is renamed, so a failed or interrupted
        write leaves the previous index and its metadata as they were; return the index path."""
        run_dir = Path(run_dir)
        path = run_dir / INDEX_FILE
        with atomic_open(path, "wb") as handle, atomic_open(run_dir / META_FILE, "w") as meta:
            digest, size = hashlib.sha256(), 0

            def write(chunk: bytes) -> int:
                nonlocal size
                digest.update(chunk)
                size += len(chunk)
                return handle.write(chunk)

            faiss.write_index(self.index, faiss.PyCallbackIOWriter(write))
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the metadata (the inner file) is renamed
            self.meta.update(index_bytes=size, index_sha256=digest.hexdigest())
            meta.write(json_text(self.meta))
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], vectors: Vectors) -> SimilarityIndex:
        """Read the index of ``run_dir`` memory-mapped, refusing one built for other words."""
        run_dir = Path(run_dir)
        path, meta_path = run_dir / INDEX_FILE, run_dir / META_FILE
        for required in (path, meta_path):
            check_input_file(required, missing_hint=f"; build it with `nlp182 index {run_dir}`")
        meta = read_json(meta_path)
        _check_meta(meta, meta_path, vectors)
        _check_digest(path, meta)
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError as exc:
            raise FileFormatError(f"{path} is not a readable FAISS index ({exc}); rebuild it") from None
        kinds = {"hnsw": faiss.IndexHNSWFlat, "ivf": faiss.IndexRefine}
        expected = kinds.get(meta["kind"], faiss.IndexFlatIP)
        if not isinstance(index, expected) or index.ntotal != meta["count"] or index.d != meta["dimension"]:
            raise FileFormatError(
                f"{path} holds a {type(index).__name__} of {index.ntotal} x {index.d} but {meta_path} "
                f"describes a {meta['kind']} index of {meta['count']} x {meta['dimension']}; rebuild it"
            )
        loaded = cls(index, meta)
        _check_rows(loaded.unit, vectors, path)
        return loaded

    def prefault(self) -> float:
        """Touch every page of the stored vectors so the first queries take no page faults.

        The pages come from the page cache that all workers share; this maps them into this
        process (reading one float per row touches every 4 KiB page). Returns the sum read.
        """
        return float(self.unit[:, 0].sum(dtype=np.float64))

    def batch_key(self, k: int) -> int:
        """Queries asking for ``k`` answers may share a search with those of the same key: for
        HNSW the ``efSearch`` a search for ``k`` uses (a walk with a longer candidate list can
        find other neighbours, so a k=10 query batched with a k=100 one answered otherwise than
        alone); 0 for the flat and IVF kinds, whose answers do not depend on the batch's ``k``."""
        if isinstance(self.index, faiss.IndexHNSW):
            return max(self.index.hnsw.efSearch, min(int(k), len(self)))
        return 0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product for each query.

        Args:
            queries: ``(B, D)`` float32 (unit vectors for cosine scores).
            k: results per query (capped at the vocabulary size; 0 gives none, below 0 is refused).

        Returns:
            ``(B, k)`` float32 scores and ``(B, k)`` int64 row ids, best first; an id of -1 (score
            -inf) marks a slot HNSW could not fill. HNSW searches with ``efSearch`` of at least
            ``k``: its candidate list holds ``efSearch`` entries, so a smaller one returns fewer
            than ``k``. IVF probes more cells for a query whose cells hold fewer than ``k`` rows.
            The flat and IVF kinds, whose scans FAISS runs through BLAS for a batch,
            fetch ``RESCORE_MARGIN`` more candidates than ``k`` and :func:`rescored` them, so a
            query's answer is the same alone or in a batch (HNSW walks each query on its own).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ShapeError(f"queries must have shape (B, {self.dim}), got {queries.shape}")
        k = min(answers_wanted(k), len(self))
        if k == 0:  # FAISS's HNSW asserts on it; the other kinds would slice their candidates with it
            return np.empty((len(queries), 0), dtype=np.float32), np.empty((len(queries), 0), dtype=np.int64)
        if isinstance(self.index, faiss.IndexHNSW):  # a graph walk a query: no batch changes its answer
            if k > self.index.hnsw.efSearch:
                return self.index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=k))
            return self.index.search(queries, k)
        wanted = min(k + RESCORE_MARGIN, len(self))
        _, ids = self.index.search(queries, wanted)
        if isinstance(self.index, faiss.IndexRefine):
            self._probe_wider(queries, ids, k)
        return rescored(self.unit, queries, ids, k)

    def _probe_wider(self, queries: np.ndarray, ids: np.ndarray, k: int) -> None:
        """Search again, in place in ``ids`` ``(B, F)``, the queries whose ``nprobe`` nearest IVF
        cells held fewer than ``k`` rows, probing twice as many cells each time (all of them at
        most, which is exact): a k=1000 query over cells of ~40 words returned a few hundred.
        Each query's answer depends on itself alone, so it is the same alone or in a batch."""
        ivf = faiss.downcast_index(self.index.base_index)
        probes = ivf.nprobe
        short = np.flatnonzero(ids[:, k - 1] < 0) if k > 0 else np.empty(0, dtype=np.int64)
        while len(short) and probes < ivf.nlist:
            probes = min(2 * probes, ivf.nlist)
            cells = faiss.SearchParametersIVF(nprobe=probes)
            params = faiss.IndexRefineSearchParameters(k_factor=float(self.index.k_factor),
                                                       base_index_params=cells)
            _, ids[short] = self.index.search(queries[short], ids.shape[1], params=params)
            short = short[ids[short, k - 1] < 0]


#: The settings of each index kind but flat: given for another kind, they change nothing.
KIND_SETTINGS = {"hnsw": ("hnsw_m", "ef_construction", "ef_search"), "ivf": ("ivf_lists", "nprobe")}


def _warn_unused(config: IndexConfig, kind: str) -> None:
    """Name the settings of another kind than the ``kind`` built (``--kind flat --hnsw-m 64``, or
    ``--nprobe`` on a vocabulary ``auto`` indexes exactly), which were accepted without a word."""
    unused = flags_set(config, [name for other, names in KIND_SETTINGS.items() if other != kind
                                for name in names])
    if unused:
        log.warning("%s %s no effect on a %s index", ", ".join(unused), "has" if len(unused) == 1 else "have",
                    kind)


def rescored(unit: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query's candidates by scores computed here, each a float64 dot
    product rounded to float32 (one routine whatever the batch), best first, ties lower row first.

    Args:
        unit: ``(V, D)`` float32 rows the candidates index.
        queries: ``(B, D)`` float32 queries.
        ids: ``(B, F)`` int64 candidate rows, ``-1`` for an empty slot (kept last).
        k: answers per query, at most ``F``.

    Returns:
        ``(B, k)`` float32 scores and ``(B, k)`` int64 row ids.
    """
    scores = np.full(ids.shape, -np.inf, dtype=np.float32)
    for query, row_ids in enumerate(ids):
        found = row_ids >= 0
        rows = np.asarray(unit[row_ids[found]], dtype=np.float64)
        scores[query, found] = np.einsum("fd,d->f", rows, queries[query].astype(np.float64))
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _ivf(unit: np.ndarray, config: IndexConfig) -> tuple[faiss.Index, dict[str, int]]:
    """Inverted lists over the ``(V, D)`` unit rows: k-means cells (seeded), each query searching
    its ``nprobe`` nearest, inside an exact re-scoring of ``IVF_CANDIDATES`` x k candidates (so
    scores are exact inner products, and the flat rows it keeps are the served ``unit``)."""
    count, dim = unit.shape
    cells = config.ivf_cells(count)
    if config.ivf_lists and cells < config.ivf_lists:
        log.warning("--ivf-lists %d is more cells than the %d words: %d cells, one word each",
                    config.ivf_lists, count, cells)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = config.seed
    ivf.train(unit)
    ivf.nprobe = min(config.nprobe, cells)
    index = faiss.IndexRefineFlat(ivf)
    index.k_factor = IVF_CANDIDATES
    index.add(unit)  # FAISS's Python objects keep the IVF index and its quantizer alive with it
    return index, {"lists": cells, "nprobe": ivf.nprobe, "candidates": IVF_CANDIDATES}


def measure_recall(
    index: faiss.Index, exact: faiss.Index, unit: np.ndarray, queries: int, seed: int
) -> tuple[float, int]:
    """Mean recall@10 of ``index`` against ``exact`` with vocabulary rows as queries.

    Each query's own row is left out of both answers (the server never returns the query word),
    so this is the recall of the neighbour lists users see. Returns (recall, queries used).
    """
    count = unit.shape[0]
    used = min(queries, count)
    rows = np.random.default_rng(seed).choice(count, size=used, replace=False)
    k = min(11, count)
    _, approx_ids = index.search(unit[rows], k)
    _, exact_ids = exact.search(unit[rows], k)
    hits = 0
    for row, found, truth in zip(rows, approx_ids, exact_ids, strict=True):
        truth_set = [i for i in truth if i != row][:10]
        found_set = {i for i in found if i != row and i >= 0}
        hits += len(found_set.intersection(truth_set))
    return hits / (used * min(10, count - 1)), used


def measure_analogy_recall(
    index: faiss.Index, exact: faiss.Index, unit: np.ndarray, queries: int, seed: int
) -> float | None:
    """Mean recall@10 of ``index`` against ``exact`` for 3CosAdd queries (b - a + c of random
    distinct rows, normalised; the three left out of both answers, as the service does).

    Such a query lies between the words rather than on one, where a graph walk or the nearest
    cells serve it less well than a word's own neighbours (on clustered vectors an HNSW index of
    recall@10 1.0 found 0.70 of the analogy answers). None under 13 rows (no 10 answers to compare).
    """
    count = unit.shape[0]
    if count < 13:
        return None
    rng = np.random.default_rng(seed + 1)
    terms = np.stack([rng.choice(count, size=3, replace=False) for _ in range(min(queries, count))])
    signed = unit[terms[:, 1]].astype(np.float64) - unit[terms[:, 0]] + unit[terms[:, 2]]
    norms = np.linalg.norm(signed, axis=1, keepdims=True)
    keep = norms[:, 0] > 0  # terms that cancel have no direction (the service refuses them)
    if not keep.any():
        return None
    query_rows = np.ascontiguousarray(signed[keep] / norms[keep], dtype=np.float32)
    _, approx_ids = index.search(query_rows, 13)
    _, exact_ids = exact.search(query_rows, 13)
    hits = 0
    for used, found, truth in zip(terms[keep], approx_ids, exact_ids, strict=True):
        left_out = set(used.tolist())
        truth_set = [i for i in truth if i not in left_out][:10]
        hits += len({i for i in found if i >= 0 and i not in left_out}.intersection(truth_set))
    return hits / (10 * len(query_rows))


def _check_meta(meta: object, meta_path: Path, vectors: Vectors) -> None:
    """Raise ``FileFormatError`` unless ``meta`` describes an index of exactly ``vectors``' words."""
    required = ("format_version", "kind", "dimension", "count", "vocab_checksum", "params")
    if not isinstance(meta, dict) or any(key not in meta for key in required):
        raise FileFormatError(f"{meta_path} lacks index metadata ({', '.join(required)}); rebuild the index")
    if meta["format_version"] != FORMAT_VERSION or meta["kind"] not in ("flat", "hnsw", "ivf"):
        raise FileFormatError(f"{meta_path}: unsupported index format or kind; rebuild the index")
    if meta["vocab_checksum"] != vectors.vocab_checksum() or meta["count"] != len(vectors):
        raise FileFormatError(
            f"{meta_path} was built for a different vocabulary ({meta['count']} words, checksum "
            f"{str(meta['vocab_checksum'])[:12]}...) than the run's ({len(vectors)} words, checksum "
            f"{vectors.vocab_checksum()[:12]}...); rebuild it with `nlp182 index {meta_path.parent}`"
        )
    if meta["dimension"] != vectors.dim:
        raise FileFormatError(
            f"{meta_path} describes {meta['dimension']}-dim vectors but the run has {vectors.dim}; rebuild it"
        )
    params = meta["params"] if isinstance(meta["params"], dict) else {}

    def whole(value: object, low: int, high: int) -> bool:  # FAISS takes a C int: a bool or 2**31 is not
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not whole(params.get("ef_search"), 1, C_INT_MAX):
        raise FileFormatError(f"{meta_path}: params.ef_search must be an integer in 1..{C_INT_MAX}; "
                              "rebuild the index")
    if meta["kind"] == "ivf":
        lists = params.get("lists")
        if not whole(lists, 1, C_INT_MAX) or not whole(params.get("nprobe"), 1, lists):
            raise FileFormatError(f"{meta_path}: params.lists must be a positive integer and params.nprobe "
                                  "an integer in 1..lists; rebuild the index")


#: The largest value a FAISS setting held in a C ``int`` takes.
C_INT_MAX = 2**31 - 1
#: Rows compared at a time when an index is loaded: every row is checked, in bounded memory.
CHECK_BLOCK_ROWS = 1 << 15


def _check_digest(path: Path, meta: dict) -> None:
    """Refuse an ``index.faiss`` that is not the file its ``index.json`` describes: the two files
    are renamed one after the other, so a write cut between the renames (kill -9, power loss), or
    a damaged block in the graph or the inverted lists, left a pair that loaded and answered wrongly
    when count and dimension agreed. The file's size is compared first, its SHA-256 then."""
    size, expected = meta.get("index_bytes"), meta.get("index_sha256")
    if size is None and expected is None:
        log.warning("%s records no checksum of %s, so damage to it cannot be detected; rebuild the index "
                    "to add one", META_FILE, path)
        return
    actual_size = path.stat().st_size
    if actual_size == size:
        with path.open("rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
        if actual == expected:
            return
    raise FileFormatError(
        f"{path} is not the index {META_FILE} describes ({actual_size} bytes, {size} expected, or another "
        f"SHA-256): a write cut short or a damaged file; rebuild it with `nlp182 index {path.parent}`"
    )


def _check_rows(unit: np.ndarray, vectors: Vectors, path: Path) -> None:
    """Refuse an index whose stored rows are not the run's unit vectors: NaN or inf anywhere (a
    damaged file), or any row that differs (the vectors were retrained or edited after the index
    was built, under the same vocabulary: the answers would contradict ``/v1/vectors``)."""
    bad = first_nonfinite_row(unit)
    if bad is not None:
        raise FileFormatError(f"{path}: row {bad} holds NaN or inf; the file is damaged, rebuild it")
    row = _first_other_row(unit, vectors)
    if row is not None:
        raise FileFormatError(
            f"{path} holds other vectors than the run's vectors.npy (row {row}, {vectors.words[row]!r}, "
            f"differs): the vectors changed after the index was built; rebuild it with "
            f"`nlp182 index {path.parent}`"
        )


def _first_other_row(unit: np.ndarray, vectors: Vectors) -> int | None:
    """The first row where ``unit`` is not ``vectors`` normalised, compared a block at a time."""
    for start in range(0, len(unit), CHECK_BLOCK_ROWS):
        stop = min(start + CHECK_BLOCK_ROWS, len(unit))
        expected = as_queries(vectors.vectors[start:stop], vectors.dim)  # unit rows, zero rows kept zero
        differs = np.flatnonzero(np.abs(unit[start:stop] - expected).max(axis=1) > 1e-4)
        if differs.size:
            return start + int(differs[0])
    return None
