"""ResNet (He et al. 2016) at depths 18, 34, 50, 101 and 152, laid out as torchvision's ``resnet`` module.

``from nlp182.vision import resnet`` gives this module: ``resnet.resnet50(num_classes=10)``,
``resnet.ResNet``, ``resnet.BasicBlock`` as in torchvision, and calling the module itself builds
one by depth, ``resnet(depth=18, num_classes=10, width=0.25)``. Full widths reproduce torchvision's
parameter counts (:data:`PARAMETERS`); a ``width`` below 1 gives models that train on a CPU in
seconds. ``small_input=True`` swaps the ImageNet stem (7x7 stride-2 conv + max pool) for a 3x3
stride-1 conv so tiny images (8x8 digits, 32x32 shapes) are not reduced to nothing.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.blocks import BasicBlock, Bottleneck, GlobalAvgPool, NormFactory
from nlp182.vision.contract import VisionModel, classifier_layer, scaled
from nlp182.vision.init import init_weights
from nlp182.vision.normalization import BatchNorm
from nlp182.vision.registry import Builder, register_model

__all__ = ["PARAMETERS", "BasicBlock", "Bottleneck", "ResNet", "resnet",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

#: Block type and blocks per stage of each depth (the paper's Table 1).
LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
#: Parameters at full width with 1000 classes, equal to torchvision's models of the same depth.
PARAMETERS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


class ResNet(VisionModel):
    """ResNet (He et al. 2016): stem, four stages of residual blocks, global average pool, linear head.

    Child names follow torchvision (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``) so
    ``freeze(model, up_to="layer3")`` reads naturally. x: ``(B, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        width: float = 1.0,
        in_channels: int = 3,
        small_input: bool = False,
        norm: NormFactory = BatchNorm,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise InvalidInputError(f"layers must list four positive block counts; got {list(layers)}")
        stem = scaled(64, width)
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.conv1 = nn.Conv2d(in_channels, stem, kernel, stride, kernel // 2, bias=False)
        self.bn1 = norm(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        channels = stem
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stage: list[nn.Module] = []
            for i in range(count):
                stride = 2 if index > 0 and i == 0 else 1
                stage.append(block(channels, scaled(planes, width), stride, norm))
                channels = scaled(planes, width) * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.avgpool = GlobalAvgPool()
        self.fc = classifier_layer(channels, num_classes)
        self.num_features = channels
        init_weights(self, "he")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map before pooling: ``(B, C, H, W)`` -> ``(B, num_features, h, w)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool: ``(B, num_features, h, w)`` -> ``(B, num_features)``."""
        return self.avgpool(features)


def _resnet(depth: int) -> Builder:
    """Make and register the builder of one depth, so every depth shares one signature."""
    block, layers = LAYOUTS[depth]
    name = f"resnet{depth}"

    def build(
        num_classes: int = 1000,
        width: float = 1.0,
        in_channels: int = 3,
        small_input: bool = False,
        norm: NormFactory = BatchNorm,
    ) -> ResNet:
        return ResNet(block, layers, num_classes, width, in_channels, small_input, norm)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"ResNet-{depth}: {block.__name__} blocks ``{list(layers)}``; {PARAMETERS[depth]:,} parameters "
        f"at full width. ``(B, in_channels, H, W)`` in, ``(B, num_classes)`` logits out; arguments as "
        ":class:`ResNet`."
    )
    return register_model(name)(build)


resnet18 = _resnet(18)
"""``resnet18(num_classes=1000, width=1.0, in_channels=3, small_input=False, norm=BatchNorm)``."""
resnet34 = _resnet(34)
"""ResNet-34, arguments as ``resnet18``: ``(B, in_channels, H, W)`` in, ``(B, num_classes)`` out."""
resnet50 = _resnet(50)
"""ResNet-50 (bottleneck blocks), arguments as ``resnet18``."""
resnet101 = _resnet(101)
"""ResNet-101, arguments as ``resnet18``."""
resnet152 = _resnet(152)
"""ResNet-152, arguments as ``resnet18``."""


def resnet(depth: int = 18, **kwargs: Any) -> ResNet:
    """A ResNet of ``depth`` (18, 34, 50, 101 or 152); ``kwargs`` as the depth's builder takes them."""
    if isinstance(depth, bool) or depth not in LAYOUTS:
        raise InvalidInputError(f"ResNet depth must be one of {', '.join(map(str, LAYOUTS))}; got {depth!r}")
    return ResNet(*LAYOUTS[depth], **kwargs)


class _CallableModule(types.ModuleType):
    """This module's type: calling the module is :func:`resnet`, so both import styles read naturally."""

    def __call__(self, depth: int = 18, **kwargs: Any) -> ResNet:
        return resnet(depth, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
