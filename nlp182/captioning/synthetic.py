"""A small caption set in the layout users bring: PNG images and a Karpathy-split JSON.

What a new user tries first: a few dozen to a few hundred ``size x size`` images, each of one
square on a dark noisy background, captioned by its size and colour only ("a big red square"):
with three colours and two sizes there are six possible captions, all four words long. Written
to disk (not held in memory like the built-in sets), so that it goes through the same reader,
checks and CLI as a user's own files. A test trains on it to check that a set too small to learn
ends with a warning, and ``python -m bench.defaults`` checks that the defaults learn a few
hundred images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nlp182.errors import InvalidInputError
from nlp182.io import atomic_write_json
from nlp182.vision.data import shape_mask

#: Colours of the squares (RGB in [0, 1]) and the radius range of each size word, in pixels of a
#: 64-pixel image (scaled with ``size``).
USER_COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.8, 0.2), "blue": (0.2, 0.35, 1.0)}
USER_SIZES = {"small": (5, 7), "big": (11, 14)}
KARPATHY_SPLIT_NAMES = {"train": "train", "valid": "val", "test": "test"}


def user_captions() -> list[str]:
    """Every caption the set can hold ("a small red square", ...), six in all."""
    return [f"a {size} {colour} square" for size in USER_SIZES for colour in USER_COLOURS]


def _draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """One ``(size, size, 3)`` uint8 image and its caption."""
    scale = size / 64
    size_name = str(rng.choice(list(USER_SIZES)))
    low, high = USER_SIZES[size_name]
    radius = max(2, round(int(rng.integers(low, high + 1)) * scale))
    colour = str(rng.choice(list(USER_COLOURS)))
    cy, cx = (int(v) for v in rng.integers(radius + 1, size - radius - 1, size=2))
    yy, xx = np.mgrid[0:size, 0:size]
    image = rng.uniform(0.0, 0.2, size=(size, size, 3))
    rgb = np.clip(np.array(USER_COLOURS[colour]) + rng.uniform(-0.05, 0.05, size=3), 0, 1)
    image[shape_mask(1, cy, cx, radius, yy, xx)] = rgb
    return (image * 255).round().astype(np.uint8), f"a {size_name} {colour} square"


def write_user_set(
    folder: str | Path,
    train_images: int,
    valid_images: int,
    test_images: int,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write ``images/*.png`` and ``dataset.json`` (Karpathy's layout, each entry's ``filepath`` the
    ``images`` folder, as in COCO's file) into ``folder``; return the JSON.

    Images are drawn from ``seed``; the first ``train_images`` are the ``train`` split, then
    ``valid_images`` ``val`` and ``test_images`` ``test``. Each has one reference caption.
    """
    if train_images < 1 or valid_images < 1 or test_images < 0 or size < 24:
        raise InvalidInputError(
            "need train_images >= 1, valid_images >= 1, test_images >= 0 and size >= 24; got "
            f"{train_images}, {valid_images}, {test_images}, {size}"
        )
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = ["train"] * train_images + ["valid"] * valid_images + ["test"] * test_images
    entries = []
    for index, split in enumerate(splits):
        pixels, caption = _draw(rng, size)
        name = f"image-{index:05d}.png"
        Image.fromarray(pixels).save(folder / "images" / name)
        entries.append(
            {
                "filepath": "images",
                "filename": name,
                "imgid": index,
                "split": KARPATHY_SPLIT_NAMES[split],
                "sentences": [{"raw": caption, "tokens": caption.split()}],
            }
        )
    path = folder / "dataset.json"
    atomic_write_json(path, {"dataset": "generated squares", "images": entries})
    return path
