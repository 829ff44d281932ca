"""A new embedding method is one decorated trainer: ``nlp182 train <name>`` and the commands that
read run folders work on it with no other edit (the promise of CONTRIBUTING's table)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from nlp182.cli import main
from nlp182.embeddings.registry import METHODS, embedding_method, embedding_methods, register_embedding
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import InvalidInputError
from nlp182.settings import check_settings, setting
from nlp182.text.corpus import CorpusSource, iter_token_lines
from nlp182.text.vocab import VocabConfig, Vocabulary


@dataclass
class ToyConfig:
    """Settings of the toy method: two fields with their own help, one with the common help."""

    dim: int = setting(8, positive=True, help="dimensions of each word vector")
    min_count: int = setting(5, positive=True, help="fewest occurrences of a word")
    seed: int = setting(0, minimum=0, help="random seed; the same seed repeats a run exactly")

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class ToyReport:
    seconds: float
    words: int


@pytest.fixture
def toy() -> Iterator[str]:
    """Register ``toy`` (seeded random vectors for the corpus's words) the way a method file would;
    unregister it afterwards, so that no other test sees it."""

    @register_embedding(
        "toy",
        config=ToyConfig,
        help="random word vectors (a test's throwaway method)",
    )
    def train_toy(source: CorpusSource, config: ToyConfig) -> tuple[Vectors, Vocabulary, ToyReport]:
        vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(config.min_count, None, 0.0))
        matrix = np.random.default_rng(config.seed).standard_normal((len(vocab), config.dim))
        return Vectors(vocab.words, matrix), vocab, ToyReport(0.25, len(vocab))

    yield "toy"
    METHODS.unregister("toy")
    assert "toy" not in embedding_methods()


def test_a_registered_method_trains_from_the_cli_and_its_run_is_read(
    toy, small_corpus, prepared, tmp_path, capsys
) -> None:
    run, eval_dir = tmp_path / "toy", str(prepared.wordsim353.parent)
    flags = ["--corpus", str(small_corpus), "--out", str(run), "--dim", "6", "--eval-dir", eval_dir]
    assert main(["train", toy, *flags]) == 0
    out = capsys.readouterr().out
    vocab_size = len((run / "vocab.txt").read_text().splitlines())
    assert f"toy: {vocab_size} words x 6 dims in 0.2 s -> {run}" in out  # the default closing line
    assert {p.name for p in run.iterdir()} == {
        "config.json", "vocab.txt", "vectors.npy", "counts.tsv", "metrics.json", "map.png"
    }
    config = json.loads((run / "config.json").read_text())
    corpus = str(small_corpus.resolve())
    from nlp182.text.tokenize import WordTokenizer

    assert config == {"method": "toy", "corpus": corpus, "format": "plain", "column": "text",
                      "tokens": "words", "token_rules": WordTokenizer().signature, "dim": 6,
                      "min_count": 5, "seed": 0}  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"] == {"seconds": 0.25, "words": vocab_size}
    assert "wordsim353_spearman" in metrics["eval"]  # scored at the end, as lsa and w2v runs are

    assert main(["eval", str(run), "--eval-dir", eval_dir]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("toy")
    assert main(["neighbors", str(run), "city", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_method_s_flags_are_checked_and_explained(toy, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", toy, "--out", str(tmp_path / "x"), "--dim", "0"])
    assert stop.value.code == 2 and "--dim must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", toy, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fewest occurrences of a word (default: 5)" in text and "random seed" in text
    with pytest.raises(InvalidInputError, match="dim must be at least 1, got 0"):
        ToyConfig(dim=0)  # the same range from Python


def test_the_shipped_methods_are_registered_and_unknown_names_are_refused() -> None:
    assert {"lsa", "w2v"} <= set(embedding_methods())
    assert embedding_method("lsa").train.__name__ == "train_lsa"
    with pytest.raises(InvalidInputError, match="unknown embedding method 'glove'; use one of"):
        embedding_method("glove")
