"""LSA's counts and PPMI as torch operations (the GPU path), run on CPU tensors against the CPU path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from nlp182.embeddings import cooc_device
from nlp182.embeddings.lsa import LSAConfig, cooccurrence, pair_weights, ppmi, randomized_svd, train_lsa
from nlp182.text.corpus import CorpusSource
from nlp182.text.encoded import open_corpus
from nlp182.text.vocab import VocabConfig

CPU = torch.device("cpu")


def _as_csr(keys: torch.Tensor, values: torch.Tensor, size: int) -> sp.csr_matrix:
    rows, cols = (keys // size).numpy(), (keys % size).numpy()
    return sp.csr_matrix((values.numpy(), (rows, cols)), shape=(size, size))


@pytest.mark.parametrize("weighted", [False, True])
def test_device_counts_equal_the_cpu_counts_on_real_text(small_corpus, tmp_path, weighted: bool) -> None:
    corpus, vocab = open_corpus(CorpusSource(str(small_corpus)), VocabConfig(min_count=2), 60_000, tmp_path)
    weights = pair_weights(4, weighted)
    keys, counts = cooc_device.count_on_device(corpus, len(vocab), weights, CPU)
    assert torch.all(keys[1:] > keys[:-1])  # sorted, distinct
    expected = cooccurrence(corpus, len(vocab), 4, weighted)
    on_device = _as_csr(keys, counts, len(vocab))
    assert on_device.nnz == expected.nnz > 10_000
    assert abs(on_device - expected).max() < 1e-9 * expected.max()


@pytest.mark.parametrize(("alpha", "shift", "symmetric"),
                         [(1.0, 1.0, True), (0.75, 5.0, True), (0.75, 1.0, False)])
def test_device_ppmi_equals_the_scipy_ppmi(alpha: float, shift: float, symmetric: bool) -> None:
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.7, size=(30, 30)).astype(np.float64)
    # an asymmetric matrix tells the words' (rows) and contexts' (columns) totals apart
    dense = dense + dense.T if symmetric else dense * np.arange(1, 31)[None, :]
    coo = sp.coo_matrix(dense)
    keys = torch.as_tensor(coo.row.astype(np.int64) * 30 + coo.col)
    order = torch.argsort(keys)
    result = cooc_device.ppmi_on_device(keys[order], torch.as_tensor(coo.data)[order], 30, alpha, shift)
    assert result.layout == torch.sparse_csr and result.dtype == torch.float32
    expected = ppmi(sp.csr_matrix(dense), cds_alpha=alpha, shift=shift).toarray()
    np.testing.assert_allclose(result.to_dense().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_randomized_svd_of_a_torch_sparse_matrix_equals_that_of_the_scipy_one() -> None:
    rng = np.random.default_rng(1)
    dense = np.where(rng.random((40, 40)) < 0.2, rng.random((40, 40)), 0.0).astype(np.float32)
    matrix = sp.csr_matrix(dense)
    _, expected = randomized_svd(matrix, 5, CPU, iterations=6)
    _, values = randomized_svd(torch.as_tensor(dense).to_sparse_csr(), 5, CPU, iterations=6)
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    np.testing.assert_allclose(values, np.linalg.svd(dense, compute_uv=False)[:5], rtol=1e-2)


@pytest.mark.cuda
def test_lsa_on_cuda_counts_on_the_device_as_the_cpu_does(small_corpus) -> None:
    config = LSAConfig(dim=20, min_count=2)
    source = CorpusSource(str(small_corpus))
    on_gpu, _, report = train_lsa(source, dataclasses.replace(config, device="cuda"))
    on_cpu, _, cpu_report = train_lsa(source, dataclasses.replace(config, device="cpu"))
    # float64 sums in another order may tip a PMI of ~1e-16 across the > 0 cut: a few entries at most
    assert abs(report.nonzeros - cpu_report.nonzeros) <= max(3, cpu_report.nonzeros // 100_000)
    norms = [np.linalg.norm(run.vectors, axis=1) for run in (on_gpu, on_cpu)]
    np.testing.assert_allclose(*norms, rtol=2e-2, atol=1e-3)
