"""Capture and restore every random stream training touches (Python, NumPy, torch CPU and CUDA).

Restoring them on resume is what makes a resumed run bit-identical to an uninterrupted one:
dropout masks, data shuffling and augmentation draw the same numbers again.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state(generators: list[torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot the global random streams plus any extra ``generators`` (e.g. a DataLoader's)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=True),
        "torch": torch.get_rng_state(),
        "extra": [g.get_state() for g in generators or []],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generators: list[torch.Generator] | None = None) -> None:
    """Put back a snapshot taken by ``capture_rng_state`` (same ``generators``, same order)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    for generator, saved in zip(generators or [], state["extra"], strict=True):
        generator.set_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
