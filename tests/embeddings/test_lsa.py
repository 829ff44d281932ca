"""LSA stages against brute-force and float64 references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from nlp182.embeddings import native
from nlp182.embeddings.lsa import (
    LSAConfig,
    chunk_counts,
    chunk_counts_numpy,
    cooccurrence,
    pair_weights,
    ppmi,
    train_lsa,
    truncated_svd,
)
from nlp182.errors import EmptyCorpusError, InvalidInputError
from nlp182.text.corpus import CorpusSource
from nlp182.text.encoded import open_corpus
from nlp182.text.vocab import VocabConfig

LINES = ["a b c a d", "b a", "c d d a b c e", "e"]


def _brute_force(sentences: list[list[int]], size: int, window: int, weighted: bool) -> np.ndarray:
    counts = np.zeros((size, size))
    for ids in sentences:
        for i, w in enumerate(ids):
            for j, c in enumerate(ids):
                if 0 < abs(i - j) <= window:
                    counts[w, c] += 1.0 / abs(i - j) if weighted else 1.0
    return counts


def _ppmi_float64(dense: np.ndarray, alpha: float, shift: float) -> np.ndarray:
    context = dense.sum(0) ** alpha
    with np.errstate(divide="ignore"):
        pmi = np.log(dense * context.sum() / (dense.sum(1, keepdims=True) * context[None, :])) - np.log(shift)
    return np.where(dense > 0, np.maximum(pmi, 0), 0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("window", [1, 2, 4])
def test_cooccurrence_equals_brute_force(tmp_path, window, weighted) -> None:
    (tmp_path / "c.txt").write_text("\n".join(LINES) + "\n")
    source = CorpusSource(str(tmp_path / "c.txt"))
    corpus, vocab = open_corpus(source, VocabConfig(min_count=1), chunk_tokens=3, cache=tmp_path)
    counts = cooccurrence(corpus, len(vocab), window, weighted)
    sentences = [[vocab.index[w] for w in line.split()] for line in LINES]
    np.testing.assert_allclose(counts.toarray(), _brute_force(sentences, len(vocab), window, weighted))


@pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")
def test_c_counter_equals_numpy_counter_on_real_text(small_corpus, tmp_path) -> None:
    corpus, vocab = open_corpus(CorpusSource(str(small_corpus)), VocabConfig(min_count=2), 50_000, tmp_path)
    weights = pair_weights(5, True)
    for chunk in list(corpus)[:2]:
        fast = chunk_counts(chunk, len(vocab), weights)
        reference = chunk_counts_numpy(chunk, len(vocab), weights)
        assert fast.nnz == reference.nnz > 10_000
        assert abs(fast - reference).max() < 1e-9 * reference.max()


@pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")
@pytest.mark.parametrize("capacity", [100, 1000])
def test_c_counts_written_over_several_calls_join_into_the_brute_force_counts(capacity: int) -> None:
    """A call writes at most ``capacity`` entries and the next goes on at the next row: the pieces
    joined, each one's row offsets moved past the entries before it, are the whole count matrix."""
    ids = np.random.default_rng(0).integers(0, 50, 2000)
    starts = np.array([0, 300, 301, 1000, 2000])  # a one-word sentence among them
    indptr, indices, data = native.cooccurrence_counts(ids, starts, 50, pair_weights(3, True), capacity)
    assert len(data) > 2 * capacity  # three calls or more
    sentences = [sentence.tolist() for sentence in np.split(ids, starts[1:-1])]
    counts = sp.csr_matrix((data, indices, indptr), shape=(50, 50)).toarray()
    np.testing.assert_allclose(counts, _brute_force(sentences, 50, 3, True), rtol=1e-12)


@pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")
def test_a_c_counter_call_stops_before_a_row_that_might_not_fit_its_buffers() -> None:
    """40 words once each in one sentence, window 3: a row holds at most 6 entries, so with room for
    21 the call writes rows 0-3 (3 + 4 + 5 + 6 = 18 entries) and stops, before row 4 could overflow;
    nothing past the 21 entries is written."""
    vocab, window, capacity = 40, 3, 21
    ids, sentence = np.arange(vocab, dtype=np.int32), np.zeros(vocab, dtype=np.int32)
    starts = np.array([0, vocab], dtype=np.int64)
    order, row_ptr = np.arange(vocab, dtype=np.int64), np.arange(vocab + 1, dtype=np.int64)  # each once
    weights = pair_weights(window, True)
    indptr = np.zeros(vocab + 1, dtype=np.int64)
    cols, vals = np.full(capacity + 100, -7, dtype=np.int32), np.full(capacity + 100, -7.0)
    rows = native.library().cooc_rows(
        ids.ctypes.data, sentence.ctypes.data, starts.ctypes.data, order.ctypes.data, row_ptr.ctypes.data,
        vocab, window, weights.ctypes.data, 0, vocab, indptr.ctypes.data, cols.ctypes.data, vals.ctypes.data,
        capacity,
    )  # fmt: skip
    assert rows == 4 and indptr[: rows + 1].tolist() == [0, 3, 7, 12, 18]
    assert (cols[18:] == -7).all() and (vals[18:] == -7.0).all()


@pytest.mark.parametrize(("alpha", "shift", "symmetric"),
                         [(1.0, 1.0, True), (0.75, 1.0, True), (0.75, 5.0, True), (0.75, 1.0, False)])
def test_ppmi_equals_dense_float64_formula(alpha, shift, symmetric) -> None:
    """Rows are words and columns contexts: an asymmetric matrix tells their totals apart."""
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.7, size=(30, 30)).astype(np.float64)
    dense = dense + dense.T if symmetric else dense * np.arange(1, 31)[None, :]
    result = ppmi(sp.csr_matrix(dense), cds_alpha=alpha, shift=shift).toarray()
    np.testing.assert_allclose(result, _ppmi_float64(dense, alpha, shift), atol=1e-12)


@pytest.mark.parametrize(("cds_alpha", "distance_weighting", "shift"),
                         [(0.75, True, 1.0), (1.0, True, 1.0), (0.75, False, 1.0), (0.5, False, 2.0)])
def test_train_lsa_factors_the_ppmi_its_settings_define(tmp_path, monkeypatch, cds_alpha, distance_weighting,
                                                        shift) -> None:
    """On the CPU path the matrix train_lsa factors is the float64 PPMI of the brute-force counts with
    its own distance weighting, context smoothing and shift, and its vectors are U S^0.5 of that matrix."""
    from nlp182.embeddings import lsa

    factored = []
    real_svd = lsa.truncated_svd

    def recording(matrix: sp.csr_matrix, *args: object) -> tuple[np.ndarray, np.ndarray]:
        factored.append(matrix.toarray())
        return real_svd(matrix, *args)

    monkeypatch.setattr(lsa, "truncated_svd", recording)
    (tmp_path / "c.txt").write_text("\n".join(LINES) + "\n")
    config = LSAConfig(dim=2, window=2, min_count=1, cds_alpha=cds_alpha,
                       distance_weighting=distance_weighting, shift=shift, svd="scipy", device="cpu")
    vectors, vocab, _ = train_lsa(CorpusSource(str(tmp_path / "c.txt")), config)
    sentences = [[vocab.index[w] for w in line.split()] for line in LINES]
    expected = _ppmi_float64(_brute_force(sentences, len(vocab), 2, distance_weighting), cds_alpha, shift)
    np.testing.assert_allclose(factored[0], expected, atol=1e-12)
    u, s, _ = np.linalg.svd(expected)
    weighted = u[:, :2] * np.sqrt(s[:2])  # the Gram matrix of the rows does not depend on the signs
    np.testing.assert_allclose(vectors.vectors @ vectors.vectors.T, weighted @ weighted.T, atol=1e-5)


def test_the_small_factor_of_a_wide_matrix_is_its_float64_svd() -> None:
    """The (k, C) product of the randomized SVD is factored through its (k, k) Gram matrix, not by a
    full SVD that builds the C-long right vectors (a minute for 310 x 200,000)."""
    from nlp182.embeddings.lsa import _left_singular

    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    spectrum = np.logspace(3, -1, 40)  # four orders of magnitude, as PPMI's tail has
    wide = (basis * spectrum) @ np.linalg.qr(rng.normal(size=(5000, 40)))[0].T
    u, s = _left_singular(torch.from_numpy(wide).float())
    exact_u, exact_s, _ = np.linalg.svd(wide, full_matrices=False)
    np.testing.assert_allclose(s.numpy(), exact_s, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(u.numpy() * exact_u, axis=0)), 1.0, atol=1e-4)


@pytest.mark.parametrize("solver", ["torch", "sklearn", "scipy"])
def test_truncated_svd_matches_exact_singular_values(solver) -> None:
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 150)) * 3
    matrix = sp.csr_matrix(np.maximum(low_rank + 0.01 * rng.normal(size=low_rank.shape), 0))
    u, s = truncated_svd(matrix, 6, solver, torch.device("cpu"), iterations=6)
    exact = np.sort(svds(matrix, k=6)[1])[::-1]
    np.testing.assert_allclose(s, exact, rtol=1e-3)
    assert u.shape == (200, 6)
    np.testing.assert_allclose(u.T @ u, np.eye(6), atol=1e-4)
    # u spans the same space as the exact top singular vectors
    exact_u = np.linalg.svd(matrix.toarray())[0][:, :6]
    np.testing.assert_allclose(np.abs(np.linalg.svd(u.T @ exact_u)[1]), 1.0, atol=1e-3)
    # one sign for every solver and thread count: each column's largest entry is positive (the
    # solvers had picked signs of their own, and LSA's dimensions flipped with the threads)
    largest = u[np.abs(u).argmax(axis=0), np.arange(6)]
    assert (largest > 0).all()
    exact_signed = exact_u * np.sign(exact_u[np.abs(exact_u).argmax(axis=0), np.arange(6)])
    np.testing.assert_allclose(u, exact_signed, atol=2e-3)


def test_eigenvalue_weighting_and_quality(small_corpus, monkeypatch) -> None:
    source = CorpusSource(str(small_corpus))
    base = LSAConfig(dim=40, min_count=3, eig_power=0.0)
    flat, vocab, report = train_lsa(source, base)
    weighted, _, _ = train_lsa(source, LSAConfig(dim=40, min_count=3, eig_power=1.0))
    # U S^1 / U S^0 gives each column's singular value, largest first
    ratio = np.linalg.norm(weighted.vectors, axis=0) / np.linalg.norm(flat.vectors, axis=0)
    assert np.all(np.diff(ratio) <= 1e-3) and ratio[0] > ratio[-1]
    from nlp182.embeddings import lsa

    found = []
    real_svd = lsa.truncated_svd

    def recording(*args: object) -> tuple[np.ndarray, np.ndarray]:
        u, s = real_svd(*args)
        found.append(s)
        return u, s

    monkeypatch.setattr(lsa, "truncated_svd", recording)
    halved, _, _ = train_lsa(source, LSAConfig(dim=40, min_count=3, eig_power=0.5))  # the default: S^0.5
    root = np.linalg.norm(halved.vectors, axis=0) / np.linalg.norm(flat.vectors, axis=0)
    np.testing.assert_allclose(ratio, found[0], rtol=1e-4)  # each column times its singular value
    np.testing.assert_allclose(root, np.sqrt(found[0]), rtol=1e-4)
    assert flat.words == vocab.words and report.nonzeros > 0
    stages = report.encode_seconds + report.count_seconds + report.ppmi_seconds + report.svd_seconds
    assert report.seconds == pytest.approx(stages)


def test_bad_settings_and_empty_corpus(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="dim"):
        LSAConfig(dim=0)
    with pytest.raises(InvalidInputError, match="svd"):
        LSAConfig(svd="lapack")
    (tmp_path / "c.txt").write_text("one two three\n")
    with pytest.raises(EmptyCorpusError):
        train_lsa(CorpusSource(str(tmp_path / "c.txt")), LSAConfig(min_count=5))
    (tmp_path / "ones.txt").write_text("alpha\nbeta\ngamma\n" * 100)  # words, but never two in a window
    with pytest.raises(EmptyCorpusError, match="no two words share a window"):
        train_lsa(CorpusSource(str(tmp_path / "ones.txt")), LSAConfig(min_count=1, dim=2))
    assert ppmi(sp.csr_matrix((3, 3)), 0.75, 1.0).nnz == 0  # and no warning on the way


def test_more_dimensions_than_words_is_said_not_silently_cut(tmp_path, caplog) -> None:
    path = tmp_path / "text.txt"
    path.write_text("alpha beta gamma delta epsilon\n" * 20)
    vectors, _, _ = train_lsa(CorpusSource(str(path)), LSAConfig(dim=300, min_count=1))
    assert vectors.vector_size == 4
    assert "300 dimensions asked of a 5-word vocabulary: the vectors get 4" in caplog.text
    from nlp182.cli import main

    assert main(["train", "lsa", "--corpus", str(path), "--out", str(tmp_path / "run"), "--dim", "300",
                 "--min-count", "1"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["dim"], config["dim_asked"]) == (4, 300)  # it recorded 300, as if it had applied


def test_randomized_svd_settings_with_arpack_are_named(tmp_path, caplog) -> None:
    """--svd scipy ignores --svd-iterations and --svd-oversample: the vectors were identical."""
    path = tmp_path / "text.txt"
    path.write_text("alpha beta gamma delta epsilon zeta\n" * 20)
    train_lsa(CorpusSource(str(path)), LSAConfig(dim=2, min_count=1, svd="scipy", svd_iterations=9))
    assert "--svd scipy (ARPACK) does not read them" in caplog.text
