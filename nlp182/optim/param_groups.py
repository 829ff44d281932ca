"""Which parameters get weight decay: matrices and kernels yes, biases and norm scales no.

Decaying a bias or a normalisation layer's scale and shift only pulls them toward zero without
regularising what the layer computes (they do not multiply the input), so — as in nanoGPT's
``configure_optimizers`` and timm's ``param_groups_weight_decay`` — only parameters with two or
more dimensions (linear and embedding matrices, convolution kernels) decay. A model refines the
choice itself by defining ``no_weight_decay() -> set[str]``: names of further parameters to
exempt (timm's convention), e.g. a learned positional table.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nlp182.errors import InvalidInputError


def decays(name: str, param: nn.Parameter, exempt: set[str]) -> bool:
    """True when ``param`` (called ``name`` in its model) should receive weight decay."""
    return param.dim() >= 2 and name not in exempt


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimizer parameter groups of ``model``'s trainable parameters: decayed and not.

    ``[{"params": matrices, "weight_decay": weight_decay}, {"params": the rest, "weight_decay": 0.0}]``;
    pass the list to any optimizer in place of ``model.parameters()``. Frozen parameters
    (``requires_grad=False``) are left out, and an empty group is dropped; a model with no
    trainable parameter is refused.
    """
    if weight_decay < 0:
        raise InvalidInputError(f"weight_decay must be >= 0, got {weight_decay}")
    hook = getattr(model, "no_weight_decay", None)
    exempt = set(hook()) if callable(hook) else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:  # torch's optimizers only said "optimizer got an empty parameter list"
        frozen = sum(1 for _ in model.parameters())
        raise InvalidInputError(
            f"{type(model).__name__} has no trainable parameter ({frozen} frozen, requires_grad=False); "
            "freeze a part of it (nlp182.vision.freeze(model, up_to=...)) or unfreeze it "
            "(nlp182.vision.unfreeze)"
        )
    unknown = exempt - {n for n, _ in model.named_parameters()}
    if unknown:
        raise InvalidInputError(f"no_weight_decay() names parameters the model lacks: {sorted(unknown)}")
    groups = [
        {"params": [p for n, p in named if decays(n, p, exempt)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if not decays(n, p, exempt)], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
