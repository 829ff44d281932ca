"""What every registered vision model answers (timm's model contract) and what ``width`` means.

A model splits its forward pass in two: :meth:`VisionModel.forward_features` gives the last
feature map ``(B, num_features, h, w)``; :meth:`VisionModel.forward_head` turns it into logits
(``pre_logits=True`` stops just before the classifier layer). :meth:`VisionModel.get_classifier`
is that layer and :meth:`VisionModel.reset_classifier` swaps it for a fresh one with a new number
of classes, so transfer learning, captioning backbones and distillation students never guess
which layer is the head. As in timm, ``num_classes=0`` (to a constructor or ``reset_classifier``)
makes the classifier ``nn.Identity``: the model then returns its pre-logit features, and
``model.num_classes`` is 0. ``width`` is a channel multiplier for every model (:func:`scaled`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.init import init_weights


def scaled(channels: int, width: float) -> int:
    """``channels`` times the ``width`` multiplier, rounded, at least 1."""
    if width <= 0:
        raise InvalidInputError(f"width multiplier must be > 0; got {width}")
    return max(1, round(channels * width))


def classifier_layer(in_features: int, num_classes: int, per_pixel: bool = False) -> nn.Module:
    """A model's classifier from ``in_features`` to ``num_classes`` outputs: ``nn.Linear``, or a
    1x1 ``nn.Conv2d`` for a segmenter (``per_pixel``); ``nn.Identity`` for 0 classes (timm's
    feature extractor)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise InvalidInputError(
            f"num_classes must be a whole number >= 0 (0: no classifier, features out); got {num_classes!r}"
        )
    if num_classes == 0:
        return nn.Identity()
    return nn.Conv2d(in_features, num_classes, 1) if per_pixel else nn.Linear(in_features, num_classes)


class VisionModel(nn.Module, ABC):
    """Base of the registered models: ``forward(x) == forward_head(forward_features(x))``.

    A subclass sets ``num_features`` (channels of the :meth:`forward_features` map), names its
    classifier layer in ``classifier_name`` (a dotted path to an ``nn.Linear`` or a 1x1
    ``nn.Conv2d``) and defines :meth:`forward_features` and :meth:`pre_logits`.
    ``head_hidden_size`` is the width of the pre-logit features (``num_features`` unless the
    head has hidden layers, as VGG's has).
    """

    num_features: int
    classifier_name: str = "fc"
    per_pixel: bool = False  # a segmenter: its classifier is a 1x1 convolution over the map
    classifier_bias: bool = True  # whether a classifier made by reset_classifier has a bias
    #: The smallest height and width the model's pooling leaves at least one pixel of.
    min_input_size: int = 1

    @property
    def head_hidden_size(self) -> int:
        """Channels of what ``forward_head(x, pre_logits=True)`` returns."""
        return self.num_features

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map before the head: ``(B, C, H, W)`` -> ``(B, num_features, h, w)``."""

    @abstractmethod
    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head up to its classifier: pooled ``(B, head_hidden_size)`` for a classifier, the map
        ``(B, num_features, H, W)`` for a segmenter."""

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from the :meth:`forward_features` map, or the pre-logit features with ``pre_logits``."""
        x = self.pre_logits(features)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` (a segmenter's: ``(B, num_classes, H, W)``) for ``(B, C, H, W)``."""
        if x.dim() == 4 and min(x.shape[-2:]) < self.min_input_size:  # torch's error names a pool's output
            raise ShapeError(f"{type(self).__name__} takes images of at least {self.min_input_size}x"
                             f"{self.min_input_size} pixels (its pooling halves them); got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The layer that maps pre-logit features to logits (``nn.Identity`` with 0 classes)."""
        return self.get_submodule(self.classifier_name)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier; 0 when there is none (the model returns its features)."""
        layer = self.get_classifier()
        if isinstance(layer, nn.Conv2d):
            return layer.out_channels
        return layer.out_features if isinstance(layer, nn.Linear) else 0

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised, trainable one with ``num_classes`` outputs
        (``nn.Identity`` for 0).

        The new layer takes the pre-logit features (``head_hidden_size`` wide; ``num_features`` for
        a segmenter) and keeps the model's device and dtype, and the old layer's bias or its absence.
        """
        new = classifier_layer(self.num_features if self.per_pixel else self.head_hidden_size, num_classes,
                               self.per_pixel)
        old = self.get_classifier()
        if isinstance(old, nn.Linear | nn.Conv2d):  # remembered through a reset to no classifier
            self.classifier_bias = old.bias is not None
        if isinstance(new, nn.Linear | nn.Conv2d):
            if not self.classifier_bias:
                new.bias = None
            like = next(self.parameters())
            new = new.to(device=like.device, dtype=like.dtype)
            init_weights(new, "he")
        parent, _, name = self.classifier_name.rpartition(".")
        setattr(self.get_submodule(parent), name, new)
