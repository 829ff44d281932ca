"""A trained model with its tokenisers: save / load a run folder, translate text, draw attention.

A run folder holds ``config.json`` (the :class:`Seq2SeqConfig`), ``source_tokenizer.json``,
``target_tokenizer.json``, ``model.safetensors`` and, after training, ``metrics.json`` and
``heatmaps/``. Nothing is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tokenizers import Tokenizer

from nlp182.device import select_device
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from nlp182.plots import attention_heatmap
from nlp182.seq2seq.batching import pad
from nlp182.seq2seq.config import Seq2SeqConfig
from nlp182.seq2seq.decode import Hypothesis, beam_search, greedy_decode
from nlp182.seq2seq.model import Seq2Seq
from nlp182.seq2seq.tokenize import decode, encode, load_tokenizer, tokens

MODEL_FILE = "model.safetensors"


@dataclass
class Translation:
    """One translated sentence with what produced it.

    ``weights`` is ``(len(target_tokens), len(source_tokens))``: target tokens down (``<eos>``
    included when the output ended), source tokens across.
    """

    text: str
    source_tokens: list[str]
    target_tokens: list[str]
    weights: np.ndarray | None
    log_prob: float

    def save_heatmap(self, path: str | os.PathLike[str], title: str | None = None) -> None:
        """Write the attention heatmap of this translation (format from the extension); the title
        defaults to the input and the output, as at training."""
        if self.weights is None:
            raise InvalidInputError("this translation was made without attention weights")
        attention_heatmap(self.weights, self.source_tokens, self.target_tokens, path, title=title)


class Translator:
    """Translate with a :class:`Seq2Seq` model and its source / target tokenisers."""

    def __init__(
        self,
        model: Seq2Seq,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        config: Seq2SeqConfig,
    ) -> None:
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.config = config

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return next(self.model.parameters()).device

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        """Write config, tokenisers and weights into ``run_dir`` (each file atomically)."""
        run = Path(run_dir)
        atomic_write_json(run / "config.json", self.config.to_dict())
        atomic_write_text(run / "source_tokenizer.json", self.source_tokenizer.to_str())
        atomic_write_text(run / "target_tokenizer.json", self.target_tokenizer.to_str())
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        atomic_write_bytes(run / MODEL_FILE, save_safetensors(state))

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], device: str = "auto") -> Translator:
        """Load a run folder written by :meth:`save` onto ``device``."""
        run = Path(run_dir)
        if not run.is_dir():
            raise MissingFileError(f"{run} is not a folder; pass the --out folder of `nlp182 train seq2seq`")
        try:
            config = Seq2SeqConfig(**read_json(run / "config.json"))
        except TypeError as exc:
            raise FileFormatError(f"{run / 'config.json'} is not a seq2seq config: {exc}") from exc
        source_tokenizer = load_tokenizer(run / "source_tokenizer.json")
        target_tokenizer = load_tokenizer(run / "target_tokenizer.json")
        model = Seq2Seq(source_tokenizer.get_vocab_size(), target_tokenizer.get_vocab_size(), config.model)
        weights_path = run / MODEL_FILE
        if not weights_path.is_file():
            raise MissingFileError(f"{weights_path} does not exist; did training finish?")
        try:
            model.load_state_dict(load_safetensors(weights_path.read_bytes()))
        except (SafetensorError, RuntimeError) as exc:
            raise FileFormatError(f"{weights_path} does not hold this model's weights: {exc}") from exc
        model.to(select_device(device)).eval()
        return cls(model, source_tokenizer, target_tokenizer, config)

    def decode_ids(
        self,
        source_ids: Sequence[Sequence[int]],
        beam_width: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        need_weights: bool = True,
    ) -> list[Hypothesis]:
        """Decode already-encoded sources (greedy when the beam width is 1) in eval mode."""
        beam_width = self.config.beam_width if beam_width is None else beam_width
        max_len = self.config.max_output_len if max_len is None else max_len
        length_penalty = self.config.length_penalty if length_penalty is None else length_penalty
        if any(len(ids) == 0 for ids in source_ids):
            raise InvalidInputError("cannot translate an empty sentence (it has no tokens)")
        was_training = self.model.training
        self.model.eval()
        try:
            source = pad(source_ids).to(self.device)
            lengths = torch.tensor([len(ids) for ids in source_ids], device=self.device)
            if beam_width == 1:
                return greedy_decode(self.model, source, lengths, max_len, need_weights)
            return beam_search(self.model, source, lengths, beam_width, max_len, length_penalty, need_weights)
        finally:
            self.model.train(was_training)

    def translate(
        self,
        texts: Sequence[str],
        beam_width: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        batch_size: int = 256,
    ) -> list[Translation]:
        """Translate ``texts``; decoding settings default to the run's config."""
        if isinstance(texts, str):
            raise InvalidInputError("translate takes a list of sentences; wrap a single one in a list")
        results: list[Translation] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            source_ids = encode(self.source_tokenizer, chunk)
            hyps = self.decode_ids(source_ids, beam_width, max_len, length_penalty)
            for ids, hyp in zip(source_ids, hyps, strict=True):
                target_tokens = tokens(self.target_tokenizer, hyp.tokens) + (
                    ["<eos>"] if hyp.complete else []
                )
                results.append(
                    Translation(
                        text=decode(self.target_tokenizer, hyp.tokens),
                        source_tokens=tokens(self.source_tokenizer, ids),
                        target_tokens=target_tokens,
                        weights=None if hyp.weights is None else hyp.weights[:, : len(ids)].numpy(),
                        log_prob=hyp.log_prob,
                    )
                )
        return results
