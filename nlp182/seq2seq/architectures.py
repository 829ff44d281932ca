"""Build the translator's model by ``ModelConfig.architecture``.

Both architectures take ``(source, lengths, target_in)`` for training and are
:class:`~nlp182.decoding.Decodable` (``encode_memory(source, lengths)`` and their own step
decoder), so every search strategy of :mod:`nlp182.decoding` runs unchanged on either.
"""

from __future__ import annotations

from torch import nn

from nlp182.seq2seq.model import ModelConfig, Seq2Seq
from nlp182.seq2seq.transformer import TransformerSeq2Seq


def build_model(source_vocab_size: int, target_vocab_size: int, config: ModelConfig) -> nn.Module:
    """A freshly initialised :class:`Seq2Seq` (``"rnn"``) or :class:`TransformerSeq2Seq`."""
    if config.architecture == "transformer":
        return TransformerSeq2Seq(source_vocab_size, target_vocab_size, config)
    return Seq2Seq(source_vocab_size, target_vocab_size, config)
