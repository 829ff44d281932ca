"""Hyperparameter search: log-uniform sampling, narrowing, coarse-to-fine and grid search."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from nlp182.errors import InvalidInputError
from nlp182.train.hparam import (
    Choice,
    LogUniform,
    Trial,
    Uniform,
    best_trial,
    coarse_to_fine,
    grid_search,
    narrow_space,
    random_search,
)


def test_log_uniform_is_uniform_in_log_space() -> None:
    rng = random.Random(0)
    dist = LogUniform(1e-5, 1e-1)
    logs = np.log10([dist.sample(rng) for _ in range(20000)])
    assert logs.min() >= -5 and logs.max() <= -1
    counts, _ = np.histogram(logs, bins=4, range=(-5, -1))
    assert np.all(np.abs(counts / 20000 - 0.25) < 0.015)  # each decade gets a quarter
    assert dist.grid(5) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    with pytest.raises(InvalidInputError):
        LogUniform(0.0, 1.0)


def _bowl(params: dict) -> float:
    """Peak 0 at lr = 10^-2.3, wd = 10^-4.1; momentum is irrelevant; 'relu' beats 'tanh' by 0.1."""
    score = -((math.log10(params["lr"]) + 2.3) ** 2) - (math.log10(params["wd"]) + 4.1) ** 2
    return score - (0.1 if params["act"] == "tanh" else 0.0)


SPACE = {"lr": LogUniform(1e-6, 1.0), "wd": LogUniform(1e-7, 1e-1), "act": Choice(("relu", "tanh"))}


def test_coarse_to_fine_beats_its_coarse_round_and_narrows() -> None:
    trials = coarse_to_fine(_bowl, SPACE, n_coarse=20, n_fine=20, top_k=3, seed=0)
    coarse = [t for t in trials if t.stage == "coarse"]
    fine = [t for t in trials if t.stage == "fine"]
    assert len(coarse) == len(fine) == 20
    assert best_trial(fine).score > best_trial(coarse).score
    assert best_trial(trials).score > -0.3  # within about half a decade of the peak in both
    narrowed = narrow_space(SPACE, coarse, top_k=3)
    assert narrowed["lr"].low >= SPACE["lr"].low and narrowed["lr"].high <= SPACE["lr"].high
    assert math.log(narrowed["lr"].high / narrowed["lr"].low) < math.log(1e6)


def test_a_region_around_one_best_trial_keeps_a_width() -> None:
    """``top_k=1`` narrows to one point; each range keeps a factor 2 either side (log-uniform) or
    5% of the range (uniform) around it, so the fine round still has somewhere to search."""
    space = {"lr": LogUniform(1e-4, 1.0), "momentum": Uniform(0.0, 1.0), "act": Choice(("relu", "tanh"))}
    best = Trial({"lr": 0.01, "momentum": 0.9, "act": "relu"}, 1.0, {}, "coarse")
    worse = Trial({"lr": 0.1, "momentum": 0.5, "act": "tanh"}, 0.5, {}, "coarse")
    region = narrow_space(space, [worse, best], top_k=1)
    assert (region["lr"].low, region["lr"].high) == pytest.approx((0.005, 0.02))
    assert (region["momentum"].low, region["momentum"].high) == pytest.approx((0.85, 0.95))
    assert region["act"] == Choice(("relu",))
    trials = coarse_to_fine(lambda p: -abs(math.log10(p["lr"]) + 2), space, n_coarse=4, n_fine=4, top_k=1)
    assert len(trials) == 8


def test_grid_search_visits_the_cartesian_product() -> None:
    space = {"lr": LogUniform(1e-4, 1e-1), "m": Uniform(0.0, 0.9)}
    trials = grid_search(lambda p: -abs(math.log10(p["lr"]) + 3) - p["m"], space, {"lr": 4, "m": 2})
    assert len(trials) == 8
    assert best_trial(trials).params == pytest.approx({"lr": 1e-3, "m": 0.0})


def test_random_search_is_seeded_and_survives_nan() -> None:
    first = random_search(lambda p: float("nan") if p["lr"] > 0.1 else p["lr"], SPACE, 8, seed=3)
    again = random_search(lambda p: float("nan") if p["lr"] > 0.1 else p["lr"], SPACE, 8, seed=3)
    assert [t.params for t in first] == [t.params for t in again]
    assert all(t.score == -math.inf or t.score <= 0.1 for t in first)


def test_a_run_the_trainer_stops_as_diverged_loses_and_never_narrows_the_search() -> None:
    """The Trainer ends a run whose loss became inf by raising NonFiniteError: that ended the whole
    search, every finished trial lost. It scores -inf now, and the fine round's region is drawn
    around the trials that scored, never around diverged ones."""
    from nlp182.errors import NonFiniteError

    space = {"lr": LogUniform(1e-5, 10.0)}

    def train(params: dict) -> float:
        if params["lr"] > 1e-2:
            raise NonFiniteError("loss became inf at step 6")
        return -abs(math.log10(params["lr"]) + 3)  # best at 1e-3

    trials = coarse_to_fine(train, space, n_coarse=12, n_fine=6, top_k=3, seed=0)
    diverged = [t for t in trials if t.score == -math.inf]
    assert len(trials) == 18 and diverged and all(t.metrics == {"diverged": 1.0} for t in diverged)
    scored = [t for t in trials[:12] if math.isfinite(t.score)]
    assert narrow_space(space, trials[:12], top_k=3) == narrow_space(space, scored, top_k=3)
    assert narrow_space(space, trials[:12], top_k=3) != narrow_space(space, trials[:12], top_k=12)
    assert narrow_space(space, diverged, top_k=3) == space  # nothing scored: the whole space


def test_a_failed_trial_is_recorded_and_the_search_keeps_the_others() -> None:
    """As scikit-learn's searches do (error_score=nan): a trial that raises (out of memory at its
    batch size) or scores inf loses with its reason; the search used to end, every finished trial
    lost, and an inf score won. Only when every trial failed is there no best, and it says why."""
    space = {"lr": LogUniform(1e-5, 10.0)}

    def train(params: dict) -> float:
        if params["lr"] > 1.0:
            raise MemoryError("CUDA out of memory")
        return math.inf if params["lr"] < 1e-3 else -abs(math.log10(params["lr"]) + 3)

    trials = random_search(train, space, 12, seed=0)
    assert len(trials) == 12
    failed = [t for t in trials if t.params["lr"] > 1.0]
    infinite = [t for t in trials if t.params["lr"] < 1e-3]
    assert failed and infinite
    assert all(t.score == -math.inf and t.error == "MemoryError: CUDA out of memory" for t in failed)
    assert all(t.score == -math.inf and t.error == "the score is inf" for t in infinite)
    assert 1e-3 <= best_trial(trials).params["lr"] <= 1.0
    with pytest.raises(InvalidInputError, match=r"every one of the 2 trials failed.*ZeroDivisionError"):
        best_trial(random_search(lambda p: 1 / 0, space, 2))


def test_an_objective_that_returns_no_number_fails_that_trial_only() -> None:
    """A path of the objective that forgets to return (None) or returns a tensor of several values
    is that trial's error, named; the search goes on and keeps the trials that scored."""
    torch = pytest.importorskip("torch")
    replies = iter([0.5, None, torch.tensor([1.0, 2.0]), (torch.tensor(0.75), {"acc": 0.9})])
    trials = random_search(lambda params: next(replies), {"x": Uniform(0, 1)}, 4, seed=0)
    assert [t.score for t in trials] == [0.5, -math.inf, -math.inf, 0.75]
    assert "returned None" in trials[1].error and "returned tensor([1., 2.])" in trials[2].error
    assert trials[3].metrics == {"acc": 0.9} and best_trial(trials) is trials[3]


def test_a_trial_records_the_point_it_drew_whatever_the_objective_does_with_it() -> None:
    """An objective that pops or sets a key (``lr = p.pop("lr")``) changed the recorded point: the
    trial lost its ``lr`` and coarse_to_fine failed with KeyError: 'lr' when it narrowed the space."""
    space = {"lr": LogUniform(1e-4, 1e-1), "wd": Uniform(0.0, 1e-3), "layers": Choice(([1], [1, 2]))}

    def objective(params: dict) -> float:
        lr = params.pop("lr")
        params["wd"] = 0.0
        params["layers"].append(9)
        return -abs(math.log10(lr) + 2)

    trials = random_search(objective, space, 4, seed=3)
    assert all(set(t.params) == {"lr", "wd", "layers"} and t.params["wd"] > 0 for t in trials)
    assert all(9 not in t.params["layers"] for t in trials)
    assert space["layers"].options == ([1], [1, 2])
    both = coarse_to_fine(objective, space, 4, 2, seed=3)
    assert len(both) == 6 and all("lr" in t.params for t in both)
