"""Two-dimensional test functions and optimizer trajectories on them, for the course's pictures.

An ill-conditioned quadratic (curvatures 1 and 25: plain SGD zig-zags across the valley and crawls
along it; momentum gathers speed along it, Nesterov's look-ahead and per-coordinate scaling also
calm the zig-zag), a saddle ``x² − y²`` (gradient methods slide off it,
Newton jumps onto it) and Rosenbrock's banana (a curved valley with its minimum at (1, 1)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from nlp182.errors import InvalidInputError
from nlp182.optim.adagrad import Adagrad
from nlp182.optim.adam import Adam, AdamW
from nlp182.optim.newton import Newton
from nlp182.optim.rmsprop import RMSprop
from nlp182.optim.sgd import SGD
from nlp182.optim.signsgd import SignSGD

OPTIMIZER_NAMES = ("SGD", "Momentum", "Nesterov", "RMSprop", "Adagrad", "Adam", "AdamW", "signSGD", "Newton")


def make_optimizer(
    name: str, params: list[torch.Tensor], lr: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """One of ``OPTIMIZER_NAMES`` with rate ``lr``; Momentum and Nesterov with ``momentum`` (the
    course's usual 0.9 unless a landscape's curvatures call for another)."""
    factories: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "SGD": lambda: SGD(params, lr=lr),
        "Momentum": lambda: SGD(params, lr=lr, momentum=momentum),
        "Nesterov": lambda: SGD(params, lr=lr, momentum=momentum, nesterov=True),
        "RMSprop": lambda: RMSprop(params, lr=lr),
        "Adagrad": lambda: Adagrad(params, lr=lr),
        "Adam": lambda: Adam(params, lr=lr),
        "AdamW": lambda: AdamW(params, lr=lr, weight_decay=1e-2),
        "signSGD": lambda: SignSGD(params, lr=lr),
        "Newton": lambda: Newton(params, lr=lr),
    }
    if name not in factories:
        raise InvalidInputError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_NAMES)}")
    return factories[name]()


def quadratic(p: torch.Tensor) -> torch.Tensor:
    """``½ (x² + 25 y²)``: condition number 25, minimum at the origin. ``p`` has shape ``(2,)``."""
    return 0.5 * (p[0] ** 2 + 25.0 * p[1] ** 2)


def saddle(p: torch.Tensor) -> torch.Tensor:
    """``x² − y²``: a saddle at the origin, unbounded below along y. ``p`` has shape ``(2,)``."""
    return p[0] ** 2 - p[1] ** 2


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    """``(1 − x)² + 100 (y − x²)²``: minimum 0 at (1, 1). ``p`` has shape ``(2,)``."""
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


@dataclass(frozen=True)
class Landscape:
    """A test function with a start point, plot window, and a learning rate per optimizer (and a
    momentum for Momentum and Nesterov, else 0.9) that suits it."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    lrs: dict[str, float] = field(default_factory=dict)
    minimum: tuple[float, float] | None = None
    steps: int = 100
    momenta: dict[str, float] = field(default_factory=dict)


LANDSCAPES = (
    Landscape(
        "quadratic", quadratic, start=(-4.0, 1.5), xlim=(-4.5, 4.5), ylim=(-2.0, 2.0), minimum=(0.0, 0.0),
        steps=100,
        lrs={"SGD": 0.07, "Momentum": 0.04, "Nesterov": 0.04, "RMSprop": 0.05, "Adagrad": 0.8, "Adam": 0.2,
             "AdamW": 0.2, "signSGD": 0.05, "Newton": 1.0},
        # tuned to the curvatures (1 and 25), as SGD's rate is near its best 2/(1 + 25): both at the
        # rate 1/L = 0.04 that stills the steep direction, heavy ball with 0.6 and Nesterov with
        # (sqrt(25) - 1)/(sqrt(25) + 1) = 0.67. Left at 0.9 both are underdamped here, circle the
        # minimum and end farther from it than plain SGD.
        momenta={"Momentum": 0.6, "Nesterov": 0.67},
    ),
    Landscape(
        "saddle", saddle, start=(-1.5, 1e-2), xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), steps=60,
        lrs={"SGD": 0.05, "Momentum": 0.01, "Nesterov": 0.01, "RMSprop": 0.01, "Adagrad": 0.1, "Adam": 0.05,
             "AdamW": 0.05, "signSGD": 0.03, "Newton": 1.0},
    ),
    Landscape(
        "rosenbrock", rosenbrock, start=(-1.5, 2.0), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), minimum=(1.0, 1.0),
        steps=3000,
        lrs={"SGD": 1.5e-3, "Momentum": 3e-4, "Nesterov": 3e-4, "RMSprop": 3e-3, "Adagrad": 0.3,
             "Adam": 0.02, "AdamW": 0.02, "signSGD": 2e-3, "Newton": 1.0},
    ),
)


def trajectory(name: str, landscape: Landscape, steps: int | None = None) -> np.ndarray:
    """Positions ``(steps + 1, 2)`` of optimizer ``name`` on ``landscape`` in float64.

    ``steps`` defaults to the landscape's; a run that leaves the finite numbers stops early and
    keeps the points it had.
    """
    steps = landscape.steps if steps is None else steps
    point = torch.tensor(landscape.start, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(name, [point], landscape.lrs.get(name, 1e-2), landscape.momenta.get(name, 0.9))
    path = [point.detach().numpy().copy()]
    for _ in range(steps):
        if isinstance(opt, Newton):
            opt.step(lambda p: landscape.fn(p[0]))
        else:
            opt.zero_grad()
            landscape.fn(point).backward()
            opt.step()
        current = point.detach().numpy().copy()
        if not np.all(np.isfinite(current)):
            break
        path.append(current)
    return np.stack(path)
