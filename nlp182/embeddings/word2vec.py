"""word2vec with negative sampling (skip-gram and CBOW): a PyTorch trainer with a C kernel for CPUs.

The algorithm of Mikolov et al. (2013) as gensim and the C tool run it: frequent-word subsampling,
a dynamic (randomly shrunk) window, ``negative`` noise words drawn from the unigram^0.75
distribution, a learning rate decaying linearly to ``min_alpha``, and plain SGD updates that touch
only the rows an example uses. Two steps run it:

- ``batched`` (any device): each corpus chunk is turned into all of its (input, output) examples
  on the device at once and trained in large batches with ``index_add_`` updates; that is what
  makes a GPU fast.
- ``native`` (CPU): on a CPU the batched step's per-operation overhead dominates, so the
  algorithm runs in ``sgns.c`` one centre at a time, in place, on spans of the corpus spread over
  threads (Hogwild), on the same PyTorch weight tensors. Its skip-gram shares one draw of noise
  words among a centre's context words and scores them against the rows as they were before the
  centre (Ji et al. 2016), where gensim draws per pair and updates in turn: the same quality,
  vectors about a tenth shorter.
- ``triton`` (CUDA): the C kernel's algorithm as one fused Triton kernel over thousands of
  programs, fed by a pipeline that keeps the corpus, the subsampling, the windows and the noise
  draws on the device (``triton_sgns``, ``device_pipeline``).

The batched step stays as the reference the other two are checked against.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nlp182.device import select_device, torch_threads
from nlp182.embeddings import device_pipeline, distributed, native
from nlp182.embeddings.registry import register_embedding
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import EmptyCorpusError, InvalidInputError, MissingExtraError
from nlp182.progress import progress
from nlp182.settings import MAX_THREADS, check_settings, flags_set, seed_setting, setting
from nlp182.text.corpus import CorpusLike, CorpusSource, as_source, iter_token_lines
from nlp182.text.encoded import Chunk, EncodedCorpus, encode, open_corpus
from nlp182.text.sentences import from_memory
from nlp182.text.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)

MODELS = ("sg", "cbow")
BACKENDS = ("torch", "gensim", "auto")
KERNELS = ("auto", "native", "batched", "triton")
SPAN_TOKENS = 10_000
#: Spans each process trains between two exchanges of the processes' updates (C kernel, several processes).
SYNC_SPANS = distributed.SYNC_TOKENS // SPAN_TOKENS
GENSIM_IN_MEMORY_TOKENS = 5_000_000
MAX_EXP = 6.0
# The help of each flag of `nlp182 train w2v` (one per Word2VecConfig field; epochs, seed and
# device: the common one).


@dataclass
class Word2VecConfig:
    """Hyperparameters; the defaults are gensim's (``Word2Vec``) for skip-gram.

    ``batch_size`` counts training examples (one input row, one output row and ``negative`` noise
    rows each) per SGD step of the batched kernel. ``backend``: ``torch`` is this module;
    ``gensim`` runs gensim's C trainer on the same tokens (the reference); ``auto`` takes torch,
    except on a CPU without a C compiler, where gensim's loop is faster than the batched step.
    ``kernel``: ``native`` (the C kernel, CPU only), ``triton`` (the fused kernel, CUDA only),
    ``batched`` (PyTorch, any device) or ``auto`` (native on a CPU where it builds, triton on CUDA
    where Triton is installed, batched elsewhere). ``compile`` runs the dense part
    of the batched step through ``torch.compile`` (fused kernels; the scatter into the weights
    stays eager); if compilation fails the eager step runs, with a warning. ``shuffle`` orders
    each chunk's batched examples at random instead of in corpus order; ``None`` shuffles for
    skip-gram (better analogies) and keeps corpus order for CBOW (as gensim does: WordSim-353 0.11
    instead of 0.07 on the bench corpus). ``threads``: PyTorch's threads, or the native kernel's
    Hogwild threads (default: PyTorch's thread count).
    """

    model: str = setting(
        "sg", choices=MODELS,
        help="sg (skip-gram: predict the context from a word) or cbow (the word from its context)",
    )
    vector_size: int = setting(100, positive=True, help="dimensions of each word vector")
    window: int = setting(5, positive=True, help="largest number of words on each side that count as context")
    negative: int = setting(5, positive=True, help="noise words drawn per true context word")
    min_count: int = setting(
        5, minimum=0, help="fewest occurrences for a word to get a vector (0 and 1 keep every word)"
    )
    max_vocab: int | None = setting(
        None, positive=True,
        help="keep at most this many of the most frequent words (default: all)",
    )
    sample: float = setting(
        1e-3, minimum=0,
        help="frequent words are skipped at random above this share of the corpus (0: never; 1 or more: "
             "a count, as in gensim)",
    )
    epochs: int | None = setting(
        None, positive=True,
        help="passes over the training data (default: 5, more on a corpus under 2 million tokens, so "
             "that tokens x epochs reaches 10 million, at most 50)",
    )
    alpha: float = setting(
        0.025,
        positive=True, help="learning rate at the start; it falls linearly to --min-alpha",
    )
    min_alpha: float = setting(0.0001, minimum=0, help="learning rate at the end")
    ns_exponent: float = setting(0.75, help="noise words are drawn by count to this power")
    batch_size: int = setting(1024, positive=True, help="training examples per step of the batched kernel")
    seed: int = seed_setting(
        1, help="random seed; the same seed repeats a run exactly with --threads 1 (Hogwild threads race)"
    )
    device: str = setting("auto", help="where to compute: auto (a GPU when there is one), cpu, cuda or mps")
    backend: str = setting(
        "torch", choices=BACKENDS,
        help="torch (this package) or gensim (the reference); auto picks torch, or gensim on a CPU "
             "where the C kernel cannot be built",
    )
    threads: int | None = setting(
        None, positive=True, maximum=MAX_THREADS, help="CPU threads (default: as many as PyTorch uses)"
    )
    compile: bool = setting(False, help="compile the batched step for speed (slower start)")
    shuffle: bool | None = setting(
        None,
        help="batched kernel: train on each chunk's examples in random order (default: for sg, not for "
        "cbow); the native and triton kernels read sentences in order, as word2vec does",
    )
    kernel: str = setting(
        "auto", choices=KERNELS,
        help="native (C, CPU threads), triton (fused, CUDA) or batched (PyTorch, any device); auto picks "
             "native on a CPU and triton on CUDA",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.min_alpha > self.alpha:
            raise InvalidInputError(f"min_alpha (--min-alpha) must be at most alpha ({self.alpha}, --alpha), "
                                    f"got {self.min_alpha}")
        VocabConfig(self.min_count, self.max_vocab, self.sample)  # validates those three

    def vocab_config(self) -> VocabConfig:
        """The vocabulary settings among these: ``min_count``, ``max_vocab`` and ``sample``."""
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
    compile_seconds: float = 0.0
    kernel: str = ""
    epochs: int | None = None


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias tables for sampling from ``(V,)`` ``probabilities`` in O(1) per draw.

    Draw a slot ``i`` uniformly and a coin ``u``: the sample is ``i`` if ``u < accept[i]`` else
    ``alias[i]``. Both tables have V entries, so they stay in cache where word2vec's 100M-entry
    unigram table would not, and the distribution is exact rather than rounded to table slots.
    """
    size = len(probabilities)
    scaled = np.asarray(probabilities, dtype=np.float64) * size
    accept, alias = np.ones(size), np.arange(size)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        accept[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return accept, alias


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
        # gensim's initialisation: input rows uniform in [-1/D, 1/D), output rows zero.
        self.w_in = ((torch.rand(size, dim, generator=cpu_generator) * 2.0 - 1.0) / dim).to(device)
        self.w_out = torch.zeros(size, dim, device=device)
        self.keep_prob = torch.as_tensor(
            vocab.keep_probabilities(config.sample), dtype=torch.float32, device=device
        )
        accept, alias = alias_table(vocab.noise_distribution(config.ns_exponent))
        self.noise_accept = torch.as_tensor(accept, dtype=torch.float32, device=device)
        self.noise_alias = torch.as_tensor(alias, device=device)
        offsets = torch.arange(-config.window, config.window + 1, device=device)
        self.offsets = offsets[offsets != 0]  # (2W,)
        self._compiled: dict = {}
        self.shuffle = config.model == "sg" if config.shuffle is None else config.shuffle

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
        """All training examples of one chunk for one epoch (in random order when ``self.shuffle``).

        Skip-gram: ``(inputs (P,), outputs (P,))`` with the context word as input and the centre
        word as output (gensim's order). CBOW: ``(contexts (P, 2W), mask (P, 2W), centres (P,))``.
        """
        ids = torch.as_tensor(chunk.ids.astype(np.int64), device=self.device)
        sentence = torch.as_tensor(chunk.sentence_numbers(), device=self.device)
        ids, sentence = self._subsample(ids, sentence)
        if ids.numel() == 0:
            return ()
        positions, valid = self._context_positions(sentence)
        if self.config.model == "sg":
            centre, slot = valid.nonzero(as_tuple=True)
            inputs, outputs = ids[positions[centre, slot]], ids[centre]
            if not self.shuffle:
                return inputs, outputs
            order = torch.randperm(len(inputs), generator=self.generator, device=self.device)
            return inputs[order], outputs[order]
        has_context = valid.any(dim=1)
        contexts, mask, centres = ids[positions[has_context]], valid[has_context], ids[has_context]
        if not self.shuffle:
            return contexts, mask, centres
        order = torch.randperm(len(centres), generator=self.generator, device=self.device)
        return contexts[order], mask[order], centres[order]

    def _negatives(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1+K)`` output rows (true word first) and their weights: a noise draw equal to the
        true word gets weight 0 (word2vec skips it)."""
        shape = (len(outputs), self.config.negative)
        slots = self._rand_int(len(self.noise_accept), shape)
        coins = torch.rand(shape, generator=self.generator, device=self.device)
        noise = torch.where(coins < self.noise_accept[slots], slots, self.noise_alias[slots])
        targets = torch.cat([outputs[:, None], noise], dim=1)
        weights = torch.cat([torch.ones_like(outputs[:, None]), (noise != outputs[:, None]).long()], dim=1)
        return targets, weights.float()

    def _update_function(self, batch_size: int):
        """The update computation for a batch: compiled for full batches when ``config.compile`` is
        set. Only the dense part is compiled; the scatter into the weights stays an eager
        ``index_add_``, which on a CPU is faster than the compiled atomic scatter."""
        update = skipgram_update if self.config.model == "sg" else cbow_update
        if self.config.compile and batch_size == self.config.batch_size:
            if update not in self._compiled:
                self._compiled[update] = torch.compile(update, dynamic=False)
            return self._compiled[update]
        return update

    def warm_up(self, kernel: str = "batched") -> float:
        """Compile the step ``kernel`` runs (so training time excludes it): the fused Triton kernel,
        or the full-batch step on copies of the weights when ``config.compile`` is set; returns the
        seconds it took (0 when nothing compiles)."""
        started = time.perf_counter()
        if kernel == "triton":
            from nlp182.embeddings import triton_sgns

            triton_sgns.warm_up(self.w_in, self.w_out, self.config.window, self.config.negative,
                                self.config.model == "cbow")
            return time.perf_counter() - started
        if kernel != "batched" or not self.config.compile:
            return 0.0
        size, window = self.config.batch_size, self.config.window
        outputs = torch.zeros(size, dtype=torch.long, device=self.device)
        inputs = (
            (outputs,)
            if self.config.model == "sg"
            else (
                torch.zeros(size, 2 * window, dtype=torch.long, device=self.device),
                torch.ones(size, 2 * window, dtype=torch.bool, device=self.device),
            )
        )
        targets, weights = self._negatives(outputs)
        rate = torch.tensor(0.0, device=self.device)
        try:
            self._update_function(size)(self.w_in, self.w_out, *inputs, targets, weights, rate)
        except Exception as exc:  # no C++ compiler, unsupported backend, ...: train eagerly
            log.warning("torch.compile failed (%s); training with the eager step", exc)
            self.config = dataclasses.replace(self.config, compile=False)
            self._compiled.clear()
        return time.perf_counter() - started

    def step(self, batch: tuple[torch.Tensor, ...], alpha: float) -> torch.Tensor:
        """One SGD step on a slice of ``examples``; returns the summed loss (a 0-d tensor)."""
        *inputs, outputs = batch
        targets, weights = self._negatives(outputs)
        rate = torch.tensor(alpha, device=self.device)
        in_update, out_update, loss = self._update_function(len(outputs))(
            self.w_in, self.w_out, *inputs, targets, weights, rate
        )
        self.w_out.index_add_(0, targets.reshape(-1), out_update)
        self.w_in.index_add_(0, inputs[0].reshape(-1), in_update)
        return loss


def _output_gradients(
    w_out: torch.Tensor,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logistic-loss SGD steps for the ``(B, 1+K)`` output rows ``targets`` (true word first) and
    ``(B, D)`` hidden vectors: returns the ``(B, D)`` hidden step, the ``(B * (1+K), D)`` output-row
    steps (in ``targets.reshape(-1)`` order) and the summed loss.

    Every example reads the weights from before the step and the steps add up, which is
    word2vec's sequential SGD taken a batch at a time.
    """
    rows = w_out[targets]  # (B, 1+K, D)
    scores = (rows * hidden[:, None, :]).sum(-1)  # (B, 1+K)
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    # word2vec (C and gensim) skips a term whose score is saturated: |score| >= MAX_EXP.
    weights = weights * (scores.abs() < MAX_EXP)
    step = (labels - torch.sigmoid(scores)) * weights * alpha  # (B, 1+K)
    hidden_step = (step[:, :, None] * rows).sum(1)  # (B, D)
    out_step = (step[:, :, None] * hidden[:, None, :]).reshape(-1, hidden.shape[1])
    loss = -(torch.nn.functional.logsigmoid((labels * 2.0 - 1.0) * scores) * weights).sum()
    return hidden_step, out_step, loss


def skipgram_update(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Skip-gram: ``(B,)`` input words, ``(B, 1+K)`` output rows and weights. Returns the ``(B, D)``
    steps for ``w_in[inputs]``, the output-row steps and the summed loss; nothing is written."""
    return _output_gradients(w_out, w_in[inputs], targets, weights, alpha)


def cbow_update(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    contexts: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CBOW: the mean of the ``(B, 2W)`` context rows where ``mask`` is set predicts the output rows.
    Returns the ``(B * 2W, D)`` steps for ``w_in[contexts.reshape(-1)]`` (zero where masked), the
    output-row steps and the loss. As in gensim (``cbow_mean=1``) every context row receives the
    full hidden step."""
    maskf = mask.to(w_in.dtype)[:, :, None]  # (B, 2W, 1)
    hidden = (w_in[contexts] * maskf).sum(1) / maskf.sum(1)
    hidden_step, out_step, loss = _output_gradients(w_out, hidden, targets, weights, alpha)
    return (hidden_step[:, None, :] * maskf).reshape(-1, w_in.shape[1]), out_step, loss


def _learning_rate(config: Word2VecConfig, progress: float) -> float:
    return max(config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * progress)


def resolve_kernel(config: Word2VecConfig, device: torch.device) -> str:
    """The step ``kernel`` stands for: ``batched`` (PyTorch, any device), ``native`` (the C
    kernel, CPU only) or ``triton`` (the fused kernel, CUDA only). ``auto`` takes native on a CPU
    where it builds, triton on CUDA where Triton imports, batched otherwise."""
    if config.kernel == "native":
        if device.type != "cpu":
            raise InvalidInputError(f"kernel 'native' runs on the CPU only, not on {device.type}")
        native.library()  # raises NativeKernelUnavailable with the compiler's message
        if not _fits_native(config):
            max_window, max_negative = native.limits()
            raise InvalidInputError(
                f"kernel 'native' takes window <= {max_window} and negative <= {max_negative} (got "
                f"{config.window} and {config.negative}); --kernel batched takes any"
            )
        return "native"
    if config.kernel == "triton":
        triton_sgns = _triton_module()
        if triton_sgns is None:
            raise MissingExtraError("kernel 'triton' needs the triton package: pip install triton")
        if not triton_sgns.runs_on(device):
            raise InvalidInputError(
                f"kernel 'triton' runs on CUDA, not on {device.type} (on a CPU only in Triton's "
                "interpreter, TRITON_INTERPRET=1); use --kernel native or batched"
            )
        return "triton"
    if config.kernel == "batched":
        return "batched"
    if device.type == "cuda":
        if _triton_module() is not None:
            return "triton"
        log.warning("triton is not installed; using the batched PyTorch step on CUDA")
        return "batched"
    if device.type != "cpu":
        return "batched"
    if native.available():
        if _fits_native(config):
            return "native"
        log.warning("window %d / negative %d is past the C kernel's buffers; using the batched PyTorch "
                    "step", config.window, config.negative)
        return "batched"
    log.warning("no C compiler for the native word2vec kernel; using the batched PyTorch step")
    return "batched"


def _fits_native(config: Word2VecConfig) -> bool:
    max_window, max_negative = native.limits()
    return config.window <= max_window and config.negative <= max_negative


def _triton_module() -> Any:
    """``nlp182.embeddings.triton_sgns``, or None where Triton does not import."""
    try:
        from nlp182.embeddings import triton_sgns
    except ImportError:
        return None
    return triton_sgns


def _spans(starts: np.ndarray, span_tokens: int) -> list[tuple[int, int]]:
    """Runs of whole sentences ``[first, last)`` of about ``span_tokens`` tokens each, given a
    chunk's ``(S + 1,)`` sentence boundaries (so no window is cut)."""
    sentences = len(starts) - 1
    cuts = [0]
    while cuts[-1] < sentences:
        goal = starts[cuts[-1]] + span_tokens
        cuts.append(max(cuts[-1] + 1, min(sentences, int(np.searchsorted(starts, goal, side="right")) - 1)))
    return list(itertools.pairwise(cuts))


@dataclass
class _Span:
    """One job of the native trainer: tokens, sentence boundaries, the learning rates at its
    ends, its seed."""

    ids: np.ndarray
    starts: np.ndarray
    alpha_start: float
    alpha_end: float
    seed: int
    raw_words: int


def _chunk_spans(
    chunk: Chunk, index: int, position: int, config: Word2VecConfig, epoch: int, total: int
) -> list[_Span]:
    """The spans of one chunk that starts ``position`` raw words into the run. A span's learning
    rates and seed follow from its place in the corpus (not from which thread or process runs it
    or when), so one thread reproduces a run exactly."""
    size, spans = max(1, len(chunk.ids)), []
    for span_index, (first, last) in enumerate(_spans(chunk.starts, SPAN_TOKENS)):
        start, end = int(chunk.starts[first]), int(chunk.starts[last])
        raw = round(chunk.raw_words * end / size) - round(chunk.raw_words * start / size)
        alpha_start = _learning_rate(config, position / total)
        alpha_end = _learning_rate(config, (position + raw) / total)
        seed = int(np.random.SeedSequence([config.seed, epoch, index, span_index]).generate_state(1)[0])
        starts = chunk.starts[first : last + 1] - start
        spans.append(_Span(chunk.ids[start:end], starts, alpha_start, alpha_end, seed, raw))
        position += raw
    return spans


def _train_native(
    model: SGNS, corpus: EncodedCorpus, config: Word2VecConfig, threads: int, bar: Any
) -> tuple[int, float]:
    """Hogwild training with the C kernel: spans of about ``SPAN_TOKENS`` tokens go to
    ``threads`` threads that update the shared matrices in place (at most two spans per thread
    are queued, so a streamed corpus is never held whole). Launched as several processes, each
    trains every ``size``-th span of a chunk and, after each ``SYNC_SPANS`` of its spans, every
    process's changes to the tables are added up (Hogwild across processes, with a bounded delay).
    Averaging them once a chunk divided each process's updates by ``size``: on the 540k-token
    corpus (one chunk), 4 processes scored WordSim-353 0.24 where one scores 0.45; added up
    every 8 spans, 0.44.
    Returns the raw words this process trained on and the last epoch's mean loss per example."""
    trainer = native.SpanTrainer(
        model.w_in, model.w_out, model.keep_prob.numpy(), model.noise_accept.numpy(),
        model.noise_alias.numpy(), config.window, config.negative, config.model == "cbow",
    )  # fmt: skip
    rank, size = distributed.start(model.device)
    total = model.vocab.total_words * config.epochs
    done, loss = 0, math.nan
    with ThreadPoolExecutor(threads) as pool:
        for epoch in range(config.epochs):
            pending: deque = deque()
            epoch_loss, epoch_examples, position = 0.0, 0, epoch * model.vocab.total_words
            for index, chunk in enumerate(corpus):
                spans = _chunk_spans(chunk, index, position, config, epoch, total)
                position += sum(span.raw_words for span in spans)
                for share in _sync_rounds(spans, rank, size):
                    before = distributed.snapshot(model.w_in, model.w_out)
                    for span in itertools.chain(share, [None]):
                        if span is not None:
                            job = (span.ids, span.starts, span.alpha_start, span.alpha_end, span.seed)
                            pending.append((pool.submit(trainer.train, *job), span.raw_words))
                        while pending and ((span is None and size > 1) or len(pending) > 2 * threads):
                            future, raw = pending.popleft()
                            span_loss, examples = future.result()
                            epoch_loss, epoch_examples, done = (
                                epoch_loss + span_loss,
                                epoch_examples + examples,
                                done + raw,
                            )
                            mean = _mean_loss(epoch_loss, epoch_examples)
                            bar.set_postfix(epoch=epoch + 1, loss=f"{mean:.3f}", refresh=False)
                            bar.update(raw)
                    distributed.add_updates_((model.w_in, model.w_out), before)
            for future, raw in pending:
                span_loss, examples = future.result()
                epoch_loss, epoch_examples, done = (
                    epoch_loss + span_loss,
                    epoch_examples + examples,
                    done + raw,
                )
                bar.update(raw)
            loss = _mean_loss(epoch_loss, epoch_examples)
            _log_epoch(epoch, config.epochs, loss)
    return done, loss


def _sync_rounds(spans: list[_Span], rank: int, size: int) -> list[list[_Span]]:
    """This process's spans of a chunk, in the rounds after each of which the processes add up
    their updates: ``SYNC_SPANS`` spans each (every process has as many rounds), all of them in
    one round for a single process."""
    if size == 1:
        return [spans]
    step = size * SYNC_SPANS
    return [spans[start : start + step][rank::size] for start in range(0, len(spans), step)]


def _train_batched(model: SGNS, corpus: EncodedCorpus, config: Word2VecConfig, bar: Any) -> tuple[int, float]:
    """Training in large batches of examples with the PyTorch step (any device); launched as
    several processes, each trains its slice of every chunk's sentences, and the processes add up
    their updates after every ``distributed.SYNC_TOKENS`` tokens of each (as the C kernel's do).
    Returns the raw words this process trained on and the last epoch's mean loss per example."""
    rank, size = distributed.start(model.device)
    total = model.vocab.total_words * config.epochs
    done, loss, position = 0, math.nan, 0
    for epoch in range(config.epochs):
        epoch_loss, epoch_examples = 0.0, 0
        for whole in corpus:
            chunk = whole.share(rank, size)
            examples = model.examples(chunk) if len(chunk.ids) else ()
            count = len(examples[0]) if examples else 0
            chunk_loss = torch.zeros((), device=model.device)
            for first, last in distributed.sync_slices(count, len(whole.ids), size):
                before = distributed.snapshot(model.w_in, model.w_out)
                for start in range(first, last, config.batch_size):
                    batch = [tensor[start : min(last, start + config.batch_size)] for tensor in examples]
                    progress = (position + whole.raw_words * start / count) / total
                    chunk_loss += model.step(batch, _learning_rate(config, progress))
                distributed.add_updates_((model.w_in, model.w_out), before)
            epoch_loss, epoch_examples = epoch_loss + float(chunk_loss), epoch_examples + count
            loss = _mean_loss(epoch_loss, epoch_examples)
            done, position = done + chunk.raw_words, position + whole.raw_words
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", refresh=False)
            bar.update(chunk.raw_words)
        _log_epoch(epoch, config.epochs, loss)
    return done, loss


def _mean_loss(total: float, examples: int) -> float:
    """The loss per example, NaN when no example was trained (not a perfect 0)."""
    return total / examples if examples else math.nan


def _log_epoch(epoch: int, epochs: int, loss: float) -> None:
    """One line per epoch; one that trained no example says so: every word of a tiny corpus can
    be subsampled away, and its "loss 0.0000" read as a perfect fit."""
    if math.isnan(loss):
        log.info("epoch %d/%d trained no example: subsampling (--sample) kept no two words of a "
                 "sentence", epoch + 1, epochs)
    else:
        log.info("epoch %d/%d loss %.4f", epoch + 1, epochs, loss)


def train_torch(
    corpus: EncodedCorpus, vocab: Vocabulary, config: Word2VecConfig
) -> tuple[Vectors, TrainingReport]:
    """Train with this module's SGNS/CBOW on ``corpus``; return the input vectors and timings."""
    device = select_device(config.device)
    kernel = resolve_kernel(config, device)
    _warn_unused_batched_settings(config, kernel)
    with torch_threads(config.threads):
        model = SGNS(vocab, config, device)
        kernel, compile_seconds = _warm_up(model, kernel)
        rank, size = distributed.start(device)
        total = vocab.total_words * config.epochs // size  # this process's share
        description = f"word2vec {config.model} ({device.type}, {kernel})" + (
            f" rank {rank}/{size}" if size > 1 else ""
        )
        started = time.perf_counter()
        with progress(total=total, unit="w", unit_scale=True, desc=description) as bar:
            if kernel == "native":
                threads = config.threads or torch.get_num_threads()
                done, loss = _train_native(model, corpus, config, threads, bar)
            elif kernel == "triton":
                schedule = functools.partial(_learning_rate, config)
                done, loss = device_pipeline.train_on_device(model, corpus, schedule, bar)
            else:
                done, loss = _train_batched(model, corpus, config, bar)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        done = round(distributed.total(done, device))
    vectors = Vectors(vocab.words, model.w_in.float().cpu().numpy(), counts=vocab.counts)
    report = TrainingReport(
        "torch", device.type, seconds, done, done / seconds, loss, compile_seconds, kernel
    )
    return vectors, report


def _warm_up(model: SGNS, kernel: str) -> tuple[str, float]:
    """Compile ``kernel``'s step; returns the kernel that will train and the seconds it took.

    The fused kernel that ``--kernel auto`` chose on CUDA gives way to the batched step, with a
    warning, when this Triton cannot compile it (a user's run trains either way); asked for by
    name, its error stands, said in settings where it is the device's shared memory: one program
    holds ``2 x window`` context rows and ``1 + negative`` output rows of ``vector_size`` floats.
    """
    try:
        return kernel, model.warm_up(kernel)
    except Exception as error:  # Triton's compiler raises its own types, not one base class
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if kernel == "triton" and model.config.kernel != "auto" and type(error).__name__ == "OutOfResources":
            config = model.config
            raise InvalidInputError(
                f"the fused Triton kernel needs more of this GPU's memory per program than it has at "
                f"--vector-size {config.vector_size}, --window {config.window} and --negative "
                f"{config.negative} ({reason}); use --kernel batched, or smaller settings"
            ) from error
        if kernel != "triton" or model.config.kernel != "auto":
            raise
        log.warning("the fused Triton kernel did not compile (%s); training on the batched PyTorch step",
                    reason)
        return "batched", model.warm_up("batched")


class _TokenLines:
    """A re-iterable view of the corpus's token lines, so gensim streams it on every pass."""

    def __init__(self, source: CorpusSource) -> None:
        self.source = source

    def __iter__(self) -> Iterator[list[str]]:
        return iter_token_lines(self.source)


def train_gensim(
    source: CorpusSource, vocab: Vocabulary, config: Word2VecConfig
) -> tuple[Vectors, TrainingReport]:
    """Train gensim's ``Word2Vec`` on the same tokens (our tokenizer, same sentence splitting).

    gensim takes our vocabulary counts instead of counting the corpus again; its subsampling
    thresholds and noise table depend only on the counts of the words kept, so they are the same.
    A corpus of at most ``GENSIM_IN_MEMORY_TOKENS`` tokens is tokenized once and held in memory
    (ours is encoded before its clock starts too), larger ones are streamed on every pass; either
    way the training time excludes the reading that happens before it.
    """
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=config.vector_size,
        window=config.window,
        negative=config.negative,
        hs=0,
        min_count=config.min_count,
        sample=config.sample,
        alpha=config.alpha,
        min_alpha=config.min_alpha,
        ns_exponent=config.ns_exponent,
        sg=int(config.model == "sg"),
        seed=config.seed,
        workers=config.threads or torch.get_num_threads(),
    )
    model.build_vocab_from_freq(dict(zip(vocab.words, vocab.counts.tolist(), strict=True)))
    lines = _TokenLines(source)
    sentences = list(lines) if vocab.total_words <= GENSIM_IN_MEMORY_TOKENS else lines
    started = time.perf_counter()
    model.train(sentences, total_words=vocab.total_words, epochs=config.epochs, compute_loss=False)
    seconds = time.perf_counter() - started
    raw = vocab.total_words * config.epochs
    # gensim orders words of equal count its own way: rows follow our vocabulary, as every backend's
    rows = [model.wv.key_to_index[word] for word in vocab.words]
    vectors = Vectors(list(vocab.words), np.asarray(model.wv.vectors[rows], dtype=np.float32),
                      counts=vocab.counts)
    return vectors, TrainingReport("gensim", "cpu", seconds, raw, raw / seconds, None)


#: Settings only the batched PyTorch step reads.
BATCHED_ONLY = ("compile", "shuffle", "batch_size")


def _warn_unused_batched_settings(config: Word2VecConfig, kernel: str) -> None:
    """Say which settings the chosen ``kernel`` ignores: ``--compile --shuffle --batch-size 7`` ran
    the native kernel unchanged, and config.json recorded them as if they had applied."""
    unused = flags_set(config, BATCHED_ONLY)
    if kernel != "batched" and unused:
        log.warning("%s apply to the batched kernel only; the %s kernel trains without them (--kernel "
                    "batched uses them)", ", ".join(unused), kernel)


def resolve_backend(config: Word2VecConfig) -> str:
    """The backend ``auto`` stands for on this machine: torch, except on a CPU where the C kernel
    cannot be built (no compiler), where gensim's C loop beats the batched PyTorch step."""
    if config.backend != "auto":
        return config.backend
    if select_device(config.device).type != "cpu" or (config.kernel != "batched" and native.available()):
        return "torch"
    return "gensim"


def _run_record(config: Word2VecConfig) -> dict[str, Any]:
    """``config.json`` of a run: the model in the method's name, and the backend ``auto`` became."""
    return {
        "method": f"word2vec-{config.model}",
        **dataclasses.asdict(config),
        "backend_used": resolve_backend(config),
    }


def _summary(vectors: Vectors, config: Word2VecConfig, report: TrainingReport) -> str:
    """The closing line of ``nlp182 train w2v``: where it ran and how fast."""
    backend = f"{report.backend}, {report.kernel} kernel" if report.kernel else report.backend
    return (
        f"word2vec {config.model} ({backend}, {report.device}): {len(vectors)} words, {report.epochs} "
        f"epoch{'' if report.epochs == 1 else 's'} in {report.seconds:.1f} s, "
        f"{report.words_per_second:,.0f} words/s"
    )


#: Fewer words than this trained (tokens x epochs) leave word2vec's vectors close to their start.
MIN_TRAINED_WORDS = 1_000_000
#: Words trained (tokens x epochs) that the epochs chosen for a small corpus aim at: on the
#: 540k-token Wikipedia corpus, WordSim-353 rose from 0.22 at 5 epochs (2.7M words) to 0.40 at
#: 10 and 0.46 at 15 to 20, then stayed; SimLex-999 from 0.15 to 0.23.
TARGET_TRAINED_WORDS = 10_000_000
#: Passes over a corpus when none are given: gensim's, on a corpus large enough for them.
DEFAULT_EPOCHS = 5
#: The most passes chosen for a small corpus; below MIN_TRAINED_WORDS / MAX_AUTO_EPOCHS tokens more
#: passes only fit the few sentences there are.
MAX_AUTO_EPOCHS = 50
#: Below this share of tokens in lines of two words or more, a corpus is most likely one token a
#: line (a tagger's layout) or a word list, and the training log says so.
MIN_CONTEXT_SHARE = 0.1


def choose_epochs(tokens: int) -> int:
    """The passes over a corpus of ``tokens`` words when the user gives none: gensim's 5, raised on a
    small corpus until tokens x epochs reaches ``TARGET_TRAINED_WORDS``, at most ``MAX_AUTO_EPOCHS``.

    Five passes over gensim's 60,000-token Lee corpus leave every neighbour at a cosine near 0.98
    (the vectors have barely left their random start); five over a 540k-token corpus score half
    the WordSim-353 correlation that 19 reach.
    """
    return min(MAX_AUTO_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(TARGET_TRAINED_WORDS / max(1, tokens))))


def _check_context(starts: np.ndarray, path: str) -> None:
    """Refuse a corpus where no sentence holds two words, and warn when few do: word2vec learns
    from words that share a sentence, so such a corpus trains nothing and its vectors stay random.

    ``starts``: ``(N,)`` sentence boundaries in the token file (``N`` = sentences + 1, ``starts[-1]``
    = all tokens); ``path``: the corpus file (one ``write_sentences`` wrote for sentences given in
    memory, which the messages name as such).
    """
    lengths = np.diff(np.asarray(starts, dtype=np.int64))
    total, paired = int(lengths.sum()), int(lengths[lengths >= 2].sum())
    if from_memory(path):
        name, unit = "the sentences given", "sentence"
        advice = "give each sentence as one list of its words ([['the', 'cat', 'sat'], ...])"
    else:
        name, unit = f"corpus {path}", "line"
        advice = "put each sentence on one line (one token a line is a tagger's layout, not running text)"
    if total and not paired:
        raise EmptyCorpusError(f"{name}: no {unit} holds two words, so no word has a context: {advice}")
    if total and paired < MIN_CONTEXT_SHARE * total:
        log.warning("%s: only %.1f%% of the %d tokens share a %s with another word; the others "
                    "train nothing: %s", name, 100 * paired / total, total, unit, advice)


@register_embedding(
    "w2v",
    config=Word2VecConfig,
    help="word2vec skip-gram / CBOW with negative sampling",
    record=_run_record,
    summary=_summary,
)
def train_word2vec(
    source: CorpusLike, config: Word2VecConfig | None = None
) -> tuple[Vectors, Vocabulary, TrainingReport]:
    """Encode ``source`` (a :class:`CorpusSource`, a file path, or sentences as lists of words, as
    gensim's ``Word2Vec(sentences=...)`` takes them: see :func:`nlp182.text.corpus.as_source`;
    once: later runs on the same text take it from the cache), cut the vocabulary and train word
    vectors with the configured backend."""
    source = as_source(source)
    config = config or Word2VecConfig()
    if config.kernel in ("native", "triton") and resolve_backend(config) == "torch":
        resolve_kernel(config, select_device(config.device))  # refused before the corpus is read
    if distributed.launched():  # one process encodes, the others read its cache
        distributed.start(select_device(config.device))
        distributed.main_first(lambda: encode(source))
    corpus, vocab = open_corpus(source, config.vocab_config())
    log.info(
        "vocabulary: %d words (min_count=%d) from %d tokens", len(vocab), config.min_count, vocab.total_words
    )
    _check_context(corpus.text.starts, source.path)
    if config.epochs is None:
        config = dataclasses.replace(config, epochs=choose_epochs(vocab.total_words))
        if config.epochs == MAX_AUTO_EPOCHS:
            log.info("epochs: %d for %d tokens, the most chosen without --epochs (%d words trained, of "
                     "the %d aimed at)", config.epochs, vocab.total_words, config.epochs * vocab.total_words,
                     TARGET_TRAINED_WORDS)
        elif config.epochs != DEFAULT_EPOCHS:
            log.info("epochs: %d for %d tokens, so that about %d words are trained (--epochs sets them)",
                     config.epochs, vocab.total_words, TARGET_TRAINED_WORDS)
    if vocab.total_words * config.epochs < MIN_TRAINED_WORDS:
        log.warning("%d tokens x %d epochs is little for word2vec: its vectors may barely leave their "
                    "random start (every neighbour at a cosine near 1); give more text, or train lsa, "
                    "which suits small corpora", vocab.total_words, config.epochs)
    backend = resolve_backend(config)
    if backend == "gensim":
        vectors, report = train_gensim(source, vocab, config)
    else:
        vectors, report = train_torch(corpus, vocab, config)
    kernel = f" ({report.kernel} kernel)" if report.kernel else ""
    log.info("trained %s%s in %.1fs (%.0f words/s)", backend, kernel, report.seconds, report.words_per_second)
    return vectors, vocab, dataclasses.replace(report, epochs=config.epochs)
