"""Transfer learning: freeze the lower layers, swap the classifier, fine-tune with layer-wise learning rates.

The course recipe: on a small data set keep the pretrained network fixed and retrain only a new
head (``model.reset_classifier(num_classes)``, the model contract of
:mod:`nlp182.vision.contract`); on a medium one fine-tune more layers, the lower ones more gently.
"Layers" here are the model's top-level children in registration order (``conv1, bn1, ...,
layer4, fc`` for a ResNet).
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.normalization import BatchNorm


def _children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(model.named_children())


def freeze(model: nn.Module, up_to: str | None = None) -> list[str]:
    """Stop training the top-level children of ``model`` from the first one up to and including ``up_to``.

    ``up_to=None`` freezes the whole model. Frozen parameters get ``requires_grad=False`` and
    frozen batch norms (this package's :class:`BatchNorm` and ``torch.nn``'s) keep their running
    statistics (they normalise with them even in training mode), so the frozen part is a fixed
    feature extractor. Returns the frozen names.
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
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            _hold_statistics(layer, not trainable, module.training)


def _hold_statistics(layer: nn.Module, hold: bool, training: bool) -> None:
    """Keep a ``torch.nn`` batch norm in evaluation mode (running statistics used, not updated)
    whatever ``model.train()`` says, and its statistics whatever resets them (``update_bn``
    resets every batch norm's, and a frozen one would never fill them again); or release it to
    follow ``training`` again."""
    handle = getattr(layer, "_frozen_statistics", None)
    if hold and handle is None:
        layer._frozen_statistics = layer.register_forward_pre_hook(_use_running_statistics)
        layer.reset_running_stats = functools.partial(_keep_running_statistics, layer)
    elif not hold and handle is not None:
        handle.remove()
        del layer._frozen_statistics
        del layer.reset_running_stats  # the class's own again
        layer.train(training)


def _keep_running_statistics(norm: nn.Module) -> None:
    """A frozen ``torch.nn`` batch norm's ``reset_running_stats``: the statistics stay."""


def _use_running_statistics(norm: nn.Module, inputs: tuple[Any, ...]) -> None:
    """Forward pre-hook of a frozen ``torch.nn`` batch norm (a module-level function, so a frozen
    model still pickles: ``torch.save(model)``, multiprocessing)."""
    norm.train(False)


def fine_tune_groups(model: nn.Module, base_lr: float, decay: float = 0.5) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per top-level child with trainable parameters.

    The last (highest) group gets ``base_lr``; each group below gets ``decay`` times the one above,
    so lower, more generic layers move less ("discriminative fine-tuning"). Trainable parameters
    held by the model itself rather than a child (a position embedding, a class token) form the
    lowest group, named ``""``, as layer-wise decay treats embeddings. Frozen parameters are left
    out, and a parameter shared by two children (tied weights) is in the first group only. Each
    group has ``params``, ``lr`` and ``name``; pass the list to any torch optimizer.
    """
    if base_lr <= 0 or not 0 < decay <= 1:
        raise InvalidInputError(f"need base_lr > 0 and 0 < decay <= 1; got base_lr={base_lr}, decay={decay}")
    seen: set[int] = set()
    groups = []
    owners = [("", list(model.parameters(recurse=False)))]
    owners += [(name, list(child.parameters())) for name, child in _children(model)]
    for name, parameters in owners:
        params = [p for p in parameters if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append({"name": name, "params": params})
    if not groups:
        raise InvalidInputError("the model has no trainable parameters; unfreeze some layers first")
    for depth, group in enumerate(reversed(groups)):
        group["lr"] = base_lr * decay**depth
    return groups
