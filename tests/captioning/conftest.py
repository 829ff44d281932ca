"""Small caption data sets written by the tests: PNG images, a Karpathy-split JSON and a TSV."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nlp182.captioning import CaptionConfig, CaptionModelConfig
from nlp182.captioning.captioner import Captioner
from nlp182.captioning.model import CaptionModel
from nlp182.captioning.vocab import CaptionVocab

CAPTIONS = {
    "red.png": ["a red square", "a red box"],
    "blue.png": ["a blue square", "a blue box"],
    "green.png": ["a green square"],
    "red2.png": ["a red square on black"],
}
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 230), "green": (30, 200, 60)}


@pytest.fixture(autouse=True)
def one_thread():
    """Small step-by-step models run fastest on one thread (more spin-wait on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def endless_red() -> Captioner:
    """An untrained captioner biased to say "red" forever: only a length bound (its run's
    ``max_len`` of 6, or one given) ends its captions."""
    vocab = CaptionVocab.build(["a red square", "a blue box"])
    config = dataclasses.replace(
        CaptionConfig(image_size=16, max_len=6),
        model=CaptionModelConfig(grid=2, feature_dim=8, embed_dim=8, hidden_size=8),
    )
    model = CaptionModel(len(vocab), config.model).eval()
    with torch.no_grad():
        model.decoder.out.bias.fill_(-50.0)
        model.decoder.out.bias[vocab.index["red"]] = 50.0
    return Captioner(model, vocab, config)


def _write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in CAPTIONS:
        pixels = np.zeros((20, 24, 3), dtype=np.uint8)
        pixels[4:16, 6:18] = COLOURS[name.split(".")[0].rstrip("2")]
        Image.fromarray(pixels).save(folder / name)


@pytest.fixture
def karpathy(tmp_path: Path) -> Path:
    """``dataset.json`` in Karpathy's layout beside ``images/``: two train, one val, one test."""
    _write_images(tmp_path / "images")
    splits = ["train", "restval", "val", "test"]
    entries = [
        {
            "filename": name,
            "split": split,
            "imgid": i,
            "sentences": [{"raw": text, "tokens": text.split()} for text in captions],
        }
        for i, ((name, captions), split) in enumerate(zip(CAPTIONS.items(), splits, strict=True))
    ]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"dataset": "toy", "images": entries}, indent=1))
    return path


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    """``captions.tsv`` with a header, several lines per image, images beside it."""
    _write_images(tmp_path)
    lines = ["image\tcaption"] + [
        f"{name}\t{text}" for name, captions in CAPTIONS.items() for text in captions
    ]
    path = tmp_path / "captions.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path
