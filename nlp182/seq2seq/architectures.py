"""Build the translator's model by ``ModelConfig.architecture`` and hand it to the shared search.

Both architectures take ``(source, lengths, target_in)`` for training; for decoding each offers
a :class:`~nlp182.decoding.StepDecoder` and an :class:`~nlp182.decoding.EncodedMemory`, so
greedy and beam search (:mod:`nlp182.decoding`) run unchanged on either.
"""

from __future__ import annotations

import torch
from torch import nn

from nlp182.decoding import EncodedMemory, StepDecoder
from nlp182.seq2seq.decode import TranslatorStep, encode_memory
from nlp182.seq2seq.model import ModelConfig, Seq2Seq
from nlp182.seq2seq.transformer import TransformerSeq2Seq


def build_model(source_vocab_size: int, target_vocab_size: int, config: ModelConfig) -> nn.Module:
    """A freshly initialised :class:`Seq2Seq` (``"rnn"``) or :class:`TransformerSeq2Seq`."""
    if config.architecture == "transformer":
        return TransformerSeq2Seq(source_vocab_size, target_vocab_size, config)
    return Seq2Seq(source_vocab_size, target_vocab_size, config)


def search_inputs(
    model: nn.Module, source: torch.Tensor, lengths: torch.Tensor
) -> tuple[StepDecoder, EncodedMemory]:
    """The step decoder and encoded source ``(B, S)`` (true ``lengths`` ``(B,)``) that search needs."""
    if isinstance(model, TransformerSeq2Seq):
        return model, model.encode_memory(source, lengths)
    return TranslatorStep(model.decoder), encode_memory(model, source, lengths)
