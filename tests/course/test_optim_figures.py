"""The optimizer figures: paths behave as the course says and the PNGs are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp182.cli import main
from nlp182.course import optim_figures, optim_plot
from nlp182.course.digits import digits_datasets
from nlp182.course.landscapes import LANDSCAPES, trajectory
from nlp182.course.optim_figures import plot_landscape
from nlp182.course.optim_plot import OptimPlotConfig, digits_curves, plot_all


def test_landscape_plot_and_paths(tmp_path: Path) -> None:
    quadratic, saddle_, _ = LANDSCAPES
    finals = plot_landscape(quadratic, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 10_000
    assert finals["Newton"] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert all(abs(x) < 0.2 and abs(y) < 0.2 for x, y in finals.values())
    newton = trajectory("Newton", saddle_, 5)
    sgd = trajectory("SGD", saddle_)
    assert abs(newton[-1]).max() < 1e-12 and abs(sgd[-1, 1]) > 1.0


def test_momentum_straightens_the_zig_zag_on_the_quadratic_as_the_lecture_says() -> None:
    """With momentum 0.9 both momentum methods were underdamped on this quadratic and ended 6x and
    2.5x farther from the minimum than plain SGD: the figure taught the opposite of the lecture."""
    quadratic = LANDSCAPES[0]
    names = ("SGD", "Momentum", "Nesterov")
    distance = {name: np.linalg.norm(trajectory(name, quadratic), axis=1) for name in names}
    for name in ("Momentum", "Nesterov"):
        assert distance[name][50] < distance["SGD"][50] / 10
        assert distance[name][-1] < distance["SGD"][-1] / 100
    sgd_y = trajectory("SGD", quadratic)[:, 1]
    assert np.sum(np.sign(sgd_y[1:]) != np.sign(sgd_y[:-1])) > 50  # SGD's zig-zag across the valley


def test_digits_curves_decrease() -> None:
    curves = digits_curves(epochs=2, batch_size=256, seed=0)
    assert len(curves) == 8
    assert all(values[1] < values[0] for values in curves.values())


def test_digits_validation_rows_are_not_trained_on() -> None:
    """The validation split is held out of the training split: a digit in both would be scored on
    after being trained on, and the validation accuracy would read too high."""
    train, valid = digits_datasets(0.2, seed=0)
    assert (len(train), len(valid)) == (1438, 359)  # every one of the 1797 digits, once
    seen = {tuple(row.tolist()) for row in train.tensors[0]}
    assert not any(tuple(row.tolist()) in seen for row in valid.tensors[0])


def test_optim_plot_draws_its_steps_and_trains_on_its_seed_and_batch_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``steps`` sets the landscape paths' length, ``seed`` the digits split trained on and
    ``batch_size`` the batches: each must change the figures, not only ``config.json``."""
    lengths, batches, score = [], [], optim_plot.classification_loss

    def drawn(*args) -> np.ndarray:
        points = trajectory(*args)
        lengths.append(len(points))
        return points

    def scored(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple:
        batches.append(batch[0])
        return score(model, batch)

    monkeypatch.setattr(optim_figures, "trajectory", drawn)
    monkeypatch.setattr(optim_plot, "classification_loss", scored)
    plot_all(OptimPlotConfig(steps=5, epochs=1, batch_size=512, seed=1), tmp_path / "figures")
    assert set(lengths) == {6}  # the start and 5 steps, on every landscape
    first = batches[:3]  # the first optimizer's epoch: 1438 digits in batches of 512
    assert [len(x) for x in first] == [512, 512, 414]
    rows = {tuple(row.tolist()) for x in first for row in x}
    assert rows == {tuple(row.tolist()) for row in digits_datasets(seed=1)[0].tensors[0]}


def test_optim_plot_writes_a_run_folder_and_refuses_to_mix_into_others(tmp_path: Path, capsys) -> None:
    out = tmp_path / "figures"
    argv = ["optim", "plot", "--out", str(out), "--steps", "5", "--epochs", "1", "--batch-size", "512"]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    figures = [f"trajectories_{landscape.name}.png" for landscape in LANDSCAPES]
    assert names == sorted(["config.json", "digits_loss.png", *figures])
    assert json.loads((out / "config.json").read_text())["steps"] == 5
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
