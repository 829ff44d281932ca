"""Captioned images, the one image loader, and padded training batches.

An image reaches the model as ``(3, S, S)`` floats in ``[0, 1]`` (``S`` = ``image_size``):
:func:`load_image` is the only path from a file to that tensor and is used both when training
and when captioning new images, so the two never see differently resized or scaled pixels (the
per-channel normalisation lives inside the encoder for the same reason). Boxes of named
objects are kept so attention can be scored against them.

Image files are hostile input: an image over ``max_pixels`` (width x height, read from the header
before any pixel is decoded) is refused, so a small file that claims 20000 x 20000 pixels cannot
take gigabytes, and every image is decoded in full when checked, so a truncated or damaged file
fails before training rather than in the middle of it. Only the common raster formats
(``IMAGE_FORMATS``) are opened: Pillow's EPS reader would run Ghostscript. Pillow's own limit
still refuses any image over twice its ``Image.MAX_IMAGE_PIXELS``.

An image file is decoded once, not once per caption and epoch: the resized pixels of captioned
images are kept (as bytes, ``RESIZED_CACHE_BYTES`` in all, least recently used dropped first), keyed
by the file's path, size and modification time. A phone photo takes a sizeable part of a second to
decode, so 200 of them with 3 captions each spent minutes of every epoch decoding for a 48 x 48
model.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nlp182.captioning.vocab import PAD_ID, CaptionVocab
from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import check_input_file

if TYPE_CHECKING:
    from PIL import Image as PILImage

Box = tuple[float, float, float, float]
#: Default cap on an image's width x height (40 megapixels: 120 MB once decoded as RGB).
MAX_IMAGE_PIXELS = 40_000_000
#: Bytes of resized images kept in memory (uint8: a 48 x 48 image takes 6.9 kB, a 224 x 224 one 150 kB).
RESIZED_CACHE_BYTES = 1 << 30
#: The raster formats read (Pillow's names); others (EPS runs Ghostscript, exotic decoders) are refused.
IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "PPM", "TIFF", "WEBP")


@dataclass
class GroundedObject:
    """An object in an image: the caption word that names it and its box ``(x0, y0, x1, y1)``.

    Box coordinates are pixels of the ``(S, S)`` image, ``x1`` / ``y1`` exclusive.
    """

    name: str
    box: Box


@dataclass
class CaptionedImage:
    """One image with its reference captions and (for the built-in sets) its objects.

    ``image`` is a ``(3, S, S)`` tensor in ``[0, 1]``, or the path of a file that
    :func:`load_image` reads when the pixels are needed (refusing it over ``max_pixels`` pixels).
    ``in_caption_order`` says that the captions mention ``objects`` in list order (``digits``:
    left to right), so the k-th mention of a name is the k-th object of that name.
    """

    image: torch.Tensor | Path
    captions: list[str]
    objects: list[GroundedObject] = field(default_factory=list)
    name: str = ""
    in_caption_order: bool = False
    max_pixels: int = MAX_IMAGE_PIXELS

    def pixels(self, size: int) -> torch.Tensor:
        """The image as ``(3, size, size)`` floats in ``[0, 1]``."""
        if isinstance(self.image, torch.Tensor):
            if self.image.shape != (3, size, size):
                raise InvalidInputError(
                    f"image {self.name} has shape {tuple(self.image.shape)}, expected (3, {size}, {size})"
                )
            return self.image
        return _unit_floats(RESIZED.get(self.image, size, self.max_pixels))


def _to_rgb(image: PILImage.Image) -> PILImage.Image:
    """``image`` as 8-bit RGB. Pillow's ``convert("RGB")`` clips 16-bit and float grey levels at
    255 (a 16-bit scan turns white), so those are scaled into 0-255 first: by 65535 for a 16-bit
    mode (``I;16``: a dark scan stays dark) and for 32-bit integers past 255, by 255 for 8-bit
    values held in a 32-bit mode, by 1 for floats in [0, 1]."""
    from PIL import Image

    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image.convert("RGB")
    values = np.array(image, dtype=np.float32)  # float32, its own (writable even for a float image)
    np.nan_to_num(values, copy=False)
    top = float(values.max()) if values.size else 0.0
    if image.mode.startswith("I;16") or top > 255:
        scale = 65535.0
    else:
        scale = 1.0 if image.mode == "F" and top <= 1 else 255.0
    values *= 255.0 / scale
    values += 0.5
    np.clip(values, 0, 255, out=values)
    return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")


def _upright(image: PILImage.Image) -> PILImage.Image:
    """``image`` as viewers show it: turned by its EXIF orientation (a phone stores a portrait photo
    sideways and says so there), so "above" in a caption is above in the pixels. Unreadable EXIF
    leaves the pixels as stored."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, SyntaxError, OSError):
        return image


def decode_image(
    path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS, where: str = ""
) -> PILImage.Image:
    """Read the whole image file ``path`` as an RGB Pillow image, turned upright by its EXIF
    orientation, with one-line errors.

    Raises :class:`MissingFileError` / :class:`InvalidInputError` when ``path`` is not a readable
    regular file, and :class:`FileFormatError` when its width x height is over ``max_pixels`` or
    its pixels cannot be decoded to the end; each message starts with ``where`` (file and line)
    when given.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    label = f"{where}: image" if where else "image"
    target = check_input_file(path, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below decides
            with Image.open(target, formats=IMAGE_FORMATS) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise FileFormatError(
                        f"{label} {path} is {width}x{height} = {width * height} pixels, over the limit "
                        f"of {max_pixels} (--max-image-pixels of `nlp182 train caption`, kept in the run)"
                    )
                opened.load()  # every pixel: a truncated or damaged file fails here
                return _to_rgb(_upright(opened))
    except FileFormatError:
        raise
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise FileFormatError(f"{label} {path} cannot be read as an image (not a {formats} file)") from None
    except Image.DecompressionBombError as exc:  # over Pillow's own limit: refused before its size is seen
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"is {found.group(1)} pixels" if found else "has more pixels than Pillow opens"
        pillow_cap = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        if pillow_cap and max_pixels > pillow_cap:  # --max-image-pixels cannot lift Pillow's own cap
            raise FileFormatError(
                f"{label} {path} {count}, over Pillow's own limit of {pillow_cap} pixels, which "
                "--max-image-pixels does not raise; shrink the image first"
            ) from None
        raise FileFormatError(
            f"{label} {path} {count}, over the limit of {max_pixels} (--max-image-pixels of "
            "`nlp182 train caption`, kept in the run)"
        ) from None
    except Exception as exc:  # Pillow's decoders raise many types (OSError, ValueError, SyntaxError...)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FileFormatError(f"{label} {path} cannot be read as an image ({reason})") from None


def _resized_bytes(path: str | os.PathLike[str], size: int, max_pixels: int) -> torch.Tensor:
    """The image file resized to ``size x size`` (bilinear) as ``(3, size, size)`` uint8."""
    from PIL import Image

    rgb = decode_image(path, max_pixels).resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _unit_floats(pixels: torch.Tensor) -> torch.Tensor:
    """``(3, S, S)`` uint8 as float32 in ``[0, 1]``."""
    return pixels.float() / 255.0


def load_image(path: str | os.PathLike[str], size: int, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Read an image file with Pillow as RGB, resize to ``size x size`` (bilinear): ``(3, size, size)``
    floats in ``[0, 1]``.

    Errors as :func:`decode_image` (missing file, over ``max_pixels``, not decodable), one line each.
    """
    return _unit_floats(_resized_bytes(path, size, max_pixels))


class ResizedImages:
    """Resized image files as ``(3, S, S)`` uint8, the most recently used kept within ``budget``
    bytes, so a training image is decoded once, not once per caption and epoch. An entry is keyed
    by the file's path, size and modification time (an edited file is read again) and by the
    resize; a file that cannot be looked at is read uncached, which raises its one-line error."""

    def __init__(self, budget: int = RESIZED_CACHE_BYTES) -> None:
        self.budget = budget
        self.held = 0
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | Path, size: int, max_pixels: int) -> torch.Tensor:
        """The resized pixels of ``path`` (not to be written to: they are shared)."""
        try:
            stat = os.stat(path)
        except OSError:
            return _resized_bytes(path, size, max_pixels)
        key = (os.fspath(path), stat.st_mtime_ns, stat.st_size, size, max_pixels)
        with self._lock:
            pixels = self._entries.get(key)
            if pixels is not None:
                self._entries.move_to_end(key)
                return pixels
        pixels = _resized_bytes(path, size, max_pixels)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = pixels
                self.held += pixels.numel()
            while self.held > self.budget and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self.held -= dropped.numel()
        return pixels

    def __len__(self) -> int:
        return len(self._entries)


#: The one cache of resized images (training, validation and calibration read the same files).
RESIZED = ResizedImages()


def check_image(path: Path, where: str, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Raise a one-line error naming ``where`` (file and line) unless ``path`` decodes in full as an
    image of at most ``max_pixels`` pixels."""
    decode_image(path, max_pixels, where).close()


class CaptionBatch(NamedTuple):
    """Padded batch: ``images`` ``(B, 3, S, S)``; ``captions`` ``(B, T)`` = ``<bos> w.. <eos> <pad>..``."""

    images: torch.Tensor
    captions: torch.Tensor


class CaptionPairs(Dataset):
    """Every (image, reference caption) pair of ``items``, each caption encoded with ``vocab``."""

    def __init__(self, items: Sequence[CaptionedImage], vocab: CaptionVocab, image_size: int) -> None:
        self.items = list(items)
        self.image_size = image_size
        self.pairs = [(i, vocab.encode(c)) for i, item in enumerate(self.items) for c in item.captions]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, list[int]]:
        item, ids = self.pairs[index]
        return self.items[item].pixels(self.image_size), ids


def collate(examples: Sequence[tuple[torch.Tensor, Sequence[int]]]) -> CaptionBatch:
    """Stack images and right-pad caption ids with ``<pad>``."""
    width = max(len(ids) for _, ids in examples)
    captions = torch.full((len(examples), width), PAD_ID, dtype=torch.long)
    for row, (_, ids) in enumerate(examples):
        captions[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return CaptionBatch(torch.stack([image for image, _ in examples]), captions)


def make_loader(
    items: Sequence[CaptionedImage],
    vocab: CaptionVocab,
    image_size: int,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader of :class:`CaptionBatch` over every (image, caption) pair of ``items``."""
    if not items:
        raise InvalidInputError("cannot train or validate on an empty split")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        CaptionPairs(items, vocab, image_size),
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        generator=generator,
    )


def image_batches(
    items: Sequence[CaptionedImage], image_size: int, batch_size: int
) -> list[tuple[torch.Tensor, list[CaptionedImage]]]:
    """``items`` in order as ``(images (b, 3, S, S), items)`` chunks, one entry per image."""
    return [
        (torch.stack([item.pixels(image_size) for item in chunk]), list(chunk))
        for chunk in (items[i : i + batch_size] for i in range(0, len(items), batch_size))
    ]
