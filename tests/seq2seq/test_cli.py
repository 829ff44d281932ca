"""``nlp182 train seq2seq`` on a user's TSV and ``nlp182 translate`` with a heatmap, through argparse."""

from __future__ import annotations

import argparse
import json

import pytest

from nlp182 import cli
from nlp182.commands import seq2seq as command
from nlp182.commands.flags import config_from_args
from nlp182.errors import Nlp182Error
from nlp182.seq2seq import Seq2SeqConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlp182")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    """Dispatch like ``nlp182.cli.main`` does (one-line errors, exit 2) with only this module registered."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except Nlp182Error as exc:
        print(f"nlp182: error: {exc}")
        return 2


def test_module_is_registered_after_the_train_group_owner() -> None:
    modules = list(cli.COMMAND_MODULES)
    assert "nlp182.commands.seq2seq" in modules
    if "nlp182.commands.embeddings" in modules:
        assert modules.index("nlp182.commands.embeddings") < modules.index("nlp182.commands.seq2seq")


def test_every_config_field_is_a_flag_with_the_same_default() -> None:
    args = _parser().parse_args(["train", "seq2seq", "--out", "x"])
    assert config_from_args(Seq2SeqConfig, args) == Seq2SeqConfig()
    flags = "--attention multihead --cell lstm --no-input-feeding --hidden-size 32 --target-file t.txt"
    flags += " --clip-grad-norm 0.5 --no-amp"
    args = _parser().parse_args(["train", "seq2seq", "--out", "x", *flags.split()])
    config = config_from_args(Seq2SeqConfig, args)
    assert (config.model.attention, config.model.cell, config.model.input_feeding) == (
        "multihead",
        "lstm",
        False,
    )
    assert (config.model.hidden_size, config.target_file, config.clip_grad_norm, config.amp) == (
        32,
        "t.txt",
        0.5,
        False,
    )
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "seq2seq", "--out", "x", "--attention", "luong"])


def test_train_on_a_tsv_then_translate_with_a_heatmap(tmp_path, capsys, caplog) -> None:
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    rows = ["src\ttgt"] + [f"{a} {b}\t{b} {a}" for a in words for b in words]  # learn to swap two words
    data = tmp_path / "swap.tsv"
    data.write_text("\n".join(rows * 2) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    flags = ["--data", str(data), "--source-column", "src", "--target-column", "tgt", "--epochs", "6"]
    flags += [
        "--hidden-size",
        "32",
        "--embed-dim",
        "16",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--no-progress",
    ]
    assert _run(["train", "seq2seq", "--out", str(run), *flags]) == 0
    assert "test exact_match" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["exact_match"] >= 0.8, metrics["test"]
    heatmap = tmp_path / "swap.png"
    assert _run(["translate", str(run), "three five", "--heatmap", str(heatmap), "--beam-width", "2"]) == 0
    assert sorted(capsys.readouterr().out.split()) == ["five", "three"]  # a swap or a slip, never junk
    assert heatmap.read_bytes()[:4] == b"\x89PNG"
    sources = tmp_path / "sources.txt"  # every pair, the held-out sources included
    sources.write_text("".join(f"{a} {b}\n" for a in words for b in words), encoding="utf-8")
    assert _run(["translate", str(run), "--input", str(sources)]) == 0
    answers = capsys.readouterr().out.splitlines()
    swapped = [f"{b} {a}" for a in words for b in words]
    assert sum(answer == want for answer, want in zip(answers, swapped, strict=True)) >= 80, answers
    assert _run(["translate", str(run), "one two", "--max-len", "1"]) == 0  # cut short: said so
    assert capsys.readouterr().out.strip() == "two" and "1 of 1 translations reached max_len" in caplog.text
    assert _run(["translate", str(run), "one two", "six four", "--heatmap", str(heatmap)]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["two one", "four six"]
    assert (tmp_path / "swap-0.png").is_file() and (tmp_path / "swap-1.png").is_file()


def test_errors_are_one_line(tmp_path, capsys) -> None:
    assert _run(["translate", str(tmp_path / "missing"), "hello"]) == 2
    assert capsys.readouterr().out.count("\n") == 1
    assert _run(["train", "seq2seq", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none.tsv")]) == 2
    assert "does not exist" in capsys.readouterr().out
