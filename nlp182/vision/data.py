"""Small vision data sets that need no download: scikit-learn's digits and seeded generators.

- :func:`load_digits_split`: the 1,797 8x8 handwritten digits shipped with scikit-learn, scaled to
  [0, 1], split (stratified) into train and test tensors.
- :func:`make_shapes_segmentation`: images with squares, discs and triangles of random colours on a
  noisy background, with per-pixel labels (0 background, 1 square, 2 disc, 3 triangle).
- :func:`make_bars`: a bright bar, horizontal (class 0) or vertical (class 1), somewhere on noise.
  Only the bar decides the class, so an occlusion map must find it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nlp182.errors import InvalidInputError

SHAPE_CLASSES = ("background", "square", "disc", "triangle")


def load_digits_split(
    test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``x_train (N, 1, 8, 8), y_train (N,), x_test (M, 1, 8, 8), y_test (M,)`` from sklearn's digits.

    Pixel values 0..16 are scaled to [0, 1]; the split is stratified by class and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise InvalidInputError(f"test_fraction must be in (0, 1); got {test_fraction}")
    digits = load_digits()
    classes, count = len(digits.target_names), len(digits.target)
    test = math.ceil(test_fraction * count)
    if min(test, count - test) < classes:  # stratified: every class on both sides
        low, high = classes / count, 1 - classes / count
        raise InvalidInputError(
            f"test_fraction {test_fraction} leaves {min(test, count - test)} of {count} digits on one side "
            f"of the split, fewer than its {classes} classes; use {low:.3f} to {high:.3f}"
        )
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te).long(),
    )


def shape_mask(kind: int, cy: int, cx: int, r: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Pixels of shape ``kind`` (1 square, 2 disc, 3 triangle) of radius ``r`` centred at ``(cy, cx)``.

    ``yy, xx`` are the ``np.mgrid`` row and column grids of the image; returns a bool mask of
    their shape. The square's half-side is ``0.8 r``; the triangle is upright, apex at the top.
    """
    if kind == 1:
        return (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
    if kind == 2:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2.0)


def make_shapes_segmentation(
    n: int, size: int = 32, shapes_per_image: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` RGB images ``(n, 3, size, size)`` in [0, 1] and label maps ``(n, size, size)``.

    Each image holds ``shapes_per_image`` shapes of random class, colour, size and position (later
    ones drawn over earlier ones); colours are random so only the geometry tells the classes apart.
    """
    if n < 1 or size < 12:
        raise InvalidInputError(f"need n >= 1 and size >= 12; got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.25, size=(n, 3, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), dtype=np.int64)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        for _ in range(shapes_per_image):
            kind = int(rng.integers(1, 4))
            r = int(rng.integers(size // 8 + 2, size // 4 + 2))
            cy, cx = (int(v) for v in rng.integers(r, size - r, size=2))
            mask = shape_mask(kind, cy, cx, r, yy, xx)
            colour = rng.uniform(0.4, 1.0, size=3).astype(np.float32)
            images[i][:, mask] = colour[:, None]
            labels[i][mask] = kind
    return torch.from_numpy(images), torch.from_numpy(labels)


def make_bars(
    n: int, size: int = 16, length: int = 7, thickness: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate grey-noise images ``(n, 1, size, size)`` each holding one white bar.

    Returns images, labels ``(n,)`` (0 horizontal, 1 vertical) and each bar's box ``(n, 4)`` as
    ``(x0, y0, x1, y1)`` pixel bounds (exclusive ``x1, y1``). The background averages 0.5, so a
    grey (0.5) patch is the natural occluder.
    """
    if length >= size:
        raise InvalidInputError(f"bar length {length} must be smaller than the image size {size}")
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.3, 0.7, size=(n, 1, size, size)).astype(np.float32)
    labels = rng.integers(0, 2, size=n)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        h, w = (thickness, length) if labels[i] == 0 else (length, thickness)
        y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        images[i, 0, y0 : y0 + h, x0 : x0 + w] = 1.0
        boxes[i] = (x0, y0, x0 + w, y0 + h)
    return torch.from_numpy(images), torch.from_numpy(labels).long(), torch.from_numpy(boxes)
