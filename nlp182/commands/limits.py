"""The flags that bound what a command reads from user files: ``--max-line-bytes`` (or the record
a command reads: ``--max-article-bytes``), ``--max-ratio`` and ``--max-decompressed-bytes``.

Every command that reads a file nobody here wrote takes them, with the same meaning and
defaults (``nlp182.bounded``), and turns them into one :class:`~nlp182.bounded.ReadLimits`.
"""

from __future__ import annotations

import argparse

from nlp182.bounded import MAX_DECOMPRESSED_BYTES, MAX_LINE_BYTES, MAX_RATIO, RATIO_FLOOR, ReadLimits, mib
from nlp182.commands.flags import POSITIVE, checked


def add_limit_flags(
    parser: argparse.ArgumentParser,
    what: str = "line",
    default: int = MAX_LINE_BYTES,
    flag: str = "--max-line-bytes",
    action: str = "skipped and counted",
    compressed: bool = True,
) -> None:
    """Add ``flag`` (the longest ``what`` in bytes) and, when the input may be compressed, the
    decompression caps."""
    parser.add_argument(flag, dest="max_line_bytes", type=checked(int, POSITIVE), default=default,
                        help=f"longest {what} in bytes ({mib(default)}); longer ones are {action} "
                        f"(default: {default})")
    if compressed:
        parser.add_argument("--max-ratio", type=checked(float, {"minimum": 1}), default=MAX_RATIO,
                            help="refuse a .gz/.bz2 file that expands more than this many times, as a "
                            f"compression bomb does, judged once {mib(RATIO_FLOOR)} have come out "
                            f"(default: {MAX_RATIO})")
        parser.add_argument("--max-decompressed-bytes", type=checked(int, POSITIVE),
                            default=MAX_DECOMPRESSED_BYTES,
                            help="refuse a .gz/.bz2 file that expands to more bytes than this "
                            f"({mib(MAX_DECOMPRESSED_BYTES)}; default: {MAX_DECOMPRESSED_BYTES})")


def limits_from(args: argparse.Namespace) -> ReadLimits:
    """The :class:`ReadLimits` the flags of :func:`add_limit_flags` give."""
    return ReadLimits(
        args.max_line_bytes,
        getattr(args, "max_ratio", MAX_RATIO),
        getattr(args, "max_decompressed_bytes", MAX_DECOMPRESSED_BYTES),
    )
