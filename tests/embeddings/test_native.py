"""The C word2vec kernel: updates against the float64 reference, the corpus walk, training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nlp182.embeddings import native
from nlp182.embeddings.word2vec import Word2VecConfig, _spans, resolve_backend, resolve_kernel

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _weights(vocab: int = 12, dim: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, dim, generator=generator) * 0.3, torch.randn(
        vocab, dim, generator=generator
    ) * 0.3


def _reference(w_in, w_out, inputs, targets, alpha, cbow):
    """word2vec's sequential SGD in float64: each example sees the previous one's update."""
    w_in, w_out = w_in.double().numpy().copy(), w_out.double().numpy().copy()
    loss = 0.0
    for row, (true, *noise) in zip(inputs, targets, strict=True):
        used = [i for i in row if i >= 0]
        hidden = w_in[used].mean(0) if cbow else w_in[used[0]].copy()
        step = np.zeros_like(hidden)
        for word, label in [(true, 1.0)] + [(n, 0.0) for n in noise]:
            if label == 0.0 and word == true:
                continue
            score = w_out[word] @ hidden
            if abs(score) >= 6.0:
                continue
            g = (label - _sigmoid(score)) * alpha
            loss -= np.log(_sigmoid(score) if label else 1.0 - _sigmoid(score))
            step += g * w_out[word]
            w_out[word] += g * hidden
        for i in used if cbow else used[:1]:
            w_in[i] += step
    return w_in, w_out, loss


@pytest.mark.parametrize("cbow", [False, True])
def test_examples_equal_sequential_float64_reference(cbow) -> None:
    w_in, w_out = _weights()
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 12, (40, 4 if cbow else 1))
    if cbow:
        inputs[rng.random(inputs.shape) < 0.3] = -1  # unused context slots
        inputs[:, 0] = rng.integers(0, 12, 40)  # at least one context each
    targets = rng.integers(0, 12, (40, 4))
    targets[::5, 2] = targets[::5, 0]  # noise draws equal to the true word are skipped
    w_out[3] *= 40.0  # saturated scores (|score| >= 6) are skipped
    expected_in, expected_out, expected_loss = _reference(w_in, w_out, inputs, targets, 0.05, cbow)
    loss = native.train_examples(w_in, w_out, inputs, targets, 0.05, cbow)
    np.testing.assert_allclose(w_in.numpy(), expected_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_out.numpy(), expected_out, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-5)


def test_window_one_without_subsampling_visits_exactly_the_adjacent_pairs_within_sentences() -> None:
    ids = np.array([5, 6, 7, 8, 9, 1, 2])
    sentence = np.array([0, 0, 0, 1, 1, 1, 2])
    pairs = native.span_pairs(np.ones(10), 1, ids, sentence, seed=3)
    expected = [(6, 5), (5, 6), (7, 6), (6, 7), (9, 8), (8, 9), (1, 9), (9, 1)]  # (input, output)
    assert [tuple(p) for p in pairs.tolist()] == expected


def test_dynamic_window_and_subsampling_statistics() -> None:
    window, size = 5, 200_000
    rng = np.random.default_rng(0)
    keep = np.array([1.0, 0.25])
    ids = np.zeros(size, dtype=np.int64)
    pairs = native.span_pairs(keep, window, ids, np.zeros(size, dtype=np.int64), seed=1)
    # Every centre uses window - b with b uniform in [0, window): a context at distance d is used
    # with probability (window - d + 1) / window, so a centre has sum(2 (W - d + 1) / W) = W + 1
    # contexts on average.
    assert len(pairs) / size == pytest.approx(window + 1, rel=0.01)
    ids = rng.integers(0, 2, size)
    pairs = native.span_pairs(keep, 1, ids, np.zeros(size, dtype=np.int64), seed=2)
    kept_ones = np.count_nonzero(pairs[:, 1] == 1) / 2  # interior centres appear twice
    assert kept_ones / np.count_nonzero(ids == 1) == pytest.approx(0.25, rel=0.03)


def test_spans_cut_at_sentence_starts() -> None:
    sentence = np.repeat(np.arange(30), 7)  # 210 tokens, sentences of 7
    spans = _spans(sentence, 50)
    assert spans[0][0] == 0 and spans[-1][1] == 210
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))
    assert all(start % 7 == 0 for start, _ in spans)
    assert _spans(np.zeros(120, dtype=np.int64), 50) == [(0, 50), (50, 100), (100, 120)]  # one long sentence


def test_without_a_compiler_auto_falls_back_and_native_says_why(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path))
    native.library.cache_clear()
    try:
        assert resolve_kernel(Word2VecConfig(), torch.device("cpu")) == "batched"
        assert "batched" in caplog.text
        assert resolve_backend(Word2VecConfig(backend="auto", device="cpu")) == "gensim"
        with pytest.raises(native.NativeKernelUnavailable, match="no C compiler"):
            resolve_kernel(Word2VecConfig(kernel="native"), torch.device("cpu"))
    finally:
        monkeypatch.undo()
        native.library.cache_clear()
    assert resolve_kernel(Word2VecConfig(), torch.device("cpu")) == "native"
    assert resolve_backend(Word2VecConfig(backend="auto", device="cpu")) == "torch"


def test_a_broken_build_leaves_no_library_behind(monkeypatch, tmp_path) -> None:
    compiler = tmp_path / "cc"
    compiler.write_text("#!/bin/sh\necho 'error: out of disk' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CC", str(compiler))
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    native.library.cache_clear()
    try:
        with pytest.raises(native.NativeKernelUnavailable, match="out of disk"):
            native.library()
    finally:
        monkeypatch.undo()
        native.library.cache_clear()
    assert list((tmp_path / "cache").iterdir()) == []


def test_loading_the_kernel_keeps_subnormal_floats() -> None:
    native.library()  # a library built with -ffast-math would switch on flush-to-zero process-wide
    tiny = np.array([1e-40], dtype=np.float32)
    assert (tiny * np.float32(1.0))[0] > 0 and np.float64(5e-324) * 1.0 > 0
