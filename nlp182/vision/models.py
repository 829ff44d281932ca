"""CNN families with configurable widths: VGG, a small Inception net and a small CNN; ResNet from ``resnet``.

Every model follows timm's contract (:class:`~nlp182.vision.contract.VisionModel`:
``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``), and ``width``
multiplies every channel count. Full widths reproduce the torchvision parameter counts (VGG-16
138,357,544); a ``width`` below 1 gives models that train on a CPU in seconds. The ResNets live in
:mod:`nlp182.vision.resnet` and are re-exported here. Convolutions get He init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nlp182.vision.blocks import (
    ConvBNReLU,
    GlobalAvgPool,
    InceptionModule,
    NormFactory,
    VGGBlock,
)
from nlp182.vision.contract import VisionModel, classifier_layer, scaled
from nlp182.vision.dropout import Dropout
from nlp182.vision.init import init_weights
from nlp182.vision.normalization import BatchNorm
from nlp182.vision.registry import register_model
from nlp182.vision.resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152

__all__ = ["VGG", "InceptionNet", "ResNet", "SmallCNN", "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet152", "vgg16"]


VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
#: Channels of :class:`SmallCNN`'s first stage at ``width=1``.
SMALL_CNN_CHANNELS = 16


class VGG(VisionModel):
    """VGG (Simonyan & Zisserman 2015): stacked 3x3 stages, then a fully connected classifier.

    stages: ``(channels, num_convs)`` per stage, each ending in a 2x2 max pool. The classifier pools
    to ``pool_size x pool_size`` and applies ``Linear -> ReLU -> Dropout`` twice before the output
    layer, so its pre-logit features are ``(B, hidden)`` (``head_hidden_size``).
    x: ``(B, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    classifier_name = "classifier.7"

    def __init__(
        self,
        stages: Sequence[tuple[int, int]] = VGG16_STAGES,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        hidden: int = 4096,
        pool_size: int = 7,
        dropout: float = 0.5,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_channels
        for out, convs in stages:
            blocks.append(VGGBlock(channels, scaled(out, width), convs, batch_norm))
            channels = scaled(out, width)
        self.features = nn.Sequential(*blocks)
        self.min_input_size = 2 ** len(stages)  # each block ends in a 2x2 max pool
        self.num_features = channels
        self.hidden = hidden
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            classifier_layer(hidden, num_classes),
        )
        init_weights(self, "he")

    @property
    def head_hidden_size(self) -> int:
        """Width of the classifier's hidden layers."""
        return self.hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map before pooling: ``(B, C, H, W)`` -> ``(B, num_features, h, w)``."""
        return self.features(x)

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pool to ``pool_size x pool_size`` and run the hidden layers: ``(B, hidden)``."""
        return self.classifier[:-1](self.avgpool(features))


@register_model("vgg16")
def vgg16(
    num_classes: int = 1000,
    width: float = 1.0,
    in_channels: int = 3,
    batch_norm: bool = False,
    hidden: int = 4096,
) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters at full width without BN."""
    return VGG(VGG16_STAGES, num_classes, in_channels, batch_norm, hidden, width=width)


@register_model("inception")
class InceptionNet(VisionModel):
    """A small GoogLeNet-style net: conv stem, two Inception modules, max pool, one more module, GAP head.

    x: ``(B, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()

        def c(n: int) -> int:
            return scaled(n, width)

        self.stem = ConvBNReLU(in_channels, c(64), 3)
        self.inception1 = InceptionModule(c(64), c(32), c(48), c(64), c(8), c(16), c(16))
        self.inception2 = InceptionModule(
            self.inception1.out_channels, c(64), c(64), c(96), c(16), c(48), c(32)
        )
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.inception3 = InceptionModule(
            self.inception2.out_channels, c(96), c(48), c(104), c(8), c(24), c(32)
        )
        self.avgpool = GlobalAvgPool()
        self.num_features = self.inception3.out_channels
        self.fc = classifier_layer(self.num_features, num_classes)
        init_weights(self, "he")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last module's feature map before pooling: ``(B, C, H, W)`` -> ``(B, num_features, h, w)``."""
        x = self.pool(self.inception2(self.inception1(self.stem(x))))
        return self.inception3(x)

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool: ``(B, num_features, h, w)`` -> ``(B, num_features)``."""
        return self.avgpool(features)


@register_model("small_cnn")
class SmallCNN(VisionModel):
    """A small CNN for tiny images (8x8 digits): two conv-BN-ReLU stages around a 2x2 max pool, GAP head.

    The first stage has ``16 x width`` channels (:data:`SMALL_CNN_CHANNELS`), the second twice that.
    x: ``(B, in_channels, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: float = 1.0,
        dropout: float = 0.0,
        norm: NormFactory = BatchNorm,
    ) -> None:
        super().__init__()
        c = scaled(SMALL_CNN_CHANNELS, width)
        self.block1 = nn.Sequential(ConvBNReLU(in_channels, c, norm=norm), ConvBNReLU(c, c, norm=norm))
        self.pool = nn.MaxPool2d(2)
        self.min_input_size = 2
        self.block2 = nn.Sequential(ConvBNReLU(c, 2 * c, norm=norm), ConvBNReLU(2 * c, 2 * c, norm=norm))
        self.avgpool = GlobalAvgPool()
        self.dropout = Dropout(dropout)
        self.num_features = 2 * c
        self.fc = classifier_layer(self.num_features, num_classes)
        init_weights(self, "he")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling: ``(B, C, H, W)`` -> ``(B, num_features, H / 2, W / 2)``."""
        return self.block2(self.pool(self.block1(x)))

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool, then dropout: ``(B, num_features, h, w)`` -> ``(B, num_features)``."""
        return self.dropout(self.avgpool(features))
