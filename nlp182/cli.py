"""The ``nlp182`` command: parse, check the outputs, run one sub-command, print errors as one line.

Command modules in ``nlp182.commands`` add their sub-commands; this module adds what every command
shares: one-line errors (exit 2), the run-folder contract for ``--out`` and the logging levels.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from nlp182.commands.flags import Parser, add_overwrite_flag
from nlp182.errors import MissingFileError, Nlp182Error
from nlp182.signals import Terminated, interrupt_on_sigterm

# Sub-command modules, in the order they appear in --help. Each exposes ``register(subparsers)``,
# which adds its commands and sets ``func`` on each parser.
COMMAND_MODULES = (
    "nlp182.commands.embeddings",
    "nlp182.commands.embedding_training",  # train lsa, train w2v
    "nlp182.commands.server",
    "nlp182.commands.importing",
    "nlp182.commands.seq2seq",  # joins the `train` group (the first module to ask creates it)
    "nlp182.commands.optim",
    "nlp182.commands.vision",  # joins the `train` group: train digits, train shapes
    "nlp182.commands.captioning",  # joins the `train` group: train caption; and `caption`
    "nlp182.commands.cache",
)
# The modules that register each command: a command's parser is built from its own modules
# only, so a command that needs no trainer imports none (torch, matplotlib and pyarrow take about
# 2 s to import): `nlp182 serve` runs in every process of the service, and `neighbors`, `eval` or
# `export` answer in a fraction of a second. `train` joins every model family's module. A word
# not listed here (a typo, `--help` alone) builds every command, so the error lists them all.
_TRAINERS = ("nlp182.commands.embedding_training", "nlp182.commands.seq2seq", "nlp182.commands.vision",
             "nlp182.commands.captioning")
COMMAND_HOMES = {
    "corpus": ("nlp182.commands.embeddings",),
    "train": _TRAINERS,
    "eval": ("nlp182.commands.embeddings",),
    "neighbors": ("nlp182.commands.embeddings",),
    "index": ("nlp182.commands.server",),
    "serve": ("nlp182.commands.server",),
    "import": ("nlp182.commands.importing",),
    "export": ("nlp182.commands.importing",),
    "translate": ("nlp182.commands.seq2seq",),
    "optim": ("nlp182.commands.optim",),
    "caption": ("nlp182.commands.captioning",),
    "cache": ("nlp182.commands.cache",),
}
# Loggers of this project: INFO by default; every other library only says WARNING and above.
OWN_LOGGERS = ("nlp182", "bench")
# Libraries whose warnings are about their own set-up (matplotlib's font cache: "findfont: Font
# family ... not found", twenty lines into a training log), not the user's work: errors only, unless -v.
QUIET_LOGGERS = ("matplotlib", "PIL")
DESCRIPTION = (
    "Train word embeddings (LSA, word2vec), attention translators and small vision models, "
    "then evaluate, query and serve them."
)
EPILOG = (
    "Start with `nlp182 corpus prepare`, then `nlp182 train w2v --out runs/w2v` and "
    "`nlp182 eval runs/w2v`. `nlp182 COMMAND --help` explains each command."
)


def walk_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from walk_parsers(sub)


def _apply_out_contract(parser: argparse.ArgumentParser) -> None:
    """Give every command with ``--out`` an ``--overwrite`` flag and the run-folder check.

    A command that writes files into an existing folder rather than a run folder says so with
    ``set_defaults(out_contract="files")``: then only writability is checked.
    """
    for sub in walk_parsers(parser):
        options = {option for action in sub._actions for option in action.option_strings}
        if "--out" not in options:
            continue
        if "--overwrite" not in options:
            add_overwrite_flag(sub)
        if sub.get_default("out_contract") is None:
            sub.set_defaults(out_contract="run")


VERBOSE_HELP = "say more: -v adds other libraries' messages and our debug lines, -vv everything"


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with the sub-commands of ``modules`` (default: every one)."""
    parser = Parser(prog="nlp182", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(name).register(subparsers)
    _apply_out_contract(parser)
    for sub in walk_parsers(parser):  # -v after the command too (nlp182 neighbors RUN king -v)
        if sub is not parser and sub.get_default("func") is not None:
            sub.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def configure_logging(verbosity: int) -> None:
    """Our messages at INFO; other libraries' (faiss.loader, gensim) only from ``-v`` on; written
    around progress bars (``BarSafeHandler``)."""
    from nlp182.progress import BarSafeHandler

    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[BarSafeHandler()])
    logging.getLogger().setLevel(level)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity else logging.ERROR)


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: the ``--out`` of the command can be written under the run-folder contract."""
    from nlp182.io import check_output_path, check_run_folder

    contract = getattr(args, "out_contract", None)
    if contract is None or getattr(args, "out", None) is None:
        return
    if contract == "run":
        if getattr(args, "resume", False):  # the run continues in OUT.incomplete; OUT is not written yet
            from nlp182.train.run import incomplete_dir

            if not incomplete_dir(args.out).is_dir() and Path(args.out).is_dir():
                raise MissingFileError(f"nothing to resume: {args.out} is a finished run (no "
                                       f"{incomplete_dir(args.out).name} folder beside it)")
        check_run_folder(args.out, overwrite=getattr(args, "overwrite", False))
    else:
        check_output_path(args.out)


#: What a write that stopped short most likely met, by errno.
_WRITE_FAILURES = {errno.ENOSPC: "no space left on device", errno.EFBIG: "the file-size limit was reached",
                   errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the file system is read-only"}


def _os_error_line(exc: OSError) -> str:
    """One line for an ``OSError`` no check caught: the file and the reason, and for a write that
    stopped short without an errno (NumPy's ``tofile``: "N requested and M written") what does that."""
    from nlp182.io import failed_write_target

    target = failed_write_target(exc)
    where = f"{target}: " if target else ""
    if exc.errno is None and "requested and" in str(exc):
        return f"{where}a write stopped short ({exc}): the disk is full or a file-size limit was reached"
    line = where + (_WRITE_FAILURES.get(exc.errno or 0) or (exc.strerror or str(exc)).lower())
    if target and exc.errno in _WRITE_FAILURES and _in_cache(target):
        line += ("; that is the package's cache (encoded corpora, built kernels): delete what it holds "
                 "or set NLP182_CACHE to a folder with room")
    return line


def _in_cache(path: str) -> bool:
    """Whether ``path`` lies in the package's cache folder."""
    from nlp182.io import cache_folder

    try:
        return Path(path).absolute().is_relative_to(cache_folder())
    except (Nlp182Error, OSError):  # a cache that cannot be found changes nothing in the message
        return False


def _allocation_failed(exc: RuntimeError) -> bool:
    """Whether torch raised ``exc`` for memory it could not allocate (its CPU allocator's
    "can't allocate memory", or CUDA's ``OutOfMemoryError``), not for a bug."""
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _printable_output() -> None:
    """Write what the terminal's encoding cannot show as escapes (a Windows console or
    ``PYTHONIOENCODING=ascii`` printing ``café``), where printing a neighbour raised a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _drop_stdout() -> None:
    """Point standard output at /dev/null once its reader has gone (``nlp182 ... | head -1``), so
    the interpreter's last flush does not report the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured output)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    _printable_output()
    words = sys.argv[1:] if argv is None else argv
    command = next((word for word in words if not word.startswith("-")), None)
    modules = COMMAND_HOMES.get(command)
    try:
        parser = build_parser(modules)  # imports the commands' modules: seconds a Ctrl-C may land in
    except KeyboardInterrupt:
        print("nlp182: interrupted", file=sys.stderr)
        return 130
    args, extras = parser.parse_known_args(argv)
    trailing = getattr(args, "trailing_words", None)  # the positional that takes words after options
    options_end = extras.index("--") if "--" in extras else len(extras)
    words = extras[:options_end] + extras[options_end + 1 :]  # after "--", "-5 degrees" is a word
    if extras and trailing is not None and not any(word.startswith("-") for word in extras[:options_end]):
        # argparse gives a "*" positional nothing once an option follows the run folder, so
        # "translate RUN --beam-width 1 'a b c'" left 'a b c' over
        getattr(args, trailing).extend(words)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    configure_logging(args.verbose)
    interrupt_on_sigterm()  # a stopped command removes its staging folders as Ctrl-C does
    try:
        if getattr(args, "validate", None) is not None:
            args.validate(args)  # checks across flags (e.g. --cycles divides --epochs)
        check_outputs(args)
        result = args.func(args)
        sys.stdout.flush()  # a reader gone shows here, not in the interpreter's exit
    except BrokenPipeError:  # the reader of the output has what it wanted: no error, as `cat` ends
        _drop_stdout()
        return 128 + signal.SIGPIPE
    except (Nlp182Error, FileNotFoundError, FileExistsError) as exc:
        print(f"nlp182: error: {exc}", file=sys.stderr)
        return 2
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:  # a path no check caught
        reason = f"{exc.filename} {(exc.strerror or '').lower()}" if exc.filename else str(exc)
        print(f"nlp182: error: {reason}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a file-size limit, a read-only file system, mid-write
        print(f"nlp182: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # what no bound caught: one line, not a traceback
        if isinstance(exc, RuntimeError) and not _allocation_failed(exc):
            raise
        print("nlp182: error: ran out of memory; the input or a size asked for is larger than this "
              "machine can hold (lower --max-line-bytes, --max-vocab, --batch-size or the size flags "
              "where the command has them)", file=sys.stderr)
        return 2
    except Terminated:
        print("nlp182: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("nlp182: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
