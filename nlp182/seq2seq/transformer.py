"""A Transformer encoder-decoder (Vaswani et al., 2017) built on this package's multi-head attention.

It shares everything around the model with the recurrent translator: the batches, the loss, the
Trainer, the tokenisers, the run folder and the search (it is a
:class:`~nlp182.decoding.Decodable`). Layers are pre-norm (LayerNorm before each sub-layer,
then a final LayerNorm), which trains without the warmup-sensitive instabilities of the
original post-norm layout; positions are the fixed sinusoids of the paper. ``hidden_size`` is
``d_model``, ``num_layers`` the depth of each stack, ``num_heads`` the heads of every attention,
``ffn_size`` the width of the feed-forward layers (0 = 4 x ``d_model``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nlp182.attention import MultiHeadAttention, padding_mask
from nlp182.decoding import EncodedMemory
from nlp182.errors import InvalidInputError
from nlp182.seq2seq.model import ModelConfig, check_sources
from nlp182.seq2seq.tokenize import PAD_ID

#: Longest sequence the sinusoidal table covers (sources and outputs are far shorter).
MAX_POSITIONS = 1024


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` positional encodings: sin on even, cos on odd features (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class FeedForward(nn.Sequential):
    """``Linear -> ReLU -> dropout -> Linear`` applied at every position of ``(B, T, D)``."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward, each added back residually."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, dropout=dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, S, D)`` with key mask ``(B, 1, S)`` -> ``(B, S, D)``."""
        h = self.norm1(x)
        x = x + self.dropout(self.attention(h, h, h, mask=mask)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, attention over the source, and feed-forward."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attention = MultiHeadAttention(dim, heads, dropout=dropout)
        self.cross_attention = MultiHeadAttention(dim, heads, dropout=dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, y: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``y`` ``(B, T, D)`` over ``memory`` ``(B, S, D)`` -> ``(B, T, D)`` and weights ``(B, T, S)``."""
        h = self.norm1(y)
        y = y + self.dropout(self.self_attention(h, h, h, causal=True)[0])
        context, weights = self.cross_attention(
            self.norm2(y), memory, memory, mask=mask, need_weights=need_weights
        )
        y = y + self.dropout(context)
        return y + self.dropout(self.ffn(self.norm3(y))), weights


class TransformerSeq2Seq(nn.Module):
    """Transformer translator over source and target vocabularies of the given sizes.

    ``forward`` gives teacher-forced logits ``(B, T, V)`` like the recurrent :class:`Seq2Seq`;
    for search it is a :class:`~nlp182.decoding.Decodable` whose step state is the prefix
    decoded so far ``(N, t)`` (each step re-reads the prefix: outputs here are short).
    """

    #: the longest source (and output) it reads: its position table's length
    max_source_tokens = MAX_POSITIONS

    def __init__(
        self, source_vocab_size: int, target_vocab_size: int, config: ModelConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config = config or ModelConfig(architecture="transformer")
        dim, heads, drop = config.hidden_size, config.num_heads, config.dropout
        ffn = config.ffn_size or 4 * dim
        self.scale = math.sqrt(dim)
        self.source_embedding = nn.Embedding(source_vocab_size, dim, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocab_size, dim, padding_idx=PAD_ID)
        for embedding in (self.source_embedding, self.target_embedding):
            # N(0, 1/d) before the sqrt(d) scale, as the paper's code and fairseq: token and position
            # terms are both O(1). torch's N(0, 1) would make tokens sqrt(d) times the sinusoids,
            # which then barely tell positions apart.
            nn.init.normal_(embedding.weight, 0.0, dim**-0.5)
            with torch.no_grad():
                embedding.weight[PAD_ID].zero_()
        self.register_buffer("positions", sinusoids(MAX_POSITIONS, dim), persistent=False)
        self.dropout = nn.Dropout(drop)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(dim, heads, ffn, drop) for _ in range(config.num_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(dim, heads, ffn, drop) for _ in range(config.num_layers)
        )
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.output = nn.Linear(dim, target_vocab_size)

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > MAX_POSITIONS:
            raise InvalidInputError(f"sequences are limited to {MAX_POSITIONS} tokens, got {ids.shape[1]}")
        return self.dropout(embedding(ids) * self.scale + self.positions[: ids.shape[1]])

    def encode_memory(self, source: torch.Tensor, lengths: torch.Tensor) -> EncodedMemory:
        """Encode ``source`` ``(B, S)`` with ``lengths`` ``(B,)``: keys ``(B, S, D)``, mask, empty prefix."""
        check_sources(source, lengths)
        mask = padding_mask(lengths.to(source.device), source.shape[1])
        x = self._embed(self.source_embedding, source)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        prefix = source.new_zeros(source.shape[0], 0)
        return EncodedMemory(self.encoder_norm(x), mask, prefix)

    def decode(
        self,
        target_in: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor | None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, V)`` for every position of ``target_in`` and the last layer's source attention."""
        y = self._embed(self.target_embedding, target_in)
        weights = None
        for index, layer in enumerate(self.decoder_layers):
            last = index == len(self.decoder_layers) - 1
            y, layer_weights = layer(y, memory, mask, need_weights and last)
            weights = layer_weights if last else weights
        return self.output(self.decoder_norm(y)), weights

    def forward(
        self,
        source: torch.Tensor,
        source_lengths: torch.Tensor,
        target_in: torch.Tensor,
        teacher_forcing: float = 1.0,
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` for ``target_in`` ``(B, T)`` (which starts with ``<bos>``)."""
        if teacher_forcing != 1.0:
            raise InvalidInputError("the transformer trains with full teacher forcing (teacher_forcing=1)")
        memory = self.encode_memory(source, source_lengths)
        return self.decode(target_in, memory.keys, memory.mask)[0]

    # ---------------------------------------------------------------- step decoder (nlp182.decoding)
    def step(
        self, token: torch.Tensor, state: torch.Tensor, memory: EncodedMemory, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Append ``token`` ``(N,)`` to the prefix ``(N, t)``: ``(logits (N, V), prefix, weights (N, S))``."""
        prefix = torch.cat([state, token[:, None]], dim=1)
        logits, weights = self.decode(prefix, memory.keys, memory.mask, need_weights)
        return logits[:, -1], prefix, None if weights is None else weights[:, -1]

    def reorder_state(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Prefixes of rows ``index`` ``(N,)``."""
        return state.index_select(0, index)
