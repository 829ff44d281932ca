"""Where the captioner looked: one panel per emitted word, its attention map blended over the image."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from nlp182.captioning.captioner import Caption
from nlp182.captioning.metrics import upsample_attention
from nlp182.errors import InvalidInputError
from nlp182.plots import save_figure, subplots


def save_overlay(
    caption: Caption,
    image: torch.Tensor,
    grid: tuple[int, int],
    path: str | os.PathLike[str],
    columns: int = 5,
    title: str | None = None,
) -> None:
    """Write a PNG grid: the image, then per word the image with that step's attention on top.

    ``image`` is ``(3, S, S)`` in ``[0, 1]``; each step's ``(h*w)`` weights are upsampled
    (bilinear) to ``S x S`` and drawn as a heat map at half opacity, the word as the panel title.
    """
    if caption.weights is None:
        raise InvalidInputError("this caption was made without attention weights")
    words = caption.words + (["<eos>"] if caption.complete else [])
    size = tuple(image.shape[-2:])
    maps = upsample_attention(torch.as_tensor(caption.weights)[: len(words)], grid, size).numpy()
    pixels = image.permute(1, 2, 0).cpu().numpy().clip(0, 1)
    panels = len(words) + 1
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig, axes = subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(pixels)
    axes.flat[0].set_title("input", fontsize=9)
    for ax, word, heat in zip(axes.flat[1:], words, maps, strict=False):
        ax.imshow(pixels)
        ax.imshow(heat / max(float(np.max(heat)), 1e-12), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(word, fontsize=10)
    fig.suptitle(title if title is not None else caption.text, fontsize=10)
    save_figure(fig, path)
