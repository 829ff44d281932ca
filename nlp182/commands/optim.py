"""``nlp182 optim plot``: draw the optimizer figures (trajectories and digits loss curves) as PNGs."""

from __future__ import annotations

import argparse

from nlp182.commands.flags import add_config_flags, add_out_flag, config_from_args


def _plot(args: argparse.Namespace) -> int:
    from nlp182.course.optim_plot import OptimPlotConfig, plot_all

    for path in plot_all(config_from_args(OptimPlotConfig, args), args.out, overwrite=args.overwrite):
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``optim plot`` to the ``nlp182`` command."""
    from nlp182.course.optim_plot import OptimPlotConfig

    optim = subparsers.add_parser("optim", help="optimizer figures", description="Optimizer figures.")
    sub = optim.add_subparsers(dest="optim_command", required=True, metavar="COMMAND")
    text = "paths of nine optimizers on a quadratic, a saddle and Rosenbrock; digits loss curves"
    plot = sub.add_parser("plot", help=text, description=text)
    add_out_flag(plot, "folder for the figures", default="runs/optim", required=False)
    add_config_flags(plot, OptimPlotConfig)
    plot.set_defaults(func=_plot)
