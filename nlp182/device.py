"""Device choice (cuda, then mps, then cpu), seeding and the autocast policy."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from nlp182.errors import InvalidInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


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


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype to autocast to on ``device``: bf16 on CUDA, none elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16
    return None
