"""The ``nlp182`` command: a thin dispatcher over the sub-command modules in ``nlp182.commands``.

Each command module exposes ``register(subparsers)`` which adds its sub-commands and sets
``func`` on the parser. Package errors are printed as one line (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from nlp182.errors import Nlp182Error

# Sub-command modules, in the order they appear in --help.
COMMAND_MODULES = (
    "nlp182.commands.embeddings",
    "nlp182.commands.server",
    "nlp182.commands.seq2seq",  # after embeddings: joins the `train` group it creates
    "nlp182.commands.optim",
    "nlp182.commands.vision",  # joins the `train` group: train digits, train shapes
    "nlp182.commands.captioning",  # joins the `train` group: train caption; and `caption`
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="nlp182", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.func(args)
    except (Nlp182Error, FileNotFoundError, FileExistsError) as exc:
        print(f"nlp182: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nlp182: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
