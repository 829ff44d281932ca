"""Greedy decoding and batched beam search for :class:`~nlp182.seq2seq.model.Seq2Seq`.

Both run the whole batch at once (beam search keeps ``B * K`` hypotheses in one tensor batch)
and return, per sentence, the output ids (without ``<eos>``), the sum of token log-probabilities
(``<eos>`` included when it was produced) and the attention weights of every emitted token
(one row per output token plus one for ``<eos>``). Call ``model.eval()`` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nlp182.errors import InvalidInputError
from nlp182.seq2seq.model import Seq2Seq, reorder_state
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID


@dataclass
class Hypothesis:
    """One decoded sentence.

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
    model: Seq2Seq, source: torch.Tensor, lengths: torch.Tensor, max_len: int = 100, need_weights: bool = True
) -> list[Hypothesis]:
    """Pick the most probable token at every step, for source ``(B, S)`` with ``lengths`` ``(B,)``."""
    _check(max_len)
    encoded = model.encode(source, lengths)
    batch = source.shape[0]
    state, feed = encoded.state, encoded.feed
    token = torch.full((batch,), BOS_ID, dtype=torch.long, device=source.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=source.device)
    log_prob = torch.zeros(batch, device=source.device)
    emitted, rows = [], []
    for _ in range(max_len):
        logits, state, feed, weights = model.decoder.step(
            token, state, feed, encoded.memory, encoded.mask, need_weights
        )
        step_log_probs = torch.log_softmax(logits.float(), dim=-1)
        token = step_log_probs.argmax(dim=-1)
        log_prob += step_log_probs.gather(1, token[:, None]).squeeze(1).masked_fill(finished, 0.0)
        emitted.append(token.masked_fill(finished, EOS_ID))
        rows.append(weights)
        finished |= token == EOS_ID
        if bool(finished.all()):
            break
    ids = torch.stack(emitted, dim=1).tolist()
    results = []
    for b in range(batch):
        seq = ids[b]
        out = seq[: seq.index(EOS_ID)] if EOS_ID in seq else seq
        n_rows = min(len(out) + 1, len(seq))
        weights = torch.stack([r[b] for r in rows[:n_rows]]).float().cpu() if need_weights else None
        results.append(Hypothesis(out, float(log_prob[b]), weights, complete=EOS_ID in seq))
    return results


def _length_normalised(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / max(length, 1) ** length_penalty


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    source: torch.Tensor,
    lengths: torch.Tensor,
    beam_width: int = 5,
    max_len: int = 100,
    length_penalty: float = 1.0,
    need_weights: bool = True,
) -> list[Hypothesis]:
    """Batched beam search over source ``(B, S)`` with ``lengths`` ``(B,)``.

    Each step extends the ``K`` live hypotheses of every sentence by every token and keeps the
    ``K`` best non-final extensions; an extension ending in ``<eos>`` that ranks among the top
    ``K`` becomes a finished hypothesis. A sentence stops once it has ``K`` finished ones; after
    ``max_len`` steps the live ones count as finished. The winner maximises
    ``log_prob / length ** length_penalty`` (length counts ``<eos>``; ``0`` ranks by raw
    log-probability, which favours short outputs).
    """
    _check(max_len, beam_width)
    if length_penalty < 0:
        raise InvalidInputError(f"length_penalty must be >= 0, got {length_penalty}")
    batch, k = source.shape[0], beam_width
    device = source.device
    encoded = model.encode(source, lengths)
    flat = torch.arange(batch, device=device).repeat_interleave(k)
    memory, mask = encoded.memory[flat], encoded.mask[flat]
    state, feed = reorder_state(encoded.state, flat), encoded.feed[flat]
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    token = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    attn = torch.empty(batch * k, 0, memory.shape[1], device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    for _ in range(max_len):
        logits, state, feed, weights = model.decoder.step(token, state, feed, memory, mask, need_weights)
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
        new_token = torch.full((batch, k), EOS_ID, dtype=torch.long)
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
                if tok == EOS_ID:
                    if rank < k:
                        rows = (
                            torch.cat([attn[row], weights[row : row + 1].float()]) if need_weights else None
                        )
                        finished[b].append(Hypothesis(history[row].tolist(), score, rows))
                    continue
                new_scores[b, alive], origin[b, alive], new_token[b, alive] = score, beam, tok
                alive += 1
            done[b] = len(finished[b]) >= k or alive == 0
        if all(done):
            break
        index = (torch.arange(batch)[:, None] * k + origin).view(-1).to(device)
        state, feed = reorder_state(state, index), feed[index]
        token = new_token.view(-1).to(device)
        history = torch.cat([history[index], token[:, None]], dim=1)
        if need_weights:
            attn = torch.cat([attn[index], weights[index].float().unsqueeze(1)], dim=1)
        scores = new_scores
    else:
        for b in range(batch):
            if done[b]:
                continue
            for beam in range(k):
                row = b * k + beam
                if scores[b, beam] > float("-inf"):
                    rows = attn[row] if need_weights else None
                    hyp = Hypothesis(history[row].tolist(), float(scores[b, beam]), rows, complete=False)
                    finished[b].append(hyp)
    results = []
    for hyps in finished:
        best = max(hyps, key=lambda h: _length_normalised(h.log_prob, h.scored_length, length_penalty))
        weights = None if best.weights is None else best.weights.cpu()
        results.append(Hypothesis(best.tokens, best.log_prob, weights, best.complete))
    return results
