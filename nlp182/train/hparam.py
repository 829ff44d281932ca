"""Hyperparameter search: random search with log-uniform sampling, coarse-to-fine, and grid search.

The course's advice: search in log space for scales like the learning rate, prefer random search
to a grid (with the same budget a grid tries only a few distinct values of each important
parameter, random search tries as many as it has trials), and search coarse then fine. The
objective is any ``params -> score`` callable; ``bench/hparam_search.py`` drives the Trainer with it.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import random
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlp182.errors import InvalidInputError, NonFiniteError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogUniform:
    """A positive value whose logarithm is uniform on ``[log low, log high]`` (learning rates, decays)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise InvalidInputError(f"LogUniform needs 0 < low < high, got {self.low}, {self.high}")

    def sample(self, rng: random.Random) -> float:
        """One value drawn with ``rng``."""
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))

    def grid(self, n: int) -> list[float]:
        """``n`` values evenly spaced in log scale, both ends included."""
        return np.geomspace(self.low, self.high, n).tolist()

    def narrowed(self, values: Sequence[float], margin: float) -> LogUniform:
        """The range spanned by ``values`` widened by ``margin`` of its log-width (at least a factor 2),
        clipped to this one."""
        lo, hi = math.log(min(values)), math.log(max(values))
        pad = max(margin * (hi - lo), math.log(2.0))
        return LogUniform(max(self.low, math.exp(lo - pad)), min(self.high, math.exp(hi + pad)))


@dataclass(frozen=True)
class Uniform:
    """A value uniform on ``[low, high]`` (dropout rates, momentum)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise InvalidInputError(f"Uniform needs low < high, got {self.low}, {self.high}")

    def sample(self, rng: random.Random) -> float:
        """One value drawn with ``rng``."""
        return rng.uniform(self.low, self.high)

    def grid(self, n: int) -> list[float]:
        """``n`` evenly spaced values, both ends included."""
        return np.linspace(self.low, self.high, n).tolist()

    def narrowed(self, values: Sequence[float], margin: float) -> Uniform:
        """The range spanned by ``values`` widened by ``margin`` of its width (at least 5% of this
        range), clipped to this one."""
        lo, hi = min(values), max(values)
        pad = max(margin * (hi - lo), 0.05 * (self.high - self.low))
        return Uniform(max(self.low, lo - pad), min(self.high, hi + pad))


@dataclass(frozen=True)
class Choice:
    """One of a few discrete options."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise InvalidInputError("Choice needs at least one option")

    def sample(self, rng: random.Random) -> Any:
        """One option drawn with ``rng``."""
        return rng.choice(self.options)

    def grid(self, n: int) -> list[Any]:
        """Every option, whatever ``n``: a grid cannot thin discrete choices."""
        return list(self.options)

    def narrowed(self, values: Sequence[Any], margin: float) -> Choice:
        """The options among ``values`` (``margin`` has no meaning for discrete options)."""
        return Choice(tuple(o for o in self.options if o in values))  # == : options may be lists


Distribution = LogUniform | Uniform | Choice
Space = dict[str, Distribution]
Objective = Callable[[dict[str, Any]], float | tuple[float, dict[str, float]]]


@dataclass
class Trial:
    """One evaluated point: its ``params``, the ``score`` (higher is better) and any extra ``metrics``;
    ``error`` says why a trial that failed (``score`` ``-inf``) did."""

    params: dict[str, Any]
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = "random"
    error: str | None = None


def _score_of(result: Any) -> tuple[float, dict[str, float]]:
    """An objective's return value as (score, metrics): a number, a one-element tensor, or a pair of
    one of those and a dict. Anything else (``None`` from a path that forgot to return, a tensor of
    several values) is that trial's error, named."""
    score, metrics = result if isinstance(result, tuple) and len(result) == 2 else (result, {})
    try:
        return float(score), dict(metrics)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(
            f"the objective returned {reprlib.repr(result)}; return a number or (number, metrics dict)"
        ) from exc


def _evaluate(objective: Objective, params: dict[str, Any], stage: str) -> Trial:
    """Score one point. A failed trial loses, it does not end the search and lose the others: a
    score that is not a finite number, the Trainer's ``NonFiniteError`` (its loss became inf or
    NaN) or any other error (out of memory at a large batch, say) scores ``-inf`` and keeps its
    reason in ``error``. The objective gets a copy of ``params``: one that popped or set a key
    (``lr = p.pop("lr")``) changed the point the trial recorded, and the search narrowed on that."""
    try:
        score, metrics = _score_of(objective(copy.deepcopy(params)))
    except NonFiniteError as exc:
        log.warning("%s trial %s diverged: %s", stage, params, exc)
        return Trial(dict(params), -math.inf, {"diverged": 1.0}, stage, f"diverged: {exc}")
    except Exception as exc:  # one trial's failure is recorded; the search goes on
        log.warning("%s trial %s failed: %s: %s", stage, params, type(exc).__name__, exc)
        return Trial(dict(params), -math.inf, {"failed": 1.0}, stage, f"{type(exc).__name__}: {exc}")
    if not math.isfinite(score):  # NaN has no order, and an inf score is a broken metric, not a win
        log.warning("%s trial %s scored %s", stage, params, score)
        return Trial(dict(params), -math.inf, {"diverged": 1.0, **metrics}, stage, f"the score is {score}")
    log.info("%s trial %s -> %.4f", stage, params, score)
    return Trial(dict(params), score, dict(metrics), stage)


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The trial with the highest score; an error when every trial failed, naming the first reason."""
    if not trials:
        raise InvalidInputError("no trials to choose from")
    best = max(trials, key=lambda t: t.score)
    if best.score == -math.inf:
        raise InvalidInputError(f"every one of the {len(trials)} trials failed; the first: {trials[0].error}")
    return best


def random_search(
    objective: Objective, space: Space, n_trials: int, seed: int = 0, stage: str = "random"
) -> list[Trial]:
    """Evaluate ``n_trials`` points drawn independently from ``space`` (scores: higher is better)."""
    if n_trials < 1:
        raise InvalidInputError(f"n_trials must be >= 1, got {n_trials}")
    rng = random.Random(seed)
    points = [{name: dist.sample(rng) for name, dist in space.items()} for _ in range(n_trials)]
    return [_evaluate(objective, p, stage) for p in points]


def narrow_space(space: Space, trials: Sequence[Trial], top_k: int = 3, margin: float = 0.25) -> Space:
    """The region around the ``top_k`` best trials that scored (diverged ones never count): each
    range shrinks to what they span (plus margin); ``space`` itself when none scored."""
    top = sorted((t for t in trials if math.isfinite(t.score)), key=lambda t: t.score, reverse=True)[:top_k]
    if not top:
        return dict(space)
    return {name: dist.narrowed([t.params[name] for t in top], margin) for name, dist in space.items()}


def coarse_to_fine(
    objective: Objective, space: Space, n_coarse: int, n_fine: int, top_k: int = 3, seed: int = 0
) -> list[Trial]:
    """Random search over ``space``, then a second random round inside the region of the best ``top_k``.

    Returns every trial of both rounds (``stage`` says which), ``n_coarse + n_fine`` in all.
    """
    coarse = random_search(objective, space, n_coarse, seed, stage="coarse")
    if n_fine < 1:
        return coarse
    fine_space = narrow_space(space, coarse, top_k)
    return coarse + random_search(objective, fine_space, n_fine, seed + 1, stage="fine")


def grid_search(objective: Objective, space: Space, points_per_dim: int | dict[str, int]) -> list[Trial]:
    """Evaluate the Cartesian grid: ``points_per_dim`` values per parameter (log-spaced for LogUniform)."""
    counts = points_per_dim if isinstance(points_per_dim, dict) else dict.fromkeys(space, points_per_dim)
    if any(counts.get(name, 0) < 1 for name in space):
        raise InvalidInputError("grid_search needs at least one point for every parameter")
    axes = [space[name].grid(counts[name]) for name in space]
    return [
        _evaluate(objective, dict(zip(space, combo, strict=True)), "grid")
        for combo in itertools.product(*axes)
    ]
