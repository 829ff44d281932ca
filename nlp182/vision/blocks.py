"""CNN building blocks: conv-BN-ReLU, VGG stages, the Inception module, ResNet basic and bottleneck blocks.

Every convolution that is followed by batch norm has no bias (the norm's beta replaces it). The
batch norm is :class:`nlp182.vision.normalization.BatchNorm` unless a ``norm`` factory is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nlp182.vision.normalization import BatchNorm

NormFactory = Callable[[int], nn.Module]


class ConvBNReLU(nn.Sequential):
    """``Conv2d(bias=False) -> BN -> ReLU``. x: ``(B, C_in, H, W)`` -> ``(B, C_out, H', W')``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        norm: NormFactory = BatchNorm,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )


class VGGBlock(nn.Sequential):
    """A VGG stage: ``num_convs`` 3x3 convolutions (stride 1, padding 1) with ReLU, then a 2x2 max pool.

    ``batch_norm`` inserts BN after each convolution. Convolutions keep their bias as in the
    original VGG, so full-width parameter counts match the published ones.
    x: ``(B, C_in, H, W)`` -> ``(B, C_out, H / 2, W / 2)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_convs: int = 2,
        batch_norm: bool = False,
        norm: NormFactory = BatchNorm,
    ) -> None:
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(norm(out_channels))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module: four parallel branches concatenated along channels.

    1x1 conv | 1x1 reduction -> 3x3 conv | 1x1 reduction -> 5x5 conv | 3x3 max pool -> 1x1 projection.
    The 1x1 reductions keep the 3x3 and 5x5 convolutions cheap. Each conv is conv-BN-ReLU.
    x: ``(B, C_in, H, W)`` -> ``(B, c1 + c3 + c5 + pool_proj, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
        norm: NormFactory = BatchNorm,
    ) -> None:
        super().__init__()
        self.branch1 = ConvBNReLU(in_channels, c1, 1, norm=norm)
        self.branch3 = nn.Sequential(
            ConvBNReLU(in_channels, c3_reduce, 1, norm=norm), ConvBNReLU(c3_reduce, c3, 3, norm=norm)
        )
        self.branch5 = nn.Sequential(
            ConvBNReLU(in_channels, c5_reduce, 1, norm=norm), ConvBNReLU(c5_reduce, c5, 5, norm=norm)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, pool_proj, 1, norm=norm)
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: NormFactory) -> nn.Module:
    """Identity when shapes agree, else a 1x1 projection (strided) with BN (ResNet option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), norm(out_channels))


#: The projection shortcut's former name in these blocks: run folders that use it still load.
FORMER_SHORTCUT_NAME = "shortcut"


class _TorchvisionNames(nn.Module):
    """A block whose projection shortcut is ``downsample``, torchvision's name (so its state dicts
    load), that also loads a state dict naming it :data:`FORMER_SHORTCUT_NAME`."""

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        former = f"{prefix}{FORMER_SHORTCUT_NAME}."
        for key in [k for k in state_dict if k.startswith(former)]:
            state_dict[f"{prefix}downsample.{key[len(former):]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class BasicBlock(_TorchvisionNames):
    """ResNet basic block: ``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))``.

    The first convolution carries the stride. x: ``(B, C_in, H, W)`` -> ``(B, planes, H / s, W / s)``.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, norm: NormFactory = BatchNorm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes, stride, norm)  # torchvision's name: its weights load

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(_TorchvisionNames):
    """ResNet bottleneck: 1x1 reduce -> 3x3 (strided) -> 1x1 expand to ``4 * planes``, plus shortcut.

    The stride sits on the 3x3 convolution (the "ResNet v1.5" placement torchvision uses).
    x: ``(B, C_in, H, W)`` -> ``(B, 4 * planes, H / s, W / s)``.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, norm: NormFactory = BatchNorm) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride, norm)  # torchvision's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class GlobalAvgPool(nn.Module):
    """Average each channel over all positions: ``(B, C, H, W)`` -> ``(B, C)`` (replaces big FC heads)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
