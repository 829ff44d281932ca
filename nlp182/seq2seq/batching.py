"""Turn token-id pairs into padded, batch-first tensors for the encoder and the decoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader

from nlp182.errors import InvalidInputError
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID, PAD_ID


class Seq2SeqBatch(NamedTuple):
    """One padded batch.

    ``source`` ``(B, S)`` ids padded with ``<pad>``; ``source_lengths`` ``(B,)``;
    ``target_in`` ``(B, T)`` = ``<bos> y_1 .. y_n`` (decoder inputs under teacher forcing);
    ``target_out`` ``(B, T)`` = ``y_1 .. y_n <eos>`` (what each step must predict).
    """

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_in: torch.Tensor
    target_out: torch.Tensor


def pad(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Right-pad id lists with ``<pad>`` into a ``(B, max_len)`` long tensor."""
    width = max((len(seq) for seq in sequences), default=0)
    out = torch.full((len(sequences), width), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def collate(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Seq2SeqBatch:
    """Batch ``(source ids, target ids)`` pairs (no special tokens in either) for training."""
    sources = [list(src) for src, _ in pairs]
    if any(not src for src in sources):
        raise InvalidInputError("a source sentence has no tokens; drop empty lines from the data")
    return Seq2SeqBatch(
        source=pad(sources),
        source_lengths=torch.tensor([len(src) for src in sources], dtype=torch.long),
        target_in=pad([[BOS_ID, *tgt] for _, tgt in pairs]),
        target_out=pad([[*tgt, EOS_ID] for _, tgt in pairs]),
    )


def make_loader(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int, shuffle: bool, seed: int = 0
) -> DataLoader:
    """A ``DataLoader`` of :class:`Seq2SeqBatch`; shuffling uses its own seeded generator."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        list(pairs), batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator
    )
