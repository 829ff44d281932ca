"""LSA word vectors: windowed co-occurrence counts -> (shifted) PPMI -> truncated SVD.

Follows Levy, Goldberg and Dagan (2015), "Improving distributional similarity with lessons
learned from word embeddings": context-distribution smoothing (``cds_alpha=0.75``), shifted PMI
(``log k``), and eigenvalue weighting ``U * S**p``. Counting is vectorised per window offset (no
Python loop over tokens) into a scipy sparse matrix; the SVD runs with ``torch.svd_lowrank`` on
the device (GPU when there is one), with scikit-learn's randomized SVD as the CPU reference.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from nlp182.device import select_device
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.text.corpus import CorpusSource, EncodedCorpus, iter_token_lines
from nlp182.text.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)

SVD_SOLVERS = ("torch", "sklearn")


@dataclass
class LSAConfig:
    """Hyperparameters (defaults: the setting Levy et al. found best for SVD on small corpora)."""

    dim: int = 300
    window: int = 5
    distance_weighting: bool = True
    cds_alpha: float = 0.75
    shift: float = 1.0
    eig_power: float = 0.5
    min_count: int = 5
    max_vocab: int | None = None
    svd: str = "torch"
    svd_oversample: int = 10
    svd_iterations: int = 4
    seed: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "dim": self.dim >= 1,
            "window": self.window >= 1,
            "cds_alpha": 0 < self.cds_alpha <= 1,
            "shift": self.shift >= 1,
            "svd": self.svd in SVD_SOLVERS,
            "svd_iterations": self.svd_iterations >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInputError(f"invalid LSA setting {name}={getattr(self, name)!r}")
        VocabConfig(self.min_count, self.max_vocab, 0.0)


def cooccurrence(corpus: EncodedCorpus, size: int, window: int, distance_weighting: bool) -> sp.csr_matrix:
    """Symmetric ``(V, V)`` co-occurrence counts within ``window`` tokens of the same sentence.

    With ``distance_weighting`` a pair ``d`` tokens apart counts ``1/d`` (as word2vec's dynamic
    window does in expectation, up to a constant); otherwise 1.
    """
    total = sp.csr_matrix((size, size), dtype=np.float64)
    for chunk in corpus:
        rows, cols, weights = [], [], []
        for offset in range(1, window + 1):
            same = chunk.sentence[:-offset] == chunk.sentence[offset:]
            left, right = chunk.ids[:-offset][same], chunk.ids[offset:][same]
            weight = 1.0 / offset if distance_weighting else 1.0
            rows += [left, right]
            cols += [right, left]
            weights.append(np.full(2 * len(left), weight))
        counts = sp.coo_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
        ).tocsr()  # duplicates are summed
        total = total + counts
    return total


def ppmi(counts: sp.csr_matrix, cds_alpha: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """Shifted positive PMI with context-distribution smoothing, on the non-zeros only.

    ``PMI(w, c) = log( n(w,c) * sum_c' n(c')^a / (n(w) * n(c)^a) )``, then ``max(PMI - log k, 0)``.
    """
    counts = counts.tocoo()
    word_totals = np.asarray(counts.sum(axis=1)).ravel()
    context_smoothed = np.asarray(counts.sum(axis=0)).ravel() ** cds_alpha
    pmi = np.log(counts.data) + np.log(context_smoothed.sum()) - np.log(word_totals[counts.row])
    pmi -= np.log(context_smoothed[counts.col]) + np.log(shift)
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def truncated_svd(
    matrix: sp.csr_matrix,
    rank: int,
    solver: str,
    device: torch.device,
    oversample: int = 10,
    iterations: int = 4,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``rank`` left singular vectors ``(V, rank)`` and singular values ``(rank,)``, descending."""
    rank = min(rank, min(matrix.shape) - 1)
    if rank < 1:
        raise InvalidInputError(f"the PPMI matrix {matrix.shape} is too small for an SVD")
    if solver == "sklearn":
        from sklearn.utils.extmath import randomized_svd

        u, s, _ = randomized_svd(matrix, rank, n_oversamples=oversample, n_iter=iterations, random_state=seed)
        return u.astype(np.float32), s.astype(np.float32)
    coo = matrix.tocoo()
    sparse = torch.sparse_coo_tensor(
        np.vstack([coo.row, coo.col]),
        coo.data.astype(np.float32),
        coo.shape,
        device=device,
        check_invariants=True,
    ).coalesce()
    torch.manual_seed(seed)
    u, s, _ = torch.svd_lowrank(sparse, q=rank + oversample, niter=iterations)
    return u[:, :rank].cpu().numpy(), s[:rank].cpu().numpy()


@dataclass
class LSAReport:
    """Seconds spent in each stage."""

    count_seconds: float
    ppmi_seconds: float
    svd_seconds: float
    nonzeros: int
    device: str

    @property
    def seconds(self) -> float:
        return self.count_seconds + self.ppmi_seconds + self.svd_seconds


def train_lsa(source: CorpusSource, config: LSAConfig | None = None) -> tuple[Vectors, Vocabulary, LSAReport]:
    """Build PPMI-SVD vectors ``U * S**p`` for every vocabulary word of ``source``."""
    config = config or LSAConfig()
    device = select_device(config.device)
    started = time.perf_counter()
    vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(config.min_count, config.max_vocab, 0.0))
    counts = cooccurrence(EncodedCorpus(source, vocab), len(vocab), config.window, config.distance_weighting)
    counted = time.perf_counter()
    matrix = ppmi(counts, config.cds_alpha, config.shift)
    weighted = time.perf_counter()
    u, s = truncated_svd(
        matrix, config.dim, config.svd, device, config.svd_oversample, config.svd_iterations, config.seed
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    vectors = Vectors(vocab.words, (u * s[None, :] ** config.eig_power).astype(np.float32))
    report = LSAReport(counted - started, weighted - counted, done - weighted, matrix.nnz, device.type)
    log.info("LSA: %d words, %d PPMI non-zeros, %.1fs", len(vocab), matrix.nnz, report.seconds)
    return vectors, vocab, report
