"""The CPU word2vec kernel (``sgns.c``): compiled on first use, cached, called through ctypes.

Building it needs only a C compiler (``$CC`` or ``cc``), not PyTorch's headers, so it takes about
a second. The shared library is cached under ``$NLP182_CACHE`` (default ``~/.cache/nlp182``),
named by a hash of the source, the flags and the compiler, and written atomically, so concurrent
first uses and upgrades are safe. ctypes releases the GIL during each call, which lets Python
threads train different corpus spans at the same time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from nlp182.errors import InvalidInputError, Nlp182Error

SOURCE = Path(__file__).with_name("sgns.c")
# The parts of -ffast-math that let the compiler vectorise the dot products, without -ffast-math
# itself: linked into a shared library it sets flush-to-zero for the whole process (crtfastmath).
FLAGS = (
    "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
    "-fno-signed-zeros", "-freciprocal-math", "-fPIC", "-shared", "-std=c11",
)  # fmt: skip
MAX_WINDOW = 128
MAX_NEGATIVE = 64

_i64, _f32, _ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


class NativeKernelUnavailable(Nlp182Error, RuntimeError):
    """The C kernel could not be built here (no compiler, or compilation failed)."""

    status = 500
    code = "native_kernel_unavailable"


def cache_folder() -> Path:
    return Path(os.environ.get("NLP182_CACHE", Path.home() / ".cache" / "nlp182"))


def _compile(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, "-o", temporary, str(SOURCE), "-lm"], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise NativeKernelUnavailable(f"{compiler} failed on {SOURCE.name}: {done.stderr.strip()}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _cpu_signature() -> bytes:
    """The machine type and, on Linux, the CPU's feature flags: ``-march=native`` code built on
    one CPU may not run on another that shares the cache folder (a network home, say)."""
    signature = platform.machine()
    with contextlib.suppress(OSError):
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
        signature += flags[0] if flags else ""
    return signature.encode()


@functools.cache
def library() -> ctypes.CDLL:
    """The compiled kernel, building it if no cached copy matches this source and compiler.

    Raises:
        NativeKernelUnavailable: there is no C compiler or it failed.
    """
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise NativeKernelUnavailable("no C compiler found (set $CC or install gcc)")
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        " ".join(FLAGS).encode(),
        compiler.encode(),
        _cpu_signature(),
    ):
        key.update(part)
    target = cache_folder() / f"sgns-{key.hexdigest()[:16]}.so"
    try:
        if not target.exists():
            _compile(compiler, target)
        lib = ctypes.CDLL(str(target))
    except OSError as exc:  # unwritable cache folder, unloadable library
        raise NativeKernelUnavailable(f"cannot build or load {target}: {exc}") from exc
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
    return lib


def available() -> bool:
    """Whether the kernel builds (and loads) on this machine."""
    try:
        library()
    except NativeKernelUnavailable:
        return False
    return True


def _int64(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int64)


def _check_weights(*weights: torch.Tensor) -> None:
    for tensor in weights:
        if tensor.device.type != "cpu" or tensor.dtype != torch.float32 or not tensor.is_contiguous():
            raise InvalidInputError("the C kernel needs contiguous float32 CPU weight matrices")


class SpanTrainer:
    """Trains spans of an encoded corpus into shared ``(V, D)`` float32 CPU matrices, in place.

    Args:
        w_in, w_out: the input and output weight matrices (updated in place, Hogwild).
        keep_prob: ``(V,)`` subsampling keep probabilities.
        noise_accept, noise_alias: ``(V,)`` alias tables of the noise distribution.
        window, negative: word2vec's window and number of noise words.
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
        if not 1 <= window <= MAX_WINDOW or not 1 <= negative <= MAX_NEGATIVE:
            raise InvalidInputError(
                f"the C kernel supports window <= {MAX_WINDOW} and negative <= {MAX_NEGATIVE}"
            )
        _check_weights(w_in, w_out)
        self.lib = library()
        self.w_in, self.w_out = w_in, w_out
        self.keep_prob = np.ascontiguousarray(keep_prob, dtype=np.float32)
        self.noise_accept = np.ascontiguousarray(noise_accept, dtype=np.float32)
        self.noise_alias = _int64(noise_alias)
        self.window, self.negative, self.cbow = window, negative, cbow

    def train(
        self, ids: np.ndarray, sentence: np.ndarray, alpha_start: float, alpha_end: float, seed: int
    ) -> tuple[float, int]:
        """Train on ``(N,)`` token ``ids`` with their ``(N,)`` ``sentence`` numbers; the learning
        rate falls linearly from ``alpha_start`` to ``alpha_end`` over the span. Returns the summed
        loss and the number of examples (skip-gram pairs or CBOW centres)."""
        ids, sentence = _int64(ids), _int64(sentence)
        examples = _i64(0)
        vocab, dim = self.w_in.shape
        loss = self.lib.sgns_train_span(
            self.w_in.data_ptr(), self.w_out.data_ptr(), vocab, dim,
            self.keep_prob.ctypes.data, self.noise_accept.ctypes.data, self.noise_alias.ctypes.data,
            self.window, self.negative, int(self.cbow),
            ids.ctypes.data, sentence.ctypes.data, len(ids), alpha_start, alpha_end,
            seed & (2**64 - 1), ctypes.byref(examples),
        )  # fmt: skip
        if examples.value < 0:
            raise MemoryError("the C kernel could not allocate its span buffers")
        return loss, examples.value


def span_pairs(
    keep_prob: np.ndarray, window: int, ids: np.ndarray, sentence: np.ndarray, seed: int
) -> np.ndarray:
    """The ``(P, 2)`` skip-gram (input, output) pairs the kernel visits on a span (for tests)."""
    ids, sentence = _int64(ids), _int64(sentence)
    keep = np.ascontiguousarray(keep_prob, dtype=np.float32)
    pairs = np.empty((len(ids) * 2 * window, 2), dtype=np.int64)
    count = library().sgns_span_pairs(
        keep.ctypes.data, len(keep), window, ids.ctypes.data, sentence.ctypes.data, len(ids),
        seed, pairs.ctypes.data, len(pairs),
    )  # fmt: skip
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
        w_in, w_out: ``(V, D)`` float32 CPU weights.
        inputs: ``(B, C)`` input ids, -1 where unused (skip-gram: ``C == 1``).
        targets: ``(B, 1 + K)`` output ids, the true word first.
        alpha: learning rate.
        cbow: average the inputs (CBOW) instead of training each alone.
    Returns the summed loss.
    """
    _check_weights(w_in, w_out)
    inputs, targets = _int64(inputs), _int64(targets)
    if inputs.shape[1] > 2 * MAX_WINDOW or targets.shape[1] - 1 > MAX_NEGATIVE:
        raise InvalidInputError("too many inputs or noise words per example for the C kernel")
    vocab, dim = w_in.shape
    return library().sgns_train_examples(
        w_in.data_ptr(), w_out.data_ptr(), vocab, dim, targets.shape[1] - 1, int(cbow),
        inputs.ctypes.data, inputs.shape[1], targets.ctypes.data, len(targets), alpha,
    )  # fmt: skip
