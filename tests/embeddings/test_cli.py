"""The embedding commands end to end: run folders, evaluation table, one-line errors."""

from __future__ import annotations

import json

import pytest

from nlp182.cli import main


def test_train_eval_neighbors_on_a_real_corpus_slice(small_corpus, prepared, tmp_path, capsys) -> None:
    lsa, w2v = tmp_path / "lsa", tmp_path / "w2v"
    assert main(["train", "lsa", "--corpus", str(small_corpus), "--out", str(lsa), "--dim", "30"]) == 0
    assert (
        main(
            [
                "train",
                "w2v",
                "--corpus",
                str(small_corpus),
                "--out",
                str(w2v),
                "--epochs",
                "1",
                "--vector-size",
                "20",
                "--model",
                "cbow",
            ]
        )
        == 0
    )
    for run in (lsa, w2v):
        assert {p.name for p in run.iterdir()} == {
            "config.json",
            "vocab.txt",
            "vectors.npy",
            "counts.tsv",
            "metrics.json",
            "map.png",
        }
        assert (run / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((w2v / "config.json").read_text())
    assert config["model"] == "cbow" and config["vector_size"] == 20 and config["backend_used"] == "torch"
    capsys.readouterr()
    assert main(["eval", str(lsa), str(w2v), "--eval-dir", str(prepared.wordsim353.parent)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert (
        table[0].split()[:3] == ["run", "WS353", "rho"]
        and table[1].startswith("lsa")
        and table[2].startswith("w2v")
    )
    metrics = json.loads((lsa / "metrics.json").read_text())
    assert metrics["eval"]["wordsim353_spearman"] == pytest.approx(float(table[1].split()[1]), abs=1e-4)
    assert "seconds" in metrics["train"]
    assert main(["neighbors", str(lsa), "city", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.fixture(scope="module")
def lsa_run(small_corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("lsa") / "run"
    assert main(["train", "lsa", "--corpus", str(small_corpus), "--out", str(run), "--dim", "10"]) == 0
    return run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["neighbors", "{run}", "qqqxyz"], "not in the vocabulary"),
        (["eval", "{missing}"], "does not exist"),
        (["train", "w2v", "--corpus", "{missing}", "--out", "{out}"], "does not exist"),
        (["train", "w2v", "--corpus", "{empty}", "--out", "{out}"], "min_count"),
        (["train", "lsa", "--corpus", "{empty}", "--out", "{out}", "--dim", "-3"], "dim"),
    ],
)
def test_errors_print_one_line_exit_nonzero_and_leave_nothing(
    argv, message, lsa_run, tmp_path, capsys
) -> None:
    (tmp_path / "empty.txt").write_text("just a few words here\n")
    paths = {
        "run": lsa_run,
        "missing": tmp_path / "missing",
        "out": tmp_path / "out",
        "empty": tmp_path / "empty.txt",
    }
    capsys.readouterr()
    try:
        code = main([arg.format(**paths) for arg in argv])
    except SystemExit as stop:  # a bad value is refused while the flags are parsed
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nlp182") and "error:" in err[0] and message in err[0]
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]  # no staging folder left


def test_bad_flag_value_is_rejected_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "w2v", "--out", "x", "--model", "glove"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_corpus_prepare_is_deterministic(tmp_path, capsys, prepared) -> None:
    assert main(["corpus", "prepare", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256: {prepared.sha256}" in out
    assert (tmp_path / "wiki.txt").read_bytes() == prepared.corpus.read_bytes()
    assert prepared.lines > 600 and len(prepared.corpus.read_text().split()) > 800_000
