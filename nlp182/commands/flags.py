"""Map config dataclasses onto command-line flags one to one, and back.

Every field becomes a flag of the same name (``vector_size`` -> ``--vector-size``; booleans also
get ``--no-...``), so the CLI and the Python API configure exactly the same things.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any


def _flag_type(annotation: Any) -> Any:
    """The scalar type behind ``int``, ``float | None``, ... (``None`` options take the inner type)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type,
    choices: Mapping[str, Sequence[Any]] | None = None,
    helps: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
) -> None:
    """Add one flag per dataclass field (nested dataclass fields are flattened, not prefixed)."""
    choices, helps = choices or {}, helps or {}
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        kind = _flag_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            add_config_flags(parser, kind, choices, helps, skip)
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        text = helps.get(field.name, "") + f" (default: {default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, type=kind, default=default, choices=choices.get(field.name), help=text)


def config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    """Build ``config_class`` (and its nested dataclasses) from the parsed flags."""
    hints = typing.get_type_hints(config_class)
    values = {}
    for field in dataclasses.fields(config_class):
        if not hasattr(args, field.name) and not dataclasses.is_dataclass(_flag_type(hints[field.name])):
            continue
        kind = _flag_type(hints[field.name])
        values[field.name] = (
            config_from_args(kind, args) if dataclasses.is_dataclass(kind) else getattr(args, field.name)
        )
    return config_class(**values)


def train_group(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-command group of ``nlp182 train``, shared by every model family (created if absent)."""
    train = subparsers.choices.get("train")
    if train is None:
        train = subparsers.add_parser("train", help="train a model: one sub-command per model family")
    for action in train._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return train.add_subparsers(dest="model", required=True)
