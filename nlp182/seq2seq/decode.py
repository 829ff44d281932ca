"""Greedy decoding and batched beam search for :class:`~nlp182.seq2seq.model.Seq2Seq`.

The search itself lives in :mod:`nlp182.decoding` (shared with captioning); this module encodes
the source and adapts the translator's decoder to the :class:`~nlp182.decoding.StepDecoder`
protocol. Results are :class:`~nlp182.decoding.Hypothesis` objects: output ids without
``<eos>``, summed log-probability, and one attention row per emitted token (``<eos>`` included).
Call ``model.eval()`` first.
"""

from __future__ import annotations

import torch

from nlp182.decoding import EncodedMemory, Hypothesis
from nlp182.decoding import beam_search as search_beams
from nlp182.decoding import greedy_decode as search_greedy
from nlp182.seq2seq.model import Decoder, Seq2Seq, State, reorder_state
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID

TranslatorState = tuple[State, torch.Tensor]

__all__ = ["Hypothesis", "TranslatorStep", "beam_search", "encode_memory", "greedy_decode"]


class TranslatorStep:
    """The translator's decoder as a :class:`~nlp182.decoding.StepDecoder`.

    Its state is the pair ``(RNN state (L, B, H) or an LSTM pair, input-feeding vector (B, H))``.
    """

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder

    def step(
        self, token: torch.Tensor, state: TranslatorState, memory: EncodedMemory, need_weights: bool
    ) -> tuple[torch.Tensor, TranslatorState, torch.Tensor | None]:
        """One decoder step for previous tokens ``(N,)``: ``(logits (N, V), state, weights (N, S))``."""
        rnn_state, feed = state
        logits, rnn_state, feed, weights = self.decoder.step(
            token, rnn_state, feed, memory.keys, memory.mask, need_weights
        )
        return logits, (rnn_state, feed), weights

    def reorder_state(self, state: TranslatorState, index: torch.Tensor) -> TranslatorState:
        """Rows ``index`` of both parts of the state."""
        rnn_state, feed = state
        return reorder_state(rnn_state, index), feed[index]


def encode_memory(model: Seq2Seq, source: torch.Tensor, lengths: torch.Tensor) -> EncodedMemory:
    """Encode source ``(B, S)`` with ``lengths`` ``(B,)`` into what the shared search needs."""
    encoded = model.encode(source, lengths)
    return EncodedMemory(encoded.memory, encoded.mask, (encoded.state, encoded.feed))


@torch.no_grad()
def greedy_decode(
    model: Seq2Seq, source: torch.Tensor, lengths: torch.Tensor, max_len: int = 100, need_weights: bool = True
) -> list[Hypothesis]:
    """Pick the most probable token at every step, for source ``(B, S)`` with ``lengths`` ``(B,)``."""
    return search_greedy(
        TranslatorStep(model.decoder),
        encode_memory(model, source, lengths),
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        max_len=max_len,
        need_weights=need_weights,
    )


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

    See :func:`nlp182.decoding.beam_search` for the algorithm and ``length_penalty``.
    """
    return search_beams(
        TranslatorStep(model.decoder),
        encode_memory(model, source, lengths),
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        beam_width=beam_width,
        max_len=max_len,
        length_penalty=length_penalty,
        need_weights=need_weights,
    )
