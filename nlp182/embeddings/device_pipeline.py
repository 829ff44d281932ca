"""word2vec on a GPU with the corpus, the sampling and the updates all on the device.

The encoded token file goes to the device in large chunks (the whole corpus, read once, when it
has at most ``RESIDENT_TOKENS`` tokens; otherwise it is streamed again each epoch), as ``int32``
vocabulary ids and sentence numbers. For every chunk and epoch the device then

1. subsamples frequent words (``keep_prob``) and packs the kept tokens to the front
   (``subsample``: a cumulative sum and a scatter, so the number kept stays on the device and
   nothing waits for it);
2. draws each centre's window reach, ``W - b`` with ``b`` uniform in ``[0, W)``, and its ``K``
   noise words from the alias tables (``draw_reach``, ``draw_noise``);
3. runs the fused Triton kernel (``triton_sgns.train_centres``) over the kept centres in pieces of
   ``LAUNCH_CENTRES``, with the learning rate decaying linearly across the run.

The host only enqueues work: the loss and example counts add up on the device, and the progress
bar advances as recorded CUDA events complete (``event.query()``, which never blocks), so the
stream never stalls for a progress read. The loss is read once per epoch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nlp182.embeddings import distributed
from nlp182.text.encoded import Chunk, EncodedCorpus

#: A corpus of at most this many in-vocabulary tokens stays on the device for all epochs (8 bytes
#: a token: 2 GiB).
RESIDENT_TOKENS = 1 << 28
#: Tokens per chunk moved to the device (the kernel's random draws take about 40 bytes a token).
CHUNK_TOKENS = 1 << 24
#: Centres per kernel launch: the grain of the progress bar and of the learning-rate schedule.
LAUNCH_CENTRES = 1 << 20


@dataclass
class DeviceChunk:
    """A corpus chunk on the device.

    Attributes:
        ids: ``(N,)`` int32 vocabulary ids.
        sentences: ``(N,)`` int32 sentence number of each token.
        raw_words: tokens the chunk covers, out-of-vocabulary ones included.
        whole_tokens: tokens of the whole chunk this is one process's share of (as many as ``ids``
            for one process); every process counts the same rounds of update exchanges from it.
    """

    ids: torch.Tensor
    sentences: torch.Tensor
    raw_words: int
    whole_tokens: int


@dataclass
class Centres:
    """One epoch's training centres of a chunk, all on the device; entries from ``count`` on are
    padding.

    Attributes:
        ids: ``(N,)`` int32 kept token ids, packed to the front.
        sentences: ``(N,)`` int32 their sentence numbers.
        count: ``(1,)`` int64 number of kept tokens.
        reach: ``(N,)`` int32 window reach of each centre.
        noise: ``(N, K)`` int32 noise words of each centre.
    """

    ids: torch.Tensor
    sentences: torch.Tensor
    count: torch.Tensor
    reach: torch.Tensor
    noise: torch.Tensor


def to_device(chunk: Chunk, device: torch.device, whole_tokens: int | None = None) -> DeviceChunk:
    """Move a chunk's ids to ``device`` and number its sentences there (``whole_tokens``: those of
    the chunk it is a share of, its own by default)."""
    ids = torch.as_tensor(chunk.ids, device=device).to(torch.int32)
    lengths = torch.as_tensor(chunk.starts, device=device).diff()
    numbers = torch.arange(len(lengths), device=device, dtype=torch.int32)
    sentences = numbers.repeat_interleave(lengths, output_size=len(chunk.ids))
    whole = len(chunk.ids) if whole_tokens is None else whole_tokens
    return DeviceChunk(ids, sentences, chunk.raw_words, whole)


def subsample(
    ids: torch.Tensor, sentences: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep each token with probability ``keep_prob[id]`` and pack the kept ones to the front.

    Args:
        ids: ``(N,)`` int32 tokens.
        sentences: ``(N,)`` int32 sentence number of each token.
        keep_prob: ``(V,)`` float32 probability of keeping each word.
    Returns:
        ``(N,)`` int32 ids and sentence numbers with the kept tokens first, in order (the rest is
        padding), and the ``(1,)`` int64 number kept; computed without waiting for the device.
    """
    n = ids.shape[0]
    keep = torch.rand(n, generator=generator, device=ids.device) < keep_prob[ids.long()]
    position = torch.cumsum(keep, 0) - 1
    target = torch.where(keep, position, n)  # dropped tokens land in a spare slot at the end
    packed_ids = torch.zeros(n + 1, dtype=torch.int32, device=ids.device).scatter_(0, target, ids)
    packed_sentences = torch.full((n + 1,), -1, dtype=torch.int32, device=ids.device)
    packed_sentences.scatter_(0, target, sentences)
    return packed_ids[:n], packed_sentences[:n], keep.sum().reshape(1)


def draw_reach(n: int, window: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(n,)`` int32 window reaches ``window - b``, ``b`` uniform in ``[0, window)`` (word2vec's)."""
    return (window - torch.randint(window, (n,), generator=generator, device=device)).to(torch.int32)


def draw_noise(
    shape: tuple[int, int], accept: torch.Tensor, alias: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``shape`` int32 noise words from Vose's alias tables (``(V,)`` ``accept``, ``alias``): slot
    uniform, kept if a uniform coin falls below ``accept[slot]``, else its alias."""
    slots = torch.randint(len(accept), shape, generator=generator, device=accept.device)
    coins = torch.rand(shape, generator=generator, device=accept.device)
    return torch.where(coins < accept[slots], slots, alias[slots]).to(torch.int32)


def centres(chunk: DeviceChunk, model: Any) -> Centres:
    """One epoch's subsampled centres of ``chunk``, their reaches and noise words (``model``: an
    ``SGNS``, for its tables, generator and config)."""
    ids, sentences, count = subsample(chunk.ids, chunk.sentences, model.keep_prob, model.generator)
    n = ids.shape[0]
    reach = draw_reach(n, model.config.window, model.generator, ids.device)
    noise = draw_noise((n, model.config.negative), model.noise_accept, model.noise_alias, model.generator)
    return Centres(ids, sentences, count, reach, noise)


def device_chunks(corpus: EncodedCorpus, device: torch.device, rank: int, size: int) -> Iterator[DeviceChunk]:
    """This process's share of every chunk of ``corpus``, on ``device`` (large chunks)."""
    large = EncodedCorpus(corpus.text, corpus.vocab, corpus.remap, chunk_tokens=CHUNK_TOKENS)
    for chunk in large:
        yield to_device(chunk.share(rank, size), device, len(chunk.ids))


class _Progress:
    """Counts launched work on the bar once the device has finished it, without waiting for it."""

    def __init__(self, bar: Any, device: torch.device) -> None:
        self.bar, self.device, self.queue = bar, device, deque()

    def launched(self, raw_words: int) -> None:
        event = None
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
        self.queue.append((event, raw_words))
        self.poll()

    def poll(self, wait: bool = False) -> None:
        while self.queue and (wait or self.queue[0][0] is None or self.queue[0][0].query()):
            event, raw = self.queue.popleft()
            if event is not None and wait:
                event.synchronize()
            self.bar.update(raw)


def train_on_device(
    model: Any, corpus: EncodedCorpus, learning_rate: Callable[[float], float], bar: Any
) -> tuple[int, float]:
    """Train ``model`` (an ``SGNS`` on a CUDA device, or on the CPU under ``TRITON_INTERPRET=1``)
    with the fused kernel; ``learning_rate`` maps the share of the run done to the rate. Returns
    the raw words this process trained on and the last epoch's mean loss per example."""
    from nlp182.embeddings import triton_sgns

    config = model.config
    rank, size = distributed.start(model.device)
    resident = corpus.vocab.total_words <= RESIDENT_TOKENS
    chunks = list(device_chunks(corpus, model.device, rank, size)) if resident else None
    total = model.vocab.total_words * config.epochs
    progress = _Progress(bar, model.device)
    done, loss, position = 0, math.nan, 0
    for epoch in range(config.epochs):
        stats = torch.zeros(2, dtype=torch.float64, device=model.device)
        for chunk in chunks if resident else device_chunks(corpus, model.device, rank, size):
            drawn = centres(chunk, model)
            n = chunk.ids.shape[0]
            alpha_start = learning_rate(position / total)
            alpha_end = learning_rate((position + chunk.raw_words * size) / total)
            for round_first, round_last in distributed.sync_slices(n, chunk.whole_tokens, size):
                before = distributed.snapshot(model.w_in, model.w_out)
                for first in range(round_first, round_last, LAUNCH_CENTRES):
                    last = min(round_last, first + LAUNCH_CENTRES)
                    triton_sgns.train_centres(
                        model.w_in, model.w_out, drawn.ids, drawn.sentences, drawn.reach, drawn.noise,
                        drawn.count, stats, alpha_start, alpha_end, config.window, config.model == "cbow",
                        first=first, last=last,
                    )  # fmt: skip
                    share = round(chunk.raw_words * last / n) - round(chunk.raw_words * first / n)
                    progress.launched(share)
                distributed.add_updates_((model.w_in, model.w_out), before)
            position += chunk.raw_words * size
            done += chunk.raw_words
        summed, examples = stats.tolist()  # once per epoch
        loss = summed / max(1.0, examples)
        progress.poll()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", refresh=False)
    progress.poll(wait=True)
    return done, loss
