"""LSA's co-occurrence counts and PPMI as torch operations on the device (a GPU), for ``lsa.py``.

Each corpus chunk goes to the device as ``int64`` ids and sentence numbers; for every window
offset ``d`` the pairs of tokens ``d`` apart in one sentence become keys ``left * V + right`` with
the weight of ``d``, and ``torch.unique`` (a sort) with ``index_add_`` sums the weights of equal
keys. Chunks' sums are merged the same way, and the counts are made symmetric at the end (each
pair was counted once, left to right). PPMI follows on the non-zeros, and the result is a sparse
CSR tensor on the device for the randomized SVD: the CPU path (``lsa.cooccurrence``, the C
counter, and ``lsa.ppmi`` in scipy) stays as it was, and is what this is tested against.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nlp182.progress import progress
from nlp182.text.encoded import Chunk, EncodedCorpus


def _sum_equal_keys(keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct ``keys`` (sorted) and the sum of the ``values`` of each."""
    distinct, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    sums = torch.zeros(len(distinct), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    return distinct, sums


def chunk_pairs(
    chunk: Chunk, size: int, weights: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk's left-to-right pair counts: ``(P,)`` int64 keys ``left * size + right``, sorted and
    distinct, and ``(P,)`` float64 summed weights (``weights[d]`` for a pair ``d`` tokens apart
    in one sentence, ``(W + 1,)``)."""
    ids = torch.as_tensor(chunk.ids, device=device).long()
    lengths = torch.as_tensor(chunk.starts, device=device).diff()
    sentence = torch.arange(len(lengths), device=device).repeat_interleave(lengths, output_size=len(ids))
    keys, values = [], []
    for offset in range(1, len(weights)):
        same = sentence[:-offset] == sentence[offset:]
        keys.append((ids[:-offset] * size + ids[offset:])[same])
        weight = float(weights[offset])
        values.append(torch.full((len(keys[-1]),), weight, dtype=torch.float64, device=device))
    return _sum_equal_keys(torch.cat(keys), torch.cat(values))


def count_on_device(
    corpus: EncodedCorpus, size: int, weights: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric co-occurrence counts of ``corpus`` over a ``size``-word vocabulary: ``(P,)``
    int64 keys ``row * size + column``, sorted and distinct, and their ``(P,)`` float64 counts."""
    keys = torch.zeros(0, dtype=torch.int64, device=device)
    values = torch.zeros(0, dtype=torch.float64, device=device)
    with progress(total=corpus.raw_words, desc="counting co-occurrences", unit="tok", unit_scale=True) as bar:
        for chunk in corpus:
            chunk_keys, chunk_values = chunk_pairs(chunk, size, weights, device)
            keys, values = _sum_equal_keys(torch.cat([keys, chunk_keys]), torch.cat([values, chunk_values]))
            bar.update(chunk.raw_words)
    transposed = keys % size * size + keys // size
    return _sum_equal_keys(torch.cat([keys, transposed]), torch.cat([values, values]))


def ppmi_on_device(
    keys: torch.Tensor, counts: torch.Tensor, size: int, cds_alpha: float = 0.75, shift: float = 1.0
) -> torch.Tensor:
    """Shifted positive PMI with context-distribution smoothing of the ``(P,)`` counts at ``(P,)``
    keys ``row * size + column`` (as ``lsa.ppmi``, on the non-zeros only); a ``(size, size)``
    float32 sparse CSR tensor on the counts' device."""
    rows, cols = keys // size, keys % size
    word_totals = torch.zeros(size, dtype=counts.dtype, device=counts.device).index_add_(0, rows, counts)
    context = torch.zeros(size, dtype=counts.dtype, device=counts.device).index_add_(0, cols, counts)
    smoothed = context**cds_alpha
    pmi = counts.log() + smoothed.sum().log() - word_totals[rows].log() - smoothed[cols].log()
    pmi -= math.log(shift)
    keep = pmi > 0
    rows, cols, pmi = rows[keep], cols[keep], pmi[keep].float()
    indptr = torch.zeros(size + 1, dtype=torch.int64, device=counts.device)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=size), 0)
    return torch.sparse_csr_tensor(indptr, cols, pmi, (size, size), check_invariants=False)
