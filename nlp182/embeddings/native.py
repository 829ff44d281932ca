"""The CPU kernels (``sgns.c``: word2vec; ``cooc.c``: LSA co-occurrence counts): compiled on first
use into one shared library (``nlp182.cbuild``: cached, built atomically), called through ctypes.
ctypes releases the GIL during each call, which lets Python threads train different corpus spans
at the same time.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import torch

from nlp182.cbuild import NativeKernelUnavailable as NativeKernelUnavailable  # raised by library()
from nlp182.cbuild import build, builds
from nlp182.errors import InvalidInputError

SOURCES = (Path(__file__).with_name("sgns.c"), Path(__file__).with_name("cooc.c"))
# What sgns.c sets *examples to when it cannot train a span.
_NO_MEMORY, _BAD_ARGUMENT = -1, -2

_i64, _f32, _ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


@functools.cache
def library() -> ctypes.CDLL:
    """The compiled kernel, building it if no cached copy matches this source and compiler.

    Raises:
        NativeKernelUnavailable: there is no C compiler or it failed.
    """
    lib = build("sgns", SOURCES)
    lib.sgns_max_window.restype = lib.sgns_max_negative.restype = ctypes.c_int
    lib.sgns_train_span.restype = ctypes.c_double
    lib.sgns_train_span.argtypes = [
        _ptr, _ptr, _i64, _i64, _ptr, _ptr, _ptr, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        _ptr, _ptr, _i64, _f32, _f32, ctypes.c_uint64, ctypes.POINTER(_i64),
    ]  # fmt: skip
    lib.sgns_span_pairs.restype = _i64
    lib.sgns_span_pairs.argtypes = [_ptr, _i64, ctypes.c_int, _ptr, _ptr, _i64, ctypes.c_uint64, _ptr, _i64]
    lib.sgns_train_examples.restype = ctypes.c_double
    lib.sgns_train_examples.argtypes = [
        _ptr, _ptr, _i64, _i64, ctypes.c_int, ctypes.c_int, _ptr, ctypes.c_int, _ptr, _i64, _f32,
    ]  # fmt: skip
    lib.cooc_rows.restype = _i64
    lib.cooc_rows.argtypes = [
        _ptr, _ptr, _ptr, _ptr, _ptr, _i64, ctypes.c_int, _ptr, _i64, _i64, _ptr, _ptr, _ptr, _i64,
    ]  # fmt: skip
    return lib


def available() -> bool:
    """Whether the kernel builds (and loads) on this machine."""
    return builds(library)


def limits() -> tuple[int, int]:
    """The kernel's largest ``window`` and ``negative`` (its fixed buffer sizes, read from C)."""
    lib = library()
    return lib.sgns_max_window(), lib.sgns_max_negative()


def _int64(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int64)


def _int32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int32)


def _check_weights(*weights: torch.Tensor) -> None:
    for tensor in weights:
        if tensor.device.type != "cpu" or tensor.dtype != torch.float32 or not tensor.is_contiguous():
            raise InvalidInputError("the C kernel needs contiguous float32 CPU weight matrices")


class SpanTrainer:
    """Trains spans of an encoded corpus into shared ``(V, D)`` float32 CPU matrices, in place.

    Args:
        w_in: ``(V, D)`` input weight matrix (updated in place, Hogwild).
        w_out: ``(V, D)`` output weight matrix (updated in place, Hogwild).
        keep_prob: ``(V,)`` subsampling keep probabilities.
        noise_accept: ``(V,)`` acceptance probabilities of the noise distribution's alias table.
        noise_alias: ``(V,)`` alias ids of the noise distribution's alias table.
        window: word2vec's maximum window.
        negative: number of noise words per example.
        cbow: CBOW instead of skip-gram.
    """

    def __init__(
        self,
        w_in: torch.Tensor,
        w_out: torch.Tensor,
        keep_prob: np.ndarray,
        noise_accept: np.ndarray,
        noise_alias: np.ndarray,
        window: int,
        negative: int,
        cbow: bool,
    ) -> None:
        max_window, max_negative = limits()
        if not 1 <= window <= max_window or not 1 <= negative <= max_negative:
            raise InvalidInputError(
                f"the C kernel supports window <= {max_window} and negative <= {max_negative}"
            )
        _check_weights(w_in, w_out)
        self.lib = library()
        self.w_in, self.w_out = w_in, w_out
        self.keep_prob = np.ascontiguousarray(keep_prob, dtype=np.float32)
        self.noise_accept = np.ascontiguousarray(noise_accept, dtype=np.float32)
        self.noise_alias = _int32(noise_alias)
        self.window, self.negative, self.cbow = window, negative, cbow

    def train(
        self, ids: np.ndarray, starts: np.ndarray, alpha_start: float, alpha_end: float, seed: int
    ) -> tuple[float, int]:
        """Train on ``(N,)`` token ``ids`` cut into sentences at the ``(S + 1,)`` boundaries
        ``starts``; the learning rate falls linearly from ``alpha_start`` to ``alpha_end`` over
        the span. Returns the summed loss and the number of examples (skip-gram pairs or CBOW
        centres)."""
        ids, starts = _int32(ids), _int64(starts)
        examples = _i64(0)
        vocab, dim = self.w_in.shape
        loss = self.lib.sgns_train_span(
            self.w_in.data_ptr(), self.w_out.data_ptr(), vocab, dim,
            self.keep_prob.ctypes.data, self.noise_accept.ctypes.data, self.noise_alias.ctypes.data,
            self.window, self.negative, int(self.cbow),
            ids.ctypes.data, starts.ctypes.data, len(starts) - 1, alpha_start, alpha_end,
            seed & (2**64 - 1), ctypes.byref(examples),
        )  # fmt: skip
        _check_status(examples.value)
        return loss, examples.value


def _check_status(value: int) -> None:
    if value == _NO_MEMORY:
        raise MemoryError("the C kernel could not allocate its span buffers")
    if value == _BAD_ARGUMENT:
        raise InvalidInputError("the C kernel refused its arguments (window, negative or sentence bounds)")


def span_pairs(
    keep_prob: np.ndarray, window: int, ids: np.ndarray, starts: np.ndarray, seed: int
) -> np.ndarray:
    """The ``(P, 2)`` skip-gram (input, output) pairs the kernel visits on a span of ``ids`` with
    sentence boundaries ``starts`` (for tests)."""
    ids, starts = _int32(ids), _int64(starts)
    keep = np.ascontiguousarray(keep_prob, dtype=np.float32)
    pairs = np.empty((len(ids) * 2 * window, 2), dtype=np.int64)
    count = library().sgns_span_pairs(
        keep.ctypes.data, len(keep), window, ids.ctypes.data, starts.ctypes.data, len(starts) - 1,
        seed, pairs.ctypes.data, len(pairs),
    )  # fmt: skip
    _check_status(count)
    return pairs[:count]


def train_examples(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    inputs: np.ndarray,
    targets: np.ndarray,
    alpha: float,
    cbow: bool,
) -> float:
    """Apply explicit examples one after another, in place (for tests against the batched step).

    Args:
        w_in: ``(V, D)`` float32 CPU input weights.
        w_out: ``(V, D)`` float32 CPU output weights.
        inputs: ``(B, C)`` input ids, -1 where unused (skip-gram: ``C == 1``).
        targets: ``(B, 1 + K)`` output ids, the true word first.
        alpha: learning rate.
        cbow: average the inputs (CBOW) instead of training each alone.

    Returns:
        The summed loss.
    """
    _check_weights(w_in, w_out)
    inputs, targets = _int32(inputs), _int32(targets)
    max_window, max_negative = limits()
    if inputs.shape[1] > 2 * max_window or targets.shape[1] - 1 > max_negative:
        raise InvalidInputError("too many inputs or noise words per example for the C kernel")
    vocab, dim = w_in.shape
    return library().sgns_train_examples(
        w_in.data_ptr(), w_out.data_ptr(), vocab, dim, targets.shape[1] - 1, int(cbow),
        inputs.ctypes.data, inputs.shape[1], targets.ctypes.data, len(targets), alpha,
    )  # fmt: skip


def cooccurrence_counts(
    ids: np.ndarray, starts: np.ndarray, vocab: int, weights: np.ndarray, capacity: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric windowed co-occurrence counts of one chunk as CSR arrays ``(indptr (V + 1,),
    indices, data)``, rows in any column order.

    Args:
        ids: ``(N,)`` vocabulary ids; starts: ``(S + 1,)`` sentence boundaries in ``ids``.
        vocab: the vocabulary size ``V``.
        weights: ``(W + 1,)`` weight of a pair ``d`` tokens apart at ``weights[d]`` (positive).
        capacity: entries written per call (bounds the buffers).
    """
    ids, starts = _int32(ids), _int64(starts)
    window = len(weights) - 1
    sentence = np.repeat(np.arange(len(starts) - 1, dtype=np.int32), np.diff(starts))
    order = np.argsort(ids, kind="stable").astype(np.int64)
    row_ptr = np.zeros(vocab + 1, dtype=np.int64)
    np.cumsum(np.bincount(ids, minlength=vocab), out=row_ptr[1:])
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    capacity = max(capacity, min(vocab, 2 * window * int(np.diff(row_ptr).max(initial=0))))
    indptr_parts, col_parts, val_parts = [np.zeros(1, dtype=np.int64)], [], []
    lib, row, offset = library(), 0, 0
    while row < vocab:
        indptr = np.empty(vocab - row + 1, dtype=np.int64)
        cols = np.empty(capacity, dtype=np.int32)
        vals = np.empty(capacity, dtype=np.float64)
        rows = lib.cooc_rows(
            ids.ctypes.data, sentence.ctypes.data, starts.ctypes.data, order.ctypes.data,
            row_ptr.ctypes.data, vocab, window, weights.ctypes.data, row, vocab,
            indptr.ctypes.data, cols.ctypes.data, vals.ctypes.data, capacity,
        )  # fmt: skip
        if rows < 0:
            raise MemoryError("the C co-occurrence counter could not allocate its accumulator")
        used = int(indptr[rows])
        indptr_parts.append(indptr[1 : rows + 1] + offset)
        col_parts.append(cols[:used].copy())
        val_parts.append(vals[:used].copy())
        row, offset = row + rows, offset + used
    return np.concatenate(indptr_parts), np.concatenate(col_parts), np.concatenate(val_parts)
