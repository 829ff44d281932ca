"""The Trainer's configuration: one dataclass whose defaults work for a small model on any device."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nlp182.errors import InvalidInputError

SCHEDULER_INTERVALS = ("epoch", "step")
MONITOR_MODES = ("min", "max")
AMP_DTYPES = ("bfloat16", "float16")


@dataclass
class TrainerConfig:
    """How the Trainer runs.

    ``amp`` turns on autocast where the device supports it (bf16 on CUDA by default; fp16 adds a
    gradient scaler); on CPU it is a no-op so a config written for a GPU still runs here.
    ``checkpoint_every`` counts optimizer steps (0: only at the end of each epoch when ``out_dir`` is
    set). ``resume`` is ``None`` (start fresh), ``"auto"`` (continue from the newest checkpoint in
    ``out_dir`` when one exists) or a checkpoint path. ``monitor_every`` counts optimizer steps
    between the per-layer monitors (update/weight ratio, gradient norms, activation statistics);
    0 turns them off.
    ``keep_best`` keeps the weights of the best epoch by ``monitor`` (in memory, and in
    ``out_dir/best.safetensors`` when ``out_dir`` is set) and loads them back into the model when
    ``fit`` ends, so what a caller saves afterwards is the best epoch, not the last.
    ``time_budget_s`` ends training after the optimizer step at which the training time (steps
    only, summed over resumed sessions) reaches it; the unfinished epoch is still validated and
    recorded (``"partial": true``).
    ``early_stopping_patience_s`` stops once this many seconds of training steps passed since the
    best epoch (a patience that scales with a time budget); either patience may end the run.
    ``patience_after_nonzero`` (``monitor_mode="max"`` only) starts counting either patience only once
    the monitored score has been above 0: a score such as exact match sits at 0 until a model starts
    to get things right, and stopping before then keeps a model that has learned nothing.
    ``monitor_limit`` is the best value the monitored score can take (1 for exact match, 0 for an
    error rate): an epoch that reaches it ends the run, since no later epoch could be kept instead.
    It is an ordinary end (``stop_reason`` says so), not an early-stopping warning.
    ``stall_metric`` is the training metric whose stalling the run warns about (``loss``: the
    optimised loss; a loss with a surrogate term, REINFORCE's, names its honest part, e.g.
    ``cross_entropy``, since the surrogate's value need not fall).
    ``ema_decay`` keeps an exponential moving average of the weights
    (:class:`~nlp182.train.averaging.ExponentialMovingAverage`, with warm-up), updated after every
    optimizer step: validation scores the average, the best epoch keeps the average, and a run
    without a kept best epoch ends with the average in the model. Checkpoints carry it.
    ``seed`` given, the Trainer seeds Python, NumPy and torch with it when it is made; None (the
    default) leaves the random state as the caller set it, so ``torch.manual_seed`` before the run
    decides its shuffles and dropout (a fixed default seed made runs seeded 1 and 2 identical).
    """

    epochs: int = 10
    device: str = "auto"
    amp: bool = True
    amp_dtype: str = "bfloat16"
    grad_accum_steps: int = 1
    clip_grad_norm: float | None = None
    out_dir: str | None = None
    checkpoint_every: int = 0
    keep_last: int = 3
    resume: str | None = None
    early_stopping_patience: int | None = None
    early_stopping_patience_s: float | None = None
    patience_after_nonzero: bool = False
    monitor_limit: float | None = None
    monitor: str = "valid_loss"
    monitor_mode: str = "min"
    log_every: int = 50
    monitor_every: int = 0
    keep_best: bool = False
    stall_metric: str = "loss"
    time_budget_s: float | None = None
    ema_decay: float | None = None
    seed: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InvalidInputError(f"epochs must be >= 1, got {self.epochs}")
        if self.grad_accum_steps < 1:
            raise InvalidInputError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:  # nan too
            raise InvalidInputError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")
        if self.checkpoint_every < 0 or self.keep_last < 1:
            raise InvalidInputError("checkpoint_every must be >= 0 and keep_last >= 1")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise InvalidInputError("early_stopping_patience must be >= 1 or None")
        if self.early_stopping_patience_s is not None and not self.early_stopping_patience_s > 0:
            raise InvalidInputError(
                f"early_stopping_patience_s must be > 0 or None, got {self.early_stopping_patience_s}"
            )
        if self.monitor_mode not in MONITOR_MODES:
            raise InvalidInputError(f"monitor_mode must be one of {MONITOR_MODES}, got {self.monitor_mode!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise InvalidInputError(f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if self.log_every < 1 or self.monitor_every < 0:
            raise InvalidInputError("log_every must be >= 1 and monitor_every >= 0")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise InvalidInputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise InvalidInputError(f"time_budget_s must be > 0 or None, got {self.time_budget_s}")
        if self.resume is not None and self.resume != "auto" and not self.resume:
            raise InvalidInputError("resume must be None, 'auto' or a checkpoint path")
        if self.resume == "auto" and self.out_dir is None:
            raise InvalidInputError("resume='auto' looks for checkpoints in out_dir; set out_dir")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (written to ``config.json`` in ``out_dir``)."""
        return asdict(self)
