"""LSA word vectors: windowed co-occurrence counts -> (shifted) PPMI -> truncated SVD.

Follows Levy, Goldberg and Dagan (2015), "Improving distributional similarity with lessons
learned from word embeddings": context-distribution smoothing (``cds_alpha=0.75``), shifted PMI
(``log k``), and eigenvalue weighting ``U * S**p``. The corpus is the cached encoding
(``nlp182.text.encoded``), read in chunks of ``COUNT_CHUNK_TOKENS``; each chunk is counted by the C
kernel in ``cooc.c`` (row by row into a dense accumulator; numpy's vectorised per-offset counting
where no C compiler is found) and the chunk matrices are summed; on a GPU the counts and PPMI are
torch operations on the device instead (``cooc_device``: window pairs, then sort and sum). The SVD
is Halko et al.'s randomized SVD written with torch (sparse products on the device, a GPU when
there is one, and a progress line per power iteration); scikit-learn's ``randomized_svd`` and
scipy's ``svds`` (ARPACK) are the references ``bench.embeddings`` measures it against on the same PPMI matrix.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from nlp182.device import select_device
from nlp182.embeddings import cooc_device, native
from nlp182.embeddings.registry import register_embedding
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import EmptyCorpusError, InvalidInputError
from nlp182.progress import progress
from nlp182.settings import check_settings, flags_set, seed_setting, setting
from nlp182.text.corpus import CorpusLike, as_source
from nlp182.text.encoded import Chunk, EncodedCorpus, open_corpus
from nlp182.text.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)

SVD_SOLVERS = ("torch", "sklearn", "scipy")
COUNT_CHUNK_TOKENS = 4 << 20
# The help of each flag of `nlp182 train lsa` (one per LSAConfig field; seed and device: the common one).


@dataclass
class LSAConfig:
    """Hyperparameters (defaults: the setting Levy et al. found best for SVD on small corpora)."""

    dim: int = setting(300, positive=True, help="dimensions of each word vector")
    window: int = setting(5, positive=True, help="words on each side that count as context")
    distance_weighting: bool = setting(True, help="a context word d places away counts 1/d")
    cds_alpha: float = setting(
        0.75,
        positive=True, maximum=1, help="smoothing exponent of the context counts in PPMI",
    )
    shift: float = setting(
        1.0, minimum=1,
        help="divide the co-occurrence ratio by this before the log (1: plain PPMI)",
    )
    eig_power: float = setting(
        0.5, minimum=0,
        help="power of the singular values in the vectors (0.5: symmetric split)",
    )
    min_count: int = setting(
        5, minimum=0, help="fewest occurrences for a word to get a vector (0 and 1 keep every word)"
    )
    max_vocab: int | None = setting(
        None, positive=True,
        help="keep at most this many of the most frequent words (default: all)",
    )
    svd: str = setting(
        "torch", choices=SVD_SOLVERS,
        help="which truncated SVD computes the vectors: torch and sklearn are randomized (fast; the "
             "last dimensions move with --seed), scipy is exact (ARPACK, about 3x slower)",
    )
    svd_oversample: int = setting(10, minimum=0, help="extra random directions of the randomized SVD")
    svd_iterations: int = setting(4, minimum=0, help="power iterations of the randomized SVD")
    seed: int = seed_setting(1, help="random seed; the same seed repeats a run exactly")
    device: str = setting("auto", help="where to compute: auto (a GPU when there is one), cpu, cuda or mps")

    def __post_init__(self) -> None:
        check_settings(self)
        VocabConfig(self.min_count, self.max_vocab, 0.0)


def pair_weights(window: int, distance_weighting: bool) -> np.ndarray:
    """``(window + 1,)``: the weight of a pair ``d`` tokens apart at index ``d``: ``1/d`` with
    ``distance_weighting`` (GloVe's weighting; word2vec's shrunk window gives ``(W - d + 1) / W``),
    else 1."""
    distances = np.arange(window + 1, dtype=np.float64)
    weights = 1.0 / np.maximum(distances, 1.0) if distance_weighting else np.ones(window + 1)
    weights[0] = 0.0
    return weights


def chunk_counts_numpy(chunk: Chunk, size: int, weights: np.ndarray) -> sp.csr_matrix:
    """One chunk's symmetric counts, vectorised per window offset (the fallback without a C
    compiler, and the reference the C counter is tested against).

    ``weights`` is ``(window + 1,)``, the weight of a pair ``offset`` tokens apart at ``weights[offset]``;
    returns the ``(size, size)`` count matrix.
    """
    sentence = chunk.sentence_numbers()
    rows, cols, values = [], [], []
    for offset in range(1, len(weights)):
        same = sentence[:-offset] == sentence[offset:]
        left, right = chunk.ids[:-offset][same], chunk.ids[offset:][same]
        rows += [left, right]
        cols += [right, left]
        values.append(np.full(2 * len(left), weights[offset]))
    return sp.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsr()  # duplicates are summed


def chunk_counts(chunk: Chunk, size: int, weights: np.ndarray) -> sp.csr_matrix:
    """One chunk's symmetric ``(V, V)`` counts: the C counter when it builds, numpy otherwise."""
    if not native.available():
        return chunk_counts_numpy(chunk, size, weights)
    indptr, indices, data = native.cooccurrence_counts(chunk.ids, chunk.starts, size, weights)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(size, size))
    matrix.sort_indices()
    return matrix


def cooccurrence(corpus: EncodedCorpus, size: int, window: int, distance_weighting: bool) -> sp.csr_matrix:
    """Symmetric ``(V, V)`` co-occurrence counts within ``window`` tokens of the same sentence,
    a pair ``d`` tokens apart counting ``pair_weights(window, distance_weighting)[d]``."""
    weights = pair_weights(window, distance_weighting)
    total = sp.csr_matrix((size, size), dtype=np.float64)
    with progress(total=corpus.raw_words, desc="counting co-occurrences", unit="tok", unit_scale=True) as bar:
        for chunk in corpus:
            total = total + chunk_counts(chunk, size, weights)
            bar.update(chunk.raw_words)
    return total


def ppmi(counts: sp.csr_matrix, cds_alpha: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """Shifted positive PMI with context-distribution smoothing, on the non-zeros only.

    ``PMI(w, c) = log( n(w,c) * sum_c' n(c')^a / (n(w) * n(c)^a) )``, then ``max(PMI - log k, 0)``.
    """
    counts = counts.tocoo()
    if counts.nnz == 0:  # no word ever had a neighbour (one-word lines): nothing to weigh
        return sp.csr_matrix(counts.shape)
    word_totals = np.asarray(counts.sum(axis=1)).ravel()
    context_smoothed = np.asarray(counts.sum(axis=0)).ravel() ** cds_alpha
    pmi = np.log(counts.data) + np.log(context_smoothed.sum()) - np.log(word_totals[counts.row])
    pmi -= np.log(context_smoothed[counts.col]) + np.log(shift)
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def _torch_csr(csr: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.from_numpy(csr.indptr.astype(np.int64)),
        torch.from_numpy(csr.indices.astype(np.int64)),
        torch.from_numpy(csr.data),
        csr.shape,
        check_invariants=False,
    ).to(device)


def randomized_svd(
    matrix: sp.csr_matrix | torch.Tensor,
    rank: int,
    device: torch.device,
    oversample: int = 10,
    iterations: int = 4,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Halko, Martinsson and Tropp's randomized SVD with torch's QR and SVD on ``device``.

    Each power iteration multiplies by ``A A^T`` and orthonormalises once (their Algorithm 4.4
    does it after ``A^T`` too; the QR of the tall ``(V, rank + p)`` block costs as much as the
    sparse products, and in float32 one per iteration keeps the top ``rank`` directions to the
    error the bench measures against ARPACK).

    The products with the sparse matrix run in scipy on a CPU (torch's sparse CSR product is
    several times slower there) and as torch sparse products on a GPU; ``matrix`` may also be a
    torch sparse CSR tensor already on ``device`` (``cooc_device.ppmi_on_device``). Returns the top-``rank``
    left singular vectors ``(V, rank)`` and singular values ``(rank,)``, descending, as float32
    arrays. Progress: one step per product with the matrix.
    """
    if isinstance(matrix, torch.Tensor):
        a, a_t = matrix, matrix.t().to_sparse_csr()

        def times(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
            return sparse @ dense
    elif device.type == "cpu":
        csr = matrix.tocsr().astype(np.float32)
        a, a_t = csr, csr.T.tocsr()

        def times(sparse: sp.csr_matrix, dense: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(sparse @ dense.numpy()))
    else:
        csr = matrix.tocsr().astype(np.float32)
        a, a_t = _torch_csr(csr, device), _torch_csr(csr.T.tocsr(), device)

        def times(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
            return sparse @ dense

    width = rank + oversample
    generator = torch.Generator().manual_seed(seed)
    omega = torch.randn(matrix.shape[1], width, generator=generator).to(device)
    with progress(total=2 * iterations + 2, desc="randomized SVD", unit="product") as bar:
        q = torch.linalg.qr(times(a, omega)).Q  # (V, rank + p)
        bar.update(1)
        for _ in range(iterations):
            q = torch.linalg.qr(times(a, times(a_t, q))).Q
            bar.update(2)
        small = times(a_t, q).T  # (rank + p, C) = Q^T A
        bar.update(1)
    u_small, s = _left_singular(small)
    u = q @ u_small[:, :rank].to(q.device, q.dtype)
    return u.cpu().numpy().astype(np.float32), s[:rank].cpu().numpy().astype(np.float32)


def _left_singular(small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors ``(k, k)`` and singular values ``(k,)``, descending, of the wide
    ``small`` ``(k, C)``, from the eigenvectors of its ``(k, k)`` Gram matrix in float64 (the
    squared singular values, exact to float32's precision after the square root). A full SVD
    also builds the ``(k, C)`` right vectors, which nothing reads: 40-60 s for 310 x 200,000."""
    wide = small.to("cpu" if small.device.type == "mps" else small.device, torch.float64)  # MPS lacks it
    values, vectors = torch.linalg.eigh(wide @ wide.T)
    order = torch.argsort(values, descending=True)
    return vectors[:, order], values[order].clamp_min(0).sqrt()


def truncated_svd(
    matrix: sp.csr_matrix | torch.Tensor,
    rank: int,
    solver: str,
    device: torch.device,
    oversample: int = 10,
    iterations: int = 4,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``rank`` left singular vectors ``(V, rank)`` and singular values ``(rank,)``, descending.

    ``torch``: ``randomized_svd`` on ``device``; ``sklearn``: scikit-learn's ``randomized_svd``
    (same algorithm, CPU); ``scipy``: ARPACK's Lanczos ``svds`` (exact to its tolerance, CPU).
    A torch sparse ``matrix`` (on the device) goes to ``torch`` only.
    """
    if rank > min(matrix.shape) - 1:
        log.warning("%d dimensions asked of a %d-word vocabulary: the vectors get %d (one fewer than the "
                    "words)", rank, min(matrix.shape), max(min(matrix.shape) - 1, 0))
        rank = min(matrix.shape) - 1
    if rank < 1:
        raise InvalidInputError(f"the PPMI matrix {matrix.shape} is too small for an SVD")
    if solver == "sklearn":
        from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd

        u, s, _ = sklearn_randomized_svd(
            matrix, rank, n_oversamples=oversample, n_iter=iterations, random_state=seed
        )
    elif solver == "scipy":
        from scipy.sparse.linalg import svds

        start = np.random.default_rng(seed).standard_normal(min(matrix.shape))
        u, s, _ = svds(matrix, k=rank, v0=start)
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
    else:
        u, s = randomized_svd(matrix, rank, device, oversample, iterations, seed)
    return signs_fixed(np.asarray(u, dtype=np.float32)), np.asarray(s, dtype=np.float32)


def signs_fixed(u: np.ndarray) -> np.ndarray:
    """``(V, k)`` singular vectors each signed so that its largest entry (in magnitude) is positive,
    as scikit-learn's ``svd_flip`` signs them: a singular vector's sign is arbitrary, and solvers
    (or one solver on another number of threads) pick either, flipping whole dimensions."""
    if not u.size:
        return u
    largest = np.abs(u).argmax(axis=0)
    signs = np.sign(u[largest, np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return u * signs.astype(u.dtype)


@dataclass
class LSAReport:
    """Seconds spent in each stage (``encode_seconds``: reading and encoding the text, about zero
    when the encoding was cached)."""

    encode_seconds: float
    count_seconds: float
    ppmi_seconds: float
    svd_seconds: float
    nonzeros: int
    device: str

    @property
    def seconds(self) -> float:
        """Wall time of the four stages together: encoding, counting, PPMI and the SVD."""
        return self.encode_seconds + self.count_seconds + self.ppmi_seconds + self.svd_seconds


@register_embedding(
    "lsa",
    config=LSAConfig,
    help="PPMI + truncated SVD word vectors",
    title="LSA",
)
def train_lsa(
    source: CorpusLike, config: LSAConfig | None = None
) -> tuple[Vectors, Vocabulary, LSAReport]:
    """Build PPMI-SVD vectors ``U * S**p`` for every vocabulary word of ``source`` (a
    :class:`CorpusSource`, a file path, or sentences as lists of words:
    :func:`nlp182.text.corpus.as_source`)."""
    source = as_source(source)
    config = config or LSAConfig()
    if config.svd == "scipy" and flags_set(config, ("svd_oversample", "svd_iterations")):
        log.warning("--svd-oversample and --svd-iterations set the randomized SVD; --svd scipy (ARPACK) "
                    "does not read them")
    device = select_device(config.device)
    started = time.perf_counter()
    corpus, vocab = open_corpus(
        source, VocabConfig(config.min_count, config.max_vocab, 0.0), chunk_tokens=COUNT_CHUNK_TOKENS
    )
    encoded = time.perf_counter()
    on_device = device.type == "cuda" and config.svd == "torch"
    if on_device:  # counts, PPMI and SVD all on the GPU
        weights = pair_weights(config.window, config.distance_weighting)
        keys, counts = cooc_device.count_on_device(corpus, len(vocab), weights, device)
        torch.cuda.synchronize()
        counted = time.perf_counter()
        matrix = cooc_device.ppmi_on_device(keys, counts, len(vocab), config.cds_alpha, config.shift)
        nonzeros = matrix.values().numel()
        torch.cuda.synchronize()
    else:
        counts = cooccurrence(corpus, len(vocab), config.window, config.distance_weighting)
        counted = time.perf_counter()
        matrix = ppmi(counts, config.cds_alpha, config.shift)
        nonzeros = matrix.nnz
    if nonzeros == 0:
        raise EmptyCorpusError(
            f"{source.path}: no two words share a window of {config.window} with a positive PMI (one-word "
            "lines, or every word everywhere): LSA has nothing to factorise; give it running text"
        )
    weighted = time.perf_counter()
    u, s = truncated_svd(
        matrix, config.dim, config.svd, device, config.svd_oversample, config.svd_iterations, config.seed
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    weighted_u = (u * s[None, :] ** config.eig_power).astype(np.float32)
    vectors = Vectors(vocab.words, weighted_u, counts=vocab.counts)
    report = LSAReport(
        encoded - started, counted - encoded, weighted - counted, done - weighted, nonzeros, device.type
    )
    log.info("LSA: %d words, %d PPMI non-zeros, %.1fs", len(vocab), nonzeros, report.seconds)
    return vectors, vocab, report
