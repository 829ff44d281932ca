"""``nlp182 optim plot``: draw the optimizer figures (trajectories and digits loss curves) as PNGs."""

from __future__ import annotations

import argparse
from dataclasses import fields

from nlp182.errors import InvalidInputError


def _plot(args: argparse.Namespace) -> int:
    from nlp182.optim.figures import OptimPlotConfig, plot_all

    config = OptimPlotConfig(**{f.name: getattr(args, f.name) for f in fields(OptimPlotConfig)})
    if config.steps < 0 or config.epochs < 1 or config.batch_size < 1:
        raise InvalidInputError("--steps must be >= 0, --epochs and --batch-size >= 1")
    for path in plot_all(config):
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``optim plot`` to the ``nlp182`` command."""
    from nlp182.optim.figures import OptimPlotConfig

    defaults = OptimPlotConfig()
    optim = subparsers.add_parser("optim", help="optimizer figures")
    sub = optim.add_subparsers(dest="optim_command", required=True)
    plot = sub.add_parser(
        "plot", help="trajectories on a quadratic, a saddle and Rosenbrock; digits loss curves"
    )
    plot.add_argument("--out", default=defaults.out, help="folder for the PNG files")
    plot.add_argument(
        "--steps", type=int, default=defaults.steps, help="steps per trajectory (0: per landscape)"
    )
    plot.add_argument("--epochs", type=int, default=defaults.epochs, help="digits training epochs")
    plot.add_argument("--batch-size", dest="batch_size", type=int, default=defaults.batch_size)
    plot.add_argument("--seed", type=int, default=defaults.seed)
    plot.set_defaults(func=_plot)
