"""word2vec with negative sampling (skip-gram and CBOW), written in PyTorch.

The algorithm of Mikolov et al. (2013) as gensim and the C tool run it: frequent-word subsampling,
a dynamic (randomly shrunk) window, ``negative`` noise words drawn from the unigram^0.75
distribution, a learning rate decaying linearly to ``min_alpha``, and plain SGD updates that touch
only the rows a batch uses (``index_add_``, no dense gradient). Instead of one pair at a time, each
corpus chunk is turned into all of its (input, output) examples on the device at once, shuffled,
and trained in large batches; that is what makes a GPU fast and keeps the CPU close to gensim.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from nlp182.device import select_device
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.text.corpus import Chunk, CorpusSource, EncodedCorpus, iter_token_lines
from nlp182.text.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)

MODELS = ("sg", "cbow")
BACKENDS = ("torch", "gensim", "auto")
NOISE_TABLE_SIZE = 10_000_000


@dataclass
class Word2VecConfig:
    """Hyperparameters; the defaults are gensim's (``Word2Vec``) for skip-gram.

    ``batch_size`` counts training examples (one input row, one output row and ``negative`` noise
    rows each) per SGD step. ``backend``: ``torch`` is this module; ``gensim`` runs gensim's C
    trainer on the same tokens; ``auto`` takes torch on a GPU and gensim on a CPU, where
    ``bench/embeddings.py`` measures gensim's optimised C loop to be faster at equal quality.
    """

    model: str = "sg"
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    max_vocab: int | None = None
    sample: float = 1e-3
    epochs: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    ns_exponent: float = 0.75
    batch_size: int = 4096
    seed: int = 1
    device: str = "auto"
    backend: str = "torch"
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "model": self.model in MODELS,
            "backend": self.backend in BACKENDS,
            "vector_size": self.vector_size >= 1,
            "window": self.window >= 1,
            "negative": self.negative >= 1,
            "epochs": self.epochs >= 1,
            "alpha": self.alpha > 0 and 0 <= self.min_alpha <= self.alpha,
            "batch_size": self.batch_size >= 1,
            "threads": self.threads is None or self.threads >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInputError(f"invalid word2vec setting {name}={getattr(self, name)!r}")
        VocabConfig(self.min_count, self.max_vocab, self.sample)  # validates those three

    def vocab_config(self) -> VocabConfig:
        return VocabConfig(min_count=self.min_count, max_vocab=self.max_vocab, sample=self.sample)


@dataclass
class TrainingReport:
    """What a training run measured."""

    backend: str
    device: str
    seconds: float
    raw_words: int
    words_per_second: float
    final_loss: float | None


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SGNS:
    """Skip-gram / CBOW negative-sampling model state and its SGD step.

    Args:
        vocab: word counts (for subsampling and the noise distribution).
        config: hyperparameters.
        device: where the two ``(V, D)`` matrices live.
    """

    def __init__(self, vocab: Vocabulary, config: Word2VecConfig, device: torch.device) -> None:
        self.vocab, self.config, self.device = vocab, config, device
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        cpu_generator = torch.Generator().manual_seed(config.seed)
        size, dim = len(vocab), config.vector_size
        # gensim's initialisation: input rows uniform in [-0.5/D, 0.5/D), output rows zero.
        self.w_in = ((torch.rand(size, dim, generator=cpu_generator) - 0.5) / dim).to(device)
        self.w_out = torch.zeros(size, dim, device=device)
        self.keep_prob = torch.as_tensor(
            vocab.keep_probabilities(config.sample), dtype=torch.float32, device=device
        )
        noise = vocab.noise_distribution(config.ns_exponent)
        repeats = np.maximum(np.round(noise * NOISE_TABLE_SIZE).astype(np.int64), 0)
        self.noise_table = torch.as_tensor(np.repeat(np.arange(size), repeats), device=device)
        offsets = torch.arange(-config.window, config.window + 1, device=device)
        self.offsets = offsets[offsets != 0]  # (2W,)

    def _rand_int(self, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(high, shape, generator=self.generator, device=self.device)

    def _subsample(self, ids: torch.Tensor, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.rand(ids.shape, generator=self.generator, device=self.device) < self.keep_prob[ids]
        return ids[keep], sentence[keep]

    def _context_positions(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window of every position: ``(N, 2W)`` context positions and validity mask.

        Each centre draws its reduced window ``b`` uniformly in ``[0, W)`` and uses ``W - b``,
        as word2vec does; positions outside the sentence are invalid.
        """
        n = sentence.shape[0]
        effective = self.config.window - self._rand_int(self.config.window, (n,))
        positions = torch.arange(n, device=self.device)[:, None] + self.offsets[None, :]
        inside = (positions >= 0) & (positions < n)
        positions = positions.clamp(0, n - 1)
        valid = inside & (self.offsets.abs()[None, :] <= effective[:, None])
        valid &= sentence[positions] == sentence[:, None]
        return positions, valid

    def examples(self, chunk: Chunk) -> tuple[torch.Tensor, ...]:
        """All training examples of one chunk for one epoch, shuffled.

        Skip-gram: ``(inputs (P,), outputs (P,))`` with the context word as input and the centre
        word as output (gensim's order). CBOW: ``(contexts (P, 2W), mask (P, 2W), centres (P,))``.
        """
        ids = torch.as_tensor(chunk.ids, device=self.device)
        sentence = torch.as_tensor(chunk.sentence, device=self.device)
        ids, sentence = self._subsample(ids, sentence)
        if ids.numel() == 0:
            return ()
        positions, valid = self._context_positions(sentence)
        if self.config.model == "sg":
            centre, slot = valid.nonzero(as_tuple=True)
            inputs, outputs = ids[positions[centre, slot]], ids[centre]
            order = torch.randperm(len(inputs), generator=self.generator, device=self.device)
            return inputs[order], outputs[order]
        has_context = valid.any(dim=1)
        contexts, mask, centres = ids[positions[has_context]], valid[has_context], ids[has_context]
        order = torch.randperm(len(centres), generator=self.generator, device=self.device)
        return contexts[order], mask[order], centres[order]

    def _negatives(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 1+K)`` output rows (true word first), labels and weights; a noise draw equal to the
        true word gets weight 0 (word2vec skips it)."""
        noise = self.noise_table[self._rand_int(len(self.noise_table), (len(outputs), self.config.negative))]
        targets = torch.cat([outputs[:, None], noise], dim=1)
        labels = torch.zeros(targets.shape, device=self.device)
        labels[:, 0] = 1.0
        weights = torch.ones(targets.shape, device=self.device)
        weights[:, 1:] = (noise != outputs[:, None]).float()
        return targets, labels, weights

    def _output_step(
        self, hidden: torch.Tensor, outputs: torch.Tensor, alpha: float
    ) -> tuple[torch.Tensor, float]:
        """Update output rows for hidden vectors ``(B, D)``; return the ``(B, D)`` input gradient step."""
        targets, labels, weights = self._negatives(outputs)
        rows = self.w_out[targets]  # (B, 1+K, D)
        scores = torch.bmm(rows, hidden[:, :, None]).squeeze(2)  # (B, 1+K)
        step = (labels - torch.sigmoid(scores)) * weights * alpha  # (B, 1+K)
        hidden_step = torch.bmm(step[:, None, :], rows).squeeze(1)  # (B, D)
        self.w_out.index_add_(
            0, targets.reshape(-1), (step[:, :, None] * hidden[:, None, :]).reshape(-1, hidden.shape[1])
        )
        loss_terms = torch.nn.functional.logsigmoid(torch.where(labels > 0, scores, -scores)) * weights
        return hidden_step, -float(loss_terms.sum()) / len(outputs)

    def step_skipgram(self, inputs: torch.Tensor, outputs: torch.Tensor, alpha: float) -> float:
        """One SGD step on ``(B,)`` input words predicting ``(B,)`` output words; returns mean loss."""
        hidden = self.w_in[inputs]
        hidden_step, loss = self._output_step(hidden, outputs, alpha)
        self.w_in.index_add_(0, inputs, hidden_step)
        return loss

    def step_cbow(
        self, contexts: torch.Tensor, mask: torch.Tensor, centres: torch.Tensor, alpha: float
    ) -> float:
        """One SGD step: the mean of ``(B, 2W)`` context rows (``mask`` marks real ones) predicts the
        ``(B,)`` centres. As in gensim (``cbow_mean=1``) every context row receives the full step."""
        maskf = mask.float()
        hidden = (self.w_in[contexts] * maskf[:, :, None]).sum(1) / maskf.sum(1, keepdim=True)
        hidden_step, loss = self._output_step(hidden, centres, alpha)
        self.w_in.index_add_(0, contexts[mask], hidden_step[:, None, :].expand(-1, mask.shape[1], -1)[mask])
        return loss


def _learning_rate(config: Word2VecConfig, progress: float) -> float:
    return max(config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * progress)


def train_torch(
    corpus: EncodedCorpus, vocab: Vocabulary, config: Word2VecConfig
) -> tuple[Vectors, TrainingReport]:
    """Train with this module's SGNS/CBOW on ``corpus``; return the input vectors and timings."""
    device = select_device(config.device)
    with _torch_threads(config.threads):
        model = SGNS(vocab, config, device)
        total = vocab.total_words * config.epochs
        done, loss, started = 0, math.nan, time.perf_counter()
        bar = tqdm(total=total, unit="w", unit_scale=True, desc=f"word2vec {config.model} ({device.type})")
        for epoch in range(config.epochs):
            for chunk in corpus:
                examples = model.examples(chunk)
                count = len(examples[0]) if examples else 0
                for start in range(0, count, config.batch_size):
                    batch = [tensor[start : start + config.batch_size] for tensor in examples]
                    progress = (done + chunk.raw_words * start / count) / total
                    alpha = _learning_rate(config, progress)
                    loss = (
                        model.step_skipgram(*batch, alpha)
                        if config.model == "sg"
                        else model.step_cbow(*batch, alpha)
                    )
                done += chunk.raw_words
                bar.update(chunk.raw_words)
                elapsed = time.perf_counter() - started
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", words_s=f"{done / elapsed:,.0f}")
            log.info("epoch %d/%d loss %.4f", epoch + 1, config.epochs, loss)
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    vectors = Vectors(vocab.words, model.w_in.float().cpu().numpy())
    report = TrainingReport("torch", device.type, seconds, done, done / seconds, loss)
    return vectors, report


def train_gensim(
    source: CorpusSource, vocab: Vocabulary, config: Word2VecConfig
) -> tuple[Vectors, TrainingReport]:
    """Train gensim's ``Word2Vec`` on the same tokens (our tokenizer, same sentence splitting)."""
    from gensim.models import Word2Vec

    sentences = list(iter_token_lines(source))
    model = Word2Vec(
        vector_size=config.vector_size,
        window=config.window,
        negative=config.negative,
        hs=0,
        min_count=config.min_count,
        max_final_vocab=config.max_vocab,
        sample=config.sample,
        alpha=config.alpha,
        min_alpha=config.min_alpha,
        ns_exponent=config.ns_exponent,
        sg=int(config.model == "sg"),
        seed=config.seed,
        workers=config.threads or torch.get_num_threads(),
    )
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.epochs, compute_loss=False)
    seconds = time.perf_counter() - started
    raw = model.corpus_total_words * config.epochs
    vectors = Vectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32))
    return vectors, TrainingReport("gensim", "cpu", seconds, raw, raw / seconds, None)


def resolve_backend(config: Word2VecConfig) -> str:
    """The backend ``auto`` stands for on this machine (torch on a GPU, gensim on a CPU)."""
    if config.backend != "auto":
        return config.backend
    return "torch" if select_device(config.device).type == "cuda" else "gensim"


def train_word2vec(
    source: CorpusSource, config: Word2VecConfig | None = None
) -> tuple[Vectors, Vocabulary, TrainingReport]:
    """Build the vocabulary of ``source`` and train word vectors with the configured backend."""
    config = config or Word2VecConfig()
    vocab = Vocabulary.build(iter_token_lines(source), config.vocab_config())
    log.info(
        "vocabulary: %d words (min_count=%d) from %d tokens", len(vocab), config.min_count, vocab.total_words
    )
    backend = resolve_backend(config)
    if backend == "gensim":
        vectors, report = train_gensim(source, vocab, config)
    else:
        vectors, report = train_torch(EncodedCorpus(source, vocab), vocab, config)
    log.info("trained %s in %.1fs (%.0f words/s)", backend, report.seconds, report.words_per_second)
    return vectors, vocab, report


def config_dict(config: Word2VecConfig) -> dict:
    """The config as a JSON-ready dict."""
    return asdict(config)
