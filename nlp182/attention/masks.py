"""Boolean attention masks and the masked softmax every attention module shares.

Convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a mask is a bool
tensor broadcastable to the score shape ``(B, Tq, Tk)`` (or ``(B, H, Tq, Tk)``) and ``True``
means "this query may attend to this key". A query row whose keys are all masked gets zero
weights and a zero context rather than the NaN a plain softmax over ``-inf`` would give, and its
gradients are zero too.
"""

from __future__ import annotations

import torch

from nlp182.errors import InvalidInputError, ShapeError


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Key-padding mask from sequence lengths.

    Args:
        lengths: ``(B,)`` integer lengths of the real (non-pad) prefix of each sequence.
        max_len: padded length ``Tk``; defaults to ``lengths.max()``.

    Returns:
        ``(B, 1, Tk)`` bool mask, ``True`` on real tokens, ready to broadcast over queries. For
        scores with a heads axis ``(B, H, Tq, Tk)`` add one: ``padding_mask(lengths)[:, None]``
        (as it is, its ``B`` would line up with the heads).
    """
    if lengths.dim() != 1:
        raise ShapeError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if max_len is not None and tracing(lengths):  # compiled, exported or vmapped: no value checks
        width = int(max_len)
    else:
        if lengths.numel() and int(lengths.min()) < 0:
            raise InvalidInputError("lengths must be non-negative")
        longest = int(lengths.max()) if lengths.numel() else 0
        width = longest if max_len is None else int(max_len)
        if width < longest:
            raise InvalidInputError(f"max_len={width} is shorter than the longest sequence ({longest})")
    positions = torch.arange(width, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1)


def causal_mask(
    query_len: int, key_len: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Causal (look-back only) mask aligned top-left, as ``is_causal=True`` in PyTorch.

    Returns:
        ``(Tq, Tk)`` bool mask with ``True`` where key index ``j <= i`` for query index ``i``.
    """
    key_len = query_len if key_len is None else key_len
    return torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril()


def merge_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """All the given masks at once (``None`` entries are skipped); ``None`` if all are ``None``.

    Each mask is broadcastable to ``(B, Tq, Tk)``; the result has their broadcast shape. Bool masks
    (``True`` = attend) are ANDed. A float mask is additive, as PyTorch's float masks are (``-inf``
    = not allowed, other values added to the scores): float masks add up, and a bool mask sets
    ``-inf`` where it forbids, so the result is float as soon as one mask is.
    """
    merged: torch.Tensor | None = None
    for mask in masks:
        if mask is None:
            continue
        if merged is None:
            merged = mask
        elif merged.is_floating_point() and mask.is_floating_point():
            merged = merged + mask
        elif merged.is_floating_point() or mask.is_floating_point():
            additive, allowed = (merged, mask) if merged.is_floating_point() else (mask, merged)
            merged = torch.where(allowed, additive, float("-inf"))
        else:
            merged = merged & mask
    return merged


def split_additive(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(allowed, bias)`` of a mask: a bool mask is ``(mask, None)``; a float (additive) mask gives
    ``allowed = mask != -inf`` and ``bias`` its values there (0 elsewhere), both of its shape, so
    a row with no allowed key still gets zero weights and a zero context."""
    if mask is None or not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        return mask, None
    allowed = mask != float("-inf")
    return allowed, mask.masked_fill(~allowed, 0.0)


def from_torch_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    """This package's mask from a PyTorch-style one, of any shape.

    PyTorch's ``key_padding_mask`` / ``attn_mask`` are either bool with ``True`` = ignore, turned
    into ``True`` = attend here, or float and added to the scores (``0`` and ``-inf`` for a plain
    mask, other values for a bias such as ALiBi's or a ``-1e9`` "mask"), kept as they are: an
    additive mask means the same in both packages (see :func:`merge_masks`).
    """
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"{name} must be a torch tensor, got {type(mask).__name__} "
                                "(torch.as_tensor converts an array)")
    if mask.dtype == torch.bool:
        return ~mask
    if mask.is_floating_point():
        return mask
    raise InvalidInputError(f"{name} must be bool (True = ignore) or float (added to the scores); "
                            f"got {mask.dtype}")


def tracing(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is being traced (``torch.compile``, ``torch.export``) or transformed
    (``vmap``, ``grad``), where a branch on its values cannot run."""
    if torch.compiler.is_compiling() or getattr(torch.compiler, "is_exporting", bool)():
        return True
    from torch._subclasses.fake_tensor import is_fake

    if is_fake(tensor):  # export's non-strict tracing runs the module on fake tensors
        return True
    from torch._C._functorch import is_functorch_wrapped_tensor

    return bool(is_functorch_wrapped_tensor(tensor))


def check_mask(mask: torch.Tensor | None, score_shape: torch.Size) -> None:
    """Raise a package error unless ``mask`` is a bool tensor broadcastable to ``score_shape``."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"attention masks must be bool torch tensors, got {type(mask).__name__} "
                                "(torch.as_tensor converts an array)")
    if mask.dtype != torch.bool:
        raise InvalidInputError(f"attention masks must be bool (True = attend), got dtype {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, score_shape)
    except RuntimeError as exc:
        raise ShapeError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to scores {tuple(score_shape)}; "
            f"{_mask_advice(len(score_shape))}"
        ) from exc
    if broadcast != score_shape:
        raise ShapeError(f"mask of shape {tuple(mask.shape)} is larger than scores {tuple(score_shape)}")


def _mask_advice(rank: int) -> str:
    """The mask shapes to use for scores of ``rank`` dimensions."""
    if rank == 4:
        return ("use (B, 1, 1, Tk) for key padding (padding_mask(lengths)[:, None]) or (Tq, Tk) for "
                "causal masks")
    return "use (B, 1, Tk) for key padding or (Tq, Tk) for causal masks"


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Log-softmax over the last axis with masked keys at ``-inf``; fully masked rows give all ``-inf``.

    Args:
        scores: ``(..., Tq, Tk)`` attention logits.
        mask: bool, broadcastable to ``scores``; ``True`` = attend.
    """
    if mask is None:
        return torch.log_softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    # Rows with no valid key: softmax over zeros (finite, so no NaN in forward or backward) ...
    scores = scores.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    # ... then every entry of such a row is masked out again.
    return torch.log_softmax(scores, dim=-1).masked_fill(~mask, float("-inf"))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis ignoring masked keys; a fully masked row is all zeros.

    Args:
        scores: ``(..., Tq, Tk)`` attention logits.
        mask: bool, broadcastable to ``scores``; ``True`` = attend.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    scores = scores.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)
