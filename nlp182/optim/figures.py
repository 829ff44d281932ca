"""The pictures of ``nlp182 optim plot``: trajectories on three landscapes and digits loss curves.

One PNG per landscape (contours in log scale, one path per optimizer, the start and the minimum
marked) and one PNG of logistic-regression training loss per epoch on the digits, one line per
first-order optimizer (Newton is full-batch second order, so it has no minibatch curve).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nlp182.optim.digits import classification_loss, digits_datasets
from nlp182.optim.landscapes import LANDSCAPES, OPTIMIZER_NAMES, Landscape, make_optimizer, trajectory
from nlp182.plots import save_figure
from nlp182.train import Trainer, TrainerConfig

DIGITS_LRS = {
    "SGD": 0.5,
    "Momentum": 0.05,
    "Nesterov": 0.05,
    "RMSprop": 1e-2,
    "Adagrad": 0.1,
    "Adam": 1e-2,
    "AdamW": 1e-2,
    "signSGD": 5e-3,
}


@dataclass
class OptimPlotConfig:
    """What ``nlp182 optim plot`` draws: ``out`` folder, landscape ``steps`` (0: each landscape's
    default), digits ``epochs`` and ``batch_size``, and the ``seed``."""

    out: str = "runs/optim"
    steps: int = 0
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0


def plot_landscape(landscape: Landscape, path: str | os.PathLike[str], steps: int | None = None) -> dict:
    """Draw every optimizer's path on ``landscape`` into ``path``; return the final points by name."""
    xs = np.linspace(*landscape.xlim, 300)
    ys = np.linspace(*landscape.ylim, 300)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys)), dtype=torch.float64)
    values = landscape.fn(grid).numpy()
    fig, ax = plt.subplots(figsize=(8, 6))
    shifted = values - values.min() + 1e-3
    ax.contour(xs, ys, np.log(shifted), levels=30, cmap="Greys", linewidths=0.6)
    finals = {}
    for name, color in zip(
        OPTIMIZER_NAMES, plt.cm.tab10(np.linspace(0, 1, len(OPTIMIZER_NAMES))), strict=True
    ):
        points = trajectory(name, landscape, steps)
        finals[name] = points[-1].tolist()
        ax.plot(
            points[:, 0], points[:, 1], "-", color=color, lw=1.4, label=f"{name} (lr {landscape.lrs[name]:g})"
        )
        ax.plot(points[-1, 0], points[-1, 1], "o", color=color, ms=4)
    ax.plot(*landscape.start, "k^", ms=8, label="start")
    if landscape.minimum is not None:
        ax.plot(*landscape.minimum, "r*", ms=12, label="minimum")
    else:
        ax.plot(0.0, 0.0, "rx", ms=10, label="saddle point")
    ax.set(xlim=landscape.xlim, ylim=landscape.ylim, title=f"{landscape.name}: optimizer trajectories")
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)
    return finals


def digits_curves(epochs: int, batch_size: int, seed: int) -> dict[str, list[float]]:
    """Training loss per epoch of logistic regression on the digits for each first-order optimizer."""
    train, _ = digits_datasets(seed=seed)
    curves = {}
    for name, lr in DIGITS_LRS.items():
        torch.manual_seed(seed)
        model = nn.Linear(64, 10)
        loader = DataLoader(
            train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        config = TrainerConfig(epochs=epochs, device="cpu", progress=False, seed=seed)
        optimizer = make_optimizer(name, list(model.parameters()), lr)
        history = Trainer(model, optimizer, classification_loss, config).fit(loader)
        curves[f"{name} (lr {lr:g})"] = [record["train_loss"] for record in history]
    return curves


def plot_all(config: OptimPlotConfig) -> list[Path]:
    """Write the three landscape PNGs and ``digits_loss.png`` into ``config.out``; return their paths."""
    out = Path(config.out)
    written = []
    for landscape in LANDSCAPES:
        path = out / f"trajectories_{landscape.name}.png"
        plot_landscape(landscape, path, config.steps or None)
        written.append(path)
    curves = digits_curves(config.epochs, config.batch_size, config.seed)
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    ax.set(
        title="logistic regression on digits (softmax + cross-entropy, minibatches)",
        xlabel="epoch",
        ylabel="training loss",
        yscale="log",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out / "digits_loss.png"
    save_figure(fig, path)
    written.append(path)
    return written
