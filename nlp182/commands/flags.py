"""Flags for every command: config dataclasses mapped one to one onto flags, each value checked where
it is parsed, and one-line errors that name the flag.

Every field becomes a flag of the same name (``vector_size`` -> ``--vector-size``; booleans also
get ``--no-...``), so the CLI and the Python API configure exactly the same things. Its help,
choices and range come from the field itself (:func:`nlp182.settings.setting`), the one place a
setting is described: a value outside its range is refused by argparse, before any work, as
``--lr must be greater than 0, got -1``, and by the config's ``__post_init__`` from Python.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import shlex
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nlp182.errors import InvalidInputError
from nlp182.settings import DEVICE_CHOICES, Limits, flag, limits_of, range_problem

#: Ranges of the flags that are no config field (``--processes``, ``--beam``, a bench's flags).
POSITIVE: Limits = {"positive": True}
NON_NEGATIVE: Limits = {"minimum": 0}
FRACTION: Limits = {"minimum": 0, "below": 1}


def _number_kind(kind: Any) -> str:
    return "an integer" if kind is int else "a number"


def checked(
    kind: Callable[[str], Any], limits: Limits | None = None, unset: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type`` that parses with ``kind`` and refuses values outside ``limits``; with
    ``unset``, the word ``none`` gives None (a setting whose None means "off", as no clipping).

    Floats must also be finite. The error reads ``must be ..., got VALUE`` and argparse prefixes the
    flag, so the user sees ``--lr must be greater than 0, got -1``.
    """
    limits = limits or {}

    def parse(text: str) -> Any:
        if unset and text.strip().lower() == "none":
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {_number_kind(kind)}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        problem = range_problem(value, limits)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def device_name(text: str) -> str:
    """An argparse ``type`` for ``--device``: a known name whose hardware this machine has."""
    import torch

    try:
        kind = torch.device(text).type if text != "auto" else "auto"
    except RuntimeError:
        kind = None
    if kind not in DEVICE_CHOICES:
        names = ", ".join(DEVICE_CHOICES)
        raise argparse.ArgumentTypeError(f"must be one of {names} (or cuda:N), got {text!r}")
    from nlp182.device import select_device
    from nlp182.errors import InvalidInputError

    try:
        select_device(text)
    except InvalidInputError:
        raise argparse.ArgumentTypeError(
            f"must be auto or cpu on this machine (it has no {kind.upper()} device), got {text}"
        ) from None
    return text


class Parser(argparse.ArgumentParser):
    """``argparse`` with errors on one line, naming the flag: ``nlp182 train digits: error: --lr ...``.

    Sub-parsers inherit the class, so every command registered anywhere gets the same errors.
    """

    def error(self, message: str) -> typing.NoReturn:
        """Print one line and exit 2 (argparse's default adds the whole usage block)."""
        match = re.match(r"argument (\S+): (.*)", message, flags=re.S)
        if match:
            names = match.group(1).split("/")
            named = next((name for name in names if name.startswith("--")), names[0])  # its own name
            rest = match.group(2)
            message = f"{named} {rest}" if rest.startswith("must") else f"{named}: {rest}"
        elif message.startswith("the following arguments are required"):
            sub = _subcommands(self)
            if sub is not None and (sub.dest in message or str(sub.metavar) in message):
                message = f"choose a command: {', '.join(sub.choices)} (see {self.prog} --help)"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


#: The namespace attribute where :func:`add_config_flags` flags record that they were given.
GIVEN = "given_flags"


def _record_given(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, set()), dest})


class _GivenStore(argparse._StoreAction):
    """``store``, recording that the flag was on the command line (see :func:`given_fields`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _record_given(namespace, self.dest)


class _GivenBoolean(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag``, recording that one of them was on the command line."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _record_given(namespace, self.dest)


def given_fields(args: argparse.Namespace) -> frozenset[str]:
    """Config fields whose flags were on the command line (not left at their defaults), so that a
    command can choose the others from the data without overriding what the user typed."""
    return frozenset(getattr(args, GIVEN, ()))


def _flag_type(annotation: Any) -> Any:
    """The scalar type behind ``int``, ``float | None``, ... (``None`` options take the inner type)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def default_text(default: Any) -> str:
    """`` (default: X)`` for a flag's help; nothing for None, whose help says what happens instead."""
    if default is None or default == "":
        return ""
    if isinstance(default, bool):
        return " (default: on)" if default else " (default: off)"
    return f" (default: {default})"


def add_config_flags(parser: argparse.ArgumentParser, config_class: type, skip: Sequence[str] = ()) -> None:
    """Add one checked flag per dataclass field (nested dataclass fields are flattened, not prefixed).

    Help, choices and range come from the field's :func:`~nlp182.settings.setting`; a field whose
    default is None says in its help what happens then (the help shows no ``default: None``).
    """
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        kind = _flag_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            add_config_flags(parser, kind, skip)
            continue
        flags = [flag(name) for name in (field.name, *field.metadata.get("formerly", ()))]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = field.metadata.get("help", "").replace("%", "%%")
        optional = type(None) in typing.get_args(hints[field.name])
        if text and optional and default is not None and kind in (int, float):  # how to reach its None
            text += "; none unsets it"
        text = (text + default_text(default)).strip() if text else ""
        if kind is bool:
            parser.add_argument(*flags, action=_GivenBoolean, default=default, help=text)
            continue
        if field.name == "device":
            metavar = "{" + ",".join(DEVICE_CHOICES) + "}"
            parser.add_argument(
                *flags, action=_GivenStore, type=device_name, default=default, metavar=metavar, help=text
            )
            continue
        value_type = checked(kind, limits_of(field), unset=optional) if kind in (int, float) else kind
        parser.add_argument(*flags, action=_GivenStore, type=value_type, default=default,
                            choices=field.metadata.get("choices"), help=text)


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


def add_out_flag(parser: argparse.ArgumentParser, what: str = "run folder", **kwargs: Any) -> None:
    """``--out`` (the run folder to write) and ``--overwrite``, with the contract in their help.

    The CLI checks the folder with :func:`nlp182.io.check_run_folder` before the command runs; a
    parser that declares ``--out`` by hand gets ``--overwrite`` and the check added by the CLI too.
    """
    kwargs.setdefault("required", "default" not in kwargs)
    text = f"{what} to write; it must not exist yet or be empty, unless --overwrite"
    parser.add_argument("--out", help=text + default_text(kwargs.get("default")), **kwargs)
    add_overwrite_flag(parser)


def add_resume_flag(parser: argparse.ArgumentParser) -> None:
    """``--resume``: continue the interrupted run staged in ``OUT.incomplete``."""
    from nlp182.train.run import RESUME_OVERRIDES

    changeable = ", ".join(RESUME_OVERRIDES)
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in OUT.incomplete from its last checkpoint "
                             f"with its saved settings (only {changeable} may change)")  # fmt: skip


def interrupted(command: str, out: str) -> None:
    """Tell the user on stderr where the interrupted run is kept and the command that resumes it."""
    from nlp182.train.run import has_checkpoints, holds_settings, incomplete_dir

    staged = incomplete_dir(out)
    if not staged.is_dir() or not holds_settings(staged):  # stopped reading the data, or just after
        print("interrupted before the run saved its settings: nothing is kept to resume; run the command "
              "again to start it", file=sys.stderr)
        return
    if has_checkpoints(staged):
        kept = f"interrupted; the run and its checkpoints are kept in {staged}"
    else:
        kept = (f"interrupted before the first checkpoint; the run's settings are kept in {staged} "
                "(resuming starts its training over with them)")
    print(f"{kept}. Resume with:{_resume_line(command, out)}", file=sys.stderr)


def kept_after_error(command: str, out: str) -> None:
    """After an error of the machine (a full disk, a lost mount), tell the user on stderr that the
    run's checkpoints are kept and the command that resumes it once the cause is fixed (nothing
    when there is no checkpoint to resume from)."""
    from nlp182.train.run import has_checkpoints, incomplete_dir

    staged = incomplete_dir(out)
    if has_checkpoints(staged):
        print(f"the run and its checkpoints are kept in {staged}; once the cause is fixed, resume with:"
              f"{_resume_line(command, out)}", file=sys.stderr)


def _resume_line(command: str, out: str) -> str:
    """The indented line of the command that resumes the run staged for ``out``; with
    ``--overwrite`` when ``out`` holds an earlier run, which the finished run is to replace (a
    run started with ``--overwrite`` over one was told to resume without it, which was refused)."""
    target = Path(out)
    taken = target.exists() and (not target.is_dir() or any(target.iterdir()))
    return f"\n  nlp182 {command} --out {shlex.quote(out)} --resume" + (" --overwrite" if taken else "")


def add_overwrite_flag(
    parser: argparse.ArgumentParser,
    text: str = "replace the --out folder, as a whole, if it holds an earlier nlp182 run (a folder of other "
    "files, or a file, is never replaced)",
) -> None:
    """``--overwrite``: allow replacing an earlier output of ours (never other files)."""
    parser.add_argument("--overwrite", action="store_true", help=text)


def figure_paths(
    base: str, count: int, flag: str, overwrite: bool, inputs: Sequence[str] = ()
) -> list[Path]:
    """Where ``count`` figures asked for with ``flag`` go (``base``, or ``NAME-0.png``, ``NAME-1.png``,
    ... for several), checked before any work: a figure extension, a writable place, no existing
    file unless ``overwrite``, and never one of the command's ``inputs``."""
    from nlp182.io import check_output_file
    from nlp182.plots import figure_format

    base_path = Path(base)
    paths = [base_path] if count == 1 else [
        base_path.with_name(f"{base_path.stem}-{i}{base_path.suffix or '.png'}") for i in range(count)
    ]
    sources = {Path(name).resolve() for name in inputs}
    for path in paths:
        figure_format(path, flag)
        if path.resolve() in sources:
            raise InvalidInputError(f"{flag} {path} is one of the inputs; name a new file")
        check_output_file(path, overwrite, flag)
    return paths


def train_group(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-command group of ``nlp182 train``, shared by every model family (created if absent)."""
    train = subparsers.choices.get("train")
    if train is None:
        train = subparsers.add_parser("train", help="train a model: one sub-command per model family")
    found = _subcommands(train)
    return found if found is not None else train.add_subparsers(dest="model", required=True)
