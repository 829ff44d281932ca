"""Convolution geometry and the input pipeline: output sizes, zero padding, per-channel mean subtraction.

The course rule of thumb: remove the image mean first, then zero-pad the border so a ``F x F`` filter
with stride 1 and padding ``(F - 1) / 2`` keeps the spatial size, ``D_out = (N + 2P - F) / stride + 1``.
"""

from __future__ import annotations

import torch

from nlp182.errors import InvalidInputError, ShapeError


def conv_output_size(n: int, f: int, p: int = 0, s: int = 1, d: int = 1, exact: bool = False) -> int:
    """Spatial size of a convolution or pooling output: ``⌊(N + 2P - F) / stride⌋ + 1``.

    With dilation ``d`` the filter spans ``d (F - 1) + 1`` inputs, as in ``torch.nn.Conv2d``. The
    division is floored as torch floors it (ResNet's stride-2 layers take 224 to 112 that way:
    the last input row is not covered). ``exact=True`` instead raises ``InvalidInputError`` when
    the filter does not tile the padded input exactly, to catch a mis-sized layer by design.
    """
    for name, value, low in (
        ("input size n", n, 1),
        ("filter size f", f, 1),
        ("padding p", p, 0),
        ("stride s", s, 1),
        ("dilation d", d, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}; got {value!r}")
    f = d * (f - 1) + 1
    span = n + 2 * p - f
    if span < 0:
        raise InvalidInputError(
            f"filter size {f} is larger than the padded input {n} + 2*{p}; "
            "use a smaller filter or more padding"
        )
    if exact and span % s:
        raise InvalidInputError(
            f"(N + 2P - F) / stride = ({n} + 2*{p} - {f}) / {s} = {span / s:g} is not an integer; "
            f"change the padding or stride so that {s} divides {span}, or let it floor as torch does"
        )
    return span // s + 1


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ShapeError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")


def zero_pad(images: torch.Tensor, p: int) -> torch.Tensor:
    """Surround each image with ``p`` rows and columns of zeros.

    images: ``(B, C, H, W)``; returns ``(B, C, H + 2p, W + 2p)``.
    """
    _check_images(images)
    if p < 0:
        raise InvalidInputError(f"padding must be >= 0; got {p}")
    b, c, h, w = images.shape
    out = images.new_zeros(b, c, h + 2 * p, w + 2 * p)
    out[:, :, p : p + h, p : p + w] = images
    return out


def channel_mean(images: torch.Tensor) -> torch.Tensor:
    """Mean of each channel over a whole set of images: ``(B, C, H, W)`` -> ``(C,)``.

    Accumulated in float64 so the mean of a large data set is not rounded away in float32; integer
    images (uint8 pixels) get a float32 mean, since their mean is rarely a whole number.
    """
    _check_images(images)
    dtype = images.dtype if images.is_floating_point() else torch.float32
    return images.double().mean(dim=(0, 2, 3)).to(dtype)


def subtract_channel_mean(images: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Subtract a per-channel mean (from :func:`channel_mean` on the training set).

    images: ``(B, C, H, W)``; mean: ``(C,)``; returns ``(B, C, H, W)``.
    """
    _check_images(images)
    if mean.shape != (images.shape[1],):
        raise ShapeError(
            f"mean must have shape ({images.shape[1]},) to match the channels; got {tuple(mean.shape)}"
        )
    if not images.is_floating_point():  # uint8 pixels minus a mean go negative: compute in float
        images = images.to(mean.dtype if mean.is_floating_point() else torch.float32)
    return images - mean.to(images).view(1, -1, 1, 1)
