"""Files a command reads whole or line by line beside its main input: a dataset JSON past the size
a file read whole may have, evaluation files of one endless line. One error line or one warning,
memory set by the bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nlp182.embeddings.vectors import Vectors


def test_caption_dataset_json_over_256_mib_is_refused_unread(cli, bounded, tmp_path) -> None:
    data = tmp_path / "dataset.json"
    with data.open("wb") as handle:
        handle.truncate(300 << 20)  # sparse: refused by its size, before a byte is read
    outcome = bounded(cli(["train", "caption", "--data", data, "--out", tmp_path / "run"]), 100, rc=2)
    assert f"{data} is 314,572,800 bytes, more than the 256 MiB" in outcome.error_lines[0]
    assert outcome.seconds < 30


def _run(folder: Path) -> Path:
    words = ["king", "queen", "man", "woman", "cat", "dog"]
    Vectors(words, np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)).save(folder)
    (folder / "config.json").write_text(json.dumps({"method": "test"}))
    return folder


def test_eval_file_of_one_1_gb_line_is_skipped_and_the_rest_scored(cli, bounded, tmp_path) -> None:
    evals = tmp_path / "eval"
    evals.mkdir()
    pairs = "king\tqueen\t9\nman\twoman\t8\ncat\tdog\t7\nking\tcat\t1\n"
    with (evals / "wordsim353.tsv").open("wb") as handle:
        handle.truncate(1 << 30)  # NUL bytes without a line break, then the pairs
        handle.seek(1 << 30)
        handle.write(b"\n" + pairs.encode())
    rows = (line.split("\t") for line in pairs.splitlines())
    official = "".join(f"{a}\t{b}\tN\t{score}\n" for a, b, score in rows)
    (evals / "simlex999.txt").write_text("word1\tword2\tPOS\tSimLex999\n" + official)  # SimLex-999's layout
    (evals / "questions-words.txt").write_text(": family\nking queen man woman\n")
    outcome = bounded(cli(["eval", _run(tmp_path / "run"), "--eval-dir", evals]), 100, rc=0)
    assert "wordsim353.tsv: skipped 1 line longer than 1 MiB (first: line 1); no word pair" in outcome.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["eval"]["wordsim353_pairs"] == 4
