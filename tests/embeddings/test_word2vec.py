"""word2vec: SGD steps against float64 hand computations, example generation, learning."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from nlp182.embeddings import native
from nlp182.embeddings.word2vec import (
    SGNS,
    Word2VecConfig,
    alias_table,
    cbow_update,
    resolve_backend,
    skipgram_update,
    train_word2vec,
)
from nlp182.errors import InvalidInputError
from nlp182.text.corpus import CorpusSource
from nlp182.text.encoded import Chunk
from nlp182.text.vocab import Vocabulary


def _vocab(size: int = 10) -> Vocabulary:
    return Vocabulary([f"w{i}" for i in range(size)], np.arange(size, 0, -1) * 10, 550)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _model(config: Word2VecConfig, noise_word: int) -> SGNS:
    model = SGNS(_vocab(), config, torch.device("cpu"))
    model.w_out = torch.randn(model.w_out.shape) * 0.3  # non-zero so every term matters
    model.noise_accept = torch.zeros(len(model.noise_accept))  # every negative is this word: deterministic
    model.noise_alias = torch.full_like(model.noise_alias, noise_word)
    return model


def test_skipgram_step_equals_sequential_float64_reference() -> None:
    config = Word2VecConfig(vector_size=6, negative=2)
    model = _model(config, noise_word=7)
    w_in, w_out = model.w_in.double().numpy().copy(), model.w_out.double().numpy().copy()
    inputs, outputs, alpha = [1, 2, 3], [4, 5, 7], 0.05
    model.step((torch.tensor(inputs), torch.tensor(outputs)), alpha)
    # Batched SGD: every example reads the weights from before the step; updates add up.
    new_in, new_out = w_in.copy(), w_out.copy()
    for i, o in zip(inputs, outputs, strict=True):
        hidden, step = w_in[i], np.zeros(6)
        for target, label in [(o, 1.0), (7, 0.0), (7, 0.0)]:
            if label == 0.0 and target == o:
                continue  # word2vec skips a noise draw equal to the true word
            g = (label - _sigmoid(w_out[target] @ hidden)) * alpha
            step += g * w_out[target]
            new_out[target] += g * hidden
        new_in[i] += step
    np.testing.assert_allclose(model.w_in.numpy(), new_in, atol=1e-6)
    np.testing.assert_allclose(model.w_out.numpy(), new_out, atol=1e-6)


def test_cbow_step_gives_every_context_word_the_full_step() -> None:
    config = Word2VecConfig(model="cbow", vector_size=5, negative=1, window=2)
    model = _model(config, noise_word=9)
    w_in, w_out = model.w_in.double().numpy().copy(), model.w_out.double().numpy().copy()
    contexts = torch.tensor([[1, 2, 3, 0], [4, 4, 5, 6]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    centres, alpha = [8, 9], 0.1
    model.step((contexts, mask, torch.tensor(centres)), alpha)
    new_in, new_out = w_in.copy(), w_out.copy()
    for ctx, m, centre in zip(contexts.tolist(), mask.tolist(), centres, strict=True):
        used = [c for c, keep in zip(ctx, m, strict=True) if keep]
        hidden, step = w_in[used].mean(axis=0), np.zeros(5)
        for target, label in [(centre, 1.0), (9, 0.0)]:
            if label == 0.0 and target == centre:
                continue
            g = (label - _sigmoid(w_out[target] @ hidden)) * alpha
            step += g * w_out[target]
            new_out[target] += g * hidden
        for c in used:
            new_in[c] += step
    np.testing.assert_allclose(model.w_in.numpy(), new_in, atol=1e-6)
    np.testing.assert_allclose(model.w_out.numpy(), new_out, atol=1e-6)


def test_skipgram_examples_are_exactly_the_windowed_pairs_within_sentences() -> None:
    config = Word2VecConfig(vector_size=4, window=1, sample=0.0)  # window 1 cannot shrink
    model = SGNS(_vocab(), config, torch.device("cpu"))
    chunk = Chunk(np.array([0, 1, 2, 3, 4, 5], dtype=np.int32), np.array([0, 3, 5, 6]), 6)
    inputs, outputs = model.examples(chunk)
    pairs = sorted(zip(inputs.tolist(), outputs.tolist(), strict=True))
    assert pairs == sorted([(1, 0), (0, 1), (2, 1), (1, 2), (4, 3), (3, 4)])


def test_dynamic_window_and_subsampling_statistics() -> None:
    size, window = 50, 4
    counts = np.full(size, 100)
    counts[0] = 100_000  # one very frequent word gets subsampled
    vocab = Vocabulary([f"w{i}" for i in range(size)], counts, int(counts.sum()))
    model = SGNS(vocab, Word2VecConfig(vector_size=4, window=window), torch.device("cpu"))
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(0, size, 200_000))
    kept, _ = model._subsample(ids, torch.zeros_like(ids))
    keep = vocab.keep_probabilities(1e-3)
    observed = np.bincount(kept.numpy(), minlength=size) / np.bincount(ids.numpy(), minlength=size)
    np.testing.assert_allclose(observed, keep, atol=0.02)
    assert observed[0] == pytest.approx(keep[0], rel=0.1) and keep[0] < 0.05
    # Window W - b with b uniform in [0, W): on average (W + 1) / 2 words each side.
    ids = rng.integers(1, size, 20_000)
    inputs, _ = model.examples(Chunk(ids, np.array([0, len(ids)]), len(ids)))
    assert len(inputs) / len(ids) == pytest.approx(2 * (window + 1) / 2, rel=0.03)


def test_alias_table_is_exact() -> None:
    probabilities = np.random.default_rng(0).dirichlet(np.full(50, 0.3))
    accept, alias = alias_table(probabilities)
    # Each slot is drawn with chance 1/V and gives itself w.p. accept, its alias otherwise.
    implied = accept / 50 + np.bincount(alias, weights=(1 - accept) / 50, minlength=50)
    np.testing.assert_allclose(implied, probabilities, atol=1e-12)


def test_negatives_follow_the_unigram_075_distribution() -> None:
    vocab = _vocab()
    model = SGNS(vocab, Word2VecConfig(vector_size=4, negative=20), torch.device("cpu"))
    targets, _ = model._negatives(torch.zeros(20_000, dtype=torch.long))
    frequencies = np.bincount(targets[:, 1:].flatten().numpy(), minlength=len(vocab)) / targets[:, 1:].numel()
    np.testing.assert_allclose(frequencies, vocab.noise_distribution(0.75), atol=3e-3)


@pytest.mark.parametrize("ns_exponent", [0.0, -0.5, 1.0])
def test_the_noise_tables_hold_the_counts_to_the_power_ns_exponent(ns_exponent: float) -> None:
    """The alias tables every kernel draws noise words from (``noise_accept``, ``noise_alias``) give
    each word its count to the power ``ns_exponent``, normalised: gensim's meaning of the setting."""
    vocab = _vocab()
    model = SGNS(vocab, Word2VecConfig(vector_size=4, ns_exponent=ns_exponent), torch.device("cpu"))
    accept, alias = model.noise_accept.double().numpy(), model.noise_alias.numpy()
    implied = accept / 10 + np.bincount(alias, weights=(1 - accept) / 10, minlength=10)
    weights = vocab.counts.astype(np.float64) ** ns_exponent
    np.testing.assert_allclose(implied, weights / weights.sum(), atol=1e-7)


NATIVE = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernel")
KERNELS = [
    ("batched", None),
    pytest.param("native", 1, marks=NATIVE),
    pytest.param("native", 2, marks=NATIVE),
]


@pytest.mark.parametrize("model", ["sg", "cbow"])
@pytest.mark.parametrize(("kernel", "threads"), KERNELS)
def test_training_puts_neighbours_in_the_same_topic(topic_corpus, model, kernel, threads) -> None:
    path, topic_of = topic_corpus
    config = Word2VecConfig(
        model=model,
        vector_size=20,
        epochs=3,
        min_count=1,
        sample=0.0,
        batch_size=512,
        compile=model == "sg",  # batched: the compiled step and the eager one both learn
        alpha=0.05 if model == "cbow" else 0.025,
        kernel=kernel,
        threads=threads,  # native: one thread, and two Hogwild threads
    )
    vectors, vocab, report = train_word2vec(CorpusSource(str(path)), config)
    assert report.kernel == kernel and report.raw_words == vocab.total_words * 3
    hits = [topic_of[n] == topic_of[w] for w in vectors.words for n, _ in vectors.most_similar(w, topn=5)]
    assert np.mean(hits) > 0.95
    assert report.final_loss < 3.0  # started at 6 log 2 = 4.16


@pytest.mark.parametrize("kernel", ["batched", pytest.param("native", marks=NATIVE)])
def test_training_is_reproducible_for_a_seed(topic_corpus, kernel) -> None:
    path, _ = topic_corpus
    config = Word2VecConfig(vector_size=8, epochs=1, min_count=1, seed=3, threads=1, kernel=kernel)
    first, _, _ = train_word2vec(CorpusSource(str(path)), config)
    second, _, _ = train_word2vec(CorpusSource(str(path)), config)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    other, _, _ = train_word2vec(CorpusSource(str(path)), dataclasses.replace(config, seed=4))
    assert not np.array_equal(first.vectors, other.vectors)


def test_gensim_backend_and_auto_choice(topic_corpus) -> None:
    path, topic_of = topic_corpus
    config = Word2VecConfig(vector_size=20, epochs=3, min_count=1, sample=0.0, backend="gensim", threads=1)
    vectors, vocab, report = train_word2vec(CorpusSource(str(path)), config)
    assert report.backend == "gensim"
    # rows follow the returned vocabulary, equal counts included (gensim orders those its own way)
    assert vectors.words == vocab.words and vectors.expandos["count"].tolist() == vocab.counts.tolist()
    assert len(set(vocab.counts.tolist())) < len(vocab)  # the corpus has ties to order
    hits = [topic_of[n] == topic_of[w] for w in vectors.words for n, _ in vectors.most_similar(w, topn=5)]
    assert np.mean(hits) > 0.95
    assert resolve_backend(Word2VecConfig(backend="auto", device="cpu", kernel="batched")) == "gensim"
    assert resolve_backend(Word2VecConfig(backend="torch")) == "torch"


def test_gensim_backend_hands_every_setting_to_gensims_word2vec(monkeypatch) -> None:
    """Each value differs from gensim's default, so a setting not passed on would train at gensim's
    value while config.json records the one given."""
    import gensim.models

    seen: dict[str, object] = {}

    class Recording(gensim.models.Word2Vec):
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gensim.models, "Word2Vec", Recording)
    config = Word2VecConfig(backend="gensim", vector_size=8, window=3, negative=2, min_count=1, sample=1e-4,
                            alpha=0.02, min_alpha=0.001, ns_exponent=0.5, seed=7, threads=1, epochs=1)
    _, _, report = train_word2vec([["a", "b", "c", "d", "e"], ["b", "c", "a", "e"]] * 50, config)
    assert report.backend == "gensim"
    assert seen == {"vector_size": 8, "window": 3, "negative": 2, "hs": 0, "min_count": 1, "sample": 1e-4,
                    "alpha": 0.02, "min_alpha": 0.001, "ns_exponent": 0.5, "sg": 1, "seed": 7, "workers": 1}


def test_defaults_are_gensims_for_the_settings_both_name() -> None:
    """docs/howto/gensim.md gives the shared names gensim's meanings: left at its default, each one
    trains as gensim's ``Word2Vec()`` would; skip-gram and the epochs of a small corpus are the
    documented exceptions."""
    import inspect

    from gensim.models import Word2Vec

    from nlp182.embeddings.word2vec import DEFAULT_EPOCHS

    gensim = {name: parameter.default for name, parameter in inspect.signature(Word2Vec).parameters.items()}
    ours = Word2VecConfig()
    shared = ("vector_size", "window", "negative", "min_count", "sample", "alpha", "min_alpha", "ns_exponent",
              "seed")
    assert {name: getattr(ours, name) for name in shared} == {name: gensim[name] for name in shared}
    assert ours.max_vocab is gensim["max_final_vocab"] is None
    assert ours.epochs is None and gensim["epochs"] == DEFAULT_EPOCHS  # 5, more on a small corpus
    assert ours.model == "sg" and gensim["sg"] == 0  # skip-gram here, CBOW in gensim
    assert (gensim["hs"], gensim["cbow_mean"], gensim["shrink_windows"]) == (0, 1, True)  # always so here


@pytest.mark.parametrize(
    "setting",
    [
        {"window": 0},
        {"model": "glove"},
        {"alpha": -1.0},
        {"min_count": -1},
        {"backend": "c"},
        {"sample": -2.0},
        {"min_alpha": 0.5},
        {"kernel": "cuda"},
    ],
)
def test_bad_settings_are_rejected(setting) -> None:
    with pytest.raises(InvalidInputError):
        Word2VecConfig(**setting)


@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_compiled_step_equals_eager_step(model) -> None:
    config = Word2VecConfig(model=model, vector_size=8, window=2, batch_size=64, sample=0.0, compile=True)
    eager = SGNS(_vocab(), dataclasses.replace(config, compile=False), torch.device("cpu"))
    compiled = SGNS(_vocab(), config, torch.device("cpu"))
    ids = np.random.default_rng(0).integers(0, 10, 400)
    chunk = Chunk(ids, np.array([0, len(ids)]), len(ids))
    for sgns in (eager, compiled):
        sgns.w_out = torch.randn(sgns.w_out.shape, generator=torch.Generator().manual_seed(1)) * 0.3
    examples = eager.examples(chunk)
    assert all(torch.equal(a, b) for a, b in zip(examples, compiled.examples(chunk), strict=True))
    batch = tuple(t[:64] for t in examples)
    eager_loss = eager.step(batch, 0.05)
    assert compiled._update_function(64) is not (skipgram_update if model == "sg" else cbow_update)
    compiled_loss = compiled.step(batch, 0.05)
    assert eager._compiled == {} and len(compiled._compiled) == 1
    assert float(compiled_loss) == pytest.approx(float(eager_loss), rel=1e-5)
    torch.testing.assert_close(compiled.w_in, eager.w_in, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(compiled.w_out, eager.w_out, rtol=1e-5, atol=1e-7)


def test_cbow_keeps_corpus_order_and_skipgram_shuffles_by_default() -> None:
    ids = np.arange(10).repeat(30) % 10
    chunk = Chunk(ids, np.array([0, len(ids)]), len(ids))
    cbow = SGNS(_vocab(), Word2VecConfig(model="cbow", vector_size=4, sample=0.0), torch.device("cpu"))
    _, _, centres = cbow.examples(chunk)
    assert centres.tolist() == ids.tolist()
    skipgram = SGNS(_vocab(), Word2VecConfig(vector_size=4, window=1, sample=0.0), torch.device("cpu"))
    _, outputs = skipgram.examples(chunk)
    in_order = np.repeat(ids, 2)[1:-1]  # window 1: each centre twice, the two ends once
    assert sorted(outputs.tolist()) == sorted(in_order.tolist()) and outputs.tolist() != in_order.tolist()
    ordered = SGNS(
        _vocab(), Word2VecConfig(vector_size=4, window=1, sample=0.0, shuffle=False), torch.device("cpu")
    )
    assert ordered.examples(chunk)[1].tolist() == in_order.tolist()


def test_gensim_built_from_our_counts_has_the_tables_of_its_own_scan(small_corpus) -> None:
    from gensim.models import Word2Vec

    from nlp182.text.corpus import iter_token_lines
    from nlp182.text.vocab import VocabConfig

    source = CorpusSource(str(small_corpus))
    vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(min_count=5, sample=1e-3))
    scanned, ours = Word2Vec(min_count=5, sample=1e-3), Word2Vec(min_count=5, sample=1e-3)
    scanned.build_vocab(list(iter_token_lines(source)))
    ours.build_vocab_from_freq(dict(zip(vocab.words, vocab.counts.tolist(), strict=True)))
    assert sorted(ours.wv.index_to_key) == sorted(scanned.wv.index_to_key)
    assert scanned.corpus_total_words == vocab.total_words
    sample_int = {w: scanned.wv.get_vecattr(w, "sample_int") for w in scanned.wv.index_to_key}
    assert {w: ours.wv.get_vecattr(w, "sample_int") for w in ours.wv.index_to_key} == sample_int
    np.testing.assert_array_equal(np.diff(ours.cum_table)[:100], np.diff(scanned.cum_table)[:100])


@pytest.mark.parametrize("backend", ["torch", "gensim"])
def test_max_vocab_keeps_that_many_of_the_most_frequent_words(backend) -> None:
    """``max_vocab`` (``--max-vocab``) bounds the rows trained and saved, on either backend."""
    sentences = [[f"w{i}" for i in range(length)] for length in range(20, 1, -1)] * 3  # w0, w1: in each
    config = Word2VecConfig(backend=backend, max_vocab=5, min_count=1, vector_size=8, epochs=1, threads=1)
    vectors, vocab, _ = train_word2vec(sentences, config)
    assert vectors.words == vocab.words == ["w0", "w1", "w2", "w3", "w4"]
    assert vectors.vectors.shape == (5, 8) and vocab.counts.tolist() == [57, 57, 54, 51, 48]


def test_a_corpus_without_context_is_refused_and_a_thin_one_warned_about(tmp_path, caplog) -> None:
    """One token a line (a tagger's layout) trained nothing and saved random vectors with a loss
    of 0; a small corpus at 5 epochs left every neighbour near cosine 1 without a word."""
    from nlp182.errors import EmptyCorpusError

    (tmp_path / "vertical.txt").write_text("alpha\nbeta\ngamma\n" * 50)
    with pytest.raises(EmptyCorpusError, match="no line holds two words"):
        train_word2vec(CorpusSource(str(tmp_path / "vertical.txt")), Word2VecConfig(min_count=1, epochs=1))
    (tmp_path / "mostly.txt").write_text("alpha\nbeta\ngamma\n" * 50 + "alpha beta\n")
    with caplog.at_level(logging.WARNING, logger="nlp182.embeddings.word2vec"):
        train_word2vec(CorpusSource(str(tmp_path / "mostly.txt")), Word2VecConfig(min_count=1, epochs=1))
    assert "only 1.3% of the 152 tokens share a line with another word" in caplog.text
    assert "152 tokens x 1 epochs is little for word2vec" in caplog.text
    # sentences given in memory are named as such, not by the cache file they are written to
    with pytest.raises(EmptyCorpusError, match=r"^the sentences given: no sentence holds two words.*\[\['"):
        train_word2vec([["a"], ["b"]], Word2VecConfig(min_count=1, epochs=1))


def test_a_small_corpus_trains_more_epochs_unless_they_are_given(tmp_path) -> None:
    """Five passes over a small corpus left its vectors at their random start: with no epochs given,
    tokens x epochs reaches ten million words (at most 50 passes); given epochs are kept. On the
    540k-token demo corpus five passes scored WordSim-353 0.22, nineteen 0.46."""
    from nlp182.embeddings.word2vec import (
        DEFAULT_EPOCHS,
        MAX_AUTO_EPOCHS,
        TARGET_TRAINED_WORDS,
        choose_epochs,
    )

    assert choose_epochs(540_000) == 19 and 540_000 * 19 >= TARGET_TRAINED_WORDS > 540_000 * 18
    assert choose_epochs(10_000_000) == DEFAULT_EPOCHS and choose_epochs(2_000_000) == DEFAULT_EPOCHS
    assert choose_epochs(60_000) == MAX_AUTO_EPOCHS and choose_epochs(0) == MAX_AUTO_EPOCHS
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "in", "the", "park"]] * 50
    config = Word2VecConfig(vector_size=8, min_count=1, threads=1)
    _, vocab, report = train_word2vec(sentences, config)
    assert vocab.total_words == 600 and report.epochs == MAX_AUTO_EPOCHS
    assert report.raw_words == 600 * MAX_AUTO_EPOCHS and config.epochs is None
    _, _, given = train_word2vec(sentences, dataclasses.replace(config, epochs=2))
    assert given.epochs == 2 and given.raw_words == 1200


def test_an_epoch_that_trained_no_example_says_so_instead_of_a_zero_loss(caplog) -> None:
    """Subsampling can drop every word of a tiny corpus: its epochs logged "loss 0.0000", and
    final_loss was 0.0, which read as a perfect fit of vectors still at their random start."""
    caplog.set_level(logging.INFO, logger="nlp182.embeddings.word2vec")
    _, _, report = train_word2vec([["alpha", "beta"]] * 100,
                                  Word2VecConfig(vector_size=8, min_count=1, sample=1e-6, epochs=2))
    assert math.isnan(report.final_loss)
    assert "epoch 2/2 trained no example" in caplog.text and "loss 0.0000" not in caplog.text


def test_settings_of_the_batched_step_are_named_when_another_kernel_ignores_them(caplog) -> None:
    """--compile --shuffle --batch-size ran the native kernel unchanged, without a word."""
    caplog.set_level(logging.WARNING, logger="nlp182.embeddings.word2vec")
    sentences = [["alpha", "beta", "gamma", "delta"]] * 50
    train_word2vec(sentences, Word2VecConfig(vector_size=8, min_count=1, epochs=1, kernel="native",
                                             compile=True, batch_size=7))
    assert "--compile, --batch-size apply to the batched kernel only; the native kernel" in caplog.text
    caplog.clear()
    train_word2vec(sentences, Word2VecConfig(vector_size=8, min_count=1, epochs=1, kernel="native"))
    assert "batched kernel only" not in caplog.text


def test_a_kernel_this_machine_cannot_run_is_refused_before_the_corpus_is_read(monkeypatch) -> None:
    """--kernel triton on a CPU was refused only after the corpus had been read and encoded."""
    from nlp182.embeddings import word2vec as module

    read = []
    monkeypatch.setattr(module, "open_corpus", lambda *a, **k: read.append(1))
    cpu_only = type("Triton", (), {"runs_on": staticmethod(lambda device: False)})  # as on this machine
    monkeypatch.setattr(module, "_triton_module", lambda: cpu_only)
    with pytest.raises(InvalidInputError, match="kernel 'triton' runs on CUDA"):
        train_word2vec([["a", "b"]] * 10, Word2VecConfig(kernel="triton", device="cpu", min_count=1))
    assert read == []
