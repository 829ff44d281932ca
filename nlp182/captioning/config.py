"""Configuration of a captioning run: data, model, objective, training and decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nlp182.captioning.data import MAX_IMAGE_PIXELS
from nlp182.captioning.model import CaptionModelConfig
from nlp182.errors import InvalidInputError
from nlp182.optim.schedules import PROGRESS_SHAPES

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
    ``num_threads`` caps torch's CPU threads (1-2 on a shared machine); ``deterministic`` trains
    under :func:`nlp182.device.deterministic_algorithms` (on a GPU, two runs of one seed then give
    the same metrics).

    Defaults are the measured digits recipe: soft attention over a 12 x 12 grid of a 16-channel SmallCNN,
    sine/cosine location embeddings, no doubly stochastic regulariser, batch-norm recalibration
    from 50 batches, and, chosen from the data by :func:`~nlp182.captioning.defaults.choose_defaults`
    when left unset (``None`` / ``"auto"``): ``monitor``, ``epochs``, ``early_stopping_patience``
    (0 turns early stopping off), ``ema_decay`` (0 turns the average off), ``pretrain_steps`` and
    ``curriculum_steps`` (0 turns each off). The run folder's ``config.json`` holds what was chosen.
    """

    data: str = "digits"
    images: str | None = None
    max_image_pixels: int = field(default=MAX_IMAGE_PIXELS, metadata={"minimum": 1})
    image_size: int = 48
    train_images: int = 6000
    valid_images: int = 200
    test_images: int = 500
    max_objects: int | None = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    min_count: int = 1
    max_caption_len: int = 30
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    regularizer: float = 0.0
    entropy_weight: float = 0.01
    baseline_momentum: float = 0.9
    curriculum_steps: int | None = field(default=None, metadata={"minimum": 0})
    pretrain_steps: int | None = field(default=None, metadata={"minimum": 0})
    encoder_lr_scale: float = field(default=1.0, metadata={"minimum": 0})
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 2e-3
    lr_schedule: str = "constant"
    clip_grad_norm: float | None = 5.0
    early_stopping_patience: int | None = field(default=None, metadata={"minimum": 0})
    monitor: str = AUTO
    bn_recalibration_batches: int = field(default=50, metadata={"minimum": 0})
    ema_decay: float | None = None
    time_budget_s: float | None = field(default=None, metadata={"positive": True})
    beam_width: int = 5
    length_penalty: float = 1.0
    max_len: int = 20
    num_overlays: int = 3
    device: str = "auto"
    amp: bool = False
    deterministic: bool = False
    num_threads: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = CaptionModelConfig(**self.model)
        positive = {
            "image_size": self.image_size,
            "epochs": 1 if self.epochs is None else self.epochs,
            "batch_size": self.batch_size,
            "beam_width": self.beam_width,
            "max_len": self.max_len,
            "max_caption_len": self.max_caption_len,
            "min_count": self.min_count,
        }
        for name, value in positive.items():
            if value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        if self.data in BUILTIN and min(self.train_images, self.valid_images) < 1:
            raise InvalidInputError("train_images and valid_images must be >= 1")
        if self.test_images < 0 or self.num_overlays < 0:
            raise InvalidInputError("test_images and num_overlays must be >= 0")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1):
            raise InvalidInputError("valid_fraction and test_fraction must be in [0, 1)")
        if self.lr <= 0 or self.regularizer < 0 or self.entropy_weight < 0 or self.length_penalty < 0:
            raise InvalidInputError("lr must be > 0; regularizer, entropy_weight, length_penalty >= 0")
        if (self.curriculum_steps or 0) < 0 or (self.pretrain_steps or 0) < 0 or self.encoder_lr_scale < 0:
            raise InvalidInputError("curriculum_steps, pretrain_steps and encoder_lr_scale must be >= 0")
        if (self.early_stopping_patience or 0) < 0:
            raise InvalidInputError(
                f"early_stopping_patience must be >= 0 (0: off), got {self.early_stopping_patience}"
            )
        if self.monitor not in (*MONITORS, AUTO):
            raise InvalidInputError(f"monitor must be one of {(*MONITORS, AUTO)}, got {self.monitor!r}")
        if self.bn_recalibration_batches < 0:
            raise InvalidInputError(
                f"bn_recalibration_batches must be >= 0, got {self.bn_recalibration_batches}"
            )
        if self.lr_schedule not in PROGRESS_SHAPES:
            raise InvalidInputError(f"lr_schedule must be one of {PROGRESS_SHAPES}, got {self.lr_schedule!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise InvalidInputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InvalidInputError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if self.num_threads is not None and self.num_threads < 1:
            raise InvalidInputError(f"num_threads must be >= 1, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``model``), the inverse of ``CaptionConfig(**d)``."""
        return asdict(self)
