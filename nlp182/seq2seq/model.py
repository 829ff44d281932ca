"""Encoder-decoder with attention (Bahdanau et al., 2015; Luong et al., 2015).

Encoder: embedding + bidirectional GRU/LSTM over packed sequences (padding never enters the
recurrence). Decoder: a GRU/LSTM stepped one token at a time; at each step its output attends
over the encoder states with any module from :mod:`nlp182.attention`, the two are combined into
an "attentional" vector ``tanh(W [h_t; c_t])`` that predicts the next token and, with input
feeding, is fed back as part of the next input so the decoder knows what it attended to before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp182.attention import ATTENTION_KINDS, build_attention, padding_mask
from nlp182.attention.masks import tracing
from nlp182.decoding import EncodedMemory
from nlp182.errors import InvalidInputError, ShapeError
from nlp182.seq2seq.tokenize import PAD_ID
from nlp182.settings import check_settings, remember_given, setting

RNN_CELLS = ("gru", "lstm")
ARCHITECTURES = ("rnn", "transformer")
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
#: The decoder's search state: the RNN state and the input-feeding vector ``(B, H)``.
DecoderState = tuple[State, torch.Tensor]


def check_sources(source: torch.Tensor, lengths: torch.Tensor) -> None:
    """Refuse a padded batch ``source`` ``(B, S)`` whose ``lengths`` ``(B,)`` do not fit it: every
    source has between 1 and ``S`` tokens (an empty one would attend to nothing)."""
    if source.dim() != 2 or lengths.shape != source.shape[:1]:
        raise ShapeError(
            f"source must be (B, S) and lengths (B,); got {tuple(source.shape)}, {tuple(lengths.shape)}"
        )
    if tracing(lengths):  # compiled or exported: a branch on the lengths' values cannot run
        return
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > source.shape[1]):
        raise InvalidInputError("every source length must be between 1 and the padded width")


@remember_given
@dataclass
class ModelConfig:
    """Architecture of the translator: ``"rnn"`` (:class:`Seq2Seq`) or ``"transformer"``.

    RNN: ``hidden_size`` is the decoder's state size and the size of every encoder output (each
    encoder direction has ``hidden_size // 2`` units), so every attention kind can compare them.
    ``num_heads`` is used by ``attention="multihead"`` only.
    Transformer (:class:`~nlp182.seq2seq.transformer.TransformerSeq2Seq`): ``hidden_size`` is
    ``d_model`` (``embed_dim`` is not used), ``num_layers`` the depth of each stack,
    ``num_heads`` the heads of every attention, ``ffn_size`` the feed-forward width (0 = 4 x
    ``d_model``); ``cell``, ``attention`` and ``input_feeding`` do not apply.
    """

    architecture: str = setting(
        "rnn", choices=ARCHITECTURES,
        help="rnn (bi-RNN encoder, attention RNN decoder) or transformer",
    )
    cell: str = setting("gru", choices=RNN_CELLS, help="recurrent cell of encoder and decoder")
    embed_dim: int = setting(64, positive=True, help="size of the token embeddings")
    hidden_size: int = setting(
        128,
        positive=True, even=True, help="size of the decoder state; the two encoder directions get half each",
    )
    num_layers: int = setting(1, positive=True, help="stacked recurrent layers")
    attention: str = setting(
        "additive", choices=ATTENTION_KINDS,
        help="how the decoder scores the input positions",
    )
    num_heads: int = setting(4, positive=True, help="heads of multi-head attention")
    dropout: float = setting(0.1, minimum=0, below=1, help="dropout probability")
    input_feeding: bool = setting(True, help="feed the previous attention output into the next decoder step")
    ffn_size: int = setting(0, minimum=0, help="transformer feed-forward width (0: 4 x hidden size)")

    def __post_init__(self) -> None:
        check_settings(self)
        multihead = self.architecture == "transformer" or self.attention == "multihead"
        if multihead and self.hidden_size % self.num_heads:
            heads, size = self.num_heads, self.hidden_size
            raise InvalidInputError(f"num_heads ({heads}, --num-heads) must divide hidden_size ({size}, "
                                    "--hidden-size)")


def _rnn(
    cell: str, input_size: int, hidden_size: int, layers: int, dropout: float, bidirectional: bool
) -> nn.RNNBase:
    rnn_class = nn.GRU if cell == "gru" else nn.LSTM
    return rnn_class(
        input_size,
        hidden_size,
        num_layers=layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout if layers > 1 else 0.0,
    )


def reorder_state(state: State, index: torch.Tensor) -> State:
    """Select batch rows ``index`` of an RNN state (``(L, B, H)`` or an LSTM ``(h, c)`` pair)."""
    if isinstance(state, tuple):
        return state[0].index_select(1, index), state[1].index_select(1, index)
    return state.index_select(1, index)


class Encoder(nn.Module):
    """Embedding + bidirectional RNN; returns outputs ``(B, S, H)`` and final states ``(L, B, H)``."""

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = _rnn(
            config.cell, config.embed_dim, config.hidden_size // 2, config.num_layers, config.dropout, True
        )
        self.num_layers = config.num_layers

    def _merge_directions(self, state: torch.Tensor) -> torch.Tensor:
        # (2L, B, H/2) ordered layer-major, direction-minor -> (L, B, H) = [forward; backward]
        _, batch, half = state.shape
        return (
            state.view(self.num_layers, 2, batch, half)
            .permute(0, 2, 1, 3)
            .reshape(self.num_layers, batch, 2 * half)
        )

    def forward(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Encode ``source`` ``(B, S)`` ids with true ``lengths`` ``(B,)``."""
        embedded = self.dropout(self.embedding(source))
        if source.shape[0] == 0:  # an empty batch: nothing to pack, the RNN gives empty outputs
            memory, state = self.rnn(embedded)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, state = self.rnn(packed)
            memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])
        if isinstance(state, tuple):
            return memory, (self._merge_directions(state[0]), self._merge_directions(state[1]))
        return memory, self._merge_directions(state)


class Decoder(nn.Module):
    """One-step attention decoder with optional input feeding (Luong et al., 2015)."""

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.input_feeding = config.input_feeding
        self.embedding = nn.Embedding(vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        input_size = config.embed_dim + (hidden if config.input_feeding else 0)
        self.rnn = _rnn(config.cell, input_size, hidden, config.num_layers, config.dropout, False)
        self.bridge = nn.Linear(hidden, hidden)
        self.bridge_cell = nn.Linear(hidden, hidden) if config.cell == "lstm" else None
        self.attention = build_attention(config.attention, hidden, hidden, num_heads=config.num_heads)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.output = nn.Linear(hidden, vocab_size)

    def initial_state(self, encoder_state: State) -> State:
        """Map the encoder's final states ``(L, B, H)`` to the decoder's first state."""
        if isinstance(encoder_state, tuple):
            return torch.tanh(self.bridge(encoder_state[0])), self.bridge_cell(encoder_state[1])
        return torch.tanh(self.bridge(encoder_state))

    def step(
        self,
        token: torch.Tensor,
        state: State,
        feed: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, State, torch.Tensor, torch.Tensor | None]:
        """Advance one token.

        Args:
            token: ``(B,)`` previous token ids.
            state: RNN state ``(L, B, H)`` (or an LSTM pair).
            feed: ``(B, H)`` previous attentional vector (input feeding).
            memory: ``(B, S, H)`` encoder outputs; ``mask`` ``(B, 1, S)`` True on real tokens.

        Returns:
            ``(logits (B, V), state, attentional (B, H), weights (B, S) or None)``.
        """
        inputs = self.dropout(self.embedding(token))
        if self.input_feeding:
            inputs = torch.cat([inputs, feed], dim=-1)
        output, state = self.rnn(inputs.unsqueeze(1), state)
        context, weights = self.attention(output, memory, memory, mask=mask, need_weights=need_weights)
        attentional = torch.tanh(self.combine(torch.cat([output, context], dim=-1))).squeeze(1)
        logits = self.output(self.dropout(attentional))
        return logits, state, attentional, None if weights is None else weights.squeeze(1)

    def forward_all(
        self, target_in: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` for all of ``target_in`` ``(B, T)`` in one pass.

        Only without input feeding: then no step needs the previous step's attention, so the RNN
        runs over the whole target in one call and every position attends at once, which is
        several times faster to train than :meth:`step` in a loop (and gives the same logits).
        """
        if self.input_feeding:
            raise InvalidInputError("forward_all needs input_feeding=False; use step() in a loop")
        output, _ = self.rnn(self.dropout(self.embedding(target_in)), state)
        context, _ = self.attention(output, memory, memory, mask=mask, need_weights=False)
        attentional = torch.tanh(self.combine(torch.cat([output, context], dim=-1)))
        return self.output(self.dropout(attentional))


class Seq2Seq(nn.Module):
    """Attention encoder-decoder over source and target vocabularies of the given sizes.

    ``forward`` gives teacher-forced logits; for search it is a
    :class:`~nlp182.decoding.Decodable`: :meth:`encode_memory` and its own step decoder.
    """

    def __init__(
        self, source_vocab_size: int, target_vocab_size: int, config: ModelConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder = Encoder(source_vocab_size, self.config)
        self.decoder = Decoder(target_vocab_size, self.config)

    def encode_memory(self, source: torch.Tensor, lengths: torch.Tensor) -> EncodedMemory:
        """Encode ``source`` ``(B, S)`` with ``lengths`` ``(B,)`` (each >= 1).

        Keys are the encoder outputs ``(B, S, H)``, the mask ``(B, 1, S)`` is True on real tokens,
        and the state is the decoder's first :data:`DecoderState` (bridged encoder states, zero
        input-feeding vector).
        """
        check_sources(source, lengths)
        memory, final = self.encoder(source, lengths)
        mask = padding_mask(lengths.to(source.device), source.shape[1])
        feed = memory.new_zeros(source.shape[0], self.config.hidden_size)
        return EncodedMemory(memory, mask, (self.decoder.initial_state(final), feed))

    def step(
        self, token: torch.Tensor, state: DecoderState, memory: EncodedMemory, need_weights: bool
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One decoder step for previous tokens ``(N,)``: ``(logits (N, V), state, weights (N, S))``."""
        rnn_state, feed = state
        logits, rnn_state, feed, weights = self.decoder.step(
            token, rnn_state, feed, memory.keys, memory.mask, need_weights
        )
        return logits, (rnn_state, feed), weights

    def reorder_state(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` ``(N,)`` of both parts of the state."""
        rnn_state, feed = state
        return reorder_state(rnn_state, index), feed[index]

    def forward(
        self,
        source: torch.Tensor,
        source_lengths: torch.Tensor,
        target_in: torch.Tensor,
        teacher_forcing: float = 1.0,
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` for each position of ``target_in`` ``(B, T)`` (which starts with ``<bos>``).

        With ``teacher_forcing`` < 1, each later step of each sequence feeds the gold previous
        token with that probability and the model's own previous prediction otherwise.
        """
        if not 0.0 <= teacher_forcing <= 1.0:
            raise InvalidInputError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        encoded = self.encode_memory(source, source_lengths)
        state, feed = encoded.state
        if teacher_forcing == 1.0 and not self.config.input_feeding:
            return self.decoder.forward_all(target_in, state, encoded.keys, encoded.mask)
        token = target_in[:, 0]
        steps = []
        for t in range(target_in.shape[1]):
            logits, state, feed, _ = self.decoder.step(token, state, feed, encoded.keys, encoded.mask)
            steps.append(logits)
            if t + 1 < target_in.shape[1]:
                token = target_in[:, t + 1]
                if teacher_forcing < 1.0:
                    use_gold = torch.rand(token.shape, device=token.device) < teacher_forcing
                    token = torch.where(use_gold, token, logits.argmax(dim=-1))
        return torch.stack(steps, dim=1)
