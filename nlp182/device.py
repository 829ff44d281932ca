"""Device choice (cuda, then mps, then cpu), seeding and the autocast policy."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from nlp182.errors import InvalidInputError
from nlp182.settings import DEVICE_CHOICES


def select_device(name: str | None = "auto") -> torch.device:
    """Return the device to run on.

    ``"auto"`` (or ``None``) picks cuda when available, then Apple's mps, then cpu. An explicit
    name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is honoured, and an unavailable one
    is an error rather than a silent fallback, so a user who asked for a GPU knows they lack one.
    """
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device 'mps' requested but MPS is not available; use --device cpu")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator seeded the same.

    Returning a generator lets callers draw their own random streams without touching the global
    state that other code also consumes.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """Within the block, seeding and drawing change the process's random state as they will; after
    it, Python's, NumPy's and torch's generators (every CUDA device's too) and ``PYTHONHASHSEED``
    are as they were: a training call seeded for its own reproducibility used to reset a notebook's
    random streams to its seed."""
    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    hash_seed = os.environ.get("PYTHONHASHSEED")
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if hash_seed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = hash_seed


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[None]:
    """Within the block, PyTorch computes on ``threads`` CPU threads (None: as many as before); the
    count it had is put back after, whatever the block set, so a training call leaves a notebook's
    later work on the threads it had (``threads=1`` used to stay 1 for the rest of the process)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: cuBLAS's deterministic workspace setting (CUDA's documented value: 8 buffers of 4 MiB).
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Within the block, make a seeded run on one GPU repeat exactly (when ``enabled``).

    Sets ``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS otherwise splits some products differently from call
    to call; it takes effect for cuBLAS handles made afterwards, so enter this before the first
    CUDA product), ``torch.use_deterministic_algorithms`` (deterministic kernels for scatters,
    index_add and embedding backward, which otherwise add in whatever order atomics land) and
    cuDNN's deterministic, non-benchmarking mode. An operation without a deterministic kernel
    warns instead of failing (``warn_only``), so the warning names what stays non-deterministic.
    Everything is restored on exit. On a CPU the flags change nothing measurable: its kernels are
    already deterministic for a fixed thread count.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = previous[4] or CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
        if previous[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype to autocast to on ``device``: bf16 on CUDA, none elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16
    return None
