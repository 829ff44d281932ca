"""Vision models by name: a model builder registers itself with :func:`register_model`, as in timm.

``create_model("resnet18", num_classes=10, width=0.25)`` builds any registered model, so run
configs, benchmarks and the CLI choose models with a string. Classifiers live in
``nlp182/vision/models.py`` and segmenters in ``nlp182/vision/segmentation.py``; a new model is a
decorated function or class in one of them (both are imported on the first lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from nlp182.errors import InvalidInputError

Builder = Callable[..., nn.Module]
TASKS = ("classification", "segmentation")
_HOMES = ("nlp182.vision.models", "nlp182.vision.segmentation")


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: its name, its builder and its task (what its logits mean)."""

    name: str
    builder: Builder
    task: str


_MODELS: dict[str, RegisteredModel] = {}


def register_model(name: str, task: str = "classification") -> Callable[[Builder], Builder]:
    """Decorator: register a builder (function or class) of ``nn.Module`` under ``name``.

    Builders take keyword arguments; every one accepts ``num_classes``, ``in_channels`` and
    ``width``. ``task`` is ``classification`` (logits ``(B, K)``) or ``segmentation``
    (logits ``(B, K, H, W)``).
    """
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise InvalidInputError(f"vision model {name!r} is registered twice")
        _MODELS[name] = RegisteredModel(name, builder, task)
        return builder

    return decorate


def _discover() -> None:
    for module in _HOMES:
        importlib.import_module(module)


def list_models(task: str | None = None) -> tuple[str, ...]:
    """Registered model names (of one ``task`` if given), in registration order."""
    _discover()
    return tuple(name for name, entry in _MODELS.items() if task is None or entry.task == task)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (e.g. ``num_classes``, ``width``)."""
    names = list_models()
    if name not in names:
        raise InvalidInputError(f"unknown vision model {name!r}; use one of {', '.join(names)}")
    return _MODELS[name].builder(**kwargs)
