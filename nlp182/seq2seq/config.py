"""Configuration of a seq2seq run: data, tokenisers, model, training and decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nlp182.errors import InvalidInputError
from nlp182.seq2seq.cmudict import CMUDICT
from nlp182.seq2seq.data import MAX_SENTENCE_BYTES
from nlp182.seq2seq.metrics import parse_metrics
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import TOKENIZER_KINDS

DATES = "dates"
BUILTIN_DATA = (DATES, CMUDICT)
#: ``--lr-schedule`` names: constant, linear warmup then cosine decay to 0 over the run, linear
#: warmup then 1/sqrt(step) decay (the Transformer's), or x0.5 after an epoch without improvement.
LR_SCHEDULES = ("none", "warmup-cosine", "warmup-invsqrt", "plateau")
#: What each data set's tokenisers and metrics are when left to "auto" / None.
DATA_DEFAULTS: dict[str, dict[str, str]] = {
    DATES: {"source_tokenizer": "word", "target_tokenizer": "word", "metrics": "exact_match,cer"},
    CMUDICT: {"source_tokenizer": "char", "target_tokenizer": "word", "metrics": "wer,per"},
}
USER_DATA_METRICS = "exact_match,per,bleu"


@dataclass
class Seq2SeqConfig:
    """Everything ``nlp182 train seq2seq`` needs; the defaults train the date task to >= 99%.

    Data: ``data`` is ``"dates"`` (the built-in date-normalisation generator with
    ``date_train`` / ``date_valid`` / ``date_test`` pairs on disjoint dates), ``"cmudict"``
    (grapheme-to-phoneme on the CMU Pronouncing Dictionary, split by a hash of the word), a TSV
    file (with ``source_column`` / ``target_column`` as 0-based numbers or header names), or a
    source-side file whose line-aligned translations are in ``target_file``. ``valid_data`` /
    ``test_data`` name held-out files in the same format (aligned ones with ``valid_target_file``
    / ``test_target_file``); a split without its own file is cut from ``data`` with
    ``valid_fraction`` / ``test_fraction`` (0 = no such split). Pairs sharing a source in a
    held-out split are alternative references. Training pairs longer than ``max_length`` tokens
    on either side are dropped; a line of a user's file longer than ``max_line_bytes`` is skipped
    with its pair (and counted) as it is read, held-out splits included.
    Tokenisers: ``tokenizer`` (``word``, ``bpe`` or ``char``) for both sides unless
    ``source_tokenizer`` / ``target_tokenizer`` say otherwise; built-in data sets bring their
    own (cmudict: letters in, lower-cased, phonemes out). ``metrics`` names what validation and
    test report (see :data:`nlp182.seq2seq.metrics.METRICS`); the first one picks the best
    epoch, whose weights are the ones saved. ``"auto"``: WER and PER for cmudict, exact match
    and CER for dates, exact match, PER (token error rate) and BLEU for user data.
    Training: ``lr_schedule`` is one of :data:`LR_SCHEDULES` with ``warmup_steps``;
    ``time_budget`` (seconds) ends training early, after the optimizer step that crosses it;
    ``threads`` sets PyTorch's CPU threads (None leaves PyTorch's default); ``deterministic``
    trains under :func:`nlp182.device.deterministic_algorithms` (on a GPU, two runs of one seed
    then give the same metrics).
    Decoding: validation uses greedy search (cheap, every epoch); the final test and
    ``nlp182 translate`` use beam search with ``beam_width``, ``length_penalty`` and at most
    ``max_output_len`` tokens.
    """

    data: str = DATES
    target_file: str | None = None
    source_column: str = "0"
    target_column: str = "1"
    valid_data: str | None = None
    valid_target_file: str | None = None
    test_data: str | None = None
    test_target_file: str | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    date_train: int = 20000
    date_valid: int = 1000
    date_test: int = 1000
    max_length: int = 100
    max_line_bytes: int = MAX_SENTENCE_BYTES
    tokenizer: str = "word"
    source_tokenizer: str | None = None
    target_tokenizer: str | None = None
    vocab_size: int = 8000
    min_frequency: int = 1
    lowercase: bool = False
    split_digits: bool = True
    metrics: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    lr_schedule: str = "none"
    warmup_steps: int = 0
    time_budget: float | None = None
    threads: int | None = None
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
    deterministic: bool = False
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        for name in ("tokenizer", "source_tokenizer", "target_tokenizer"):
            kind = getattr(self, name)
            if kind is not None and kind not in TOKENIZER_KINDS:
                raise InvalidInputError(f"{name} must be one of {TOKENIZER_KINDS}, got {kind!r}")
        if self.metrics != "auto":
            parse_metrics(self.metrics)
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0 or (self.time_budget is not None and self.time_budget <= 0):
            raise InvalidInputError("warmup_steps must be >= 0 and time_budget > 0 (or None)")
        if self.threads is not None and self.threads < 1:
            raise InvalidInputError(f"threads must be >= 1, got {self.threads}")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "beam_width": self.beam_width,
            "max_output_len": self.max_output_len,
            "max_length": self.max_length,
            "max_line_bytes": self.max_line_bytes,
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

    def tokenizer_kinds(self) -> tuple[str, str]:
        """The (source, target) tokeniser kinds after applying the data set's own defaults."""
        defaults = DATA_DEFAULTS.get(self.data, {})
        source = self.source_tokenizer or defaults.get("source_tokenizer", self.tokenizer)
        target = self.target_tokenizer or defaults.get("target_tokenizer", self.tokenizer)
        return source, target

    def metric_names(self) -> list[str]:
        """The metrics to report, the first one choosing the best epoch."""
        if self.metrics != "auto":
            return parse_metrics(self.metrics)
        return parse_metrics(DATA_DEFAULTS.get(self.data, {}).get("metrics", USER_DATA_METRICS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``model``), the inverse of ``Seq2SeqConfig(**d)``."""
        return asdict(self)
