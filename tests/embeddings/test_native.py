"""The C word2vec kernel: updates against the float64 reference, the corpus walk, training."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp182.embeddings import native
from nlp182.embeddings.word2vec import Word2VecConfig, _spans, alias_table, resolve_backend, resolve_kernel
from nlp182.errors import InvalidInputError

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _weights(vocab: int = 12, dim: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, dim, generator=generator) * 0.3, torch.randn(
        vocab, dim, generator=generator
    ) * 0.3


def _reference(w_in, w_out, inputs, targets, alpha, cbow):
    """word2vec's sequential SGD in float64: each example (row) sees the previous one's update.

    CBOW: the mean of a row's inputs predicts the outputs, one output row after the other.
    Skip-gram: a row's inputs are one centre's window, all predicting the same outputs from the
    rows as they were before the row (shared noise words), then every row takes its summed step."""
    w_in, w_out = w_in.double().numpy().copy(), w_out.double().numpy().copy()
    loss = 0.0
    for row, (true, *noise) in zip(inputs, targets, strict=True):
        used = [i for i in row if i >= 0]
        hiddens = [w_in[used].mean(0)] if cbow else [w_in[i].copy() for i in used]
        outputs = [(true, 1.0)] + [(n, 0.0) for n in noise if n != true]
        old_out = {word: w_out[word].copy() for word, _ in outputs}
        steps = [np.zeros_like(hiddens[0]) for _ in hiddens]
        for hidden, step in zip(hiddens, steps, strict=True):
            for word, label in outputs:
                if cbow:
                    old_out[word] = w_out[word].copy()
                score = old_out[word] @ hidden
                if abs(score) >= 6.0:
                    continue
                g = (label - _sigmoid(score)) * alpha
                loss -= np.log(_sigmoid(score) if label else 1.0 - _sigmoid(score))
                step += g * old_out[word]
                w_out[word] += g * hidden
        for i, step in zip(used, steps * len(used) if cbow else steps, strict=False):
            w_in[i] += step
    return w_in, w_out, loss


@pytest.mark.parametrize(("cbow", "width", "outputs"),
                         [(False, 1, 4), (False, 4, 4), (True, 4, 4), (True, 1, 4),
                          (False, 300, 4), (True, 8, 101)])  # past 256 contexts / 64 noise words
def test_examples_equal_sequential_float64_reference(cbow, width, outputs) -> None:
    w_in, w_out = _weights()
    rng = np.random.default_rng(1)
    # a 300-word window over 12 words sums ~25 float32 steps a row into each: fewer rows, atol 1e-5
    rows, atol = (40, 1e-6) if width <= 8 else (4, 1e-5)
    inputs = rng.integers(0, 12, (rows, width))
    inputs[rng.random(inputs.shape) < 0.3] = -1  # unused context slots
    inputs[:, 0] = rng.integers(0, 12, rows)  # at least one context each
    targets = rng.integers(0, 12, (rows, outputs))
    targets[::5, 2] = targets[::5, 0]  # noise draws equal to the true word are skipped
    w_out[3] *= 40.0  # saturated scores (|score| >= 6) are skipped
    expected_in, expected_out, expected_loss = _reference(w_in, w_out, inputs, targets, 0.05, cbow)
    loss = native.train_examples(w_in, w_out, inputs, targets, 0.05, cbow)
    np.testing.assert_allclose(w_in.numpy(), expected_in, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(w_out.numpy(), expected_out, rtol=1e-5, atol=atol)
    assert loss == pytest.approx(expected_loss, rel=1e-5)


def test_window_one_without_subsampling_visits_exactly_the_adjacent_pairs_within_sentences() -> None:
    ids = np.array([5, 6, 7, 8, 9, 1, 2])
    starts = np.array([0, 3, 6, 7])
    pairs = native.span_pairs(np.ones(10), 1, ids, starts, seed=3)
    expected = [(6, 5), (5, 6), (7, 6), (6, 7), (9, 8), (8, 9), (1, 9), (9, 1)]  # (input, output)
    assert [tuple(p) for p in pairs.tolist()] == expected


def test_dynamic_window_and_subsampling_statistics() -> None:
    window, size = 5, 200_000
    rng = np.random.default_rng(0)
    keep = np.array([1.0, 0.25])
    ids = np.zeros(size, dtype=np.int64)
    one_sentence = np.array([0, size])
    pairs = native.span_pairs(keep, window, ids, one_sentence, seed=1)
    # Every centre uses window - b with b uniform in [0, window): a context at distance d is used
    # with probability (window - d + 1) / window, so a centre has sum(2 (W - d + 1) / W) = W + 1
    # contexts on average.
    assert len(pairs) / size == pytest.approx(window + 1, rel=0.01)
    ids = rng.integers(0, 2, size)
    pairs = native.span_pairs(keep, 1, ids, one_sentence, seed=2)
    kept_ones = np.count_nonzero(pairs[:, 1] == 1) / 2  # interior centres appear twice
    assert kept_ones / np.count_nonzero(ids == 1) == pytest.approx(0.25, rel=0.03)


def test_noise_words_are_drawn_from_the_alias_table_s_distribution() -> None:
    """Every vocabulary word is a noise word as often as the alias table says, the last one too.
    CBOW on one word whose input row is ``h`` (``h . h = 1``), at a rate too small to move a score
    off 0: each draw of word ``k`` adds ``-alpha h / 2`` to ``w_out[k]``, so the rows count the draws."""
    probabilities = np.array([0.0, 0.1, 0.2, 0.3, 0.4])  # word 0, the corpus, is never a noise word
    accept, alias = alias_table(probabilities)
    centres, negative, alpha = 20_000, 5, 1e-7
    w_in, w_out = torch.full((5, 4), 0.5), torch.zeros(5, 4)
    trainer = native.SpanTrainer(w_in, w_out, np.ones(5), accept, alias, 1, negative, True)
    _, examples = trainer.train(np.zeros(centres), np.array([0, centres]), alpha, alpha, seed=3)
    draws = -(w_out.double() @ torch.full((4,), 0.5, dtype=torch.float64)).numpy() / (alpha / 2)
    assert examples == centres
    assert draws[1:].sum() == pytest.approx(negative * centres, rel=1e-3)
    np.testing.assert_allclose(draws[1:] / (negative * centres), probabilities[1:], atol=0.01)


def test_spans_are_runs_of_whole_sentences() -> None:
    starts = np.arange(0, 211, 7)  # 210 tokens, 30 sentences of 7
    spans = _spans(starts, 50)
    assert spans[0][0] == 0 and spans[-1][1] == 30
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))
    assert all(starts[end] - starts[start] <= 50 for start, end in spans)
    assert [end - start for start, end in spans[:-1]] == [7] * 4  # 49 tokens each
    assert _spans(np.array([0, 120, 130]), 50) == [(0, 1), (1, 2)]  # a sentence longer than a span


def test_buffer_limits_come_from_c_and_c_checks_them() -> None:
    max_window, max_negative = native.limits()
    assert (max_window, max_negative) == (1024, 1024)
    lib = native.library()
    w_in, w_out = _weights()
    inputs = np.zeros((1, 2 * max_window + 1), dtype=np.int32)  # one slot too many
    targets = np.zeros((1, 2), dtype=np.int32)
    loss = lib.sgns_train_examples(
        w_in.data_ptr(), w_out.data_ptr(), 12, 7, 1, 0, inputs.ctypes.data, inputs.shape[1],
        targets.ctypes.data, 1, 0.1,
    )  # fmt: skip
    assert np.isnan(loss)
    ids, starts = np.zeros(5, dtype=np.int32), np.array([0, 5])
    for window in (0, max_window + 1):
        with pytest.raises(InvalidInputError, match="refused"):
            native.span_pairs(np.ones(12), window, ids, starts, seed=1)
    with pytest.raises(InvalidInputError, match="negative <= 1024"):
        native.SpanTrainer(w_in, w_out, np.ones(12), np.ones(12), np.arange(12), 5, max_negative + 1, False)


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


def test_a_window_past_the_c_kernel_goes_to_the_batched_step_or_says_so(caplog) -> None:
    if not native.available():
        pytest.skip("no C compiler: the native kernel is never chosen here")
    max_window, max_negative = native.limits()
    wide = Word2VecConfig(window=max_window + 1)
    assert resolve_kernel(wide, torch.device("cpu")) == "batched"  # auto: gensim takes any window too
    assert "past the C kernel's buffers" in caplog.text
    with pytest.raises(InvalidInputError, match="--kernel batched takes any"):
        resolve_kernel(dataclasses.replace(wide, kernel="native"), torch.device("cpu"))
    assert resolve_kernel(Word2VecConfig(negative=max_negative), torch.device("cpu")) == "native"


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


def test_a_built_kernel_is_readable_by_the_cache_s_other_users_and_a_killed_build_is_a_leftover(
    monkeypatch, tmp_path
) -> None:
    """A kernel was built 0711 whatever the umask (another user sharing the cache could not load
    it), and a killed build's temporary file matched no leftover pattern, so nothing removed it."""
    import os
    import stat

    from nlp182 import cbuild
    from nlp182.io import remove_dead_leftovers
    from nlp182.text import wordscan

    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    previous = os.umask(0o022)
    try:
        cbuild.build("wordscan", [wordscan.SOURCE])
    finally:
        os.umask(previous)
    (built,) = (tmp_path / "cache").glob("wordscan-*.so")
    assert stat.S_IMODE(built.stat().st_mode) == 0o755
    named = []

    def killed(command, **options):  # the build is killed with its temporary file written
        named.append(Path(command[command.index("-o") + 1]))
        raise KeyboardInterrupt

    monkeypatch.setattr(cbuild.subprocess, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        cbuild._compile("cc", [wordscan.SOURCE], tmp_path / "cache" / "other.so")
    leftover = named[0].with_name(named[0].name.replace(f".{os.getpid()}.", ".99999999."))  # a dead pid's
    leftover.write_bytes(b"")
    assert remove_dead_leftovers(tmp_path / "cache" / "any", every_name=True) == [leftover]


@pytest.mark.parametrize("cbow", [False, True])
def test_a_span_decays_its_rate_by_sentence_as_the_float64_reference_does(cbow: bool) -> None:
    """Within a span, sentence ``s`` trains at ``alpha_start + (alpha_end - alpha_start) * t_s / n``
    (``t_s`` its first token). Window 1 reaches exactly one word each side, every word is kept and
    every noise draw is word 11, so the walk is known and the float64 reference replays it. A
    one-word sentence has no context: it trains nothing (a CBOW mean over no words is 0 / 0)."""
    w_in, w_out = _weights()
    ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 2, 4, 6, 8, 9, 10, 1], dtype=np.int32)
    starts = np.array([0, 5, 8, 9, 16])
    trainer = native.SpanTrainer(w_in, w_out, np.ones(12), np.zeros(12), np.full(12, 11), 1, 1, cbow)
    expected_in, expected_out = w_in.clone(), w_out.clone()
    alpha_start, alpha_end, total = 0.4, 0.1, 0.0
    for first, end in itertools.pairwise(starts):
        alpha = alpha_start + (alpha_end - alpha_start) * first / len(ids)
        words = ids[first:end]
        for i, centre in enumerate(words):
            contexts = [words[j] for j in (i - 1, i + 1) if 0 <= j < len(words)]
            if not contexts:
                continue
            inputs = np.array([contexts + [-1] * (2 - len(contexts))])
            new_in, new_out, loss = _reference(expected_in, expected_out, inputs, np.array([[centre, 11]]),
                                               alpha, cbow)
            expected_in, expected_out = torch.from_numpy(new_in), torch.from_numpy(new_out)
            total += loss
    loss, examples = trainer.train(ids, starts, alpha_start, alpha_end, seed=5)
    assert examples == (15 if cbow else 2 * (4 + 2 + 6))  # centres with a context, or pairs
    np.testing.assert_allclose(w_in.numpy(), expected_in.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_out.numpy(), expected_out.numpy(), rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(total, rel=1e-5)


def test_training_falls_from_alpha_to_min_alpha_over_the_words_trained(tmp_path, monkeypatch) -> None:
    """The spans of a run carry word2vec's linear decay: each starts where the one before ended,
    the first at ``alpha`` and the last at ``min_alpha``, in proportion to the raw words before it."""
    from nlp182.embeddings.word2vec import train_word2vec
    from nlp182.text.corpus import CorpusSource

    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    rates: list[tuple[float, float]] = []
    real_train = native.SpanTrainer.train

    def recording(self, ids, starts, alpha_start, alpha_end, seed):
        rates.append((alpha_start, alpha_end))
        return real_train(self, ids, starts, alpha_start, alpha_end, seed)

    monkeypatch.setattr(native.SpanTrainer, "train", recording)
    monkeypatch.setattr("nlp182.embeddings.word2vec.SPAN_TOKENS", 500)  # several spans an epoch
    path = tmp_path / "text.txt"
    rng = np.random.default_rng(0)
    path.write_text("".join(" ".join(rng.choice(list("abcdefgh"), 10)) + "\n" for _ in range(300)))
    config = Word2VecConfig(vector_size=4, epochs=2, min_count=1, threads=1, alpha=0.05, min_alpha=0.001,
                            kernel="native", device="cpu")
    train_word2vec(CorpusSource(str(path)), config)
    assert len(rates) >= 8
    assert rates[0][0] == pytest.approx(0.05) and rates[-1][1] == pytest.approx(0.001)
    for (_, end), (start, _) in itertools.pairwise(rates):
        assert start == pytest.approx(end)
    middle = rates[len(rates) // 2][0]  # half the words trained: half way down
    assert middle == pytest.approx((0.05 + 0.001) / 2, rel=0.05)
