"""Vision models by name: a model builder registers itself with :func:`register_model`, as in timm.

``create_model("resnet18", num_classes=10, width=0.25)`` builds any registered model, so run
configs, benchmarks, captioning backbones, distillation students and the CLI choose models with a
string. Every registered model is a :class:`~nlp182.vision.contract.VisionModel`
(``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``). Classifiers live in
``nlp182/vision/models.py`` and segmenters in ``nlp182/vision/segmentation.py``; a new model is a
decorated function or class in one of them (both are imported on the first lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.registry import Builder, Registry

TASKS = ("classification", "segmentation")
_HOMES = ("nlp182.vision.models", "nlp182.vision.segmentation")


def _discover() -> None:
    for module in _HOMES:
        importlib.import_module(module)


MODELS = Registry("vision model", _discover)


def register_model(name: str, task: str = "classification") -> Callable[[Builder], Builder]:
    """Decorator: register a builder (function or class) of ``nn.Module`` under ``name``.

    Builders take keyword arguments; every one accepts ``num_classes``, ``in_channels`` and
    ``width`` (a multiplier of every channel count; 1 is the model's standard size) and returns a
    :class:`~nlp182.vision.contract.VisionModel`. ``task`` is ``classification`` (logits
    ``(B, K)``) or ``segmentation`` (logits ``(B, K, H, W)``).
    """
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return MODELS.register(name, task=task)


def list_models(task: str | None = None) -> tuple[str, ...]:
    """Registered model names (of one ``task`` if given), in registration order."""
    return MODELS.names() if task is None else MODELS.names(task=task)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (e.g. ``num_classes``, ``width``)."""
    return MODELS.entry(name).builder(**kwargs)
