"""The two built-in caption sets, generated from a seed, with every object's box.

- ``digits``: ``size x size`` canvases holding 1 to ``max_digits`` of scikit-learn's real
  handwritten digits (8x8 scans, upscaled) at random non-overlapping positions and sizes; the
  caption names the digits left to right ("three one four"). The scans are split once into
  disjoint train / valid / test pools, so no test canvas shows a digit image seen in training.
- ``shapes``: scenes from the vision shapes generator (:func:`nlp182.vision.data.shape_mask` on
  the same noisy background) with 1 to 3 non-overlapping objects of four colours and two sizes,
  and several reference captions per image from a small grammar with relations
  ("a small red disc left of a large blue triangle", its mirror with "right of", ...).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from nlp182.captioning.data import CaptionedImage, GroundedObject
from nlp182.errors import InvalidInputError
from nlp182.vision.data import shape_mask

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "valid", "test")
POOL_FRACTIONS = (0.7, 0.1, 0.2)
SHAPE_NAMES = {1: "square", 2: "disc", 3: "triangle"}
COLOURS = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.15, 0.8, 0.2),
    "blue": (0.2, 0.35, 1.0),
    "yellow": (0.95, 0.9, 0.15),
}
SIZES = {"small": (5, 7), "large": (10, 12)}


@functools.cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target


def digit_pools(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 digit scans ``(N, 8, 8)`` in ``[0, 1]`` and labels, split 70/10/20 by ``seed``."""
    scans, labels = _sklearn_digits()
    order = np.random.default_rng(seed).permutation(len(labels))
    cuts = np.cumsum([int(f * len(order)) for f in POOL_FRACTIONS[:-1]])
    return {
        name: (scans[index], labels[index]) for name, index in zip(SPLITS, np.split(order, cuts), strict=True)
    }


def _digit_layout(rng: np.random.Generator, size: int, count: int, min_px: int, max_px: int) -> list[tuple]:
    """``(x, y, side)`` of ``count`` squares whose x-ranges are disjoint, in left-to-right order."""
    sides = rng.integers(min_px, max_px + 1, size=count)
    while sides.sum() > size - count - 1:
        sides[int(np.argmax(sides))] -= 1
    free = size - int(sides.sum())
    cuts = np.sort(rng.integers(0, free + 1, size=count))
    gaps = np.diff(np.concatenate([[0], cuts]))
    layout, x = [], 0
    for side, gap in zip(sides.tolist(), gaps.tolist(), strict=True):
        x += gap
        layout.append((x, int(rng.integers(0, size - side + 1)), side))
        x += side
    return layout


def make_digit_canvases(
    n: int,
    pool: tuple[np.ndarray, np.ndarray],
    size: int = 64,
    max_digits: int = 5,
    min_px: int | None = None,
    max_px: int | None = None,
    seed: int = 0,
) -> list[CaptionedImage]:
    """``n`` canvases of 1..``max_digits`` digits drawn from ``pool`` (see :func:`digit_pools`).

    Digit sides are drawn from ``min_px..max_px`` (default ``size // 6`` (at least 8, the scans'
    own resolution) to ``size // 4``) and shrunk when a canvas would overflow.
    """
    min_px = max(8, size // 6) if min_px is None else min_px
    max_px = max(min_px, size // 4) if max_px is None else max_px
    if n < 0 or max_digits < 1 or not 8 <= min_px <= max_px or max_digits * min_px >= size:
        raise InvalidInputError(
            f"need n >= 0, max_digits >= 1, 8 <= min_px <= max_px and max_digits * min_px < size; got "
            f"n={n}, max_digits={max_digits}, min_px={min_px}, max_px={max_px}, size={size}"
        )
    scans, labels = pool
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        canvas = torch.zeros(size, size)
        objects = []
        for x, y, side in _digit_layout(rng, size, int(rng.integers(1, max_digits + 1)), min_px, max_px):
            pick = int(rng.integers(len(labels)))
            scan = torch.from_numpy(scans[pick])[None, None]
            canvas[y : y + side, x : x + side] = F.interpolate(
                scan, size=(side, side), mode="bilinear", align_corners=False
            )[0, 0].clamp(0, 1)
            objects.append(GroundedObject(DIGIT_NAMES[int(labels[pick])], (x, y, x + side, y + side)))
        caption = " ".join(obj.name for obj in objects)
        items.append(
            CaptionedImage(canvas.expand(3, -1, -1).clone(), [caption], objects, f"digits-{i}", True)
        )
    return items


def digits_splits(
    counts: tuple[int, int, int], size: int = 64, max_digits: int = 5, seed: int = 0
) -> dict[str, list[CaptionedImage]]:
    """Train / valid / test digit canvases, each drawn from its own pool of scans."""
    pools = digit_pools(seed)
    return {
        name: make_digit_canvases(count, pools[name], size, max_digits, seed=seed * 3 + k + 1)
        for k, (name, count) in enumerate(zip(SPLITS, counts, strict=True))
    }


def _phrase(obj: dict, with_size: bool) -> str:
    size = f"{obj['size']} " if with_size else ""
    return f"a {size}{obj['colour']} {obj['shape']}"


def shape_captions(objects: list[dict]) -> list[str]:
    """Reference captions for objects sorted left to right (each a dict of size, colour, shape)."""
    if len(objects) == 1:
        obj = objects[0]
        return [_phrase(obj, True), _phrase(obj, False), f"there is {_phrase(obj, True)}"]
    right_to_left = objects[::-1]
    return [
        " left of ".join(_phrase(o, True) for o in objects),
        " right of ".join(_phrase(o, True) for o in right_to_left),
        " and ".join(_phrase(o, True) for o in objects),
        " left of ".join(_phrase(o, False) for o in objects),
    ]


def _place(rng: np.random.Generator, size: int, radius: int, taken: list[tuple]) -> tuple[int, int] | None:
    for _ in range(100):
        cy, cx = (int(v) for v in rng.integers(radius + 1, size - radius - 1, size=2))
        box = (cx - radius - 2, cy - radius - 2, cx + radius + 2, cy + radius + 2)
        apart = all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken)
        if apart and all(abs(cx - (t[0] + t[2]) / 2) >= 4 for t in taken):
            taken.append(box)
            return cy, cx
    return None


def make_shape_scenes(n: int, size: int = 64, max_objects: int = 3, seed: int = 0) -> list[CaptionedImage]:
    """``n`` RGB scenes ``(3, size, size)`` with 1..``max_objects`` captioned, boxed shapes."""
    if n < 0 or not 1 <= max_objects <= 3 or size < 48:
        raise InvalidInputError(
            f"need n >= 0, 1 <= max_objects <= 3 and size >= 48; got {n}, {max_objects}, {size}"
        )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    items = []
    for i in range(n):
        image = rng.uniform(0.0, 0.25, size=(3, size, size)).astype(np.float32)
        taken: list[tuple] = []
        objects = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            size_name = str(rng.choice(list(SIZES)))
            radius = int(rng.integers(SIZES[size_name][0], SIZES[size_name][1] + 1))
            centre = _place(rng, size, radius, taken)
            if centre is None:
                continue
            kind = int(rng.integers(1, 4))
            colour = str(rng.choice(list(COLOURS)))
            mask = shape_mask(kind, centre[0], centre[1], radius, yy, xx)
            rgb = np.clip(np.array(COLOURS[colour]) + rng.uniform(-0.05, 0.05, size=3), 0, 1)
            image[:, mask] = rgb.astype(np.float32)[:, None]
            rows, cols = np.nonzero(mask)
            box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
            objects.append({"shape": SHAPE_NAMES[kind], "colour": colour, "size": size_name, "box": box})
        objects.sort(key=lambda o: (o["box"][0] + o["box"][2]) / 2)
        grounded = [GroundedObject(o["shape"], o["box"]) for o in objects]
        items.append(
            CaptionedImage(torch.from_numpy(image), shape_captions(objects), grounded, f"shapes-{i}")
        )
    return items


def shapes_splits(
    counts: tuple[int, int, int], size: int = 64, max_objects: int = 3, seed: int = 0
) -> dict[str, list[CaptionedImage]]:
    """Train / valid / test scenes from independent seeds."""
    return {
        name: make_shape_scenes(count, size, max_objects, seed=seed * 3 + k + 101)
        for k, (name, count) in enumerate(zip(SPLITS, counts, strict=True))
    }
