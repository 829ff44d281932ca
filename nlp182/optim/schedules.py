"""Learning-rate schedules from the course, as ``torch.optim.lr_scheduler.LRScheduler`` subclasses.

Each gives the rate in closed form, ``lr_t = base_lr · warmup(t) · decay(t − warmup_steps)``, so
it can be stepped per batch or per epoch, saved in a checkpoint (``state_dict``) and resumed. The
optional linear warmup ramps ``(t + 1) / warmup_steps`` over the first ``warmup_steps`` steps,
which keeps Adam-style optimizers from taking their largest steps while their statistics are still
noise. ``t`` counts ``scheduler.step()`` calls.

They compose as torch's chainable schedulers do: when something else changed a group's rate since
the last step (``LinearLR`` in a ``ChainedScheduler``, a ``ReduceLROnPlateau`` cut), the step
scales that rate by ``multiplier(t) / multiplier(t - 1)`` instead of overwriting it; a group added
later (``add_param_group``) follows the schedule from its own rate on. ``load_state_dict`` resumes
right with or without the optimizer's state: a restored optimizer keeps its rates (and whatever
else had changed them), a fresh one (still at the rates the schedule starts from) is given the
saved rates at once, before its first step. A start at ``last_epoch`` sets the closed form at its
first step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from nlp182.errors import InvalidInputError


class ClosedFormSchedule(LRScheduler):
    """Base class: subclasses define ``decay(t)``, the multiplier of the base rate after warmup.

    ``last_epoch`` is torch's: ``-1`` starts a schedule; a later step resumes one (the optimizer's
    groups then hold their ``initial_lr``, as torch requires), though ``load_state_dict`` is the
    usual way back. The settings a subclass names in ``length_settings`` follow the run's length:
    a load keeps the loading schedule's, so a run resumed with more epochs decays over all of them,
    its rates set to the new plan's closed form at once (torch's ``CosineAnnealingLR`` takes the
    saved ``T_max`` back, and the added epochs train at the floor rate).
    """

    length_settings: tuple[str, ...] = ()

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if not warmup_steps >= 0:  # nan too
            raise InvalidInputError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self._resumed = last_epoch != -1  # the optimizer's rates are not this schedule's yet
        super().__init__(optimizer, last_epoch)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at the saved step, chaining from the optimizer's rates as torch's schedulers do
        (whatever else set them: a warmup in a chain, a plateau cut). An optimizer still at the
        rates building a schedule sets (its first step's) is a fresh one, not restored: it is
        given the saved rates now, so that its next step already takes them."""
        planned = {name: getattr(self, name) for name in self.length_settings}
        super().load_state_dict(state_dict)
        self.__dict__.update(planned)
        self._resumed = False
        saved, groups = self._last_lr, self.optimizer.param_groups
        if len(saved) != len(groups) or len(self.base_lrs) != len(groups):
            return
        if any(state_dict.get(name, value) != value for name, value in planned.items()):
            # re-planned for another length: the closed form of the new plan from this step on
            self._last_lr = [base * self.multiplier(self.last_epoch) for base in self.base_lrs]
            for group, rate in zip(groups, self._last_lr, strict=True):
                group["lr"] = rate
            return

        def same(a: float, b: float) -> bool:
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)

        start = self.multiplier(0)  # what building the schedule set a fresh optimizer's rates to
        fresh = all(same(float(group["lr"]), base * start) for group, base in zip(groups, self.base_lrs,
                                                                                   strict=True))
        if fresh:
            for group, rate in zip(groups, saved, strict=True):
                group["lr"] = rate

    def decay(self, t: int) -> float:
        """Multiplier of the base rate ``t`` steps after warmup."""
        raise NotImplementedError

    def multiplier(self, t: int) -> float:
        """The full multiplier at step ``t``: the warmup ramp, then ``decay``."""
        if t < self.warmup_steps:
            return (t + 1) / self.warmup_steps
        return self.decay(t - self.warmup_steps)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The closed form ``base · multiplier(t)`` for a rate that only this schedule set; a rate
        changed elsewhere since the last step is scaled by ``multiplier(t) / multiplier(t − 1)``.
        The first step after a resume sets the closed form."""
        t, resumed = self.last_epoch, self._resumed
        self._resumed = False
        follow_new_groups(self)
        previous = 1.0 if t == 0 else self.multiplier(t - 1)
        now = self.multiplier(t)
        rates = []
        for base, group in zip(self.base_lrs, self.optimizer.param_groups, strict=True):
            current = float(group["lr"])
            ours = math.isclose(current, base * previous, rel_tol=1e-9, abs_tol=1e-300)
            rates.append(base * now if ours or resumed or previous == 0 else current * now / previous)
        return rates

    def _get_closed_form_lr(self) -> list[float]:
        """``base · multiplier(t)``: what ``step(epoch)`` sets."""
        follow_new_groups(self)
        return [base * self.multiplier(self.last_epoch) for base in self.base_lrs]


def follow_new_groups(scheduler: LRScheduler) -> None:
    """Take groups added to ``scheduler``'s optimizer since it began (``add_param_group``:
    progressive unfreezing) with their rate as their base, as torch's schedulers take them."""
    for group in scheduler.optimizer.param_groups[len(scheduler.base_lrs):]:
        scheduler.base_lrs.append(float(group.setdefault("initial_lr", group["lr"])))


def _check_gamma(gamma: float) -> None:
    """A decay factor must be a finite number >= 0: a negative one (the rate would swing negative)
    and nan are refused."""
    if not gamma >= 0 or not math.isfinite(gamma):
        raise InvalidInputError(f"gamma must be a finite number >= 0, got {gamma}")


def _power(gamma: float, times: int) -> float:
    """``gamma ** times``, inf past the float range (a growing rate, gamma > 1, raised OverflowError
    after a few thousand steps, where torch's ExponentialLR reaches inf)."""
    try:
        return gamma**times
    except OverflowError:
        return math.inf


class StepDecay(ClosedFormSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``γ^⌊t / step_size⌋``."""

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int, gamma: float = 0.1,
                 warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if not step_size >= 1:
            raise InvalidInputError(f"step_size must be >= 1, got {step_size}")
        _check_gamma(gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """``γ^⌊t / step_size⌋``."""
        return _power(self.gamma, t // self.step_size)


class ExponentialDecay(ClosedFormSchedule):
    """``γ^t``: a constant fraction off the rate every step."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, gamma: float, warmup_steps: int = 0, last_epoch: int = -1
    ) -> None:
        _check_gamma(gamma)
        self.gamma = gamma
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """``γ^t``."""
        return _power(self.gamma, t)


class InverseTimeDecay(ClosedFormSchedule):
    """``1 / (1 + k t)``: the 1/t decay that SGD's convergence proofs ask for."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, k: float = 1.0, warmup_steps: int = 0, last_epoch: int = -1
    ) -> None:
        if not k >= 0:  # nan too
            raise InvalidInputError(f"k must be >= 0, got {k}")
        self.k = k
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """``1 / (1 + k t)``."""
        return 1.0 / (1.0 + self.k * t)


class InverseSqrtDecay(ClosedFormSchedule):
    """``1 / √(1 + k t)``: the 1/√t decay Adagrad applies implicitly."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, k: float = 1.0, warmup_steps: int = 0, last_epoch: int = -1
    ) -> None:
        if not k >= 0:  # nan too
            raise InvalidInputError(f"k must be >= 0, got {k}")
        self.k = k
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """``1 / √(1 + k t)``."""
        return 1.0 / math.sqrt(1.0 + self.k * t)


class Cosine(ClosedFormSchedule):
    """Half a cosine from the base rate down to ``min_factor`` × base over ``total_steps`` (after warmup).

    ``min_factor + (1 − min_factor) (1 + cos(π t / T)) / 2``, held at ``min_factor`` after ``T``.
    ``total_steps`` is the loading schedule's after ``load_state_dict`` (a longer resumed run).
    """

    length_settings = ("total_steps",)

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, min_factor: float = 0.0,
                 warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if not total_steps >= 1 or not 0.0 <= min_factor <= 1.0:
            raise InvalidInputError("Cosine needs total_steps >= 1 and 0 <= min_factor <= 1")
        self.total_steps, self.min_factor = total_steps, min_factor
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """The half cosine at ``t``, ``min_factor`` from ``total_steps`` on."""
        progress = min(t, self.total_steps) / self.total_steps
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CyclicCosine(ClosedFormSchedule):
    """Cosine annealing restarted ``cycles`` times in ``total_steps`` (snapshot ensembles, Huang et al. 2017).

    Within each cycle of ``P = ⌈T / cycles⌉`` steps the rate follows ``(1 + cos(π (t mod P) / P)) / 2``,
    so the model settles into a minimum at the end of every cycle, where a snapshot is taken, and
    the restart to the full rate kicks it toward a new one. ``cycles=1`` is :class:`Cosine` over
    its ``total_steps``; past them a new cycle starts at the full rate, where :class:`Cosine` stays
    at its floor.
    """

    length_settings = ("period",)

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, cycles: int = 1,
                 warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if not total_steps >= 1 or not 1 <= cycles <= total_steps:
            raise InvalidInputError("CyclicCosine needs total_steps >= 1 and 1 <= cycles <= total_steps")
        self.period = math.ceil(total_steps / cycles)
        super().__init__(optimizer, warmup_steps, last_epoch)

    def decay(self, t: int) -> float:
        """The cosine of the cycle ``t`` is in, restarted every ``period`` steps."""
        return 0.5 * (1.0 + math.cos(math.pi * (t % self.period) / self.period))


#: :class:`ProgressDecay` shapes: the multiplier of the base rate at progress ``p`` in ``[0, 1]``.
PROGRESS_SHAPES = ("constant", "linear", "cosine")


class ProgressDecay(LRScheduler):
    """The rate as a function of how far a run has got, ``lr = base · f(p)``, ``p = progress()``.

    ``progress`` returns the share of the run done (clamped to ``[0, 1]``): steps over a step
    count, or training seconds over a time budget, which no step count can stand for when the run
    ends on the clock. ``shape`` is ``constant`` (``f = 1``), ``linear`` (``f = 1 − (1 − m) p``) or
    ``cosine`` (``f = m + (1 − m)(1 + cos πp) / 2``) with ``m = min_factor``. The clock is read
    when the scheduler steps; it is not part of ``state_dict`` (a resumed run passes its own).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, progress: Callable[[], float],
                 shape: str = "cosine", min_factor: float = 0.0) -> None:
        if shape not in PROGRESS_SHAPES or not 0.0 <= min_factor <= 1.0:
            raise InvalidInputError(f"shape must be one of {PROGRESS_SHAPES} and 0 <= min_factor <= 1")
        self.progress, self.shape, self.min_factor = progress, shape, min_factor
        super().__init__(optimizer)

    def multiplier(self, p: float) -> float:
        """``f(p)`` for the share ``p`` of the run done."""
        p = min(max(p, 0.0), 1.0)
        if self.shape == "linear":
            return 1.0 - (1.0 - self.min_factor) * p
        if self.shape == "cosine":
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * p))
        return 1.0

    def get_lr(self) -> list[float]:  # type: ignore[override]
        follow_new_groups(self)
        factor = self.multiplier(self.progress())
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "progress"}
