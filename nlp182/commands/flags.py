"""Flags for every command: config dataclasses mapped one to one onto flags, each value checked where
it is parsed, and one-line errors that name the flag.

Every field becomes a flag of the same name (``vector_size`` -> ``--vector-size``; booleans also
get ``--no-...``), so the CLI and the Python API configure exactly the same things. A value outside
its range is refused by argparse itself, before any work, as ``--lr must be greater than 0, got -1``.
The range of a field comes from, in order: the ``limits`` a command passes, the field's own
``metadata`` (``dataclasses.field(metadata={"minimum": 0})``), then :data:`COMMON_LIMITS` by field
name, so a new command with an ``epochs`` or ``lr`` field is checked without writing anything.
Help text comes the same way from ``helps``, ``metadata["help"]`` and :data:`COMMON_HELP`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nlp182.device import DEVICE_CHOICES

#: Keys a range may have: ``minimum``/``maximum`` (inclusive), ``positive`` (> 0), ``below``
#: (exclusive upper bound), ``even``, ``choices``.
Limits = Mapping[str, Any]

RANGE_KEYS = ("minimum", "maximum", "positive", "below", "even")
POSITIVE = {"positive": True}
NON_NEGATIVE = {"minimum": 0}
FRACTION = {"minimum": 0, "below": 1}

#: Ranges by field name, shared by every command whose config has a field of that name.
COMMON_LIMITS: dict[str, Limits] = {
    **{
        name: POSITIVE
        for name in (
            "epochs", "batch_size", "lr", "width", "cycles", "train_size", "test_size", "vector_size",
            "dim", "window", "negative", "min_count", "max_vocab", "vocab_size", "min_frequency",
            "embed_dim", "num_layers", "num_heads", "date_train", "date_valid", "date_test",
            "max_length", "beam_width", "max_output_len", "max_len", "alpha", "temperature",
            "workers", "timeout", "batch_max", "max_body_bytes", "hnsw_m", "ef_construction",
            "ef_search", "recall_queries", "early_stopping_patience", "clip_grad_norm", "k",
        )
    },
    **{
        name: NON_NEGATIVE
        for name in (
            "weight_decay", "seed", "threads", "omp_threads", "blas_threshold", "batch_window_ms",
            "malloc_arenas", "sample", "min_alpha", "num_heatmaps", "svd_oversample",
            "svd_iterations", "steps", "flat_max_words", "length_penalty", "eig_power",
        )
    },
    **{
        name: FRACTION
        for name in ("momentum", "dropout", "label_smoothing", "valid_fraction", "test_fraction")
    },
    "teacher_forcing": {"minimum": 0, "maximum": 1},
    "cds_alpha": {"positive": True, "maximum": 1},
    "hidden_size": {"positive": True, "even": True},
    "port": {"minimum": 0, "maximum": 65535},
}

#: Help by field name for the settings many commands share.
COMMON_HELP: dict[str, str] = {
    "epochs": "passes over the training data",
    "batch_size": "examples per training step",
    "lr": "learning rate",
    "momentum": "momentum of SGD (0 turns it off)",
    "weight_decay": "L2 penalty on the weights",
    "seed": "random seed; the same seed repeats a run exactly",
    "device": "where to compute: auto (a GPU when there is one), cpu, cuda or mps",
    "progress": "show progress while training",
    "threads": "CPU threads",
    "dropout": "dropout probability",
    "width": "channel multiplier of the network (1: its standard size)",
    "amp": "mixed precision on a GPU (bf16)",
    "deterministic": "deterministic GPU kernels and cuBLAS workspace, so one seed repeats a run exactly on "
    "one GPU (somewhat slower)",
}


def _number_kind(kind: Any) -> str:
    return "an integer" if kind is int else "a number"


def _show(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def range_problem(value: float, limits: Limits) -> str | None:
    """What is wrong with ``value`` under ``limits`` (``"must be at least 1"``), or None if nothing."""
    integer = isinstance(value, int)
    if limits.get("even") and limits.get("positive") and (value < 1 or value % 2):
        return "must be a positive even number"
    if limits.get("positive") and value <= 0:
        return "must be at least 1" if integer else "must be greater than 0"
    if "minimum" in limits and value < limits["minimum"]:
        return f"must be at least {_show(limits['minimum'])}"
    if "maximum" in limits and value > limits["maximum"]:
        return f"must be at most {_show(limits['maximum'])}"
    if "below" in limits and value >= limits["below"]:
        return f"must be less than {_show(limits['below'])}"
    if limits.get("even") and value % 2:
        return "must be an even number"
    return None


def checked(kind: Callable[[str], Any], limits: Limits | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` that parses with ``kind`` and refuses values outside ``limits``.

    Floats must also be finite. The error reads ``must be ..., got VALUE`` and argparse prefixes the
    flag, so the user sees ``--lr must be greater than 0, got -1``.
    """
    limits = limits or {}

    def parse(text: str) -> Any:
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
            flag = max(names, key=len)
            rest = match.group(2)
            message = f"{flag} {rest}" if rest.startswith("must") else f"{flag}: {rest}"
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


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type,
    choices: Mapping[str, Sequence[Any]] | None = None,
    helps: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
    limits: Mapping[str, Limits] | None = None,
) -> None:
    """Add one checked flag per dataclass field (nested dataclass fields are flattened, not prefixed).

    A field whose default is None must say in its help what happens then (the help shows no
    ``default: None``). ``choices`` restricts string fields; ``limits`` sets numeric ranges.
    """
    choices, helps, limits = choices or {}, helps or {}, limits or {}
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        kind = _flag_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            add_config_flags(parser, kind, choices, helps, skip, limits)
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = helps.get(field.name) or field.metadata.get("help") or COMMON_HELP.get(field.name, "")
        text = (text + default_text(default)).strip() if text else ""
        if kind is bool:
            parser.add_argument(flag, action=_GivenBoolean, default=default, help=text)
            continue
        allowed = choices.get(field.name) or field.metadata.get("choices")
        if field.name == "device" and allowed is None:
            metavar = "{" + ",".join(DEVICE_CHOICES) + "}"
            parser.add_argument(
                flag, action=_GivenStore, type=device_name, default=default, metavar=metavar, help=text
            )
            continue
        own = {key: value for key, value in field.metadata.items() if key in RANGE_KEYS}
        rule = limits.get(field.name) or own or COMMON_LIMITS.get(field.name)
        value_type = checked(kind, rule) if kind in (int, float) else kind
        parser.add_argument(
            flag, action=_GivenStore, type=value_type, default=default, choices=allowed, help=text
        )


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


def add_overwrite_flag(
    parser: argparse.ArgumentParser,
    text: str = "replace the --out folder if it holds an earlier nlp182 run (other files are never replaced)",
) -> None:
    """``--overwrite``: allow replacing an earlier output of ours (never other files)."""
    parser.add_argument("--overwrite", action="store_true", help=text)


def train_group(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-command group of ``nlp182 train``, shared by every model family (created if absent)."""
    train = subparsers.choices.get("train")
    if train is None:
        train = subparsers.add_parser("train", help="train a model: one sub-command per model family")
    found = _subcommands(train)
    return found if found is not None else train.add_subparsers(dest="model", required=True)
