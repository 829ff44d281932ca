"""``nlp182 train digits`` and ``nlp182 train shapes``: vision-core run folders from the command line."""

from __future__ import annotations

import argparse
import dataclasses

from nlp182.commands.flags import add_config_flags, add_out_flag, config_from_args, default_text, train_group
from nlp182.errors import InvalidInputError


def _run_digits(args: argparse.Namespace) -> int:
    from nlp182.vision.runs import DigitsRunConfig, train_digits_run

    metrics = train_digits_run(config_from_args(DigitsRunConfig, args), args.out, overwrite=args.overwrite)
    accuracy, seconds = metrics["test_accuracy"], metrics["train_seconds"]
    print(f"digits: test accuracy {accuracy:.4f} in {seconds:.1f} s -> {args.out}")
    return 0


def _run_shapes(args: argparse.Namespace) -> int:
    from nlp182.vision.runs import ShapesRunConfig, train_shapes_run

    metrics = train_shapes_run(config_from_args(ShapesRunConfig, args), args.out, overwrite=args.overwrite)
    print(
        f"shapes: mean IoU {metrics['mean_iou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} "
        f"in {metrics['train_seconds']:.1f} s -> {args.out}"
    )
    return 0


def _check_cycles(args: argparse.Namespace) -> None:
    if args.epochs % args.cycles:
        raise InvalidInputError(f"--cycles {args.cycles} must divide --epochs {args.epochs}")


def _nested_fit_defaults(parser: argparse.ArgumentParser, config: object) -> None:
    """Make the flattened ``FitConfig`` flags default to this run config's own ``fit`` values.

    ``add_config_flags`` takes nested defaults from the nested class; a run config that overrides
    some (e.g. more epochs) would otherwise get different defaults from the CLI than from Python.
    """
    from nlp182.vision.fit import FitConfig

    ours, base = dataclasses.asdict(config.fit), dataclasses.asdict(FitConfig())
    changed = {name: value for name, value in ours.items() if value != base[name]}
    for action in parser._actions:
        if action.dest in changed:
            old, action.default = action.default, changed[action.dest]
            action.help = (action.help or "").replace(default_text(old), default_text(action.default))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train digits`` and ``train shapes`` to the shared ``train`` group."""
    from nlp182.vision.runs import DigitsRunConfig, ShapesRunConfig

    train = train_group(subparsers)
    for name, config_class, runner, text in (
        (
            "digits",
            DigitsRunConfig,
            _run_digits,
            "small CNN on scikit-learn's 8x8 digits: accuracy, filters, maps",
        ),
        ("shapes", ShapesRunConfig, _run_shapes, "UNet or FCN on generated shapes segmentation: mean IoU"),
    ):
        parser = train.add_parser(name, help=text, description=text)
        add_out_flag(parser)
        add_config_flags(parser, config_class)
        _nested_fit_defaults(parser, config_class())
        parser.set_defaults(func=runner, validate=_check_cycles)
