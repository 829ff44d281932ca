"""Read the caption data users bring: a Karpathy-split JSON or a TSV, plus an image folder.

- Karpathy JSON (``dataset_flickr8k.json`` / ``dataset_coco.json``): ``{"images": [{"filename",
  "filepath" (COCO only), "split": train|restval|val|test, "sentences": [{"raw", "tokens"}]}]}``.
  ``restval`` trains; ``val`` validates.
- TSV: ``image_path<TAB>caption`` per line, several lines per image allowed; an optional header
  ``image<TAB>caption``; blank lines skipped. Images are split by a seeded shuffle.

Every image is checked (exists, decodes in full, at most ``max_pixels`` pixels) before anything
is trained, and any problem is one error naming the file and line, so a bad data set fails at
once and writes nothing. Image paths must stay inside the image folder: an absolute path, a
``..`` or a symlink that resolves outside it is refused before the file is looked at, with the
same message whether or not something exists there, so a caption file can neither read nor probe
files elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from nlp182.bounded import read_capped
from nlp182.captioning.data import MAX_IMAGE_PIXELS, CaptionedImage, check_image
from nlp182.captioning.vocab import tokenize
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.io import check_input_file, parse_json

KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "valid", "test": "test"}
TSV_HEADERS = {("image", "caption"), ("image_path", "caption")}
Splits = dict[str, list[CaptionedImage]]


def _read_text(path: Path) -> str:
    """The text of a caption file, read whole (at most ``MAX_WHOLE_FILE_BYTES``, 256 MiB), with
    ``\\r\\n`` and ``\\r`` line ends read as ``\\n`` (as text mode reads them), and a leading UTF-8
    byte-order mark (Windows editors write one) left out."""
    check_input_file(path)
    raw = read_capped(path)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FileFormatError(
            f"{path} line {line}: not UTF-8 text ({exc.reason}); convert it (iconv -f LATIN1 -t UTF-8)"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


class ImageFolder:
    """The folder image paths are relative to; :meth:`image` keeps every image inside it."""

    def __init__(self, images: str | Path | None, data: Path) -> None:
        self.given = Path(images) if images is not None else data.parent
        if not self.given.is_dir():
            state = "is not a folder" if self.given.exists() else "does not exist"
            raise MissingFileError(f"--images {self.given} {state}")
        self.root = self.given.resolve()

    def image(self, relative: PurePath, where: str, max_pixels: int) -> Path:
        """The checked image file at ``relative`` (symlinks resolved); one-line error naming ``where``."""
        inside = not relative.is_absolute() and ".." not in relative.parts
        try:
            resolved = (self.root / relative).resolve() if inside else None
        except (OSError, RuntimeError):  # a symlink loop under the folder
            raise FileFormatError(f"{where}: image path {str(relative)!r} is a symlink loop") from None
        if resolved is None or not resolved.is_relative_to(self.root):
            raise FileFormatError(
                f"{where}: image path {str(relative)!r} is not inside --images {self.given}; image paths "
                "must be relative to that folder and stay inside it"
            )
        check_input_file(self.given / relative, f"{where}: image")
        check_image(resolved, where, max_pixels)
        return resolved


class _Lines:
    """Line numbers of the images' names in the JSON text, searched forward from the previous
    image's (they come in file order), so naming every entry costs one pass over the text, not
    one per image (COCO's 123k images would take hours)."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def of(self, name: str) -> int:
        """The line of the next ``name`` string (as JSON writes it: escaped, or with its non-ASCII
        characters as they are), or the last line found when neither is there."""
        forms = {json.dumps(name), json.dumps(name, ensure_ascii=False)}
        found = [self.text.find(form, self.offset) for form in forms]
        position = min((place for place in found if place >= 0), default=-1)
        if position >= 0:
            self.line += self.text.count("\n", self.offset, position)
            self.offset = position
        return self.line


def _karpathy_captions(entry: dict[str, Any], where: str) -> list[str]:
    sentences = entry.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise FileFormatError(f'{where}: image has no "sentences" list')
    captions = []
    for k, sentence in enumerate(sentences):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if (
            not isinstance(raw, str)
            and isinstance(sentence, dict)
            and isinstance(sentence.get("tokens"), list)
        ):
            raw = " ".join(str(t) for t in sentence["tokens"])
        if not isinstance(raw, str):
            raise FileFormatError(f'{where}: sentence {k} has no "raw" text')
        if not tokenize(raw):
            raise FileFormatError(f"{where}: sentence {k} is an empty caption")
        captions.append(raw)
    return captions


def read_karpathy(
    path: str | Path, images: str | Path | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> Splits:
    """Train / valid / test images of a Karpathy-split JSON; ``images`` defaults to its folder."""
    path = Path(path)
    text = _read_text(path)
    folder = ImageFolder(images, path)
    document = parse_json(text, str(path))
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise FileFormatError(
            f'{path} line 1: not a Karpathy-split caption file (expected {{"images": [...]}} at the top)'
        )
    splits: Splits = {"train": [], "valid": [], "test": []}
    seen: dict[Path, tuple[str, CaptionedImage, str]] = {}  # one image, one split: none is trained and tested
    lines = _Lines(text)
    for index, entry in enumerate(document["images"]):
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise FileFormatError(f'{path} line 1: images[{index}] has no "filename"')
        where = f"{path} line {lines.of(name)} (images[{index}], {name})"
        split = entry.get("split", "train")
        if not isinstance(split, str) or split not in KARPATHY_SPLITS:
            raise FileFormatError(f"{where}: split {split!r} is not one of {', '.join(KARPATHY_SPLITS)}")
        captions = _karpathy_captions(entry, where)
        subfolder = entry.get("filepath") or ""  # absent, null or "": the images folder itself
        if not isinstance(subfolder, str):
            raise FileFormatError(f'{where}: "filepath" must be a folder name, got {subfolder!r}')
        image_path = folder.image(PurePath(subfolder) / name, where, max_pixels)
        part = KARPATHY_SPLITS[split]
        if image_path in seen:
            first_part, item, first_where = seen[image_path]
            if first_part != part:
                raise FileFormatError(f"{where}: the image is in the {part} split and, at {first_where}, "
                                      f"in the {first_part} split; an image belongs to one split")
            item.captions.extend(captions)  # the same image listed twice: its captions together
            continue
        item = CaptionedImage(image_path, captions, name=name, max_pixels=max_pixels)
        seen[image_path] = (part, item, where)
        splits[part].append(item)
    return splits


def read_tsv(
    path: str | Path, images: str | Path | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> list[CaptionedImage]:
    """Images with their captions from ``image_path<TAB>caption`` lines, in first-seen order."""
    path = Path(path)
    text = _read_text(path)
    folder = ImageFolder(images, path)
    by_image: dict[Path, CaptionedImage] = {}  # by the file: img.png and ./img.png are one image
    resolved: dict[str, Path] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise FileFormatError(
                f"{path} line {number}: expected image_path<TAB>caption, found {len(parts)} field(s)"
            )
        image, caption = (part.strip() for part in parts)
        if number == 1 and (image.lower(), caption.lower()) in TSV_HEADERS:
            continue
        if not image:
            raise FileFormatError(f"{path} line {number}: the image path is empty")
        if not tokenize(caption):
            raise FileFormatError(f"{path} line {number}: empty caption for {image}")
        if image not in resolved:
            resolved[image] = folder.image(PurePath(image), f"{path} line {number}", max_pixels)
        image_path = resolved[image]
        if image_path not in by_image:
            by_image[image_path] = CaptionedImage(image_path, [], name=image, max_pixels=max_pixels)
        by_image[image_path].captions.append(caption)
    if not by_image:
        raise FileFormatError(f"{path} line 1: no image<TAB>caption lines")
    return list(by_image.values())


def split_images(
    items: list[CaptionedImage], valid_fraction: float, test_fraction: float, seed: int = 0
) -> Splits:
    """Shuffle images with ``seed`` and cut test, then valid (at least one image each when asked)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_test = max(round(test_fraction * len(items)), int(test_fraction > 0))
    n_valid = max(round(valid_fraction * len(items)), 1)
    if n_test + n_valid >= len(items):
        raise InvalidInputError(
            f"{len(items)} images cannot fill train, valid ({n_valid}) and test ({n_test}) splits; "
            "add images or lower --valid-fraction / --test-fraction"
        )
    shuffled = [items[i] for i in order]
    return {
        "test": shuffled[:n_test],
        "valid": shuffled[n_test : n_test + n_valid],
        "train": shuffled[n_test + n_valid :],
    }
