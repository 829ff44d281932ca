"""A trained captioning model with its vocabulary: save / load a run folder, caption images.

A run folder holds ``config.json`` (the :class:`CaptionConfig`), ``vocab.txt``,
``model.safetensors`` and, after training, ``metrics.json``, ``loss.png``, ``valid_bleu.png``
and ``overlays/``. Nothing is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nlp182.captioning.config import CaptionConfig
from nlp182.captioning.data import load_image
from nlp182.captioning.model import CaptionModel
from nlp182.captioning.vocab import BOS_ID, EOS_ID, PAD_ID, CaptionVocab
from nlp182.decoding import decode, make_search
from nlp182.device import select_device
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, ShapeError
from nlp182.io import atomic_write_json, read_json, run_kind
from nlp182.settings import from_saved
from nlp182.train.checkpoint import build_and_load_weights, save_model_weights
from nlp182.train.run import check_finished

MODEL_FILE = "model.safetensors"


@dataclass
class Caption:
    """One generated caption: ``words``, attention ``weights`` ``(rows, L)`` (one row per word, plus
    one for ``<eos>`` when ``complete``), and the summed ``log_prob``."""

    words: list[str]
    weights: np.ndarray | None = field(repr=False)  # a repr of every row was kilobytes
    log_prob: float
    complete: bool

    @property
    def text(self) -> str:
        """The caption as one string."""
        return " ".join(self.words)


class Captioner:
    """Caption images with a :class:`CaptionModel` and its :class:`CaptionVocab`."""

    def __init__(self, model: CaptionModel, vocab: CaptionVocab, config: CaptionConfig) -> None:
        self.model = model
        self.vocab = vocab
        self.config = config

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        parameters = sum(p.numel() for p in self.model.parameters())
        return (f"Captioner({self.config.model.encoder} encoder, {self.config.model.attention} attention, "
                f"{parameters:,} parameters, {len(self.vocab)} words, on {self.device})")

    @property
    def grid(self) -> tuple[int, int]:
        """The attention grid ``(h, w)``."""
        return self.config.model.grid, self.config.model.grid

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        """Write config, vocabulary and weights into ``run_dir`` (each file atomically)."""
        self.save_settings(run_dir)
        save_model_weights(Path(run_dir) / MODEL_FILE, self.model)

    def save_settings(self, run_dir: str | os.PathLike[str]) -> None:
        """Write the vocabulary and the config alone (what a resumed run reads back; its weights
        come from its checkpoint), each file atomically, the config last: a staged run holding it
        holds both (``nlp182.train.run.holds_settings``)."""
        run = Path(run_dir)
        self.vocab.save(run / "vocab.txt")
        atomic_write_json(run / "config.json", self.config.to_dict())

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], device: str = "auto") -> Captioner:
        """Load a run folder written by :meth:`save` onto ``device``.

        The model is built only once ``model.safetensors`` is found to hold tensors of exactly the
        shapes ``config.json`` gives (read from its header), so a damaged or hand-edited config
        raises ``FileFormatError`` instead of allocating a model of its size.
        """
        run = Path(run_dir)
        check_finished(run, "nlp182 train caption")
        if not run.is_dir():
            raise MissingFileError(f"{run} is not a folder; pass the --out folder of `nlp182 train caption`")
        kind = run_kind(run)
        if kind not in (None, "caption"):
            raise FileFormatError(f"{run} is a {kind} run, not a captioning run")
        saved = read_json(run / "config.json")
        try:
            config = from_saved(CaptionConfig, saved)
        except (TypeError, InvalidInputError) as exc:  # a damaged or hand-edited file: say which
            raise FileFormatError(f"{run / 'config.json'} is not a captioning config: {exc}") from exc
        vocab = CaptionVocab.load(run / "vocab.txt")
        model = build_and_load_weights(run / MODEL_FILE, lambda: CaptionModel(len(vocab), config.model))
        model.to(select_device(device)).eval()
        return cls(model, vocab, config)

    def caption(
        self, images: torch.Tensor, beam_width: int | None = None, max_len: int | None = None
    ) -> list[Caption]:
        """Caption images ``(B, 3, S, S)`` of floats in ``[0, 1]`` (greedy when ``beam_width`` is 1),
        moved to the model's device and dtype.

        Raises:
            ShapeError: not ``(B, 3, H, W)``.
            InvalidInputError: not a tensor, or integer pixels (``0-255``, as
                ``torchvision.io.read_image`` gives them), which would caption noise.
        """
        if not isinstance(images, torch.Tensor):
            raise InvalidInputError(f"images are a torch.Tensor (B, 3, S, S), got {type(images).__name__}: "
                                    "convert an array with torch.from_numpy, or read files with load_images")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise InvalidInputError(
                f"images are floats in [0, 1], got {images.dtype}: divide 0-255 pixels by 255, or read "
                "files with load_images"
            )
        beam_width = self.config.beam_width if beam_width is None else beam_width
        max_len = self.config.max_len if max_len is None else max_len
        strategy = make_search(beam_width, self.config.length_penalty)
        dtype = next(self.model.parameters()).dtype
        hyps = decode(
            self.model, strategy, images.to(self.device, dtype), bos_id=BOS_ID, eos_id=EOS_ID,
            max_len=max_len, pad_id=PAD_ID,
        )
        return [
            Caption(
                self.vocab.decode(h.tokens),
                None if h.weights is None else h.weights.numpy(),
                h.log_prob,
                h.complete,
            )
            for h in hyps
        ]

    def load_images(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """Image files as the model saw its training images: ``(B, 3, S, S)``."""
        if isinstance(paths, str | os.PathLike):
            raise InvalidInputError("load_images takes a list of image files; wrap a single one in a list")
        if not paths:
            raise InvalidInputError("name at least one image to caption")
        size, cap = self.config.image_size, self.config.max_image_pixels
        return torch.stack([load_image(path, size, cap) for path in paths])
