"""Moving arbitrarily nested batches to a device and measuring their size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Return ``batch`` with every tensor inside tuples, lists and dicts moved to ``device``.

    Other leaves (strings, numbers, ``None``) pass through unchanged; named tuples keep their type.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({key: move_to_device(value, device) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(value, device) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def batch_size_of(batch: Any) -> int | None:
    """The leading dimension of the first tensor found in ``batch`` (``None`` when there is none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    if isinstance(batch, Mapping):
        values: Any = batch.values()
    else:
        values = batch if isinstance(batch, list | tuple) else ()
    for value in values:
        size = batch_size_of(value)
        if size is not None:
            return size
    return None
