"""Semantic segmentation: down/up-sampling operators, an FCN, a small UNet and the pixel metrics.

Downsampling inside the network is a strided convolution or a max pool; upsampling is nearest
neighbour (copy each value into a ``s x s`` block), bed of nails (value in the block's top-left,
zeros elsewhere), max unpooling (value back where the matching max pool found its maximum) or a
learnable transposed convolution. Images ``(B, C, H, W)``, label maps ``(B, H, W)`` of class ids.
"""

from __future__ import annotations

import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.blocks import ConvBNReLU
from nlp182.vision.contract import VisionModel, classifier_layer, scaled
from nlp182.vision.init import init_weights
from nlp182.vision.normalization import BatchNorm
from nlp182.vision.registry import register_model


def _check_4d(x: torch.Tensor, what: str = "x") -> None:
    if x.dim() != 4:
        raise ShapeError(f"{what} must have shape (B, C, H, W); got {tuple(x.shape)}")


def upsample_nearest(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Copy every value into a ``scale x scale`` block: ``(B, C, H, W)`` -> ``(B, C, sH, sW)``."""
    _check_4d(x)
    return x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def upsample_bed_of_nails(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Put every value in the top-left corner of a ``scale x scale`` block of zeros.

    ``(B, C, H, W)`` -> ``(B, C, sH, sW)``.
    """
    _check_4d(x)
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, h * scale, w * scale)
    out[:, :, ::scale, ::scale] = x
    return out


def max_pool_with_indices(x: torch.Tensor, kernel: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping ``kernel x kernel`` max pool that also returns where each maximum was.

    x: ``(B, C, H, W)`` with ``H, W`` divisible by ``kernel``. Returns the pooled ``(B, C, H/k, W/k)``
    and the flat index ``row * W + col`` of each maximum in the input plane (the layout
    ``torch.nn.functional.max_unpool2d`` uses). Ties go to the first position in row-major order.
    """
    _check_4d(x)
    b, c, h, w = x.shape
    if h % kernel or w % kernel:
        raise ShapeError(f"max pool with kernel {kernel} needs H and W divisible by {kernel}; got {h}x{w}")
    ho, wo = h // kernel, w // kernel
    windows = x.view(b, c, ho, kernel, wo, kernel).permute(0, 1, 2, 4, 3, 5).reshape(b, c, ho, wo, -1)
    values, arg = windows.max(dim=-1)
    rows = torch.arange(ho, device=x.device).view(1, 1, ho, 1) * kernel + torch.div(
        arg, kernel, rounding_mode="floor"
    )
    cols = torch.arange(wo, device=x.device).view(1, 1, 1, wo) * kernel + arg % kernel
    return values, rows * w + cols


def max_unpool(x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Scatter each value of ``x`` back to the position its max pool took it from; zeros elsewhere.

    x, indices: ``(B, C, h, w)``; returns ``(B, C, H, W)`` with ``(H, W) = output_size``.
    """
    _check_4d(x)
    if indices.shape != x.shape:
        raise ShapeError(f"indices {tuple(indices.shape)} must match the pooled values {tuple(x.shape)}")
    b, c = x.shape[:2]
    out = x.new_zeros(b, c, output_size[0] * output_size[1])
    out.scatter_(2, indices.flatten(2), x.flatten(2))
    return out.view(b, c, *output_size)


class Upsample(nn.Module):
    """Parameter-free upsampling by ``scale``: ``mode`` is ``"nearest"`` or ``"bed_of_nails"``."""

    def __init__(self, scale: int = 2, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in ("nearest", "bed_of_nails"):
            raise InvalidInputError(f"upsample mode must be 'nearest' or 'bed_of_nails'; got {mode!r}")
        self.scale = scale
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return upsample_nearest(x, self.scale)
        return upsample_bed_of_nails(x, self.scale)


#: Channels of a segmenter's full-resolution stages at ``width=1``.
SEGMENTER_CHANNELS = 16
DOWNSAMPLING = ("strided", "maxpool")
UPSAMPLING = ("transpose", "nearest", "bed_of_nails", "unpool")


@register_model("fcn", task="segmentation")
class FCN(VisionModel):
    """Fully convolutional segmentation net: full-res conv, two 2x downsamplings, two 2x upsamplings.

    ``downsample`` is ``"strided"`` (3x3 stride-2 conv) or ``"maxpool"`` (2x2 max pool then conv);
    ``upsample`` is ``"transpose"`` (learnable 2x2 stride-2 transposed conv), ``"nearest"``,
    ``"bed_of_nails"`` or ``"unpool"`` (needs ``downsample="maxpool"``; reuses its indices).
    Parameter-free upsamplings are followed by a 3x3 conv that fills in the detail. The
    full-resolution stages have ``16 x width`` channels (:data:`SEGMENTER_CHANNELS`).
    x: ``(B, C, H, W)`` with ``H, W`` divisible by 4 -> logits ``(B, num_classes, H, W)``.
    """

    classifier_name = "classifier"
    per_pixel = True

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        width: float = 1.0,
        downsample: str = "strided",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if downsample not in DOWNSAMPLING or upsample not in UPSAMPLING:
            raise InvalidInputError(
                f"downsample must be one of {DOWNSAMPLING} and upsample one of {UPSAMPLING}; "
                f"got {downsample!r}, {upsample!r}"
            )
        if upsample == "unpool" and downsample != "maxpool":
            raise InvalidInputError(
                "upsample='unpool' needs downsample='maxpool' (it reuses the pool's indices)"
            )
        self.downsample, self.upsample = downsample, upsample
        w = scaled(SEGMENTER_CHANNELS, width)
        self.enc0 = ConvBNReLU(in_channels, w)
        stride = 2 if downsample == "strided" else 1
        self.enc1 = ConvBNReLU(w, 2 * w, stride=stride)
        self.enc2 = ConvBNReLU(2 * w, 4 * w, stride=stride)
        self.dec2 = self._up_stage(4 * w, 2 * w)
        self.dec1 = self._up_stage(2 * w, w)
        self.classifier = classifier_layer(w, num_classes, per_pixel=True)
        self.num_features = w
        init_weights(self, "he")

    def _up_stage(self, c_in: int, c_out: int) -> nn.ModuleDict:
        if self.upsample == "transpose":
            return nn.ModuleDict(
                {
                    "up": nn.Sequential(
                        nn.ConvTranspose2d(c_in, c_out, 2, 2, bias=False),
                        BatchNorm(c_out),
                        nn.ReLU(inplace=True),
                    )
                }
            )
        stage = nn.ModuleDict({"reduce": ConvBNReLU(c_in, c_out, 1), "refine": ConvBNReLU(c_out, c_out)})
        if self.upsample != "unpool":
            stage["up"] = Upsample(2, self.upsample)
        return stage

    def _run_up(
        self, stage: nn.ModuleDict, x: torch.Tensor, pool: tuple[torch.Tensor, tuple[int, int]] | None
    ) -> torch.Tensor:
        if self.upsample == "transpose":
            return stage["up"](x)
        x = stage["reduce"](x)
        x = max_unpool(x, pool[0], pool[1]) if pool is not None else stage["up"](x)
        return stage["refine"](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The full-resolution map before the classifier: ``(B, C, H, W)`` -> ``(B, num_features, H, W)``."""
        _check_4d(x)
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ShapeError(f"FCN needs H and W divisible by 4; got {x.shape[2]}x{x.shape[3]}")
        x0 = self.enc0(x)
        pools: list[tuple[torch.Tensor, tuple[int, int]] | None] = [None, None]
        if self.downsample == "maxpool":
            p1, i1 = max_pool_with_indices(x0)
            x1 = self.enc1(p1)
            p2, i2 = max_pool_with_indices(x1)
            x2 = self.enc2(p2)
            if self.upsample == "unpool":
                pools = [(i1, tuple(x0.shape[2:])), (i2, tuple(x1.shape[2:]))]
        else:
            x2 = self.enc2(self.enc1(x0))
        y = self._run_up(self.dec2, x2, pools[1])
        return self._run_up(self.dec1, y, pools[0])

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """A segmenter's head is its 1x1 classifier alone: the map passes through."""
        return features


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(ConvBNReLU(c_in, c_out), ConvBNReLU(c_out, c_out))


@register_model("unet", task="segmentation")
class UNet(VisionModel):
    """A small UNet (Ronneberger et al. 2015): an encoder-decoder whose decoder concatenates the
    encoder features of the same resolution (skip connections), so fine detail survives the bottleneck.

    ``depth`` 2x max-pool downsamplings; channels (``16 x width`` at full resolution) double at
    each. Upsampling is a 2x2 stride-2 transposed convolution. x: ``(B, C, H, W)`` with ``H, W``
    divisible by ``2**depth`` -> logits ``(B, num_classes, H, W)``.
    """

    classifier_name = "classifier"
    per_pixel = True

    def __init__(
        self, in_channels: int = 3, num_classes: int = 2, width: float = 1.0, depth: int = 2
    ) -> None:
        super().__init__()
        if depth < 1:
            raise InvalidInputError(f"UNet depth must be >= 1; got {depth}")
        self.depth = depth
        widths = [scaled(SEGMENTER_CHANNELS, width) * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList(
            [_double_conv(in_channels, widths[0])]
            + [_double_conv(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in reversed(range(depth))]
        )
        self.decoders = nn.ModuleList(
            [_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))]
        )
        self.classifier = classifier_layer(widths[0], num_classes, per_pixel=True)
        self.num_features = widths[0]
        init_weights(self, "he")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder map before the classifier: ``(B, C, H, W)`` -> ``(B, num_features, H, W)``."""
        _check_4d(x)
        multiple = 2**self.depth
        if x.shape[2] % multiple or x.shape[3] % multiple:
            raise ShapeError(
                f"UNet of depth {self.depth} needs H and W divisible by {multiple}; "
                f"got {x.shape[2]}x{x.shape[3]}"
            )
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, decoder in zip(self.ups, self.decoders, strict=True):
            x = decoder(torch.cat([skips.pop(), up(x)], dim=1))
        return x

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """A segmenter's head is its 1x1 classifier alone: the map passes through."""
        return features


def _check_class_maps(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Refuse ``pred`` and ``target`` of different shapes, or holding anything but class ids: scores
    or probabilities (``0.9`` would be cut to class 0, and every pixel scored wrong)."""
    if pred.shape != target.shape:
        raise ShapeError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    for name, tensor in (("pred", pred), ("target", target)):
        if tensor.is_floating_point() or tensor.is_complex():
            raise InvalidInputError(f"{name} must hold class ids (integers), got {tensor.dtype}; take the "
                                    "argmax over the class scores first")


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Counts ``M[t, p]`` of pixels with true class ``t`` predicted as ``p``; pred, target: ``(B, H, W)``."""
    _check_class_maps(pred, target)
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if target.numel() and (
        min(int(pred.min()), int(target.min())) < 0 or max(int(pred.max()), int(target.max())) >= num_classes
    ):
        raise InvalidInputError(f"class ids must lie in [0, {num_classes}); pass the right num_classes")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).view(
        num_classes, num_classes
    )


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> float:
    """Fraction of (non-ignored) pixels whose predicted class is right; pred, target: ``(B, H, W)``."""
    _check_class_maps(pred, target)
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    total = int(keep.sum())
    if total == 0:
        raise InvalidInputError("no pixel left to score: every target pixel is ignored")
    return int(((pred == target) & keep).sum()) / total


def iou_per_class(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Intersection over union ``TP / (TP + FP + FN)`` of each class, NaN for a class absent from both
    and for ``ignore_index`` when it is one of the classes (it is not scored).

    pred, target: ``(B, H, W)``; returns float64 ``(num_classes,)``.
    """
    matrix = confusion_matrix(pred, target, num_classes, ignore_index).double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    ious = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        ious[ignore_index] = float("nan")
    return ious


def mean_iou(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> float:
    """Mean of :func:`iou_per_class` over the classes that occur in the prediction or the target.

    pred, target: ``(B, H, W)`` class ids.
    """
    ious = iou_per_class(pred, target, num_classes, ignore_index)
    if bool(ious.isnan().all()):
        raise InvalidInputError("no class left to score: every target pixel is ignored, or nothing was given")
    return float(ious[~ious.isnan()].mean())
