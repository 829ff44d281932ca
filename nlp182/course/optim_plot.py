"""``nlp182 optim plot``: the optimizer figures as one run folder.

Trajectories on the test landscapes (:mod:`nlp182.course.optim_figures`) and the training loss of
logistic regression on the digits, one curve per first-order optimizer, trained with the shared
:class:`~nlp182.train.Trainer`. This module sits above both ``optim`` and ``train``, so the
optimizers never depend on the training loop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nlp182.course.digits import classification_loss, digits_datasets
from nlp182.course.landscapes import LANDSCAPES, make_optimizer
from nlp182.course.optim_figures import plot_landscape
from nlp182.io import atomic_write_json, check_run_folder, staged_directory
from nlp182.plots import loss_curves
from nlp182.progress import progress
from nlp182.settings import check_settings, seed_setting, setting
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
    """What ``nlp182 optim plot`` draws: landscape ``steps`` (0: each landscape's default), digits
    ``epochs`` and ``batch_size``, and the ``seed``."""

    steps: int = setting(
        0, minimum=0,
        help="steps of each optimizer on each landscape (0: the landscape's own number)",
    )
    epochs: int = setting(
        20, positive=True,
        help="epochs of logistic regression on the digits, per optimizer",
    )
    batch_size: int = setting(64, positive=True, help="digits per training step")
    seed: int = seed_setting(0, help="random seed of the digits split and shuffling")

    def __post_init__(self) -> None:
        check_settings(self)


def digits_curves(
    epochs: int, batch_size: int, seed: int, bar: object | None = None
) -> dict[str, list[float]]:
    """Training loss per epoch of logistic regression on the digits for each first-order optimizer.

    ``bar`` (a :func:`nlp182.progress.progress` reporter) advances once per optimizer.
    """
    train, _ = digits_datasets(seed=seed)
    curves = {}
    trainer_log = logging.getLogger("nlp182.train")
    level = trainer_log.level
    trainer_log.setLevel(logging.WARNING)  # eight short runs: one progress line each, not one per epoch
    try:
        for name, lr in DIGITS_LRS.items():
            curves[f"{name} (lr {lr:g})"] = _digits_curve(name, lr, train, epochs, batch_size, seed)
            if bar is not None:
                bar.update(1)
    finally:
        trainer_log.setLevel(level)
    return curves


def _digits_curve(
    name: str, lr: float, train: Dataset, epochs: int, batch_size: int, seed: int
) -> list[float]:
    """Training loss per epoch of logistic regression with optimizer ``name`` at rate ``lr``."""
    torch.manual_seed(seed)
    model = nn.Linear(64, 10)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    config = TrainerConfig(epochs=epochs, device="cpu", progress=False, seed=seed)
    optimizer = make_optimizer(name, list(model.parameters()), lr)
    history = Trainer(model, optimizer, classification_loss, config).fit(loader)
    return [record["train_loss"] for record in history]


def plot_all(config: OptimPlotConfig, out: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write the landscape PNGs, ``digits_loss.png`` and ``config.json`` as the run folder ``out``.

    ``out`` is checked first (:func:`nlp182.io.check_run_folder`). Returns the figures' final paths.
    """
    check_run_folder(out, overwrite)
    names = [f"trajectories_{landscape.name}.png" for landscape in LANDSCAPES] + ["digits_loss.png"]
    with staged_directory(out, overwrite) as folder, progress(
        total=len(LANDSCAPES) + len(DIGITS_LRS), desc="optim plot", unit="step", interval=0.0
    ) as bar:
        for landscape, name in zip(LANDSCAPES, names, strict=False):
            plot_landscape(landscape, folder / name, config.steps or None)
            bar.update(1)
        curves = digits_curves(config.epochs, config.batch_size, config.seed, bar)
        loss_curves(
            curves,
            folder / names[-1],
            title="Logistic regression on the digits: training loss per epoch, one line per optimizer",
            xlabel="epoch",
            ylabel="training loss (cross-entropy, log scale)",
            log_y=True,
        )
        atomic_write_json(folder / "config.json", {"task": "optim-plot", **dataclasses.asdict(config)})
    return [Path(out) / name for name in names]
