"""Configuration of a seq2seq run: data, tokenisers, model, training and decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nlp182.errors import InvalidInputError
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import TOKENIZER_KINDS

DATES = "dates"


@dataclass
class Seq2SeqConfig:
    """Everything ``nlp182 train seq2seq`` needs; the defaults train the date task to >= 99%.

    Data: ``data`` is ``"dates"`` (the built-in date-normalisation generator with
    ``date_train`` / ``date_valid`` / ``date_test`` pairs on disjoint dates), a TSV file (with
    ``source_column`` / ``target_column`` as 0-based numbers or header names), or a source-side
    file whose line-aligned translations are in ``target_file``. User data is split with
    ``valid_fraction`` / ``test_fraction``; training pairs longer than ``max_length`` tokens on
    either side are dropped.
    Decoding: validation uses greedy search (cheap, every epoch); the final test and
    ``nlp182 translate`` use beam search with ``beam_width``, ``length_penalty`` and at most
    ``max_output_len`` tokens.
    """

    data: str = DATES
    target_file: str | None = None
    source_column: str = "0"
    target_column: str = "1"
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    date_train: int = 20000
    date_valid: int = 1000
    date_test: int = 1000
    max_length: int = 100
    tokenizer: str = "word"
    vocab_size: int = 8000
    min_frequency: int = 1
    lowercase: bool = False
    split_digits: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    clip_grad_norm: float | None = 1.0
    teacher_forcing: float = 1.0
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None
    beam_width: int = 5
    length_penalty: float = 1.0
    max_output_len: int = 100
    num_heatmaps: int = 4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if self.tokenizer not in TOKENIZER_KINDS:
            raise InvalidInputError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {self.tokenizer!r}")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "beam_width": self.beam_width,
            "max_output_len": self.max_output_len,
            "max_length": self.max_length,
        }
        for name, value in positive.items():
            if value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        if self.lr <= 0:
            raise InvalidInputError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.teacher_forcing <= 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidInputError("teacher_forcing must be in [0, 1] and label_smoothing in [0, 1)")
        if self.length_penalty < 0 or self.num_heatmaps < 0:
            raise InvalidInputError("length_penalty and num_heatmaps must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``model``), the inverse of ``Seq2SeqConfig(**d)``."""
        return asdict(self)
