"""Every flag of every sub-command explains itself in ``--help``, in the user's words.

The parsers are walked from :func:`nlp182.cli.build_parser`, so a command added anywhere is
covered without touching this file.
"""

from __future__ import annotations

import argparse

import pytest

from nlp182.cli import build_parser, main, walk_parsers

# Words that describe the code rather than what a flag does for the user.
IMPLEMENTATION_WORDS = ("glibc", "tqdm", "dataclass", "dispatcher", "kwargs", "default: None", "(-i ")


def _commands() -> list[argparse.ArgumentParser]:
    return [parser for parser in walk_parsers(build_parser())]


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    skip = (argparse._HelpAction, argparse._SubParsersAction)
    return [action for action in parser._actions if not isinstance(action, skip)]


@pytest.mark.parametrize("parser", _commands(), ids=lambda p: p.prog)
def test_every_flag_has_help_without_implementation_words(parser: argparse.ArgumentParser) -> None:
    for action in _flags(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{parser.prog} {name} has no help text"
        text = parser.format_help()
        for word in IMPLEMENTATION_WORDS:
            assert word not in text, f"{parser.prog} --help says {word!r}"


def test_numeric_defaults_shown_are_the_real_ones() -> None:
    for parser in _commands():
        for action in _flags(parser):
            number = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            if number and action.help and "(default: " in action.help:
                shown = action.help.rsplit("(default: ", 1)[1].rstrip(")")
                where = f"{parser.prog} {action.option_strings}"
                assert shown == str(action.default), f"{where}: help says {shown}, is {action.default}"


def test_every_sub_command_help_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for parser in _commands():
        words = parser.prog.split()[1:]
        with pytest.raises(SystemExit) as stop:
            main([*words, "--help"])
        assert stop.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_root_help_says_what_the_tool_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "word embeddings" in text and "thin dispatcher" not in text


def test_a_group_alone_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["optim"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "plot" in err[0]


def test_python_dash_m_nlp182_is_the_command() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nlp182", "neighbors", "/no/such/run", "king"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("nlp182: error:"), done.stderr
