"""Each command's parser is built from its own modules only, and is the same parser the full
command line builds: ``nlp182 neighbors`` starts without importing torch, and says nothing
different for it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlp182 import cli
from nlp182.embeddings.vectors import Vectors

ROOT = Path(__file__).resolve().parents[2]
# Modules whose import takes seconds; a command that needs no trainer imports none of them.
HEAVY = ("torch", "matplotlib", "pyarrow")


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {sub.prog: sub.format_help() for sub in cli.walk_parsers(parser)}


def test_every_command_has_its_modules_listed() -> None:
    assert set(_commands(cli.build_parser())) == set(cli.COMMAND_HOMES)
    for modules in cli.COMMAND_HOMES.values():
        assert set(modules) <= set(cli.COMMAND_MODULES)


@pytest.mark.parametrize("command", sorted(cli.COMMAND_HOMES))
def test_a_command_built_alone_is_the_command_of_the_full_parser(command: str, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    full = _helps(_commands(cli.build_parser())[command])
    alone = _helps(_commands(cli.build_parser(cli.COMMAND_HOMES[command]))[command])
    assert alone == full


def _imports(*argv: str) -> tuple[int, list[str]]:
    """Exit status of ``nlp182 ARGV`` in a fresh interpreter and the heavy modules it imported."""
    code = (
        "import sys\n"
        "from nlp182.cli import main\n"
        f"status = main({list(argv)!r})\n"
        f"print('heavy:' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    heavy = result.stdout.rpartition("heavy:")[2].strip()
    assert "heavy:" in result.stdout, result.stderr
    return result.returncode, [name for name in heavy.split(",") if name]


def test_queries_of_a_run_import_no_trainer(tmp_path: Path) -> None:
    words = ["king", "queen", "man", "woman"]
    Vectors(words, np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)).save(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text('{"model": "test", "dim": 8}')
    run = str(tmp_path / "run")
    assert _imports("neighbors", run, "king", "-k", "2") == (0, [])
    assert _imports("export", run, "--out", str(tmp_path / "run.txt")) == (0, [])
    assert (tmp_path / "run.txt").read_text().startswith("4 8\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("king\tqueen\t9\nman\twoman\t8\nking\tman\t3\n")
    assert _imports("eval", run, "--pairs", str(pairs)) == (0, [])


def test_a_trainer_command_still_builds_every_model_family() -> None:
    trainers = _commands(_commands(cli.build_parser(cli.COMMAND_HOMES["train"]))["train"])
    assert set(trainers) == {"lsa", "w2v", "seq2seq", "digits", "shapes", "caption"}
