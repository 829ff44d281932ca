"""What every registered vision model answers (timm's model contract) and what ``width`` means.

A model splits its forward pass in two: :meth:`VisionModel.forward_features` gives the last
feature map ``(B, num_features, h, w)``; :meth:`VisionModel.forward_head` turns it into logits
(``pre_logits=True`` stops just before the classifier layer). :meth:`VisionModel.get_classifier`
is that layer and :meth:`VisionModel.reset_classifier` swaps it for a fresh one with a new number
of classes, so transfer learning, captioning backbones and distillation students never guess
which layer is the head. ``width`` is a channel multiplier for every model (:func:`scaled`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.init import init_weights


def scaled(channels: int, width: float) -> int:
    """``channels`` times the ``width`` multiplier, rounded, at least 1."""
    if width <= 0:
        raise InvalidInputError(f"width multiplier must be > 0; got {width}")
    return max(1, round(channels * width))


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
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The layer that maps pre-logit features to logits."""
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised, trainable one with ``num_classes`` outputs.

        The new layer keeps the old one's input width, bias, device and dtype.
        """
        if num_classes < 1:
            raise InvalidInputError(f"num_classes must be >= 1; got {num_classes}")
        old = self.get_classifier()
        factory = {"device": old.weight.device, "dtype": old.weight.dtype, "bias": old.bias is not None}
        if isinstance(old, nn.Conv2d):
            new: nn.Module = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, **factory)
        else:
            new = nn.Linear(old.in_features, num_classes, **factory)
        init_weights(new, "he")
        parent, _, name = self.classifier_name.rpartition(".")
        setattr(self.get_submodule(parent), name, new)
