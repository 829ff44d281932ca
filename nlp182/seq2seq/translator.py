"""A trained model with its tokenisers: save / load a run folder, translate text, draw attention.

A run folder holds ``config.json`` (the :class:`Seq2SeqConfig`), ``source_tokenizer.json``,
``target_tokenizer.json``, ``model.safetensors`` and, after training, ``metrics.json`` and
``heatmaps/``. Nothing is pickled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from tokenizers import Encoding, Tokenizer

from nlp182 import decoding
from nlp182.decoding import Hypothesis, make_search
from nlp182.device import select_device
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.io import atomic_write_json, atomic_write_text, read_json
from nlp182.plots import attention_heatmap
from nlp182.seq2seq.architectures import build_model
from nlp182.seq2seq.batching import pad
from nlp182.seq2seq.config import Seq2SeqConfig, check_max_len
from nlp182.seq2seq.tokenize import (
    BOS_ID,
    EOS,
    EOS_ID,
    PAD_ID,
    decode,
    display_token,
    load_tokenizer,
    tokens,
    unknown_tokens,
)
from nlp182.settings import from_saved
from nlp182.train.checkpoint import build_and_load_weights, save_model_weights
from nlp182.train.run import check_finished

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
#: How many unknown tokens a warning names before it says "and N more".
SHOWN_UNKNOWN = 20


@dataclass
class Translation:
    """One translated sentence with what produced it.

    ``weights`` is ``(len(target_tokens), len(source_tokens))``: target tokens down (``<eos>``
    included when the output ended), source tokens across. ``source`` is the input text.
    """

    source: str
    text: str
    source_tokens: list[str]
    target_tokens: list[str]
    weights: np.ndarray | None = field(repr=False)  # a repr of every row was kilobytes
    log_prob: float

    @property
    def complete(self) -> bool:
        """Whether the output ended with ``<eos>`` (else it was cut at ``max_len``)."""
        return bool(self.target_tokens) and self.target_tokens[-1] == EOS

    def save_heatmap(self, path: str | os.PathLike[str], title: str | None = None) -> None:
        """Write the attention heatmap of this translation as a PNG, titled with the input by default.

        Labels are the tokens as a person reads them (no word-boundary marker).
        """
        if self.weights is None:
            raise InvalidInputError("this translation was made without attention weights")
        attention_heatmap(
            self.weights,
            [display_token(t) for t in self.source_tokens],
            [display_token(t) for t in self.target_tokens],
            path,
            title=title or f"{self.source} → {self.text}",
        )


def _check_ids(source_ids: Sequence[Sequence[int]], vocab_size: int) -> None:
    """Refuse a source id that is not a whole number in ``[0, vocab_size)`` (the embedding would
    fail with an index error naming neither)."""
    for row, ids in enumerate(source_ids):
        for token in ids:
            if isinstance(token, bool) or not isinstance(token, Integral) or not 0 <= token < vocab_size:
                raise InvalidInputError(
                    f"source {row}: id {token!r} is not one of the source vocabulary's 0..{vocab_size - 1}"
                )


class Translator:
    """Translate with a model (recurrent or Transformer) and its source / target tokenisers."""

    def __init__(
        self,
        model: torch.nn.Module,
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

    def __repr__(self) -> str:
        model = self.config.model
        kind = "transformer" if model.architecture == "transformer" else f"{model.cell} {model.attention}"
        parameters = sum(p.numel() for p in self.model.parameters())
        return (f"Translator({kind}, {parameters:,} parameters, {self.source_tokenizer.get_vocab_size()} "
                f"source / {self.target_tokenizer.get_vocab_size()} target tokens, on {self.device})")

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        """Write config, tokenisers and weights into ``run_dir`` (each file atomically)."""
        run = Path(run_dir)
        atomic_write_json(run / "config.json", self.config.to_dict())
        atomic_write_text(run / "source_tokenizer.json", self.source_tokenizer.to_str())
        atomic_write_text(run / "target_tokenizer.json", self.target_tokenizer.to_str())
        save_model_weights(run / MODEL_FILE, self.model)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], device: str = "auto", weights: bool = True) -> Translator:
        """Load a run folder written by :meth:`save` onto ``device``.

        The model is built only once ``model.safetensors`` is found to hold tensors of exactly the
        shapes ``config.json`` gives (read from its header), so a damaged or hand-edited config
        raises ``FileFormatError`` instead of allocating a model of its size.
        ``weights=False`` reads config and tokenisers only and leaves the model freshly
        initialised (resuming a run whose weights come from a checkpoint).
        """
        run = Path(run_dir)
        if weights:  # a resumed run reads its own staging folder's settings
            check_finished(run, "nlp182 train seq2seq")
        if not run.is_dir():
            raise MissingFileError(f"{run} is not a folder; pass the --out folder of `nlp182 train seq2seq`")
        saved = read_json(run / "config.json")
        try:
            config = from_saved(Seq2SeqConfig, saved)
        except (TypeError, InvalidInputError) as exc:  # a damaged or hand-edited file: say which
            raise FileFormatError(f"{run / 'config.json'} is not a seq2seq config: {exc}") from exc
        source_tokenizer = load_tokenizer(run / "source_tokenizer.json")
        target_tokenizer = load_tokenizer(run / "target_tokenizer.json")
        sizes = source_tokenizer.get_vocab_size(), target_tokenizer.get_vocab_size()
        if not weights:
            model = build_model(*sizes, config.model)
            return cls(model.to(select_device(device)), source_tokenizer, target_tokenizer, config)
        model = build_and_load_weights(run / MODEL_FILE, lambda: build_model(*sizes, config.model))
        model.to(select_device(device)).eval()
        return cls(model, source_tokenizer, target_tokenizer, config)

    def decode_ids(
        self,
        source_ids: Sequence[Sequence[int]] | torch.Tensor | np.ndarray,
        beam_width: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        need_weights: bool = True,
    ) -> list[Hypothesis]:
        """Decode already-encoded sources (greedy when the beam width is 1) in eval mode.

        Settings left ``None`` come from the run's config; :func:`~nlp182.decoding.make_search`
        turns them into the search strategy. No sources give no hypotheses.

        Raises:
            InvalidInputError: an empty source, or an id outside the source vocabulary.
        """
        beam_width = self.config.beam_width if beam_width is None else beam_width
        max_len = self.config.max_len if max_len is None else max_len
        length_penalty = self.config.length_penalty if length_penalty is None else length_penalty
        if isinstance(source_ids, torch.Tensor | np.ndarray):  # a (B, S) id tensor: its ids as ints
            source_ids = source_ids.tolist()
        if len(source_ids) == 0:
            return []
        if any(len(ids) == 0 for ids in source_ids):
            raise InvalidInputError("cannot translate an empty sentence (it has no tokens)")
        _check_ids(source_ids, self.source_tokenizer.get_vocab_size())
        positions = getattr(self.model, "max_source_tokens", None)
        if positions is not None:  # refused now, not after positions steps
            check_max_len(max_len, positions)
        source = pad(source_ids).to(self.device)
        lengths = torch.tensor([len(ids) for ids in source_ids], device=self.device)
        return decoding.decode(
            self.model,
            make_search(beam_width, length_penalty),
            source,
            lengths,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            max_len=max_len,
            need_weights=need_weights,
            pad_id=PAD_ID,
        )

    def translate(
        self,
        texts: Sequence[str],
        beam_width: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        batch_size: int = 256,
        warn: bool = True,
        need_weights: bool = True,
        encodings: Sequence[Encoding] | None = None,
    ) -> list[Translation]:
        """Translate ``texts``; decoding settings default to the run's config.

        Each text goes through the run's own source tokeniser (normalisation, lower-casing,
        splitting) exactly as in training, once: ``encodings`` are those :meth:`encode` already
        gave, when the caller has them. With ``warn``, pieces the source vocabulary
        lacks (read as ``<unk>``) are named in one logged warning. ``need_weights=False`` skips the
        attention weights (faster; ``weights`` is then ``None``).
        """
        if isinstance(texts, str):
            raise InvalidInputError("translate takes a list of sentences; wrap a single one in a list")
        texts = list(texts)  # a generator too
        odd = next((index for index, text in enumerate(texts) if not isinstance(text, str)), None)
        if odd is not None:
            shown = type(texts[odd]).__name__
            raise InvalidInputError(f"text {odd} is a {shown}, not a str: translate takes sentences as text")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        encodings = self.encode(texts) if encodings is None else encodings
        if len(encodings) != len(texts):
            raise InvalidInputError(f"{len(encodings)} encodings for {len(texts)} texts; give encode(texts)")
        for index, (text, problem) in enumerate(zip(texts, self._problems(texts, encodings), strict=True)):
            if problem:
                raise InvalidInputError(f"cannot translate text {index} ({text[:40]!r}): {problem}")
        if warn:
            self.warn_unknown(texts, encodings)
        results: list[Translation] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            source_ids = [encoding.ids for encoding in encodings[start : start + batch_size]]
            hyps = self.decode_ids(source_ids, beam_width, max_len, length_penalty, need_weights)
            for text, ids, hyp in zip(chunk, source_ids, hyps, strict=True):
                target_tokens = tokens(self.target_tokenizer, hyp.tokens) + ([EOS] if hyp.complete else [])
                results.append(
                    Translation(
                        source=text,
                        text=decode(self.target_tokenizer, hyp.tokens).strip(),
                        source_tokens=tokens(self.source_tokenizer, ids),
                        target_tokens=target_tokens,
                        weights=None if hyp.weights is None else hyp.weights[:, : len(ids)].numpy(),
                        log_prob=hyp.log_prob,
                    )
                )
        if warn:
            self.warn_cut(sum(not result.complete for result in results), len(texts), max_len)
        return results

    def warn_cut(self, cut: int, total: int, max_len: int | None = None) -> None:
        """Log one warning when ``cut`` of ``total`` translations reached ``max_len`` (default: the
        run's) before ``<eos>``."""
        if cut:
            limit = self.config.max_len if max_len is None else max_len
            log.warning("%d of %d translations reached max_len (%d tokens) before <eos> and are cut "
                        "short; raise max_len (--max-len on the command line)", cut, total, limit)

    def _problems(self, texts: Sequence[str], encodings: Sequence[Encoding]) -> list[str | None]:
        """Why each text cannot be translated (blank, or longer than the model reads), or None."""
        limit = getattr(self.model, "max_source_tokens", None)
        return [
            "it is blank" if not text.strip()
            else f"it has {len(encoding.ids)} tokens and this model reads at most {limit}"
            if limit is not None and len(encoding.ids) > limit else None
            for text, encoding in zip(texts, encodings, strict=True)
        ]

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """``texts`` through the run's source tokeniser (what :meth:`translate` reads), each
        stripped of surrounding whitespace as training pairs are: a leading space, never seen in
        training, was read as an unknown token and translated otherwise, without a word."""
        return self.source_tokenizer.encode_batch([text.strip() for text in texts], add_special_tokens=False)

    def translatable(self, texts: Sequence[str], encodings: Sequence[Encoding]) -> list[bool]:
        """Which ``texts`` (with their :meth:`encode` ``encodings``) :meth:`translate` takes: not
        blank, and within the model's source length."""
        return [problem is None for problem in self._problems(texts, encodings)]

    def warn_unknown(self, texts: Sequence[str], encodings: Sequence[Encoding]) -> list[str]:
        """Log one warning naming the pieces of ``texts`` that their source ``encodings`` read as
        ``<unk>``; return them."""
        unknown = self.unknown_pieces(texts, encodings)
        self.log_unknown(unknown)
        return unknown

    @staticmethod
    def log_unknown(unknown: Sequence[str]) -> None:
        """One warning naming the first of the ``unknown`` pieces and how many more there are."""
        if unknown:
            shown = ", ".join(repr(piece) for piece in unknown[:SHOWN_UNKNOWN])
            more = f" and {len(unknown) - SHOWN_UNKNOWN} more" if len(unknown) > SHOWN_UNKNOWN else ""
            log.warning(
                "the input holds tokens unknown to the source vocabulary (read as <unk>): %s%s", shown, more
            )

    @staticmethod
    def unknown_pieces(texts: Sequence[str], encodings: Sequence[Encoding]) -> list[str]:
        """The pieces of ``texts`` their ``encodings`` read as ``<unk>``, in order, without repeats."""
        unknown: dict[str, None] = {}
        for text, encoding in zip(texts, encodings, strict=True):  # offsets into the text as encoded
            unknown.update(dict.fromkeys(unknown_tokens(text.strip(), encoding)))
        return list(unknown)
