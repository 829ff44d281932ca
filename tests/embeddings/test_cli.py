"""The embedding commands end to end: run folders, evaluation table, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nlp182.cli import main


def test_train_eval_neighbors_on_a_real_corpus_slice(small_corpus, prepared, tmp_path, capsys) -> None:
    lsa, w2v = tmp_path / "lsa", tmp_path / "w2v"
    eval_dir = str(prepared.wordsim353.parent)
    lsa_args = ["--corpus", str(small_corpus), "--out", str(lsa), "--dim", "30", "--eval-dir", eval_dir]
    assert main(["train", "lsa", *lsa_args]) == 0
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
                "--eval-dir",
                str(tmp_path / "no-eval-files"),
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
    assert config["corpus"] == str(small_corpus.resolve())
    assert "eval" not in json.loads((w2v / "metrics.json").read_text())  # no evaluation files there
    # what made the run: a later version can tell, and so can its user
    import nlp182
    from nlp182.text.tokenize import WordTokenizer

    assert config["token_rules"] == WordTokenizer().signature
    assert json.loads((w2v / "metrics.json").read_text())["written_by"]["nlp182"] == nlp182.__version__
    trained_scores = json.loads((lsa / "metrics.json").read_text())["eval"]
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
    assert trained_scores["wordsim353_spearman"] == pytest.approx(metrics["eval"]["wordsim353_spearman"])
    eval_dir = str(prepared.wordsim353.parent.resolve())
    assert trained_scores["restrict_vocab"] == metrics["eval"]["restrict_vocab"] == 300_000
    assert trained_scores["eval_dir"] == metrics["eval"]["eval_dir"] == eval_dir
    assert main(["eval", str(lsa), "--eval-dir", eval_dir, "--restrict-vocab", "500"]) == 0
    assert json.loads((lsa / "metrics.json").read_text())["eval"]["restrict_vocab"] == 500
    assert "seconds" in metrics["train"]
    capsys.readouterr()
    assert main(["neighbors", str(lsa), "city", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.fixture(scope="module")
def lsa_run(small_corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("lsa") / "run"
    assert main(["train", "lsa", "--corpus", str(small_corpus), "--out", str(run), "--dim", "10"]) == 0
    return run


def test_neighbors_of_several_words_minus_others_are_gensims_most_similar(lsa_run, capsys) -> None:
    from nlp182.embeddings.runs import load_run

    vectors, _ = load_run(lsa_run)
    king, woman, man = vectors.words[10], vectors.words[20], vectors.words[30]
    capsys.readouterr()
    assert main(["neighbors", str(lsa_run), king, woman, "--negative", man, "-k", "4"]) == 0
    shown = [line.split() for line in capsys.readouterr().out.splitlines()]
    expected = vectors.most_similar(positive=[king, woman], negative=[man], topn=4)
    assert [word for word, _ in shown] == [word for word, _ in expected]
    assert [float(score) for _, score in shown] == pytest.approx([score for _, score in expected], abs=1e-4)
    # only --negative: the words farthest from it, as gensim's most_similar(negative=[man])
    assert main(["neighbors", str(lsa_run), "--negative", man, "-k", "3"]) == 0
    shown = [line.split() for line in capsys.readouterr().out.splitlines()]
    reference = KeyedVectors(vectors.dim)
    reference.add_vectors(vectors.words, np.asarray(vectors.vectors))
    assert [word for word, _ in shown] == [word for word, _ in reference.most_similar(negative=[man], topn=3)]
    assert main(["neighbors", str(lsa_run)]) != 0
    assert "give a word whose neighbours to list, or --negative WORD" in capsys.readouterr().err


def test_eval_scores_the_files_a_user_names(lsa_run, prepared, tmp_path, capsys) -> None:
    """``--pairs`` and ``--analogies`` score a user's own files (here MEN's space-separated layout and
    a CSV with a header) in place of the standard sets; the table is what ``metrics.json`` keeps
    under ``eval_files``, by absolute path, beside the standard scores, and later files add to it."""
    from nlp182.embeddings.evaluate import evaluate_analogies, evaluate_word_pairs
    from nlp182.embeddings.runs import load_run

    lines = [line.split("\t") for line in prepared.wordsim353.read_text().splitlines() if line[:1] != "#"]
    (tmp_path / "men.txt").write_text("".join(f"{a} {b} {float(s) * 5:.6f}\n" for a, b, s in lines))
    csv_rows = "".join(",".join(fields) + "\n" for fields in lines)
    (tmp_path / "ws.csv").write_text("Word 1,Word 2,Human (mean)\n" + csv_rows)
    before = json.loads((lsa_run / "metrics.json").read_text()).get("eval")
    capsys.readouterr()
    men, analogy_file = str(tmp_path / "men.txt"), str(prepared.analogies)
    assert main(["eval", str(lsa_run), "--pairs", men, "--analogies", analogy_file]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    vectors, _ = load_run(lsa_run)
    pairs = evaluate_word_pairs(vectors, prepared.wordsim353)
    analogies = evaluate_analogies(vectors, prepared.analogies)
    assert table[0][:3] == ["run", "pairs", "file"] and table[2][:3] == ["run", "analogy", "file"]
    assert table[1][:2] == ["run", "men.txt"]
    assert float(table[1][2]) == pytest.approx(pairs.spearman, abs=1e-4)
    assert table[3][1] == "questions-words.txt"
    assert float(table[3][2]) == pytest.approx(analogies.accuracy, abs=1e-4)
    assert main(["eval", str(lsa_run), "--pairs", str(tmp_path / "ws.csv")]) == 0
    metrics = json.loads((lsa_run / "metrics.json").read_text())
    kept = metrics["eval_files"]
    assert set(kept) == {str((tmp_path / "men.txt").resolve()), str((tmp_path / "ws.csv").resolve()),
                         str(prepared.analogies.resolve())}
    assert kept[str((tmp_path / "ws.csv").resolve())]["spearman"] == pytest.approx(pairs.spearman, abs=1e-12)
    assert kept[str(prepared.analogies.resolve())]["questions"] == analogies.total
    # gold scores all equal: the correlation is nan, which metrics.json keeps as null (NaN is not JSON)
    (tmp_path / "flat.txt").write_text("".join(f"{a}\t{b}\t5\n" for a, b, _ in lines))
    assert main(["eval", str(lsa_run), "--pairs", str(tmp_path / "flat.txt")]) == 0
    text = (lsa_run / "metrics.json").read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"metrics.json holds {name}"))
    assert strict["eval_files"][str((tmp_path / "flat.txt").resolve())]["spearman"] is None
    assert metrics.get("eval") == before


def test_eval_restrict_vocab_sets_the_words_every_score_is_made_over(
    lsa_run, prepared, tmp_path, capsys
) -> None:
    """``--restrict-vocab 2000`` scores the standard sets and a user's analogy file, 3CosMul as 3CosAdd,
    over the 2000 most frequent words: the table and metrics.json hold that vocabulary's scores, beside
    the number they record."""
    from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all, evaluate_analogies
    from nlp182.embeddings.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(lsa_run, run)  # the module's run keeps its metrics.json for the other tests
    vectors, _ = load_run(run)
    eval_dir = prepared.wordsim353.parent
    restricted = evaluate_all(vectors, EvaluationFiles.in_folder(eval_dir), 2000)
    unrestricted = evaluate_analogies(vectors, prepared.analogies, method="3cosmul")
    assert len(vectors) > 2000 and restricted["analogy_3cosmul"] != unrestricted.accuracy  # the bound matters
    capsys.readouterr()
    assert main(["eval", str(run), "--eval-dir", str(eval_dir), "--restrict-vocab", "2000"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    kept = json.loads((run / "metrics.json").read_text())["eval"]
    assert kept == {**restricted, "eval_dir": str(eval_dir.resolve()), "restrict_vocab": 2000}
    assert [float(score) for score in row[1:5]] == pytest.approx(
        [restricted[key] for key in ("wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd",
                                     "analogy_3cosmul")], abs=1e-4)
    assert main(["eval", str(run), "--analogies", str(prepared.analogies), "--restrict-vocab", "2000"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    kept = json.loads((run / "metrics.json").read_text())["eval_files"][str(prepared.analogies.resolve())]
    assert kept == {"3cosadd": restricted["analogy_3cosadd"], "3cosmul": restricted["analogy_3cosmul"],
                    "questions": restricted["analogy_questions"], "oov": restricted["analogy_oov"],
                    "restrict_vocab": 2000}  # the standard analogy set, given as a file
    assert [float(score) for score in row[2:4]] == pytest.approx([kept["3cosadd"], kept["3cosmul"]], abs=1e-4)


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
    words = prepared.corpus.read_text().split()
    assert prepared.lines > 400 and len(words) > 500_000
    assert not {"theori", "scienc", "dariu"} & set(words)  # the stemmed head500 text is not in it


def test_corpus_prepare_text_and_wiki_write_normalised_lines(tmp_path, capsys) -> None:
    from nlp182.corpora.prepare import WIKI_DUMP, gensim_data

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("First paragraph,\nstill first.\n\nSecond: It's here!\n")
    (tmp_path / "docs" / "b.md").write_text("Third one.\n")
    (tmp_path / "docs" / "skip.png").write_bytes(b"\x89PNG")
    assert (
        main(["corpus", "prepare", "--text", str(tmp_path / "docs"), "--out", str(tmp_path / "t.txt")]) == 0
    )
    assert (tmp_path / "t.txt").read_text() == "first paragraph still first\nsecond it's here\nthird one\n"
    assert "3 lines, 9 tokens" in capsys.readouterr().out
    wiki = tmp_path / "wiki.txt"
    assert main(["corpus", "prepare", "--wiki", str(gensim_data(WIKI_DUMP)), "--out", str(wiki)]) == 0
    lines = wiki.read_text().splitlines()
    assert len(lines) > 50 and all(line == line.lower() and len(line.split()) >= 50 for line in lines)
    assert "anarchism" in lines[0].split()[:20]


def test_corpus_prepare_text_refuses_latin1_as_train_does_and_skips_it_among_utf8(tmp_path, caplog,
                                                                                  capsys) -> None:
    """A Latin-1 file was written with U+FFFD for its accents (exit 0), where ``train`` refuses it."""
    latin = tmp_path / "docs" / "latin.txt"
    latin.parent.mkdir()
    latin.write_bytes("le café où l'été\n".encode("latin-1") * 50)
    out = tmp_path / "t.txt"
    assert main(["corpus", "prepare", "--text", str(latin), "--out", str(out)]) == 2
    assert "are not UTF-8" in capsys.readouterr().err and not out.exists()
    assert main(["train", "w2v", "--corpus", str(latin), "--out", str(tmp_path / "run")]) == 2
    assert "iconv" in capsys.readouterr().err
    (tmp_path / "docs" / "fine.txt").write_text("le café où l'été\n" * 3)
    assert main(["corpus", "prepare", "--text", str(tmp_path / "docs"), "--out", str(out)]) == 0
    assert "skipped 1 file that is not UTF-8 text, e.g." in caplog.text
    assert out.read_text() == "le café où l'été le café où l'été le café où l'été\n"


def test_corpus_prepare_text_reads_bz2_files_of_a_folder_and_names_a_folder_without_text(
    tmp_path, caplog, capsys
) -> None:
    """A folder's .bz2 files were left out without a word (a .bz2 named alone was read), and a
    folder of .py files was reported as text left empty, "see the warnings above", with none."""
    import bz2
    import gzip
    import logging

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt.bz2").write_bytes(bz2.compress(b"one two three\n"))
    (docs / "b.gz").write_bytes(gzip.compress(b"four five\n"))
    (docs / "c.py").write_text("print('six')\n")
    out = tmp_path / "t.txt"
    caplog.set_level(logging.INFO)
    assert main(["corpus", "prepare", "--text", str(docs), "--out", str(out)]) == 0
    assert out.read_text() == "one two three\nfour five\n"
    assert "2 text files read, 1 other file left out (e.g. c.py)" in caplog.text
    code = tmp_path / "code"
    code.mkdir()
    (code / "c.py").write_text("print('six')\n")
    assert main(["corpus", "prepare", "--text", str(code), "--out", str(tmp_path / "u.txt")]) == 2
    err = capsys.readouterr().err
    assert "holds no text file (1 other file, e.g. c.py)" in err and ".txt" in err and "one by one" in err
    assert not (tmp_path / "u.txt").exists()


def test_neighbors_of_the_only_word_of_a_run_say_there_are_none(tmp_path, capsys, caplog) -> None:
    (tmp_path / "one.txt").write_text("1 3\nalone 0.1 0.2 0.3\n")
    assert main(["import", str(tmp_path / "one.txt"), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["neighbors", str(tmp_path / "run"), "alone"]) == 0
    assert capsys.readouterr().out == "" and "has no word besides the query's (1 words in all)" in caplog.text


def test_a_json_corpus_without_the_text_column_is_a_one_line_error(tmp_path, capsys) -> None:
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "some words", "id": 3}) + "\n")
    argv = ["train", "w2v", "--corpus", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no 'text' column" in err and "body, id" in err and "--column" in err


def test_a_run_the_english_sets_barely_touch_is_saved_without_scores(
    prepared, tmp_path, capsys, caplog
) -> None:
    """A Hindi corpus (words with combining vowel signs) and a one-pair overlap: evaluation cannot
    score them, and says so, but the trained run is written; a 1-dim run draws its map too."""
    eval_dir = str(prepared.wordsim353.parent)
    hindi = tmp_path / "hi.txt"
    hindi.write_text("हिन्दी भाषा भारत की राजभाषा है\n" * 200, encoding="utf-8")
    love = tmp_path / "love.txt"
    love.write_text("love sex\n" * 300, encoding="utf-8")
    for corpus, extra in ((hindi, []), (love, ["--vector-size", "1"])):
        out = tmp_path / corpus.stem
        flags = ["--min-count", "1", "--epochs", "1", "--threads", "1", "--eval-dir", eval_dir, *extra]
        assert main(["train", "w2v", "--corpus", str(corpus), "--out", str(out), *flags]) == 0
        assert (out / "vectors.npy").is_file() and (out / "map.png").is_file()
        assert "wordsim353_spearman" not in json.loads((out / "metrics.json").read_text())
    assert "हिन्दी" in (tmp_path / "hi" / "vocab.txt").read_text(encoding="utf-8").split()
    assert "evaluation skipped, the run is saved without scores" in caplog.text
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "love"), "--eval-dir", eval_dir]) == 2  # one line, no traceback
    assert "a correlation needs at least 2" in capsys.readouterr().err


def test_epochs_chosen_from_a_small_corpus_are_recorded_in_the_run(tmp_path) -> None:
    """With no --epochs, a small corpus trains more passes; config.json said null, so the run's
    own record did not say how it was trained."""
    corpus = tmp_path / "small.txt"
    corpus.write_text("the cat sat on the mat while the dog ran in the park\n" * 500)
    out = tmp_path / "run"
    flags = ["--min-count", "1", "--threads", "1", "--vector-size", "8", "--eval-dir", "none"]
    assert main(["train", "w2v", "--corpus", str(corpus), "--out", str(out), *flags]) == 0
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["epochs"] == metrics["train"]["epochs"] == 50  # 6,500 tokens: a million is past 50 passes


def test_max_vocab_flag_bounds_the_words_a_run_saves(tmp_path) -> None:
    """``train w2v --max-vocab 4`` trains and saves the 4 most frequent words (ties by first
    appearance), and config.json records the bound."""
    from nlp182.embeddings.runs import load_run

    corpus = tmp_path / "small.txt"
    corpus.write_text("the cat sat on the mat while the dog ran in the park\n" * 50)
    out = tmp_path / "run"
    flags = ["--max-vocab", "4", "--min-count", "1", "--epochs", "1", "--threads", "1", "--vector-size", "8",
             "--eval-dir", "none"]
    assert main(["train", "w2v", "--corpus", str(corpus), "--out", str(out), *flags]) == 0
    vectors, _ = load_run(out)
    assert vectors.words == ["the", "cat", "sat", "on"] and vectors.vectors.shape == (4, 8)
    assert json.loads((out / "config.json").read_text())["max_vocab"] == 4


def test_eval_of_several_runs_scores_each_one_it_can(lsa_run, prepared, tmp_path, capsys) -> None:
    """A small run whose vocabulary meets no pair of WordSim-353 ended the whole command before
    the runs after it were scored, with an error that did not say which run."""
    words = ["qzxa", "qzxb", "qzxc"]
    rows = "".join(f"{word} {i + 1} {i % 2}\n" for i, word in enumerate(words))
    (tmp_path / "tiny.txt").write_text("3 2\n" + rows)
    tiny = tmp_path / "tiny"
    assert main(["import", str(tmp_path / "tiny.txt"), "--out", str(tiny)]) == 0
    capsys.readouterr()
    eval_dir = str(prepared.wordsim353.parent)
    assert main(["eval", str(tiny), str(lsa_run), "--eval-dir", eval_dir]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == [lsa_run.name]
    assert f"nlp182: error: {tiny}: " in err and "no scored pair" in err
    assert main(["eval", str(tiny), str(lsa_run), "--pairs", str(prepared.wordsim353)]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == [lsa_run.name]
    assert f"nlp182: error: {tiny}: " in err


def test_eval_refuses_an_analogy_file_none_of_whose_questions_it_can_ask(lsa_run, tmp_path, capsys) -> None:
    """It printed and kept 0% accuracy for 0 questions asked."""
    (tmp_path / "unknown.txt").write_text(": made up\nzzqa zzqb zzqc zzqd\nzzqe zzqf zzqg zzqh\n")
    before = json.loads((lsa_run / "metrics.json").read_text()).get("eval_files", {})
    assert main(["eval", str(lsa_run), "--analogies", str(tmp_path / "unknown.txt")]) != 0
    err = capsys.readouterr().err
    assert "unknown.txt: no question of its 2 has its four words in the vocabulary" in err
    after = json.loads((lsa_run / "metrics.json").read_text()).get("eval_files", {})
    assert str((tmp_path / "unknown.txt").resolve()) not in after and after == before
