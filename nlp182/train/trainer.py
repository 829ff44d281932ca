"""One training loop for any ``nn.Module`` and loss.

The Trainer owns what every model needs and nobody should write twice: device placement, mixed
precision, gradient accumulation and clipping, LR schedules stepped per batch or per epoch,
validation with early stopping and the best epoch kept, a training-time budget, progress with
throughput (timed over training steps only), ``metrics.jsonl`` and a loss-curve PNG, atomic
checkpoints that resume bit-identically mid-epoch (Ctrl-C keeps the last complete one and says
where it is), the course's per-layer monitors, and distributed data parallel when launched by
``torchrun``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nlp182.device import autocast_dtype, seed_everything
from nlp182.errors import InvalidInputError, NonFiniteError
from nlp182.io import atomic_write_json, atomic_write_text, check_input_file
from nlp182.optim import clip_grad_norm_
from nlp182.optim.clipping import grad_norm
from nlp182.plots import loss_curves
from nlp182.progress import known_length, progress
from nlp182.train.averaging import ExponentialMovingAverage
from nlp182.train.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from nlp182.train.config import SCHEDULER_INTERVALS, TrainerConfig
from nlp182.train.diagnostics import loss_stalled, still_improving, zero_kept_score
from nlp182.train.distributed import all_reduce_mean, init_distributed
from nlp182.train.monitors import LayerMonitor
from nlp182.train.nested import batch_size_of, move_to_device
from nlp182.train.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, float]]
LossFn = Callable[[nn.Module, Any], LossOutput]
EvalFn = Callable[[nn.Module, Iterable[Any]], dict[str, float]]
StepHook = Callable[[nn.Module], None]
EpochHook = Callable[[nn.Module, dict[str, Any]], None]
UnitsFn = Callable[[Any], int]
BEST_FILE = "best.safetensors"


def _split_loss(output: LossOutput) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss and the extra metrics of what ``loss_fn`` returned; anything but a one-element
    loss tensor (a float, a dict, a per-sample loss) is refused by name."""
    loss, metrics = output if isinstance(output, tuple) and len(output) == 2 else (output, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not isinstance(metrics, dict):
        shape = (f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor)
                 else type(output).__name__)
        raise InvalidInputError(f"loss_fn must return a one-element loss tensor, or (loss, {{name: float}}); "
                                f"it returned {shape} (reduce a per-sample loss with .mean())")
    return loss.reshape(()), {k: float(v) for k, v in metrics.items()}


def _loader_generators(loader: Iterable[Any]) -> list[torch.Generator]:
    """Generators that decide a DataLoader's order (its own and its sampler's), in a fixed order."""
    found = [getattr(loader, "generator", None), getattr(getattr(loader, "sampler", None), "generator", None)]
    return [g for g in found if isinstance(g, torch.Generator)]


class Trainer:
    """Train ``model`` with ``optimizer`` on ``loss_fn(model, batch)``.

    ``loss_fn`` returns a scalar loss tensor, or ``(loss, {"name": float})`` for extra metrics that
    are averaged per epoch. The batch reaches it already on the device (tensors inside tuples,
    lists and dicts are moved). ``eval_fn(model, valid_loader)`` returns a dict of validation
    metrics; without it the Trainer reports ``valid_loss``, the mean of ``loss_fn`` over the
    validation batches under ``torch.no_grad()``. ``scheduler`` is stepped after every optimizer
    step (``scheduler_interval="step"``) or every epoch (``"epoch"``; a ``ReduceLROnPlateau`` gets
    the monitored value). ``on_step(model)`` runs after every optimizer step (``ema_decay`` needs none)
    and ``on_epoch_end(model, record)`` after every epoch's record is complete (snapshots).
    ``units_fn(batch)`` counts what throughput is measured in besides
    samples (target tokens, say); each epoch record then has ``{units_name}_per_s``, and the
    epoch's means of the loss and metrics weigh each batch by its units (by its examples without
    ``units_fn``; a logged step is the mean of its accumulated batches). Throughput
    and ``time_s`` cover training steps only: validation and checkpoint writes are not timed.
    After ``fit``, ``stop_reason`` says why training ended before ``epochs`` (early stopping or the
    time budget; ``None`` when every epoch ran) and ``warnings`` holds one line per problem found
    (a kept epoch scoring 0, a training loss that stopped falling; see
    :mod:`nlp182.train.diagnostics`), each also logged as a warning.

    A loss, or a gradient norm (of every parameter the optimizer steps, a loss module's too), that
    is inf or NaN stops ``fit`` with ``NonFiniteError`` before the step could write it into the
    weights, naming the epoch, batch and step and what can cause it there; with ``keep_best`` the
    model is left with the best epoch's weights. A checkpoint is never written of weights that are
    not finite. Under a float16 gradient scaler an overflowing step is skipped instead, as torch's
    ``GradScaler`` does.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        config: TrainerConfig | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        eval_fn: EvalFn | None = None,
        on_step: StepHook | None = None,
        on_epoch_end: EpochHook | None = None,
        units_fn: UnitsFn | None = None,
        units_name: str = "tokens",
    ) -> None:
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise InvalidInputError(
                f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}"
            )
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and scheduler_interval == "step":
            raise InvalidInputError(
                "ReduceLROnPlateau steps on an epoch's validation metric: use scheduler_interval='epoch'"
            )
        self.config = config or TrainerConfig()
        self.dist = init_distributed(self.config.device)
        self.device = self.dist.device
        if self.config.seed is not None:
            seed_everything(self.config.seed)
        # A torch.compile'd model trains compiled; its state is its original module's, whose
        # names lack the wrapper's "_orig_mod." (a checkpoint loads into the plain model).
        self.model = _uncompiled(model).to(self.device)
        self.ema = (
            ExponentialMovingAverage(self.model, self.config.ema_decay, warmup=True)
            if self.config.ema_decay is not None else None
        )  # fmt: skip
        if not any(param.requires_grad for group in optimizer.param_groups for param in group["params"]):
            raise InvalidInputError("the optimizer holds no parameter with requires_grad=True (a model "
                                    "frozen whole): there is nothing to train; unfreeze some layers")
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.eval_fn = eval_fn
        self.on_step = on_step
        self.on_epoch_end = on_epoch_end
        self.units_fn = units_fn
        self.units_name = units_name
        self.net: nn.Module = model
        if self.dist.is_distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        amp_dtype = autocast_dtype(self.device) if self.config.amp else None
        if amp_dtype is not None and self.config.amp_dtype == "float16":
            amp_dtype = torch.float16
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype == torch.float16)
        self.out_dir = Path(self.config.out_dir) if self.config.out_dir else None
        # hooks on the model only while fit runs: a model with them cannot be pickled or saved whole
        self.monitor = LayerMonitor(model, attach=False) if self.config.monitor_every else None
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_time_s: float | None = None
        self.stop_reason: str | None = None
        #: How ``stop_reason`` names the time budget (default: its seconds); a caller that spent part
        #: of the user's budget before ``fit`` says so here.
        self.budget_label: str | None = None
        self.warnings: list[str] = []
        self._best_state: dict[str, torch.Tensor] | None = None
        self._clock: dict[str, float] = {}
        self._out_of_time = False
        self._epoch_rng: dict[str, Any] | None = None
        self._loader_rng: list[torch.Tensor] | None = None
        self._resume_rng: dict[str, Any] | None = None
        self._resumed_from: Path | None = None  # the checkpoint a resume read
        self._epoch_sums: dict[str, float] = {}
        self._batch_means: dict[str, float] | None = None  # an older checkpoint's, until replayed
        self._step_lr: float | None = None

    # ------------------------------------------------------------------ public API
    def fit(
        self, train_loader: Iterable[Any], valid_loader: Iterable[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (continuing a resumed run); return one record per epoch."""
        if self.out_dir is not None and self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "config.json", self.config.to_dict())
        self._maybe_resume()
        # gradients the caller left (a backward to look at them) would be added to the first step
        self.optimizer.zero_grad(set_to_none=True)
        if self.epoch > self.config.epochs:  # its record would hold epochs past its own count
            raise InvalidInputError(
                f"the resumed run has trained {self.epoch} epochs, more than epochs={self.config.epochs}; "
                f"give at least {self.epoch} (CLI: --epochs), or leave it out to keep the run's own count"
            )
        self._check_monitor_source(valid_loader)
        stop = self._early_stop_reached() or self._budget_spent()
        if self.epoch >= self.config.epochs and self.dist.is_main:
            log.warning("all %d epochs have run: nothing to train (raise config.epochs to train on)",
                        self.config.epochs)
        if self.monitor is not None:
            self.monitor.attach()
        try:
            while self.epoch < self.config.epochs and not stop:
                record = self._train_epoch(train_loader)
                with self._averaged_weights():  # validated and kept: the EMA, when there is one
                    if valid_loader is not None:
                        record.update(self.evaluate(valid_loader))
                    self._step_epoch_scheduler(record)
                    stop = self._update_early_stopping(record) or self._out_of_time
                if self._out_of_time and self.stop_reason is None:
                    budget = self.budget_label or f"{self.config.time_budget_s:g} s"
                    self.stop_reason = f"the time budget ({budget}) ran out in epoch {self.epoch + 1}"
                self.history.append(record)
                self.epoch += 1
                self.batch_in_epoch = 0
                self._epoch_rng = None
                self._log_epoch(record)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.model, record)
                if self.out_dir is not None:
                    self.save()
        except KeyboardInterrupt:
            self._report_interrupt()
            raise
        except NonFiniteError as exc:  # the weights may be spoilt: a kept best epoch is what is left
            if self._restore_best():
                raise NonFiniteError(f"{exc}; the model holds the best epoch's ({self.best_epoch}) "
                                     "weights") from None
            raise
        finally:
            if self.monitor is not None:
                self.monitor.remove()
        self._restore_best()
        if self.ema is not None and (self.best_epoch is None or not self.config.keep_best):
            self.ema.copy_to(self.model)  # nothing kept: the run ends with the averaged weights
        self._diagnose()
        return self.history

    def warn(self, message: str) -> None:
        """Add ``message`` to ``warnings`` and log it (a model family's own checks use this too)."""
        self.warnings.append(message)
        if self.dist.is_main:
            log.warning("%s", message)

    @property
    def train_time_s(self) -> float:
        """Seconds spent in training steps over the whole run (resumed sessions included)."""
        return sum(r.get("time_s", 0.0) for r in self.history) + self._clock.get("time", 0.0)

    def __repr__(self) -> str:
        return (f"Trainer({type(self.model).__name__}, {type(self.optimizer).__name__}, epoch "
                f"{self.epoch}/{self.config.epochs}, step {self.global_step}, on {self.device})")

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint in ``out_dir`` (``None`` when there is none)."""
        found = list_checkpoints(self.out_dir) if self.out_dir is not None else []
        return found[-1] if found else None

    @torch.no_grad()
    def evaluate(self, valid_loader: Iterable[Any]) -> dict[str, float]:
        """Validation metrics: ``eval_fn``'s, or ``loss_fn``'s loss (``valid_loss``) and extra
        metrics, each the mean over the examples (over ``units_fn``'s units when given, a
        seq2seq batch's target tokens): batches weigh what they hold, so a short last batch
        counts for its few examples, not as much as a full one."""
        was_training = self.model.training
        self.model.eval()
        try:
            if self.eval_fn is not None:
                metrics = {k: float(v) for k, v in self.eval_fn(self.model, valid_loader).items()}
            else:
                sums: dict[str, float] = {}
                batches = 0
                for batch in valid_loader:
                    with self._autocast():
                        batch = move_to_device(batch, self.device)
                        loss, extra = _split_loss(self.loss_fn(self.model, batch))
                    _add_weighted(sums, {"loss": float(loss), **extra}, self._weight_of(batch))
                    batches += 1
                if batches == 0:
                    raise InvalidInputError("valid_loader yielded no batches; pass None to skip validation")
                metrics = {f"valid_{name}": value for name, value in _weighted_means(sums).items()}
        finally:
            self.model.train(was_training)
        return all_reduce_mean(metrics, self.dist)

    def save(self) -> Path:
        """Write a checkpoint for the current position into ``out_dir/checkpoints`` and prune old ones."""
        if self.out_dir is None:
            raise InvalidInputError("set TrainerConfig.out_dir to save checkpoints")
        path = checkpoint_path(self.out_dir, self.global_step)
        parameters = self.model.named_parameters()
        spoilt = [name for name, param in parameters if not bool(torch.isfinite(param).all())]
        if spoilt:  # a resume would start from it and fail again: the earlier checkpoints are kept
            named = ", ".join(spoilt[:3]) + (", ..." if len(spoilt) > 3 else "")
            raise NonFiniteError(f"the weights hold inf/NaN at step {self.global_step} ({named}); no "
                                 "checkpoint is written of them")
        if self.dist.is_main:
            save_checkpoint(path, self.state_dict())
            prune_checkpoints(self.out_dir, self.config.keep_last)
        return path

    def state_dict(self) -> dict[str, Any]:
        """All that continuing exactly needs: weights, optimizer, scheduler, scaler, RNG, data position."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "epoch_rng": self._epoch_rng,
            "loader_rng": self._loader_rng,
            "position": {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                         "global_step": self.global_step},
            "epoch_sums": self._epoch_sums,
            "history": self.history,
            "early_stopping": {"best": self.best, "bad_epochs": self.bad_epochs,
                               "best_epoch": self.best_epoch, "best_time_s": self.best_time_s},
            "clock": self._clock,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            # a loss with state of its own (REINFORCE's moving baseline) goes on where it was too
            "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` (tensors may be on the CPU; they are moved where they belong)."""
        self.model.load_state_dict(_without_compile_prefix(state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        position = state["position"]
        self.epoch, self.batch_in_epoch = position["epoch"], position["batch_in_epoch"]
        self.global_step = position["global_step"]
        self._epoch_rng = state["epoch_rng"]
        self._loader_rng = state.get("loader_rng")
        self._resume_rng = state["rng"]
        self._epoch_sums = dict(state["epoch_sums"])
        # A checkpoint whose epoch sums gave every batch one weight: its means wait for the replay of
        # the batches they cover, which weighs them as the rest of the epoch is weighed.
        self._batch_means = None
        if "batches" in self._epoch_sums:
            batches = self._epoch_sums.pop("batches") or 1.0
            self._batch_means = {name: value / batches for name, value in self._epoch_sums.items()}
        self.history = list(state["history"])
        self.best = state["early_stopping"]["best"]
        self.bad_epochs = state["early_stopping"]["bad_epochs"]
        self.best_epoch = state["early_stopping"].get("best_epoch")
        self.best_time_s = state["early_stopping"].get("best_time_s")
        self._clock = dict(state.get("clock") or {})
        self._best_state = None  # read back from best.safetensors when fit ends
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if isinstance(self.loss_fn, nn.Module) and state.get("loss") is not None:
            self.loss_fn.load_state_dict(state["loss"])
        restore_rng_state(state["rng"])

    # ------------------------------------------------------------------ the loop
    def _train_epoch(self, loader: Iterable[Any]) -> dict[str, Any]:
        self.model.train()
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        generators = _loader_generators(loader)
        skip = self.batch_in_epoch
        if skip and self._epoch_rng is not None:
            restore_rng_state(self._epoch_rng, generators)  # replay the same shuffle
        else:
            if self._loader_rng is not None and len(self._loader_rng) == len(generators):
                # Where the loader's shuffle stream stood after the last epoch (a no-op unless this
                # run resumed at an epoch boundary, where the loader is fresh).
                for generator, saved in zip(generators, self._loader_rng, strict=True):
                    generator.set_state(saved)
            self._epoch_rng = capture_rng_state(generators)
            self._epoch_sums = {}
            self._clock = {}
        iterator: Iterator[Any] = iter(loader)
        skipped_weight = 0.0
        for _ in range(skip):
            skipped = next(iterator)
            if self._batch_means is not None:
                skipped_weight += self._weight_of(skipped)
        if self._batch_means is not None and skip:
            self._epoch_sums = {name: mean * skipped_weight for name, mean in self._batch_means.items()}
            self._epoch_sums[_WEIGHT] = skipped_weight
        self._batch_means = None
        if skip and self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
        self._resume_rng = None
        accum = self.config.grad_accum_steps
        total = known_length(loader)
        desc = f"epoch {self.epoch + 1}/{self.config.epochs}"
        bar = progress(iterator, total=total, initial=skip, desc=desc,
                       disable=not (self.config.progress and self.dist.is_main))
        clock = self._clock
        tick = time.perf_counter()
        pending = 0
        step_sums: dict[str, float] = {}
        # Where the last optimizer step left the epoch: an interruption inside a group of batches
        # goes back there, so a fit() called again replays the group once (its batches were
        # counted, and their gradients summed, before the step that never came).
        self._mark_group_start()
        try:
            for batch in bar:
                batch = move_to_device(batch, self.device)
                if self.monitor is not None:
                    self.monitor.set_active((self.global_step + 1) % self.config.monitor_every == 0)
                clock["samples"] = clock.get("samples", 0.0) + (batch_size_of(batch) or 0)
                weight = self._weight_of(batch)  # units_fn's count when given: counted once a batch
                if self.units_fn is not None:
                    clock["units"] = clock.get("units", 0.0) + weight
                pending += 1
                if pending == 1:  # a group's loss is the mean over the batches it will hold
                    group = accum if total is None else min(accum, total - self.batch_in_epoch)
                last = total is not None and self.batch_in_epoch + 1 == total
                sync = pending == accum or last
                with self._autocast(), self._no_sync(not sync):
                    loss, extra = _split_loss(self.loss_fn(self.net, batch))
                    if not torch.isfinite(loss.detach()):
                        raise self._non_finite(f"the loss is {float(loss.detach())}",
                                               self.batch_in_epoch + 1)
                self.scaler.scale(loss / group).backward()
                self.batch_in_epoch += 1
                loss_value = float(loss.detach())
                _add_weighted(self._epoch_sums, {"loss": loss_value, **extra}, weight)
                _add_weighted(step_sums, {"loss": loss_value, **extra}, 1.0)  # a step: its batches' mean
                if sync:
                    pending = 0
                    self._optimizer_step()
                    now = time.perf_counter()
                    clock["time"] = clock.get("time", 0.0) + now - tick
                    step_means, step_sums = _weighted_means(step_sums), {}
                    bar.set_postfix(loss=f"{step_means['loss']:.4f}", **self._rates(clock))
                    if self.global_step % self.config.log_every == 0:
                        self._log_step(step_means.pop("loss"), step_means)
                    if self.out_dir is not None and self.config.checkpoint_every and \
                            self.global_step % self.config.checkpoint_every == 0:
                        self.save()
                    if self._budget_spent():
                        self._out_of_time = True
                        break
                    tick = time.perf_counter()
        except BaseException:
            self.batch_in_epoch, self._epoch_sums, counted = self._group_start
            clock.update(counted)
            self.optimizer.zero_grad(set_to_none=True)
            raise
        if pending:  # a loader of unknown length ended inside a group: the mean over what it held
            with torch.no_grad():
                for param in self.net.parameters():
                    if param.grad is not None:
                        param.grad.mul_(group / pending)
            self._optimizer_step()
            clock["time"] = clock.get("time", 0.0) + time.perf_counter() - tick
        bar.close()
        if self.batch_in_epoch == 0 and not self._out_of_time:  # it trained nothing, without a word
            raise InvalidInputError("train_loader yielded no batches; give it some data")
        self._loader_rng = [generator.get_state() for generator in generators]
        record: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step, "lr": self._used_lr(),
                                  "time_s": clock.get("time", 0.0), **self._rates(clock, precise=True)}
        if self._out_of_time:
            record["partial"] = True
        for name, value in _weighted_means(self._epoch_sums).items():
            record[f"train_{name}"] = value
        self._clock = {}
        return record

    def _rates(self, clock: dict[str, float], precise: bool = False) -> dict[str, Any]:
        """``samples_per_s`` (and ``{units}_per_s``) over the timed training steps of ``clock``."""
        elapsed = max(clock.get("time", 0.0), 1e-9)
        rates = {"samples_per_s": clock.get("samples", 0.0) / elapsed}
        if self.units_fn is not None:
            rates[f"{self.units_name}_per_s"] = clock.get("units", 0.0) / elapsed
        return rates if precise else {name: f"{value:.0f}" for name, value in rates.items()}

    def _budget_spent(self) -> bool:
        budget = self.config.time_budget_s
        return budget is not None and self.train_time_s >= budget

    def _optimizer_step(self) -> None:
        monitoring = self.monitor is not None and (self.global_step + 1) % self.config.monitor_every == 0
        self.scaler.unscale_(self.optimizer)
        if monitoring:
            self.monitor.before_step()
        stepped = [param for group in self.optimizer.param_groups for param in group["params"]]
        if self.config.clip_grad_norm is not None:  # every parameter the optimizer steps, a loss's too
            # An fp16 overflow leaves inf gradients on purpose: the scaler skips that step.
            norm = clip_grad_norm_(stepped, self.config.clip_grad_norm)
        elif not self.scaler.is_enabled():
            norm = grad_norm(stepped)
        if not self.scaler.is_enabled() and not torch.isfinite(norm):  # the step would spoil the weights
            raise self._non_finite(f"the gradient norm is {float(norm)} (the loss finite)",
                                   self.batch_in_epoch)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self._mark_group_start()  # the step is in the weights: what follows must not replay it
        self._step_lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step used
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        if self.on_step is not None:
            self.on_step(self.model)
        if monitoring:
            report = self.monitor.after_step()
            self._write_metrics({"kind": "monitor", "step": self.global_step, **report})

    # ------------------------------------------------------------------ helpers
    def _mark_group_start(self) -> None:
        """Remember where the epoch stands after an optimizer step (or at its start): the batch,
        the epoch's metric sums and the throughput counts an interrupted group goes back to."""
        counted = {name: self._clock.get(name, 0.0) for name in ("samples", "units")}
        self._group_start = (self.batch_in_epoch, dict(self._epoch_sums), counted)

    @contextlib.contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """With an EMA, the model holds the averaged weights inside the block (validation, and the
        best epoch's snapshot, which keeps what validation changed, such as recalibrated batch
        norms); the training weights come back after it."""
        if self.ema is None:
            yield
            return
        training = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.ema.copy_to(self.model)
        try:
            yield
        finally:
            self.model.load_state_dict(training)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _no_sync(self, skip_sync: bool) -> contextlib.AbstractContextManager[Any]:
        if skip_sync and isinstance(self.net, DistributedDataParallel):
            return self.net.no_sync()
        return contextlib.nullcontext()

    def _maybe_resume(self) -> None:
        resume = self.config.resume
        if resume is None:
            return
        if resume == "auto":
            found = list_checkpoints(self.out_dir) if self.out_dir is not None else []
            if not found:  # a start from scratch: what an earlier try logged is written again
                self._truncate_metrics()
                return
            path = found[-1]
        else:
            path = check_input_file(resume, "checkpoint", missing_hint="; check --resume")
        log.info("resuming from %s", path)
        self._resumed_from = Path(path)
        self.load_state_dict(load_checkpoint(path))
        self._truncate_metrics()

    def _step_epoch_scheduler(self, record: dict[str, Any]) -> None:
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(self._monitored(record))
        else:
            self.scheduler.step()

    def _check_monitor_source(self, valid_loader: Iterable[Any] | None) -> None:
        """Before any training: a validation score to keep the best epoch by, or to stop on, needs a
        validation set. Without one, keep_best kept nothing and said nothing (the last, diverged
        epoch was what the caller saved), and early stopping failed only after a whole epoch."""
        config = self.config
        uses = [name for name, on in (
            ("keep_best", config.keep_best),
            ("early_stopping_patience", config.early_stopping_patience is not None),
            ("early_stopping_patience_s", config.early_stopping_patience_s is not None),
            ("monitor_limit", config.monitor_limit is not None),
        ) if on]
        if uses and valid_loader is None and config.monitor.startswith("valid_"):
            raise InvalidInputError(
                f"{', '.join(uses)} follow monitor={config.monitor!r}, a validation score, but fit was "
                "given no valid_loader; pass one, or set monitor='train_loss'"
            )

    def _monitored(self, record: dict[str, Any]) -> float:
        if self.config.monitor not in record:
            raise InvalidInputError(f"monitor {self.config.monitor!r} is not among the epoch metrics "
                                    f"{sorted(record)}; pass a valid_loader or set monitor")
        return float(record[self.config.monitor])

    def _update_early_stopping(self, record: dict[str, Any]) -> bool:
        """Track the best epoch by ``monitor`` (keeping its weights when asked); True means stop."""
        stopping = self.config.early_stopping_patience is not None or \
            self.config.early_stopping_patience_s is not None or self.config.monitor_limit is not None
        now = self.train_time_s + float(record.get("time_s", 0.0))  # this epoch is not in history yet
        if not stopping and not (self.config.keep_best and self.config.monitor in record):
            return False
        value = self._monitored(record)
        if self.best is None:
            better = True
        else:
            better = value < self.best if self.config.monitor_mode == "min" else value > self.best
        if math.isnan(value):
            kept = " and is not kept" if self.config.keep_best else ""
            log.warning("%s is nan in epoch %d: it cannot be compared, so it counts as no improvement%s",
                        self.config.monitor, self.epoch + 1, kept)
        # A score still at its floor (an exact match of 0 on a small validation set) says nothing
        # learned yet: an epoch that ties it is kept over the earlier, less trained one, though
        # it does not count as an improvement. The first epoch's weights were kept through 39
        # epochs of training, and the captioner printed its untrained captions.
        floor_tie = (not better and self.best is not None and value == self.best
                     and self.config.monitor_mode == "max" and value <= 0)
        if (better or floor_tie) and not math.isnan(value):
            self.best, self.best_epoch = value, self.epoch + 1
            if self.config.keep_best:
                weights = self.model.state_dict().items()
                self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights}
            if self.out_dir is not None and self.dist.is_main:
                save_checkpoint(self.out_dir / BEST_FILE, {"model": self.model.state_dict(),
                                                           "epoch": self.epoch + 1, "value": value})
        if better and not math.isnan(value):
            self.bad_epochs, self.best_time_s = 0, now
        elif self.config.patience_after_nonzero and self.config.monitor_mode == "max" and \
                (self.best is None or self.best <= 0):
            self.best_time_s = now  # nothing learned yet: patience has not started
        else:
            self.bad_epochs += 1
        limit = self.config.monitor_limit
        if better and limit is not None and value == limit:
            self.stop_reason = (
                f"{self.config.monitor} reached {limit:g}, its best possible value, in epoch {self.epoch + 1}"
            )
            return True
        if self._early_stop_reached(now):
            if self.best is None:  # nan in every epoch so far: nothing to improve on
                self.stop_reason = (f"early stopping after epoch {self.epoch + 1}: {self.config.monitor} has "
                                    f"been nan in all {self.bad_epochs} epochs")
                return True
            self.stop_reason = (
                f"early stopping after epoch {self.epoch + 1}: {self.config.monitor} has not improved on "
                f"{self.best:.4g} (epoch {self.best_epoch}) for {self.bad_epochs} epochs "
                f"({now - (self.best_time_s or 0.0):.0f} s of training since)"
            )
            return True
        return False

    def _restore_best(self) -> bool:
        """With ``keep_best``, load the best epoch's weights into the model: from memory, else from
        the ``best.safetensors`` of ``out_dir`` or of the run the resumed checkpoint came from
        (``RUN/checkpoints/step-N``), whichever holds the best epoch. True when it did."""
        if not self.config.keep_best or self.best_epoch is None:
            return False
        state = self._best_state
        runs = [self.out_dir] if self.out_dir is not None else []
        if self._resumed_from is not None:
            runs.append(self._resumed_from.parent.parent)
        for run in runs if state is None else []:
            if (run / BEST_FILE).is_file():
                saved = load_checkpoint(run / BEST_FILE)
                if int(saved.get("epoch", -1)) == self.best_epoch:
                    state = saved["model"]
                    break
        if state is None:
            where = " or ".join(str(run / BEST_FILE) for run in runs) or "memory (no out_dir)"
            log.warning("the best epoch's (%d) weights are not in %s; keeping the last", self.best_epoch,
                        where)
            return False
        self.model.load_state_dict(_without_compile_prefix(state))
        log.info("kept the best epoch, %d (%s = %.4g)", self.best_epoch, self.config.monitor, self.best)
        return True

    def _non_finite(self, what: str, batch: int) -> NonFiniteError:
        """The error for an inf/NaN found in ``batch`` (1-based) of this epoch, before step
        ``global_step + 1``: where, and what can cause it there."""
        where = f"{what} in epoch {self.epoch + 1}, batch {batch} (step {self.global_step + 1})"
        if self.global_step == 0:
            advice = ("no update was made yet, so the batch holds inf/NaN values or the loss cannot be "
                      "computed on it: check the data")
        else:
            advice = ("lower the learning rate or set clip_grad_norm (a run resumed from a checkpoint "
                      "takes its learning rate from the optimizer state saved there), or check the data")
        return NonFiniteError(f"{where}; {advice}")

    def _report_interrupt(self) -> None:
        """Say where the last complete checkpoint is, so an interrupted run can be resumed from it."""
        if not self.dist.is_main:
            return
        last = self.last_checkpoint()
        if last is None:
            log.warning("interrupted at step %d before any checkpoint was written", self.global_step)
        else:
            log.warning("interrupted at step %d; the last complete checkpoint is %s", self.global_step, last)

    def _early_stop_reached(self, now_s: float | None = None) -> bool:
        """Out of patience: ``early_stopping_patience`` epochs, or ``early_stopping_patience_s`` seconds
        of training since the best epoch (``now_s``: the training seconds so far)."""
        patience = self.config.early_stopping_patience
        if patience is not None and self.bad_epochs >= patience:
            return True
        seconds = self.config.early_stopping_patience_s
        if seconds is None or self.best_time_s is None or not self.bad_epochs:
            return False
        now = self.train_time_s if now_s is None else now_s
        return now - self.best_time_s >= seconds

    def _diagnose(self) -> None:
        """One warning per problem of the finished run (see :mod:`nlp182.train.diagnostics`)."""
        # an ordinary end (patience ran out, the budget, a perfect score): in the log and
        # metrics.json's stop_reason, not a warning; what went wrong is found below
        if self.stop_reason is not None and self.dist.is_main:
            log.info("stopped: %s", self.stop_reason)
        zero = zero_kept_score(self.config.monitor, self.config.monitor_mode, self.best, self.best_epoch)
        rising = None if zero else still_improving(self.config.monitor, self.best_epoch, self.history,
                                                   self.stop_reason)
        # a score still rising on validation is what more epochs are for, whatever the training
        # loss does: "more epochs will not help" beside it contradicted the note
        stalled = None if rising else loss_stalled(self.history, key=f"train_{self.config.stall_metric}")
        found = [zero, stalled]
        if rising is not None and self.dist.is_main:  # a note, not a fault: many runs end so on purpose
            log.info("%s", rising)
        for message in found:
            if message is not None:
                self.warn(message)

    def _write_metrics(self, entry: dict[str, Any]) -> None:
        if self.out_dir is None or not self.dist.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint we resumed from (they will be written again):
        those of later steps, and the record of an epoch the checkpoint had not finished (a save at
        an epoch's last step comes before its record, which the resumed run writes again)."""
        path = self.out_dir / "metrics.jsonl" if self.out_dir is not None else None
        if path is None or not path.is_file() or not self.dist.is_main:
            return

        def kept(entry: dict[str, Any]) -> bool:
            finished = entry.get("kind") != "epoch" or entry.get("epoch", 0) <= self.epoch
            return entry.get("step", 0) <= self.global_step and finished

        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and kept(json.loads(line))]
        atomic_write_text(path, "".join(f"{line}\n" for line in lines))

    def _used_lr(self) -> float:
        """The rate the last optimizer step used (a per-step schedule has already moved the
        optimizer's to the next step's); the optimizer's before any step."""
        return self._step_lr if self._step_lr is not None else float(self.optimizer.param_groups[0]["lr"])

    def _weight_of(self, batch: Any) -> float:
        """What a batch weighs in an epoch's means: ``units_fn``'s count (target tokens), else
        its examples (leading dimension), else 1."""
        if self.units_fn is not None:
            return float(self.units_fn(batch))
        return float(batch_size_of(batch) or 1)

    def _log_step(self, loss: float, extra: dict[str, float]) -> None:
        entry = {"kind": "step", "step": self.global_step, "epoch": self.epoch + 1, "loss": loss,
                 "lr": self._used_lr(), **extra}
        self._write_metrics(entry)
        log.debug("step %d loss %.4f", self.global_step, loss)

    def _log_epoch(self, record: dict[str, Any]) -> None:
        self._write_metrics({"kind": "epoch", **record})
        if self.dist.is_main:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float))
            log.info("epoch %d: %s", record["epoch"], shown)
        if self.out_dir is not None and self.dist.is_main:
            series = {"train": [r["train_loss"] for r in self.history if "train_loss" in r]}
            if any("valid_loss" in r for r in self.history):
                series["valid"] = [r["valid_loss"] for r in self.history if "valid_loss" in r]
            loss_curves(series, self.out_dir / "loss.png", title="loss per epoch", xlabel="epoch")


#: The key of a sum of metrics that holds the total weight its values were added with.
_WEIGHT = "__weight__"


def _add_weighted(sums: dict[str, float], values: dict[str, float], weight: float) -> None:
    """Add ``weight`` x each of ``values`` to ``sums``, and ``weight`` to its total."""
    for name, value in values.items():
        sums[name] = sums.get(name, 0.0) + weight * value
    sums[_WEIGHT] = sums.get(_WEIGHT, 0.0) + weight


def _weighted_means(sums: dict[str, float]) -> dict[str, float]:
    """The means ``_add_weighted`` summed (an empty sum, or one of weight 0, gives zeros)."""
    total = sums.get(_WEIGHT, 0.0) or 1.0
    return {name: value / total for name, value in sums.items() if name != _WEIGHT}


_COMPILED_PREFIX = "_orig_mod."


def _uncompiled(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper holds (``model`` itself when it is not one)."""
    original = getattr(model, "_orig_mod", None)
    return original if isinstance(original, nn.Module) else model


def _without_compile_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the ``_orig_mod.`` that a compiled model's own ``state_dict`` puts before
    every name taken off, so weights saved from one load into the plain model."""
    if state and all(name.startswith(_COMPILED_PREFIX) for name in state):
        return {name.removeprefix(_COMPILED_PREFIX): value for name, value in state.items()}
    return state
