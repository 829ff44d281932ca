"""One decoding seam: a model encodes its input and steps a decoder; a search strategy drives it.

Every model that generates text (the recurrent and Transformer translators of
:mod:`nlp182.seq2seq`, the captioner of :mod:`nlp182.captioning`) is a :class:`Decodable`: its
``encode_memory(*inputs)`` returns an :class:`EncodedMemory` (attention keys, their mask and the
decoder's initial state) and it is its own :class:`StepDecoder` (``step`` advances one token,
``reorder_state`` follows batch rows). A search strategy is a :class:`Search` object
(:class:`Greedy`, :class:`Beam`; a sampler would be a third subclass, as in fairseq's
``search`` module) and :func:`decode` runs any strategy on any model; :func:`make_search` is the
one place that turns the user's ``beam_width`` into a strategy. Search never sees the model's
input type, so one implementation serves text and images.

Every strategy runs the whole batch at once (beam search keeps ``B * K`` hypotheses in one
tensor batch) and returns, per input, the output ids (without ``<eos>``), the sum of token
log-probabilities (``<eos>`` included when it was produced) and the attention weights of every
emitted token (one row per output token plus one for ``<eos>``). When ``max_len`` cuts decoding
off before ``<eos>``, the best unfinished hypothesis is returned with ``complete=False``; the
result is never empty.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Protocol

import torch

from nlp182.errors import InvalidInputError, NonFiniteError


@dataclass
class EncodedMemory:
    """What a decoder attends over, and where it starts.

    ``keys``: ``(B, S, D)`` encoder outputs (text positions or image locations); ``mask``:
    bool ``(B, 1, S)`` (``True`` = may attend) or ``None`` when every position is real;
    ``state``: the decoder's initial state, in whatever layout its :class:`StepDecoder` uses.
    """

    keys: torch.Tensor
    mask: torch.Tensor | None
    state: Any

    def select(self, index: torch.Tensor) -> EncodedMemory:
        """Keys and mask of batch rows ``index`` ``(N,)``; the state is left to the decoder."""
        mask = None if self.mask is None else self.mask[index]
        return EncodedMemory(self.keys[index], mask, self.state)


class StepDecoder(Protocol):
    """One decoding step of an attention decoder, as search uses it."""

    def step(
        self, token: torch.Tensor, state: Any, memory: EncodedMemory, need_weights: bool
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """Feed previous tokens ``(N,)``; return ``(logits (N, V), new state, weights (N, S) or None)``."""
        ...

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        """The state of batch rows ``index`` ``(N,)`` (used to follow beams as they move)."""
        ...


class Decodable(StepDecoder, Protocol):
    """A model search can decode: an encoder that returns the memory, and its own step decoder."""

    training: bool

    def encode_memory(self, *inputs: torch.Tensor) -> EncodedMemory:
        """Encode a batch of ``B`` inputs (the model's own kind: token ids and lengths, images)."""
        ...

    def train(self, mode: bool = True) -> Any:
        """Switch dropout and batch norm between training and evaluation (``nn.Module.train``)."""
        ...


@dataclass
class Hypothesis:
    """One decoded sequence.

    ``tokens``: output ids without ``<eos>``; ``log_prob``: their summed log-probability (plus
    ``<eos>``'s when ``complete``); ``weights``: ``(rows, S)`` attention per emitted token
    (``<eos>`` included) or ``None``; ``complete``: ``False`` when ``max_len`` cut it off.
    """

    tokens: list[int]
    log_prob: float
    weights: torch.Tensor | None = field(repr=False)  # a repr of every row was kilobytes
    complete: bool = True

    @property
    def scored_length(self) -> int:
        """Number of tokens whose log-probability ``log_prob`` sums (``<eos>`` counts)."""
        return len(self.tokens) + int(self.complete)


class Search(ABC):
    """A search strategy: how hypotheses grow from a model's step decoder (fairseq's ``Search``)."""

    @abstractmethod
    def search(
        self, decoder: StepDecoder, memory: EncodedMemory, *, bos_id: int, eos_id: int, max_len: int,
        need_weights: bool, banned: Sequence[int] = (),
    ) -> list[Hypothesis]:
        """One :class:`Hypothesis` per row of ``memory`` (``B`` rows); ``max_len`` >= 1 steps at most;
        the ``banned`` token ids are never emitted."""


@dataclass(frozen=True)
class Greedy(Search):
    """Pick the most probable token at every step."""

    @torch.no_grad()
    def search(
        self, decoder: StepDecoder, memory: EncodedMemory, *, bos_id: int, eos_id: int, max_len: int,
        need_weights: bool, banned: Sequence[int] = (),
    ) -> list[Hypothesis]:
        """Greedy decoding of each of the ``B`` rows of ``memory``."""
        keys = memory.keys
        batch, device = keys.shape[0], keys.device
        state = memory.state
        token = torch.full((batch,), bos_id, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        log_prob = torch.zeros(batch, device=device, dtype=_widened(keys).dtype)
        emitted, rows = [], []
        for step in range(max_len):
            logits, state, weights = decoder.step(token, state, memory, need_weights)
            step_log_probs = _without(torch.log_softmax(_widened(logits), dim=-1), banned)
            _refuse_nan(step_log_probs, ~finished, step)
            token = step_log_probs.argmax(dim=-1)
            chosen = step_log_probs.gather(1, token[:, None]).squeeze(1).masked_fill(finished, 0.0)
            log_prob += chosen.to(log_prob)
            emitted.append(token.masked_fill(finished, eos_id))
            rows.append(weights)
            finished |= token == eos_id
            if bool(finished.all()):
                break
        ids = torch.stack(emitted, dim=1).tolist()
        results = []
        for b in range(batch):
            seq = ids[b]
            out = seq[: seq.index(eos_id)] if eos_id in seq else seq
            n_rows = min(len(out) + 1, len(seq))
            weights = _widened(torch.stack([r[b] for r in rows[:n_rows]])).cpu() if need_weights else None
            results.append(Hypothesis(out, float(log_prob[b]), weights, complete=eos_id in seq))
        return results


def _without(step_log_probs: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    """``(N, V)`` log-probabilities with the ``banned`` columns at ``-inf`` (fairseq bans padding
    so): a weakly trained model may rank ``<pad>`` or ``<bos>`` first, and neither is a word."""
    if banned:
        step_log_probs[:, list(banned)] = float("-inf")
    return step_log_probs


def _refuse_nan(step_log_probs: torch.Tensor, live: torch.Tensor, step: int) -> None:
    """Raise when a live row of ``step_log_probs`` ``(N, V)`` (``live`` ``(N,)`` bool) holds NaN:
    the model's weights or its input hold NaN or inf. Beam search ranked NaN last and returned the
    empty start with probability 1, and greedy emitted ``max_len`` tokens scored NaN; torch's
    ``multinomial`` refuses NaN probabilities too."""
    broken = step_log_probs.isnan().any(dim=-1) & live
    if bool(broken.any()):
        raise NonFiniteError(
            f"the model's log-probabilities are NaN at decoding step {step + 1} ({int(broken.sum())} of "
            f"{len(broken)} rows): its weights or its input hold NaN or inf; check the run's weights"
        )


def _length_normalised(hyp: Hypothesis, length_penalty: float) -> float:
    """``log_prob / length ** length_penalty``, as a product with the inverse power: a large power
    of a length would overflow a float (an error), its inverse only rounds towards 0."""
    return hyp.log_prob * max(hyp.scored_length, 1) ** -length_penalty


#: The widest beam: each step scores width x vocabulary extensions of every input, and the
#: answers stop improving long before (translation and captioning use 4 to 10).
MAX_BEAM_WIDTH = 1000


@dataclass(frozen=True)
class Beam(Search):
    """Batched beam search of ``width`` hypotheses per input.

    Each step extends the ``K`` live hypotheses of every input by every token and keeps the
    ``K`` best non-final extensions; an extension ending in ``<eos>`` that ranks among the top
    ``K`` becomes a finished hypothesis. The winner maximises ``log_prob / length **
    length_penalty`` (length counts ``<eos>``; ``0`` ranks by raw log-probability, which favours
    short outputs). An input stops once it has ``K`` finished hypotheses and the best of them
    scores at least what its best live one would if it ended at the next step (its log-probability
    can only fall; with ``length_penalty`` 0 the rule is exact). Stopping at ``K`` finished ones
    alone returned short hypotheses that unlikely ``<eos>`` tokens had ended on the way while a far
    likelier one was still running (``bench/beam_search.py`` measures beam widths beside greedy
    search). After ``max_len`` steps the live ones count as (incomplete) finished ones, so an
    input whose hypotheses never produced ``<eos>`` gets its best live one. With ``length_penalty``
    0 a width of 1 is greedy search; with a penalty it may run past greedy's ``<eos>`` to a
    hypothesis that scores better normalised.
    """

    width: int = 5
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, Integral) or self.width < 1:
            raise InvalidInputError(f"beam_width must be a whole number >= 1, got {self.width!r}")
        if self.width > MAX_BEAM_WIDTH:  # a beam of 1,000,000 took 17 GB and 6 minutes for 8 letters
            raise InvalidInputError(f"beam_width must be at most {MAX_BEAM_WIDTH}, got {self.width}")
        if not 0 <= self.length_penalty < float("inf"):  # NaN ranked hypotheses as they came
            raise InvalidInputError(f"length_penalty must be a finite number >= 0, got {self.length_penalty}")

    @torch.no_grad()
    def search(
        self, decoder: StepDecoder, memory: EncodedMemory, *, bos_id: int, eos_id: int, max_len: int,
        need_weights: bool, banned: Sequence[int] = (),
    ) -> list[Hypothesis]:
        """Beam search for each of the ``B`` rows of ``memory``."""
        batch, k = memory.keys.shape[0], self.width
        device = memory.keys.device
        flat = torch.arange(batch, device=device).repeat_interleave(k)
        beams = memory.select(flat)
        state = decoder.reorder_state(memory.state, flat)
        dtype = _widened(beams.keys).dtype
        scores = torch.full((batch, k), float("-inf"), device=device, dtype=dtype)
        scores[:, 0] = 0.0  # all beams start identical: expand only the first
        token = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
        history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
        attn = torch.empty(batch * k, 0, beams.keys.shape[1], device=device, dtype=dtype)
        finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
        done = [False] * batch

        def live(b: int) -> list[Hypothesis]:
            """Input ``b``'s unfinished hypotheses as they stand (``complete=False``)."""
            rows = range(b * k, b * k + k)
            return [
                Hypothesis(history[row].tolist(), float(score), attn[row] if need_weights else None, False)
                for row, score in zip(rows, scores[b].tolist(), strict=True)
                if score > float("-inf")
            ]

        for step in range(max_len):
            logits, state, weights = decoder.step(token, state, beams, need_weights)
            step_log_probs = _without(torch.log_softmax(_widened(logits), dim=-1), banned)
            _refuse_nan(step_log_probs, scores.view(-1) > float("-inf"), step)
            vocab = step_log_probs.shape[-1]
            total = (scores.view(-1, 1) + step_log_probs).view(batch, k * vocab)
            top_scores, top_index = _best(total, min(2 * k, k * vocab))
            top_scores, top_beam, top_token = (
                top_scores.tolist(),
                (top_index // vocab).tolist(),
                (top_index % vocab).tolist(),
            )
            new_scores = torch.full((batch, k), float("-inf"), device=device, dtype=dtype)
            origin = torch.zeros(batch, k, dtype=torch.long)
            new_token = torch.full((batch, k), eos_id, dtype=torch.long)
            for b in range(batch):
                if done[b]:
                    continue
                alive = 0
                for rank, (score, beam, tok) in enumerate(
                    zip(top_scores[b], top_beam[b], top_token[b], strict=True)
                ):
                    if score == float("-inf") or alive == k:
                        break
                    row = b * k + beam
                    if tok == eos_id:
                        if rank < k:
                            rows = None
                            if need_weights:
                                rows = torch.cat([attn[row], _widened(weights[row : row + 1])])
                            finished[b].append(Hypothesis(history[row].tolist(), score, rows))
                        continue
                    new_scores[b, alive], origin[b, alive], new_token[b, alive] = score, beam, tok
                    alive += 1
                if alive == 0 and not finished[b]:  # no extension is possible at all
                    finished[b] = live(b)
                settled = len(finished[b]) >= k and self._settled(finished[b], float(new_scores[b, 0]), step)
                done[b] = alive == 0 or settled
            if all(done):
                break
            index = (torch.arange(batch)[:, None] * k + origin).view(-1).to(device)
            state = decoder.reorder_state(state, index)
            token = new_token.view(-1).to(device)
            history = torch.cat([history[index], token[:, None]], dim=1)
            if need_weights:
                attn = torch.cat([attn[index], _widened(weights[index]).unsqueeze(1)], dim=1)
            scores = new_scores
        else:
            for b in range(batch):
                if not done[b]:  # cut off by max_len: the live hypotheses compete as they are
                    finished[b].extend(live(b))
        results = []
        for hyps in finished:
            best = max(hyps, key=lambda h: _length_normalised(h, self.length_penalty))
            weights = None if best.weights is None else best.weights.cpu()
            results.append(Hypothesis(best.tokens, best.log_prob, weights, best.complete))
        return results

    def _settled(self, finished: list[Hypothesis], best_live: float, step: int) -> bool:
        """Whether no live hypothesis of an input can still win: the best finished one's score is
        at least the best live score (a log-probability after ``step + 1`` tokens) normalised as
        if ``<eos>`` came next, the most it can reach at that length."""
        best_finished = max(_length_normalised(h, self.length_penalty) for h in finished)
        return best_finished >= best_live * (step + 2) ** -self.length_penalty


def _best(total: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``m`` best scores of each row of ``total`` ``(B, N)`` and their columns, best first, tied
    scores by column, as a stable sort would rank them (and as Greedy's argmax takes the first of
    tied tokens: an untrained model's logits tie everywhere). ``topk`` picks and orders ties as it
    likes, and a full sort costs 60 times ``topk`` over 5 beams of an 8,000-word vocabulary: one
    ``topk`` of ``m + 1`` shows whether a tie crosses the cut (its last two scores are equal), and
    only then are the rows scanned for the lowest tied columns. A NaN score (a broken model's)
    ranks last, as ``-inf``: ``topk`` would take it first."""
    wider = min(m + 1, total.shape[1])  # one more: a tie across the cut shows as equal m-th and (m+1)-th
    values, index = total.topk(wider, dim=1)
    if bool(values.isnan().any()):  # topk puts NaN first: a row holding one shows it here
        total = total.masked_fill(total.isnan(), float("-inf"))
        values, index = total.topk(wider, dim=1)
    cut = values[:, m - 1 : m]
    if wider > m and bool((values[:, m] == values[:, m - 1]).any()):  # the lowest tied columns go in
        above = total > cut
        room = m - above.sum(1, keepdim=True)
        tied = total == cut
        index = (above | (tied & (tied.cumsum(1) <= room))).nonzero()[:, 1].view(total.shape[0], m)
    else:
        index = index[:, :m].sort(dim=1).values
    scores = total.gather(1, index)
    order = scores.sort(dim=1, descending=True, stable=True).indices  # by column among equal scores
    return scores.gather(1, order), index.gather(1, order)


def make_search(beam_width: int = 1, length_penalty: float = 1.0) -> Search:
    """The strategy a ``beam_width`` setting names: :class:`Greedy` at 1, else :class:`Beam`.

    The one place that chooses; a run config or a command-line flag passes its numbers here.
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, Integral):
        raise InvalidInputError(f"beam_width must be a whole number >= 1, got {beam_width!r}")
    if beam_width == 1:
        if not 0 <= length_penalty < float("inf"):  # unused by greedy search, but a mistake all the same
            raise InvalidInputError(f"length_penalty must be a finite number >= 0, got {length_penalty}")
        return Greedy()
    return Beam(int(beam_width), length_penalty)


def _widened(values: torch.Tensor) -> torch.Tensor:
    """``values`` in the dtype scores are summed in: float32 for half precision, float64 kept (a
    float64 model's log-probabilities were rounded to float32)."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


@dataclass
class _EvalHold:
    """How many decodes hold one model in eval mode, and the mode to give back after the last."""

    decodes: int
    was_training: bool


_MODE_LOCK = threading.Lock()
_HOLDS: weakref.WeakKeyDictionary[torch.nn.Module, _EvalHold] = weakref.WeakKeyDictionary()


@contextmanager
def _evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Hold ``model`` in eval mode while any thread decodes with it, then give back its mode.

    Decodes share one count per model: the first puts the model in eval mode and remembers what
    it was, the last puts that back. Each saving and restoring on its own let a second thread
    read the first one's eval mode as the model's own and, when the first finished, finish its
    search in training mode, with dropout.
    """
    with _MODE_LOCK:
        hold = _HOLDS.get(model)
        if hold is None:
            hold = _HOLDS[model] = _EvalHold(0, model.training)
            model.train(False)
        hold.decodes += 1
    try:
        yield
    finally:
        with _MODE_LOCK:
            hold.decodes -= 1
            if hold.decodes == 0:
                del _HOLDS[model]
                model.train(hold.was_training)


@torch.no_grad()
def decode(
    model: Decodable,
    strategy: Search,
    *inputs: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int = 100,
    need_weights: bool = True,
    pad_id: int | None = None,
) -> list[Hypothesis]:
    """Decode a batch of ``B`` inputs with ``strategy``: one :class:`Hypothesis` per input.

    ``inputs`` are what the model's ``encode_memory`` takes (source ids ``(B, S)`` and lengths
    ``(B,)`` for a translator, images ``(B, 3, H, W)`` for the captioner). The model runs in eval
    mode and gets its training mode back afterwards. ``<bos>`` and ``pad_id`` are never emitted.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, Integral) or max_len < 1:  # 2.5: a bare TypeError
        raise InvalidInputError(f"max_len must be a whole number >= 1, got {max_len!r}")
    with _evaluating(model):
        memory = model.encode_memory(*inputs)
        banned = tuple(sorted({bos_id, *([] if pad_id is None else [pad_id])} - {eos_id}))
        return strategy.search(
            model, memory, bos_id=bos_id, eos_id=eos_id, max_len=max_len, need_weights=need_weights,
            banned=banned,
        )
