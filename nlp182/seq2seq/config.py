"""Configuration of a seq2seq run: data, tokenisers, model, training and decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nlp182.decoding import MAX_BEAM_WIDTH
from nlp182.errors import InvalidInputError
from nlp182.seq2seq.cmudict import CMUDICT
from nlp182.seq2seq.data import MAX_SENTENCE_BYTES
from nlp182.seq2seq.metrics import parse_metrics
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import TOKENIZER_KINDS
from nlp182.settings import MAX_THREADS, check_settings, remember_given, seed_setting, setting

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
#: User data whose targets are read letter by letter (a word each: spelling, transliteration):
#: word-level PER would equal 1 - exact match and BLEU has no 4-grams to count.
USER_SPELLING_METRICS = "exact_match,cer"


def check_max_len(max_len: int, positions: int) -> None:
    """Refuse decoding ``max_len`` tokens with a model of ``positions`` positions: step t reads the
    ``<bos>`` and t outputs, so ``max_len`` steps need ``max_len`` positions."""
    if max_len > positions:
        raise InvalidInputError(f"--max-len must be at most the model's {positions} positions, got {max_len}")


@remember_given
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
    and CER for dates, exact match, PER (token error rate) and BLEU for user data (exact match and
    CER when its targets are read letter by letter).
    Training: ``lr_schedule`` is one of :data:`LR_SCHEDULES` with ``warmup_steps``;
    ``time_budget_s`` (seconds) ends training early, after the optimizer step that crosses it;
    ``threads`` sets PyTorch's CPU threads (None leaves PyTorch's default); ``deterministic``
    trains under :func:`nlp182.device.deterministic_algorithms` (on a GPU, two runs of one seed
    then give the same metrics).
    Decoding: validation uses greedy search (cheap, every epoch); the final test and
    ``nlp182 translate`` use beam search with ``beam_width``, ``length_penalty`` and at most
    ``max_len`` tokens.
    """

    data: str = setting(
        DATES,
        help="'dates' (built-in generator), 'cmudict' (grapheme-to-phoneme), a TSV file, or the source side "
             "of two aligned files",
    )
    target_file: str | None = setting(
        None,
        help="target side (line-aligned with --data); omit when --data is a TSV",
    )
    source_column: str = setting("0", help="TSV source column: 0-based number or header name")
    target_column: str = setting("1", help="TSV target column: 0-based number or header name")
    valid_data: str | None = setting(
        None,
        help="held-out validation file in --data's format (instead of cutting --valid-fraction)",
    )
    valid_target_file: str | None = setting(
        None,
        help="target side of --valid-data when it is an aligned source file",
    )
    test_data: str | None = setting(
        None,
        help="held-out test file in --data's format (instead of cutting --test-fraction)",
    )
    test_target_file: str | None = setting(
        None,
        help="target side of --test-data when it is an aligned source file",
    )
    valid_fraction: float = setting(
        0.05, minimum=0, below=1,
        help="share of your pairs held out to pick the best epoch",
    )
    test_fraction: float = setting(
        0.05, minimum=0, below=1,
        help="share of your pairs held out for the final scores",
    )
    date_train: int = setting(20000, positive=True, help="date task: training pairs")
    date_valid: int = setting(1000, positive=True, help="date task: validation pairs")
    date_test: int = setting(1000, positive=True, help="date task: test pairs")
    max_length: int = setting(
        100,
        positive=True, help="longest training pair, in tokens on either side; longer ones are skipped",
    )
    max_line_bytes: int = setting(
        MAX_SENTENCE_BYTES, positive=True,
        help="longest line of a --data/--target-file file, in bytes; longer lines are skipped with their "
             "pair and counted",
    )
    tokenizer: str = setting(
        "word", choices=TOKENIZER_KINDS,
        help="tokeniser of both sides (char: every character a token)",
    )
    source_tokenizer: str | None = setting(
        None, choices=TOKENIZER_KINDS,
        help="source-side tokeniser (default: the data set's own, else --tokenizer)",
    )
    target_tokenizer: str | None = setting(
        None, choices=TOKENIZER_KINDS,
        help="target-side tokeniser (default: the data set's own, else --tokenizer)",
    )
    vocab_size: int = setting(8000, positive=True, help="most tokens in each vocabulary")
    min_count: int = setting(
        1, positive=True, formerly=("min_frequency",),
        help="fewest occurrences for a token to get its own entry",
    )
    lowercase: bool = setting(False, help="lowercase the text first")
    split_digits: bool = setting(True, help="one token per digit")
    metrics: str = setting(
        "auto",
        help="comma-separated from exact_match, wer, per, cer, bleu; the first picks the best epoch (auto: "
             "wer,per for cmudict, exact_match,cer for dates and for targets read letter by letter, "
             "exact_match,per,bleu otherwise)",
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = setting(10, positive=True, help="passes over the training data")
    batch_size: int = setting(64, positive=True, help="examples per training step")
    lr: float = setting(3e-3, positive=True, help="learning rate")
    lr_schedule: str = setting("none", choices=LR_SCHEDULES, help="learning-rate schedule by name")
    warmup_steps: int = setting(0, minimum=0, help="optimizer steps of linear warmup (warmup-* schedules)")
    time_budget_s: float | None = setting(
        None, positive=True, formerly=("time_budget",),
        help="stop training after this many seconds of training steps",
    )
    threads: int | None = setting(
        None, positive=True, maximum=MAX_THREADS,
        help="PyTorch CPU threads (default: PyTorch's choice)",
    )
    clip_grad_norm: float | None = setting(
        1.0, positive=True,
        help="gradients are scaled down to at most this norm before each step",
    )
    teacher_forcing: float = setting(
        1.0,
        minimum=0, maximum=1, help="probability of feeding the true previous token while training",
    )
    label_smoothing: float = setting(
        0.0,
        minimum=0, below=1, help="share of the target probability spread over all tokens",
    )
    early_stopping_patience: int | None = setting(
        None, positive=True,
        help="stop after this many epochs without a better validation score (default: train every epoch)",
    )
    beam_width: int = setting(
        5,
        positive=True, maximum=MAX_BEAM_WIDTH,
        help="candidates kept while decoding the test set and by translate; 1 is greedy",
    )
    length_penalty: float = setting(
        1.0,
        minimum=0, maximum=10, help="favour longer outputs as it grows; 0 ranks by total probability",
    )
    max_len: int = setting(100, positive=True, formerly=("max_output_len",), help="most output tokens")
    num_heatmaps: int = setting(4, minimum=0, help="attention heatmaps of test sentences saved in the run")
    device: str = setting("auto", help="where to compute: auto (a GPU when there is one), cpu, cuda or mps")
    amp: bool = setting(True, help="mixed precision on a GPU (bf16)")
    deterministic: bool = setting(
        False,
        help="deterministic GPU kernels and cuBLAS workspace, so one seed repeats a run exactly on one GPU "
             "(somewhat slower)",
    )
    seed: int = seed_setting(0, help="random seed; the same seed repeats a run exactly")
    progress: bool = setting(True, help="show progress while training")

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        check_settings(self)
        for split in ("valid", "test"):  # a target file alone was ignored without a word
            if getattr(self, f"{split}_target_file") is not None and getattr(self, f"{split}_data") is None:
                raise InvalidInputError(
                    f"--{split}-target-file is the target side of --{split}-data; give --{split}-data too "
                    f"(its source side)"
                )
        for data, target in ((self.data, self.target_file), (self.valid_data, self.valid_target_file),
                             (self.test_data, self.test_target_file)):
            if target is not None and data is not None and data.lower().endswith(".tsv"):
                raise InvalidInputError(
                    f"{data} is a TSV of pairs, read by its columns; a target file goes with a file of "
                    f"sources alone ({target} would pair each whole TSV line with a line of it)"
                )
        if self.metrics != "auto":
            parse_metrics(self.metrics)
        if self.model.architecture == "transformer":  # what it would refuse at its first batch
            from nlp182.seq2seq.transformer import MAX_POSITIONS

            if self.teacher_forcing != 1.0:
                raise InvalidInputError(
                    "the transformer trains with full teacher forcing; --teacher-forcing "
                    f"{self.teacher_forcing} is for the recurrent decoders"
                )
            check_max_len(self.max_len, MAX_POSITIONS)

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
        if self.data in DATA_DEFAULTS:
            return parse_metrics(DATA_DEFAULTS[self.data]["metrics"])
        spelled = self.tokenizer_kinds()[1] == "char"
        return parse_metrics(USER_SPELLING_METRICS if spelled else USER_DATA_METRICS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``model``), the inverse of ``Seq2SeqConfig(**d)``."""
        return asdict(self)
