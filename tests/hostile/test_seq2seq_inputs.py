"""Parallel text and ``translate`` input nobody here wrote: one 10 MB line among sentences, and bytes
that are not UTF-8, through the ``nlp182`` command (see ``conftest.py`` for the contract)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlp182.seq2seq import Seq2SeqConfig
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.train import build_translator

SENTENCES = [(f"ab{i % 7}c", f"c{i % 7}ba") for i in range(40)]
HUGE = "x" * (10 << 20)
TINY = [
    "--tokenizer", "char", "--epochs", "1", "--embed-dim", "8", "--hidden-size", "8", "--batch-size", "16",
    "--num-heatmaps", "0", "--beam-width", "1", "--max-len", "8", "--no-progress", "--threads", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def char_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained character-level run (what it outputs is not the point, how it reads is)."""
    config = Seq2SeqConfig(tokenizer="char", max_length=8, beam_width=1, max_len=8,
                           model=ModelConfig(embed_dim=8, hidden_size=8))
    run = tmp_path_factory.mktemp("runs") / "char"
    run.mkdir()
    build_translator(config, SENTENCES).save(run)
    return run


def test_train_on_aligned_files_with_a_10_mb_line(cli, bounded, tmp_path) -> None:
    sources = [s for s, _ in SENTENCES[:20]] + [HUGE] + [s for s, _ in SENTENCES[20:]]
    targets = [t for _, t in SENTENCES[:20]] + ["short"] + [t for _, t in SENTENCES[20:]]
    (tmp_path / "train.src").write_text("\n".join(sources) + "\n")
    (tmp_path / "train.tgt").write_text("\n".join(targets) + "\n")
    argv = ["train", "seq2seq", "--data", tmp_path / "train.src", "--target-file", tmp_path / "train.tgt",
            "--out", tmp_path / "run", *TINY]
    outcome = bounded(cli(argv), 150, rc=0)
    assert "train.src: skipped 1 line longer than 64 KiB (first: line 21)" in outcome.stderr


def test_train_on_a_tsv_with_a_10_mb_field(cli, bounded, tmp_path) -> None:
    rows = [f"{s}\t{t}" for s, t in SENTENCES]
    rows.insert(5, f"short\t{HUGE}")
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    argv = ["train", "seq2seq", "--data", tmp_path / "train.tsv", "--out", tmp_path / "run", *TINY]
    outcome = bounded(cli(argv), 150, rc=0)
    assert "train.tsv: skipped 1 line longer than 64 KiB (first: line 6)" in outcome.stderr


def test_translate_input_with_a_1_mb_line(cli, bounded, char_run, tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("ab1c\n" + "a" * (1 << 20) + "\n\nab2c\n")
    outcome = bounded(cli(["translate", char_run, "--input", source]), 150, rc=0)
    lines = outcome.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == lines[2] == lines[4] == "" and lines[0] and lines[3]
    assert "in.txt: left untranslated 1 line longer than 64 KiB (first: line 2)" in outcome.stderr
    assert outcome.seconds < 60


def test_translate_stdin_with_bytes_that_are_not_utf8(cli, bounded, char_run, tmp_path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"ab1c\n\xff\xfe\x00broken\nab2c\n")
    outcome = bounded(cli(["translate", char_run, "--input", "-"], stdin=source), 100, rc=2)
    assert "standard input: line 2 is not UTF-8 text (invalid start byte at byte 0)" in outcome.error_lines[0]
    assert len(outcome.stdout.splitlines()) <= 1  # at most the line before the bad one


def test_translate_with_a_run_whose_config_the_weights_do_not_fit(cli, bounded, char_run, tmp_path) -> None:
    """A run folder is a file a user may be sent: its config.json, edited to sizes of 4096 beside
    weights of size 8, built a model of over a gigabyte before the weights' shapes were compared
    (16000: 12 GB). The shapes are compared from the weights file's header before any model is built."""
    run = shutil.copytree(char_run, tmp_path / "edited")
    config = json.loads((run / "config.json").read_text())
    config["model"].update(hidden_size=4096, embed_dim=4096)
    (run / "config.json").write_text(json.dumps(config))
    (tmp_path / "in.txt").write_text("ab1c\n")
    outcome = bounded(cli(["translate", run, "--input", tmp_path / "in.txt"]), 100, rc=2)
    assert f"{run / 'model.safetensors'}: tensor " in outcome.error_lines[0]
    assert "by the run's config but (" in outcome.error_lines[0] and "4096" in outcome.error_lines[0]
    assert outcome.stdout == "" and outcome.seconds < 30
