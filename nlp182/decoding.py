"""Greedy decoding and batched beam search for any step-wise attention decoder.

The translator (:mod:`nlp182.seq2seq`) and the captioner (:mod:`nlp182.captioning`) both decode
with these functions. A model takes part by encoding its input into an :class:`EncodedMemory`
(attention keys, their mask and the decoder's initial state) and offering a :class:`StepDecoder`
(one decoding step, plus how to select batch rows of its state). Search never sees the model's
input type, so one implementation serves text and images.

Both functions run the whole batch at once (beam search keeps ``B * K`` hypotheses in one tensor
batch) and return, per input, the output ids (without ``<eos>``), the sum of token
log-probabilities (``<eos>`` included when it was produced) and the attention weights of every
emitted token (one row per output token plus one for ``<eos>``). Put the model in eval mode first.
When ``max_len`` cuts decoding off before ``<eos>``, the best unfinished hypothesis is returned
with ``complete=False``; the result is never empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from nlp182.errors import InvalidInputError


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


@dataclass
class Hypothesis:
    """One decoded sequence.

    ``tokens``: output ids without ``<eos>``; ``log_prob``: their summed log-probability (plus
    ``<eos>``'s when ``complete``); ``weights``: ``(rows, S)`` attention per emitted token
    (``<eos>`` included) or ``None``; ``complete``: ``False`` when ``max_len`` cut it off.
    """

    tokens: list[int]
    log_prob: float
    weights: torch.Tensor | None
    complete: bool = True

    @property
    def scored_length(self) -> int:
        """Number of tokens whose log-probability ``log_prob`` sums (``<eos>`` counts)."""
        return len(self.tokens) + int(self.complete)


def _check(max_len: int, beam_width: int = 1) -> None:
    if max_len < 1 or beam_width < 1:
        raise InvalidInputError(f"max_len and beam_width must be >= 1, got {max_len} and {beam_width}")


@torch.no_grad()
def greedy_decode(
    decoder: StepDecoder,
    memory: EncodedMemory,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int = 100,
    need_weights: bool = True,
) -> list[Hypothesis]:
    """Pick the most probable token at every step for each of the ``B`` rows of ``memory``."""
    _check(max_len)
    keys = memory.keys
    batch, device = keys.shape[0], keys.device
    state = memory.state
    token = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    log_prob = torch.zeros(batch, device=device)
    emitted, rows = [], []
    for _ in range(max_len):
        logits, state, weights = decoder.step(token, state, memory, need_weights)
        step_log_probs = torch.log_softmax(logits.float(), dim=-1)
        token = step_log_probs.argmax(dim=-1)
        log_prob += step_log_probs.gather(1, token[:, None]).squeeze(1).masked_fill(finished, 0.0)
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
        weights = torch.stack([r[b] for r in rows[:n_rows]]).float().cpu() if need_weights else None
        results.append(Hypothesis(out, float(log_prob[b]), weights, complete=eos_id in seq))
    return results


def _length_normalised(hyp: Hypothesis, length_penalty: float) -> float:
    return hyp.log_prob / max(hyp.scored_length, 1) ** length_penalty


@torch.no_grad()
def beam_search(
    decoder: StepDecoder,
    memory: EncodedMemory,
    *,
    bos_id: int,
    eos_id: int,
    beam_width: int = 5,
    max_len: int = 100,
    length_penalty: float = 1.0,
    need_weights: bool = True,
) -> list[Hypothesis]:
    """Batched beam search for each of the ``B`` rows of ``memory``.

    Each step extends the ``K`` live hypotheses of every input by every token and keeps the
    ``K`` best non-final extensions; an extension ending in ``<eos>`` that ranks among the top
    ``K`` becomes a finished hypothesis. An input stops once it has ``K`` finished ones; after
    ``max_len`` steps the live ones count as (incomplete) finished ones, so an input whose
    hypotheses never produced ``<eos>`` gets its best live one. The winner maximises
    ``log_prob / length ** length_penalty`` (length counts ``<eos>``; ``0`` ranks by raw
    log-probability, which favours short outputs).
    """
    _check(max_len, beam_width)
    if length_penalty < 0:
        raise InvalidInputError(f"length_penalty must be >= 0, got {length_penalty}")
    batch, k = memory.keys.shape[0], beam_width
    device = memory.keys.device
    flat = torch.arange(batch, device=device).repeat_interleave(k)
    beams = memory.select(flat)
    state = decoder.reorder_state(memory.state, flat)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    token = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    attn = torch.empty(batch * k, 0, beams.keys.shape[1], device=device)
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

    for _ in range(max_len):
        logits, state, weights = decoder.step(token, state, beams, need_weights)
        step_log_probs = torch.log_softmax(logits.float(), dim=-1)
        vocab = step_log_probs.shape[-1]
        total = (scores.view(-1, 1) + step_log_probs).view(batch, k * vocab)
        top_scores, top_index = total.topk(min(2 * k, k * vocab), dim=1)
        top_scores, top_beam, top_token = (
            top_scores.tolist(),
            (top_index // vocab).tolist(),
            (top_index % vocab).tolist(),
        )
        new_scores = torch.full((batch, k), float("-inf"), device=device)
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
                        rows = (
                            torch.cat([attn[row], weights[row : row + 1].float()]) if need_weights else None
                        )
                        finished[b].append(Hypothesis(history[row].tolist(), score, rows))
                    continue
                new_scores[b, alive], origin[b, alive], new_token[b, alive] = score, beam, tok
                alive += 1
            if alive == 0 and not finished[b]:  # no extension is possible at all
                finished[b] = live(b)
            done[b] = len(finished[b]) >= k or alive == 0
        if all(done):
            break
        index = (torch.arange(batch)[:, None] * k + origin).view(-1).to(device)
        state = decoder.reorder_state(state, index)
        token = new_token.view(-1).to(device)
        history = torch.cat([history[index], token[:, None]], dim=1)
        if need_weights:
            attn = torch.cat([attn[index], weights[index].float().unsqueeze(1)], dim=1)
        scores = new_scores
    else:
        for b in range(batch):
            if not done[b]:  # cut off by max_len: the live hypotheses compete as they are
                finished[b].extend(live(b))
    results = []
    for hyps in finished:
        best = max(hyps, key=lambda h: _length_normalised(h, length_penalty))
        weights = None if best.weights is None else best.weights.cpu()
        results.append(Hypothesis(best.tokens, best.log_prob, weights, best.complete))
    return results
