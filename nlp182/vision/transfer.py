"""Transfer learning: freeze the lower layers, swap the classifier, fine-tune with layer-wise learning rates.

The course recipe: on a small data set keep the pretrained network fixed and retrain only a new
head; on a medium one fine-tune more layers, the lower ones more gently. "Layers" here are the
model's top-level children in registration order (``conv1, bn1, ..., layer4, fc`` for a ResNet).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.normalization import BatchNorm


def _children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(model.named_children())


def freeze(model: nn.Module, up_to: str | None = None) -> list[str]:
    """Stop training the top-level children of ``model`` from the first one up to and including ``up_to``.

    ``up_to=None`` freezes the whole model. Frozen parameters get ``requires_grad=False`` and
    frozen :class:`BatchNorm` layers keep their running statistics (they normalise with them even
    in training mode), so the frozen part is a fixed feature extractor. Returns the frozen names.
    """
    children = _children(model)
    names = [name for name, _ in children]
    if up_to is not None and up_to not in names:
        raise InvalidInputError(f"no top-level layer named {up_to!r}; the layers are: {', '.join(names)}")
    frozen = []
    for name, child in children:
        _set_trainable(child, False)
        frozen.append(name)
        if name == up_to:
            break
    return frozen


def unfreeze(model: nn.Module) -> None:
    """Make every parameter of ``model`` trainable again and let its batch norms update their statistics."""
    _set_trainable(model, True)


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)
    for layer in module.modules():
        if isinstance(layer, BatchNorm):
            layer.frozen = not trainable


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Replace the last ``nn.Linear`` of ``model`` by a fresh one with ``num_classes`` outputs.

    The new layer keeps the old input width, device and dtype and is trainable. Returns it.
    """
    if num_classes < 1:
        raise InvalidInputError(f"num_classes must be >= 1; got {num_classes}")
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name, module
    if last is None:
        raise InvalidInputError(f"{type(model).__name__} has no nn.Linear head to replace")
    name, old = last
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], new)
    return new


def fine_tune_groups(model: nn.Module, base_lr: float, decay: float = 0.5) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per top-level child with trainable parameters.

    The last (highest) group gets ``base_lr``; each group below gets ``decay`` times the one above,
    so lower, more generic layers move less ("discriminative fine-tuning"). Frozen parameters are
    left out. Each group has ``params``, ``lr`` and ``name``; pass the list to any torch optimizer.
    """
    if base_lr <= 0 or not 0 < decay <= 1:
        raise InvalidInputError(f"need base_lr > 0 and 0 < decay <= 1; got base_lr={base_lr}, decay={decay}")
    groups = []
    for name, child in _children(model):
        params = [p for p in child.parameters() if p.requires_grad]
        if params:
            groups.append({"name": name, "params": params})
    if not groups:
        raise InvalidInputError("the model has no trainable parameters; unfreeze some layers first")
    for depth, group in enumerate(reversed(groups)):
        group["lr"] = base_lr * decay**depth
    return groups
