"""The fused Triton word2vec kernel against a sequential float64 reference, and training with it.

Without a GPU the kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``, set by this folder's
conftest before Triton is imported): the same kernel source, executed with NumPy on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")

from nlp182.embeddings import device_pipeline, native, triton_sgns  # noqa: E402
from nlp182.embeddings.word2vec import Word2VecConfig, resolve_kernel, train_word2vec  # noqa: E402
from nlp182.errors import InvalidInputError, MissingExtraError  # noqa: E402
from nlp182.text.corpus import CorpusSource  # noqa: E402

needs_triton_device = pytest.mark.skipif(
    not (torch.cuda.is_available() or triton_sgns.INTERPRETED),
    reason="Triton needs CUDA or TRITON_INTERPRET=1",
)
#: Where the kernel runs: compiled on a GPU, or in the interpreter on CPU tensors.
KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def _reference(w_in, w_out, ids, sentences, reach, noise, count, alpha_start, alpha_end, window, cbow):
    """word2vec's update in float64, one centre after the other (each sees the previous one's).

    Per centre: the window is the kept positions within ``reach`` and the centre's sentence; the
    outputs are the centre (label 1) and its noise words (label 0) other than the centre. Skip-gram:
    every context word predicts the centre from the rows as they were before the centre, then every
    row takes its summed step. CBOW: the mean of the context rows predicts the outputs (rows as
    before the centre) and every context row takes the full hidden step. A term with
    ``|score| >= 6`` is skipped. The rate falls from ``alpha_start`` to ``alpha_end`` over ``count``.
    """
    w_in, w_out = w_in.astype(np.float64), w_out.astype(np.float64)
    loss, examples = 0.0, 0
    for i in range(count):
        alpha = alpha_start + (alpha_end - alpha_start) * i / count
        context = [int(ids[j]) for j in range(max(0, i - reach[i]), min(count, i + reach[i] + 1))
                   if j != i and sentences[j] == sentences[i]]
        if not context:
            continue
        outputs = [(int(ids[i]), 1.0)] + [(int(n), 0.0) for n in noise[i] if n != ids[i]]
        old_in, old_out = w_in.copy(), w_out.copy()
        hiddens = [old_in[context].mean(0)] if cbow else [old_in[c] for c in context]
        steps = []
        for hidden in hiddens:
            step = np.zeros_like(hidden)
            for word, label in outputs:
                score = old_out[word] @ hidden
                if abs(score) >= triton_sgns.MAX_EXP:
                    continue
                g = (label - _sigmoid(score)) * alpha
                loss -= np.log(_sigmoid(score) if label else 1.0 - _sigmoid(score))
                step += g * old_out[word]
                w_out[word] += g * hidden
            steps.append(step)
        for c, step in zip(context, steps * len(context) if cbow else steps, strict=False):
            w_in[c] += step
        examples += 1 if cbow else len(context)
    return w_in, w_out, loss, examples


def _case(seed: int, vocab: int = 50, dim: int = 12, n: int = 30, negative: int = 4):
    rng = np.random.default_rng(seed)
    w_in = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    w_out = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    w_out[7] *= 30.0  # word 7's scores saturate (|score| >= 6) and are skipped
    ids = rng.integers(0, vocab, n).astype(np.int32)
    ids[5:8] = ids[4]  # a word repeated in one window: its steps add up
    sentences = np.repeat(np.arange(4), [9, 1, 12, n - 22]).astype(np.int32)  # one lone-word sentence
    noise = rng.integers(0, vocab, (n, negative)).astype(np.int32)
    noise[::4, 1] = ids[::4]  # noise equal to the centre is skipped
    noise[::5, 2] = noise[::5, 0]  # a noise word drawn twice counts twice
    return w_in, w_out, ids, sentences, noise


@needs_triton_device
@pytest.mark.parametrize("cbow", [False, True])
@pytest.mark.parametrize("window", [1, 3])
def test_kernel_in_one_program_equals_sequential_float64_reference(cbow: bool, window: int) -> None:
    w_in, w_out, ids, sentences, noise = _case(seed=window)
    n, count = len(ids), len(ids) - 3  # the last three positions are padding, never read
    reach = np.random.default_rng(5).integers(1, window + 1, n).astype(np.int32)
    expected_in, expected_out, expected_loss, expected_examples = _reference(
        w_in, w_out, ids, sentences, reach, noise, count, 0.05, 0.01, window, cbow)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tensors = [torch.tensor(a, device=device) for a in (w_in, w_out, ids, sentences, reach, noise)]
    stats = torch.zeros(2, dtype=torch.float64, device=device)
    triton_sgns.train_centres(*tensors, torch.tensor([count], device=device), stats, 0.05, 0.01, window, cbow,
                              centres_per_program=n)
    np.testing.assert_allclose(tensors[0].cpu().numpy(), expected_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tensors[1].cpu().numpy(), expected_out, rtol=1e-4, atol=1e-5)
    assert stats[0].item() == pytest.approx(expected_loss, rel=1e-4)
    assert stats[1].item() == expected_examples


@needs_triton_device
def test_programs_on_disjoint_words_and_launch_pieces_equal_the_reference() -> None:
    """Several programs (4 centres each) over sentences whose words no other sentence uses, in two
    launches: Hogwild has nothing to race on, so the result is the sequential one. The rate falls
    from 0.5 to 0.01 over the chunk, so the second launch goes on where the first stopped."""
    rng = np.random.default_rng(3)
    vocab, dim, window = 64, 8, 2
    w_in = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    w_out = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    ids = np.concatenate([rng.integers(16 * s, 16 * s + 16, 4) for s in range(4)]).astype(np.int32)
    sentences = np.repeat(np.arange(4), 4).astype(np.int32)
    noise = (ids[:, None] // 16 * 16 + rng.integers(0, 16, (16, 3))).astype(np.int32)
    reach = np.full(16, window, dtype=np.int32)
    expected_in, expected_out, *_ = _reference(w_in, w_out, ids, sentences, reach, noise, 16, 0.5, 0.01,
                                               window, False)
    tensors = [torch.tensor(a, device=KERNEL_DEVICE) for a in (w_in, w_out, ids, sentences, reach, noise)]
    count = torch.tensor([16], device=KERNEL_DEVICE)
    stats = torch.zeros(2, dtype=torch.float64, device=KERNEL_DEVICE)
    for first, last in ((0, 8), (8, 16)):
        triton_sgns.train_centres(*tensors, count, stats, 0.5, 0.01, window, False, first=first, last=last,
                                  centres_per_program=4)
    np.testing.assert_allclose(tensors[0].cpu().numpy(), expected_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tensors[1].cpu().numpy(), expected_out, rtol=1e-4, atol=1e-5)


@needs_triton_device
def test_warm_up_compiles_without_touching_the_weights() -> None:
    w_in, w_out = torch.randn(10, 8, device=KERNEL_DEVICE), torch.randn(10, 8, device=KERNEL_DEVICE)
    before = (w_in.clone(), w_out.clone())
    triton_sgns.warm_up(w_in, w_out, window=2, negative=3, cbow=False)
    assert torch.equal(w_in, before[0]) and torch.equal(w_out, before[1])


def test_subsample_packs_the_kept_tokens_in_order_and_counts_them() -> None:
    ids = torch.randint(0, 20, (500,), dtype=torch.int32)
    sentences = torch.arange(500, dtype=torch.int32) // 7
    keep_prob = torch.rand(20)
    kept_ids, kept_sentences, count = device_pipeline.subsample(
        ids, sentences, keep_prob, torch.Generator().manual_seed(4))
    keep = torch.rand(500, generator=torch.Generator().manual_seed(4)) < keep_prob[ids.long()]
    assert count.item() == keep.sum().item()
    assert torch.equal(kept_ids[: count.item()], ids[keep])
    assert torch.equal(kept_sentences[: count.item()], sentences[keep])


def test_keep_rates_reach_and_noise_draws_follow_their_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    keep_prob = torch.tensor([1.0, 0.5, 0.1, 0.0])
    ids = torch.arange(4, dtype=torch.int32).repeat(20_000)
    kept, _, count = device_pipeline.subsample(ids, torch.zeros_like(ids), keep_prob, generator)
    rates = torch.bincount(kept[: count.item()].long(), minlength=4) / 20_000
    np.testing.assert_allclose(rates.numpy(), keep_prob.numpy(), atol=0.01)
    reach = device_pipeline.draw_reach(50_000, 5, generator, torch.device("cpu"))
    np.testing.assert_allclose(torch.bincount(reach.long(), minlength=6)[1:].numpy() / 50_000, 0.2, atol=0.01)
    from nlp182.embeddings.word2vec import alias_table

    probabilities = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    accept, alias = alias_table(probabilities)
    noise = device_pipeline.draw_noise((40_000, 5), torch.tensor(accept, dtype=torch.float32),
                                       torch.tensor(alias), generator)
    assert noise.dtype == torch.int32
    np.testing.assert_allclose(torch.bincount(noise.flatten().long()).numpy() / noise.numel(), probabilities,
                               atol=0.01)


def test_sentence_numbers_on_the_device_follow_the_boundaries() -> None:
    from nlp182.text.encoded import Chunk

    chunk = Chunk(np.array([4, 5, 6, 7, 8, 9], dtype=np.int32), np.array([0, 2, 2, 5, 6]), 9)
    moved = device_pipeline.to_device(chunk, torch.device("cpu"))
    assert moved.ids.tolist() == [4, 5, 6, 7, 8, 9] and moved.raw_words == 9
    assert moved.sentences.tolist() == chunk.sentence_numbers().tolist()


@needs_triton_device
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_training_with_the_fused_kernel_learns_as_the_c_kernel_does(tmp_path, model: str) -> None:
    """The whole pipeline (device chunks, subsampling, windows, noise, kernel) on a small topic
    corpus (small: the interpreter takes about 20 ms a centre), beside the C kernel on the same text."""
    rng = np.random.default_rng(0)
    topics = {f"t{t}w{w}": t for t in range(4) for w in range(6)}
    words_of = [[w for w, t in topics.items() if t == topic] for topic in range(4)]
    lines = [" ".join(rng.choice(words_of[rng.integers(4)], size=8)) for _ in range(40)]
    path = tmp_path / "topics.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = {}
    for kernel in ("triton", "native"):
        config = Word2VecConfig(model=model, vector_size=16, epochs=2, min_count=1, sample=0.0, negative=3,
                                window=3, alpha=0.1, kernel=kernel, threads=1,
                                device=device if kernel == "triton" else "cpu")
        vectors, _, report = train_word2vec(CorpusSource(str(path)), config)
        assert report.kernel == kernel
        hits = [topics[n] == topics[w] for w in vectors.words for n, _ in vectors.most_similar(w, topn=3)]
        runs[kernel] = (report.final_loss, np.mean(hits))
    assert runs["triton"][0] < 0.97 * 4 * np.log(2)  # below the loss of untrained vectors
    assert runs["triton"][0] == pytest.approx(runs["native"][0], abs=0.1)
    assert runs["triton"][1] >= runs["native"][1] - 0.1
    if model == "sg":
        assert runs["triton"][1] > 0.8  # chance: 5 of 23


@pytest.mark.cuda
@pytest.mark.parametrize("cbow", [False, True])
def test_kernel_on_cuda_equals_sequential_float64_reference(cbow: bool) -> None:
    test_kernel_in_one_program_equals_sequential_float64_reference(cbow, window=3)


def test_auto_picks_the_fused_kernel_on_cuda_and_the_c_kernel_on_a_cpu() -> None:
    assert resolve_kernel(Word2VecConfig(), torch.device("cuda")) == "triton"
    if native.available():
        assert resolve_kernel(Word2VecConfig(), torch.device("cpu")) == "native"


def test_without_triton_auto_takes_the_batched_step_on_cuda_and_triton_is_refused(monkeypatch) -> None:
    from nlp182.embeddings import word2vec

    monkeypatch.setattr(word2vec, "_triton_module", lambda: None)
    assert resolve_kernel(Word2VecConfig(), torch.device("cuda")) == "batched"
    with pytest.raises(MissingExtraError, match="pip install triton"):
        resolve_kernel(Word2VecConfig(kernel="triton"), torch.device("cuda"))


def test_the_triton_kernel_on_a_cpu_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_sgns, "INTERPRETED", False)
    with pytest.raises(InvalidInputError, match="CUDA"):
        resolve_kernel(Word2VecConfig(kernel="triton", device="cpu"), torch.device("cpu"))


def test_a_fused_kernel_that_does_not_compile_gives_way_when_auto_chose_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``--kernel auto`` on CUDA with a Triton that cannot build the kernel still trains (batched,
    one warning); ``--kernel triton`` named by the user keeps the compiler's error."""
    from nlp182.embeddings import word2vec

    def refuse(*_args: object) -> None:
        raise RuntimeError("CompilationError at 67:70: unsupported\nmore detail")

    monkeypatch.setattr(triton_sgns, "warm_up", refuse)
    monkeypatch.setattr(word2vec, "resolve_kernel", lambda config, device: "triton")
    path = tmp_path / "text.txt"
    path.write_text("a b c d e f a b c d\n" * 20, encoding="utf-8")
    config = Word2VecConfig(vector_size=8, epochs=1, min_count=1, threads=1, device="cpu")
    with caplog.at_level("WARNING", logger="nlp182.embeddings.word2vec"):
        vectors, _, report = train_word2vec(CorpusSource(str(path)), config)
    assert report.kernel == "batched" and len(vectors) == 6
    assert "did not compile (CompilationError at 67:70: unsupported)" in caplog.text
    with pytest.raises(RuntimeError, match="CompilationError"):
        train_word2vec(CorpusSource(str(path)), Word2VecConfig(vector_size=8, epochs=1, min_count=1,
                                                               kernel="triton", device="cpu"))


def test_a_fused_kernel_past_the_devices_shared_memory_names_the_settings(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--kernel triton`` at a vector size whose rows do not fit a program's shared memory: the
    error names the settings and the way out, not only the compiler's byte counts."""
    from triton.runtime.errors import OutOfResources

    from nlp182.embeddings import word2vec

    def too_big(*_args: object) -> None:
        raise OutOfResources(331792, 232448, "shared memory")

    monkeypatch.setattr(triton_sgns, "warm_up", too_big)
    monkeypatch.setattr(word2vec, "resolve_kernel", lambda config, device: "triton")
    path = tmp_path / "text.txt"
    path.write_text("a b c d e f a b c d\n" * 20, encoding="utf-8")
    config = Word2VecConfig(vector_size=1000, window=20, epochs=1, min_count=1, kernel="triton", device="cpu")
    with pytest.raises(InvalidInputError, match=r"--vector-size 1000, --window 20 and --negative 5 .*"
                                                r"Required: 331792.*--kernel batched"):
        train_word2vec(CorpusSource(str(path)), config)
