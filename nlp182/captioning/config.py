"""Configuration of a captioning run: data, model, objective, training and decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nlp182.captioning.data import MAX_IMAGE_PIXELS
from nlp182.captioning.model import CaptionModelConfig
from nlp182.decoding import MAX_BEAM_WIDTH
from nlp182.errors import InvalidInputError
from nlp182.optim.schedules import PROGRESS_SHAPES
from nlp182.settings import MAX_THREADS, check_settings, seed_setting, setting

BUILTIN = ("digits", "shapes")
#: Validation scores (greedy decoding) ``monitor`` may name; the kept weights and early stopping follow it.
MONITORS = ("bleu4", "exact_match", "cider_d")
#: A setting chosen from the data (:mod:`nlp182.captioning.defaults`).
AUTO = "auto"


@dataclass
class CaptionConfig:
    """Everything ``nlp182 train caption`` needs; every field is a flag of the same name.

    Data: ``data`` is ``digits`` or ``shapes`` (generated: ``train_images`` / ``valid_images`` /
    ``test_images`` images, at most ``max_objects`` objects each; 5 digits or 3 shapes when
    unset) or a file: a Karpathy-split JSON (its ``split`` fields decide train / valid / test)
    or a TSV of ``image_path<TAB>caption`` (split by image with ``valid_fraction`` /
    ``test_fraction``); ``images`` is the image folder (default: the file's folder), which image
    paths may not leave. Images over ``max_image_pixels`` pixels are refused. Every image
    is resized to ``image_size`` square. Training captions longer than ``max_caption_len`` words
    are dropped; words seen fewer than ``min_count`` times become ``<unk>``.
    Objective: cross-entropy + ``regularizer`` x the doubly stochastic penalty (summed over
    locations, see :mod:`nlp182.captioning.loss`); hard attention uses ``entropy_weight`` and
    ``baseline_momentum``. ``curriculum_steps`` > 0 scores only the first word for that many
    optimizer steps, then the first two (and ``<eos>`` of one-word captions), and so on (see
    :func:`~nlp182.captioning.loss.curriculum_mask`). ``pretrain_steps`` Adam steps of
    bag-of-words pre-training (:mod:`nlp182.captioning.pretrain`) train the encoder first; caption
    training then runs the encoder at ``encoder_lr_scale`` x ``lr`` (0 freezes it, batch norm
    statistics included). ``time_budget_s`` ends training once its steps (pre-training included;
    wall seconds, validation not counted) reach that many seconds. ``lr_schedule`` shapes the caption
    training rate over the run (:class:`~nlp182.optim.ProgressDecay`): ``constant``, or ``linear`` /
    ``cosine`` decay to 0 at the end of the time budget (training seconds after pre-training) or,
    without a budget, of ``epochs`` (optimizer steps); pre-training keeps ``lr``. Validation decodes
    greedily and scores BLEU-4, CIDEr-D and exact match every epoch; early stopping
    (``early_stopping_patience``) and the kept weights follow ``monitor`` (``auto``: exact match for
    short captions, where BLEU-4 stays 0 while many captions are already right, CIDEr-D otherwise).
    ``bn_recalibration_batches`` > 0 recomputes the encoder's batch-norm statistics from that many
    training batches (in order, at the current weights) before every validation, so that the
    kept weights carry statistics that match them (see
    :func:`~nlp182.vision.recalibrate_batch_norm`). With ``ema_decay``, validation, the kept epoch,
    the test scores and the saved weights are those of an exponential moving average of the weights
    (``TrainerConfig.ema_decay``): late in a run the weights swing from epoch to epoch, their
    average much less. Test scores use greedy and beam search
    (``beam_width``, ``length_penalty``, at most ``max_len`` words).
    ``threads`` caps torch's CPU threads (1-2 on a shared machine); ``deterministic`` trains
    under :func:`nlp182.device.deterministic_algorithms` (on a GPU, two runs of one seed then give
    the same metrics).

    Defaults are the measured digits recipe: soft attention over a 12 x 12 grid of a 16-channel SmallCNN,
    sine/cosine location embeddings, no doubly stochastic regulariser, batch-norm recalibration
    from 50 batches, and, chosen from the data by :func:`~nlp182.captioning.defaults.choose_defaults`
    when left unset (``None`` / ``"auto"``): ``monitor``, ``epochs``, ``early_stopping_patience``
    (0 turns early stopping off), ``ema_decay`` (0 turns the average off), ``pretrain_steps`` and
    ``curriculum_steps`` (0 turns each off). The run folder's ``config.json`` holds what was chosen.
    """

    data: str = setting(
        "digits",
        help="digits or shapes (built-in, with boxes), a Karpathy-split JSON, or a TSV of image<TAB>caption",
    )
    images: str | None = setting(
        None,
        help="folder the JSON / TSV image paths are relative to (unset: the file's own folder)",
    )
    max_image_pixels: int = setting(
        MAX_IMAGE_PIXELS, minimum=1,
        help="images with more pixels (width x height) are refused before they are decoded",
    )
    image_size: int = setting(
        48, positive=True, maximum=1024,
        help="every image is resized to this many pixels square, in training and captioning alike "
        "(at most 1024: a batch of larger ones fills the memory of a large machine)",
    )
    train_images: int = setting(6000, minimum=0, help="built-in sets: training images to generate")
    valid_images: int = setting(
        200, minimum=0,
        help="built-in sets: validation images (their greedy --monitor score picks the best epoch)",
    )
    test_images: int = setting(500, minimum=0, help="built-in sets: held-out test images")
    max_objects: int | None = setting(
        None, positive=True,
        help="built-in sets: most objects per image (unset: 5 digits, 3 shapes)",
    )
    valid_fraction: float = setting(
        0.1, minimum=0, below=1,
        help="TSV, or a JSON without a val split: share of images held out for validation",
    )
    test_fraction: float = setting(
        0.1, minimum=0, below=1,
        help="TSV: share of images held out for the final scores",
    )
    min_count: int = setting(
        1, positive=True,
        help="fewest occurrences for a caption word to get its own entry (rarer words become <unk>)",
    )
    max_caption_len: int = setting(
        30, positive=True,
        help="training captions longer than this many words are skipped",
    )
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    regularizer: float = setting(
        0.0, minimum=0,
        help="weight of the doubly stochastic penalty, summed over locations (0 turns it off; it pushes "
             "against sharp attention on grids this fine)",
    )
    entropy_weight: float = setting(0.01, minimum=0, help="hard attention: weight of the entropy bonus")
    baseline_momentum: float = setting(
        0.9,
        minimum=0, below=1, help="hard attention: momentum of the moving-average reward baseline",
    )
    curriculum_steps: int | None = setting(
        None, minimum=0,
        help="score only the first word for this many steps, then the first two, and so on (0: every word "
             "from the start; unset: 0.8 of a pass over the training images, all words within 4 passes, "
             "at least 5, at most 3% of a run without a budget)",
    )
    pretrain_steps: int | None = setting(
        None, minimum=0,
        help="steps of encoder pre-training on each caption's bag of words before caption training (0: none;"
             " unset: 3.2 passes over the training images, at least 50, at most 15% of a run without a "
             "budget)",
    )
    encoder_lr_scale: float = setting(
        1.0, minimum=0,
        help="learning rate of the encoder in caption training, as a multiple of --lr (0 freezes it)",
    )
    epochs: int | None = setting(
        None, positive=True,
        help="passes over the training data (unset: 40, or with --time-budget-s a ceiling the budget ends "
             "first)",
    )
    batch_size: int = setting(32, positive=True, help="examples per training step")
    lr: float = setting(2e-3, positive=True, help="learning rate")
    lr_schedule: str = setting(
        "constant", choices=PROGRESS_SHAPES,
        help="caption training rate over the run: constant, or linear / cosine decay to 0 at the end of "
             "--time-budget-s (else of --epochs)",
    )
    clip_grad_norm: float | None = setting(
        5.0, positive=True,
        help="gradients are scaled down to at most this norm before each step (unset: no clipping)",
    )
    early_stopping_patience: int | None = setting(
        None, minimum=0,
        help="stop after this many epochs without a better validation --monitor score (0: train every epoch;"
             " unset: half of --epochs, at least 10, or with --time-budget-s half the budget in seconds, "
             "counted once the score is above 0)",
    )
    monitor: str = setting(
        AUTO, choices=(AUTO, *MONITORS),
        help="validation score (greedy decoding) that picks the kept epoch and drives early stopping (auto: "
             "exact_match when the median training caption has at most 5 words, else cider_d)",
    )
    bn_recalibration_batches: int = setting(
        50, minimum=0,
        help="before each validation, recompute the encoder's batch-norm statistics from this many training "
             "batches (0: keep the running averages)",
    )
    ema_decay: float | None = setting(
        None, minimum=0, below=1,
        help="validate, keep and save an exponential moving average of the weights with this decay per step "
             "(warmed up; 0: the weights themselves; unset: a horizon of 2.7 passes over the training "
             "images)",
    )
    time_budget_s: float | None = setting(
        None, positive=True,
        help="stop training once its steps (encoder pre-training included) took this many seconds (unset: no"
             " limit)",
    )
    beam_width: int = setting(
        5, positive=True, maximum=MAX_BEAM_WIDTH,
        help="beam width of the test scores and overlays (1: greedy)",
    )
    length_penalty: float = setting(
        1.0,
        minimum=0, maximum=10, help="beam search ranks by log-probability / length ** this",
    )
    max_len: int = setting(20, positive=True, help="most words per generated caption")
    num_overlays: int = setting(
        3, minimum=0,
        help="attention overlays of test images saved in the run folder",
    )
    device: str = setting("auto", help="where to compute: auto (a GPU when there is one), cpu, cuda or mps")
    amp: bool = setting(False, help="mixed precision on a GPU (bf16)")
    deterministic: bool = setting(
        False,
        help="deterministic GPU kernels and cuBLAS workspace, so one seed repeats a run exactly on one GPU "
             "(somewhat slower)",
    )
    threads: int | None = setting(
        None, formerly=("num_threads",),
        positive=True, maximum=MAX_THREADS,
        help="PyTorch CPU threads (unset: PyTorch's choice; 1-2 on a shared machine)",
    )
    seed: int = seed_setting(0, help="random seed; the same seed repeats a run exactly")
    progress: bool = setting(True, help="show progress while training")

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = CaptionModelConfig(**self.model)
        check_settings(self)
        if self.data in BUILTIN and min(self.train_images, self.valid_images) < 1:
            raise InvalidInputError("train_images and valid_images must be >= 1 for a built-in set")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``model``), the inverse of ``CaptionConfig(**d)``."""
        return asdict(self)
