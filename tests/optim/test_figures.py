"""The optimizer figures: paths behave as the course says and the PNGs are written."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nlp182.commands import optim as optim_command
from nlp182.errors import InvalidInputError
from nlp182.optim.figures import digits_curves, plot_landscape
from nlp182.optim.landscapes import LANDSCAPES, trajectory


def test_landscape_plot_and_paths(tmp_path: Path) -> None:
    quadratic, saddle_, _ = LANDSCAPES
    finals = plot_landscape(quadratic, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 10_000
    assert finals["Newton"] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert all(abs(x) < 0.2 and abs(y) < 0.2 for x, y in finals.values())
    newton = trajectory("Newton", saddle_, 5)
    sgd = trajectory("SGD", saddle_)
    assert abs(newton[-1]).max() < 1e-12 and abs(sgd[-1, 1]) > 1.0


def test_digits_curves_decrease() -> None:
    curves = digits_curves(epochs=2, batch_size=256, seed=0)
    assert len(curves) == 8
    assert all(values[1] < values[0] for values in curves.values())


def test_cli_rejects_bad_flags() -> None:
    parser = argparse.ArgumentParser()
    optim_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["optim", "plot", "--epochs", "0"])
    with pytest.raises(InvalidInputError, match="epochs"):
        args.func(args)
