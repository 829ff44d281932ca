"""Our evaluation figures equal gensim's evaluate_word_pairs / evaluate_word_analogies."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors
from scipy import stats

from nlp182.embeddings.evaluate import (
    EvaluationFiles,
    TooFewPairsError,
    evaluate_all,
    evaluate_analogies,
    evaluate_word_pairs,
    read_analogies,
)
from nlp182.embeddings.lsa import LSAConfig, train_lsa
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.text.corpus import CorpusSource


@pytest.fixture(scope="module")
def trained(small_corpus) -> Vectors:
    vectors, _, _ = train_lsa(CorpusSource(str(small_corpus)), LSAConfig(dim=50, min_count=3))
    return vectors


def _gensim(vectors: Vectors) -> KeyedVectors:
    reference = KeyedVectors(vectors.dim)
    reference.add_vectors(vectors.words, np.asarray(vectors.vectors))
    return reference


@pytest.mark.parametrize("restrict", [300_000, 2_000])
def test_word_pairs_equal_gensim(trained, prepared, restrict) -> None:
    reference = _gensim(trained)
    for path in (prepared.wordsim353, prepared.simlex999):
        ours = evaluate_word_pairs(trained, path, restrict_vocab=restrict)
        pearson, spearman, oov = reference.evaluate_word_pairs(str(path), restrict_vocab=restrict)
        assert ours.spearman == pytest.approx(spearman.statistic, abs=1e-6)
        assert ours.pearson == pytest.approx(pearson.statistic, abs=1e-6)
        assert ours.oov_ratio == pytest.approx(oov, abs=1e-9)  # percent, as gensim


@pytest.mark.parametrize("restrict", [300_000, 3_000])
def test_analogies_equal_gensim(trained, prepared, restrict) -> None:
    ours = evaluate_analogies(trained, prepared.analogies, restrict_vocab=restrict)
    score, sections = _gensim(trained).evaluate_word_analogies(
        str(prepared.analogies), restrict_vocab=restrict
    )
    assert ours.accuracy == pytest.approx(score, abs=1e-6)
    assert ours.correct > 0
    theirs = {s["section"]: len(s["correct"]) for s in sections if s["correct"] or s["incorrect"]}
    theirs.pop("Total accuracy")
    assert {name: int(s["correct"]) for name, s in ours.sections.items()} == theirs


def test_case_folding_takes_the_most_frequent_variant(prepared, tmp_path) -> None:
    rng = np.random.default_rng(1)
    words = ["Tiger", "tiger", "cat", "Cat", "car", "automobile", "journey", "voyage"]
    vectors = Vectors(words, rng.normal(size=(len(words), 8)).astype(np.float32))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "# comment\nWord 1\tWord 2\tHuman\ntiger\tcat\t7.35\ncar\tautomobile\t8.9\njourney\tvoyage\t9.2\n"
        "tiger\tunknownword\t1.0\n"
    )
    ours = evaluate_word_pairs(vectors, pairs)
    pearson, spearman, oov = _gensim(vectors).evaluate_word_pairs(str(pairs))
    assert oov == pytest.approx(25.0)
    assert (ours.pairs, ours.oov_pairs) == (3, 1)
    assert ours.spearman == pytest.approx(spearman.statistic, abs=1e-9)
    assert ours.pearson == pytest.approx(pearson.statistic, abs=1e-6)


def test_an_analogy_skips_a_candidate_that_is_a_case_variant_of_a_question_word(tmp_path) -> None:
    """In a cased vocabulary ``King`` is the question word ``king`` and is skipped as gensim skips
    it: the next candidate, ``queen``, is the answer (``King`` scores 0.9498, ``queen`` 0.9491)."""
    words = ["king", "man", "woman", "queen", "King", "apple"]
    matrix = np.array(
        [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0.2], [1, 0.05, 1, 0], [0, 0, 0, 1]], np.float32
    )
    vectors = Vectors(words, matrix)
    assert vectors.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "King"
    questions = tmp_path / "questions.txt"
    questions.write_text(": royalty\nman king woman queen\n")
    score, _ = _gensim(vectors).evaluate_word_analogies(str(questions))
    assert evaluate_analogies(vectors, questions).accuracy == score == 1.0


def test_an_evaluation_file_meets_the_vocabulary_in_the_tokenizers_spelling(tmp_path) -> None:
    """Eval words were only NFC'd and upper-cased: ``l’option`` and a Thai ``ำ`` typed as one
    character were out of vocabulary, ``İstanbul`` never met ``istanbul``, and ``Maße`` and
    ``Masse`` (both upper-case to ``MASSE``) were taken for one word."""
    import unicodedata

    from nlp182.text.tokenize import WordTokenizer

    normal = WordTokenizer().normalize
    thai = "\u0e19\u0e49\u0e33"  # น้ำ as a keyboard types it; the corpus holds its NFKC form
    words = [normal(w) for w in ("l’option", thai, "İstanbul", "maße", "masse", "ankara", "wasser", "choix")]
    assert normal(thai) == unicodedata.normalize("NFKC", thai) != thai
    rng = np.random.default_rng(0)
    vectors = Vectors(words, rng.normal(size=(len(words), 6)).astype(np.float32))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"l’option\tchoix\t8\n{thai}\twasser\t9\nİstanbul\tankara\t6\nMaße\tmasse\t1\n"
                     "Masse\twasser\t2\n", encoding="utf-8")
    score = evaluate_word_pairs(vectors, pairs)
    assert (score.pairs, score.oov_pairs) == (5, 0)
    asked = (("l’option", "choix"), (thai, "wasser"), ("İstanbul", "ankara"), ("maße", "masse"),
             ("masse", "wasser"))
    expected = stats.spearmanr([8, 9, 6, 1, 2], [vectors.similarity(normal(a), normal(b)) for a, b in asked])
    assert score.spearman == pytest.approx(expected.statistic, abs=1e-9)  # maße and masse are two words


def test_3cosmul_equals_gensim_most_similar_cosmul_question_by_question(trained, prepared) -> None:
    reference = _gensim(trained)
    known = set(trained.words)  # lower-case, as the file's words are read
    sections = read_analogies(prepared.analogies)
    questions = [q for _, qs in sections for q in qs if all(w in known for w in q)][::7][:300]
    assert len(questions) > 50
    path = prepared.analogies.parent / "subset.txt"
    path.write_text(": subset\n" + "".join(" ".join(q) + "\n" for q in questions))
    expected = 0
    for a, b, c, d in questions:
        answers = reference.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        best = next((w for w, _ in answers if w not in {a, b, c}), answers[-1][0])
        expected += best == d
    ours = evaluate_analogies(trained, path, method="3cosmul")
    assert ours.total == len(questions)
    assert ours.correct == expected


def test_evaluate_all_and_bad_inputs(trained, prepared, tmp_path) -> None:
    scores = evaluate_all(trained, EvaluationFiles.in_folder(prepared.wordsim353.parent))
    assert scores["wordsim353_spearman"] > 0.2  # PPMI-SVD on 200k tokens already correlates
    assert scores["wordsim353_pairs"] + scores["wordsim353_oov"] == 353
    assert scores["simlex999_pairs"] + scores["simlex999_oov"] == 999
    sections = evaluate_analogies(trained, prepared.analogies).sections
    assert scores["analogy_sections"] == {name: s["accuracy"] for name, s in sections.items()}
    assert "capital-common-countries" in scores["analogy_sections"]
    with pytest.raises(InvalidInputError):
        evaluate_analogies(trained, prepared.analogies, method="3cosfoo")
    with pytest.raises(MissingFileError):
        evaluate_word_pairs(trained, tmp_path / "missing.tsv")
    (tmp_path / "empty.tsv").write_text("zzzz\tqqqq\t1.0\n")
    with pytest.raises(FileFormatError):
        evaluate_word_pairs(trained, tmp_path / "empty.tsv")
    (tmp_path / "headless.txt").write_text("a b c d\n")
    with pytest.raises(FileFormatError, match="section"):
        read_analogies(tmp_path / "headless.txt")


def test_pairs_and_questions_meet_the_vocabulary_in_any_canonical_unicode_form(tmp_path) -> None:
    """An evaluation file written decomposed (NFD) scores as the composed one does, as the words
    are the same text; gensim compares code points and would call them out of vocabulary."""
    import unicodedata

    rng = np.random.default_rng(0)
    vectors = Vectors(["café", "thé", "résumé", "cv", "naïve", "bank"], rng.normal(size=(6, 8)))
    pairs = "café\tthé\t8\nrésumé\tcv\t9\nnaïve\tbank\t1\ncafé\tbank\t3\n"
    questions = ": accents\ncafé thé résumé cv\nnaïve bank café thé\n"
    scored = {}
    for form in ("NFC", "NFD"):
        (tmp_path / f"{form}.tsv").write_text(unicodedata.normalize(form, pairs))
        (tmp_path / f"{form}.txt").write_text(unicodedata.normalize(form, questions))
        result = evaluate_word_pairs(vectors, tmp_path / f"{form}.tsv")
        analogies = evaluate_analogies(vectors, tmp_path / f"{form}.txt")
        scored[form] = (result.spearman, result.pairs, result.oov_pairs, analogies.accuracy, analogies.total)
    assert scored["NFD"] == scored["NFC"] and scored["NFC"][1:3] == (4, 0) and scored["NFC"][4] == 2


def test_a_set_a_small_vocabulary_misses_is_nan_in_the_table_not_a_failed_run(trained, prepared,
                                                                              caplog) -> None:
    """``evaluate_all`` (the CLI's table) gave no row at all when one standard set had fewer than
    two pairs in the vocabulary; the analogies could still be scored, and gensim answers nan."""
    import math

    files = EvaluationFiles.in_folder(prepared.wordsim353.parent)
    capitals = Vectors(["athens", "greece", "baghdad", "iraq"], np.random.default_rng(0).normal(size=(4, 8)))
    scores = evaluate_all(capitals, files)
    assert math.isnan(scores["wordsim353_spearman"]) and math.isnan(scores["simlex999_spearman"])
    assert scores["analogy_questions"] >= 1 and "a correlation needs at least 2 (left as nan)" in caplog.text
    with pytest.raises(FileFormatError, match="no scored pair"):  # asked for alone, it is an error
        evaluate_word_pairs(capitals, prepared.wordsim353)
    with pytest.raises(TooFewPairsError, match="no evaluation set scores this run"):  # nothing to show
        evaluate_all(trained, files, restrict_vocab=3)


def test_equal_gold_scores_give_nan_with_a_line_that_says_why(trained, tmp_path, caplog) -> None:
    import warnings

    words = trained.words
    (tmp_path / "flat.tsv").write_text(f"{words[0]}\t{words[1]}\t5\n{words[2]}\t{words[3]}\t5\n"
                                       f"{words[4]}\t{words[5]}\t5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning printed its source line
        result = evaluate_word_pairs(trained, tmp_path / "flat.tsv")
    assert np.isnan(result.spearman) and np.isnan(result.pearson)
    assert "every human score of its 3 pairs is 5, so their correlation is undefined" in caplog.text


def test_case_sensitive_evaluation_keeps_two_stored_spellings_apart(tmp_path) -> None:
    """``ﬁnance`` and ``finance`` are two rows of the vocabulary: case-sensitive, each word of the
    file is its own row, as gensim's ``case_insensitive=False`` reads it (the two were merged into
    one row and scored cosine 1); a spelling the vocabulary lacks still finds its normal form."""
    words = ["ﬁnance", "finance", "bank", "money", "river"]
    matrix = np.array([[1, 0], [0, 1], [1, 1], [1, 2], [2, 1]], dtype=np.float32)
    (tmp_path / "fold.tsv").write_text("ﬁnance\tfinance\t0\nbank\tmoney\t8\nbank\triver\t9\n"
                                       "money\triver\t5\n")
    ours = Vectors(words, matrix).evaluate_word_pairs(tmp_path / "fold.tsv", case_insensitive=False)
    theirs = KeyedVectors(2)
    theirs.add_vectors(words, matrix)
    expected = theirs.evaluate_word_pairs(str(tmp_path / "fold.tsv"), case_insensitive=False)
    assert ours[0][0] == pytest.approx(expected[0][0]) and ours[1][0] == pytest.approx(expected[1][0])
    alone = Vectors(["finance", "bank", "money", "river"], matrix[1:])
    assert alone.evaluate_word_pairs(tmp_path / "fold.tsv", case_insensitive=False)[2] == 0.0  # no OOV
    (tmp_path / "q.txt").write_text(": fold\nbank money ﬁnance finance\nbank money finance ﬁnance\n")
    questions = evaluate_analogies(Vectors(words, matrix), tmp_path / "q.txt", case_insensitive=False)
    gensim = theirs.evaluate_word_analogies(str(tmp_path / "q.txt"), case_insensitive=False)
    assert questions.accuracy == pytest.approx(gensim[0]) and questions.total == 2


def _published_layouts(pairs: list[tuple[str, str, str]]) -> dict[str, tuple[str, str | None]]:
    """The same pairs written as the published files lay them out, with the delimiter to read them."""
    simlex = "word1\tword2\tPOS\tSimLex999\tconc(w1)\tconc(w2)\tconcQ\tAssoc(USF)\tSimAssoc333\tSD(SimLex)\n"
    simlex_rows = "".join(f"{a}\t{b}\tN\t{s}\t4.1\t3.9\t2\t0.5\t1\t0.4\n" for a, b, s in pairs)
    wordsim_set1 = "Word 1\tWord 2\tHuman (mean)\t1\t2\t3\n"
    csv = "Word 1,Word 2,Human (mean)\n" + "".join(f"{a},{b},{s}\n" for a, b, s in pairs)
    return {
        "SimLex-999.txt": (simlex + simlex_rows, "\t"),
        "set1.tab": (wordsim_set1 + "".join(f"{a}\t{b}\t{s}\t9\t1\t7\n" for a, b, s in pairs), "\t"),
        "rw.txt": ("".join(f"{a}\t{b}\t{s}\t7\t7\t6\t1\n" for a, b, s in pairs), "\t"),
        "SimVerb-3500.txt": ("".join(f"{a}\t{b}\tV\t{s}\tSYNONYMS\n" for a, b, s in pairs), "\t"),
        "MEN_natural_form_full": ("".join(f"{a} {b} {s}\n" for a, b, s in pairs), None),
        "combined.csv": (csv, None),
        "plain.tsv": ("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs), None),
        "mean-named.tab": ("Word 1\tWord 2\tHuman mean\t1\t2\n" + "".join(  # the mean, not rater 1
            f"{a}\t{b}\t{s}\t0.5\t9\n" for a, b, s in pairs), "\t"),
        "titled.txt": ("MEN similarity pairs natural form\n" + "".join(
            f"{a} {b} {s}\n" for a, b, s in pairs), None),
    }


def test_published_pair_files_score_as_their_three_columns(tmp_path) -> None:
    """The official SimLex-999 (ten columns, a header), WordSim-353's set1.tab (a header of numbers),
    Rare Words and SimVerb (no header, more columns) and MEN (spaces) score as the same pairs in
    gensim's word1<TAB>word2<TAB>score file; before, every line of them was skipped as malformed."""
    rng = np.random.default_rng(0)
    words = ["old", "new", "smart", "intelligent", "hard", "difficult", "happy", "cheerful"]
    vectors = Vectors(words, rng.standard_normal((len(words), 6)))
    pairs = [(a, b, f"{rng.uniform(0, 10):.2f}") for a, b in zip(words, words[1:] + words[:1], strict=True)]
    pairs.append(("old", "unseen", "3.5"))
    (tmp_path / "gensim.tsv").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    expected = evaluate_word_pairs(vectors, tmp_path / "gensim.tsv")
    assert (expected.pairs, expected.oov_pairs) == (8, 1)
    for name, (text, delimiter) in _published_layouts(pairs).items():
        (tmp_path / name).write_text(text)
        assert evaluate_word_pairs(vectors, tmp_path / name, delimiter=delimiter) == expected, name
    reference = _gensim(vectors).evaluate_word_pairs(str(tmp_path / "gensim.tsv"))
    assert reference[1][0] == pytest.approx(expected.spearman, abs=1e-12)


def test_a_pairs_file_without_a_score_is_named_as_such(trained, tmp_path) -> None:
    """A wide file whose columns hold no score (nor name one) says so, rather than that its pairs
    are out of vocabulary; a score that is not a finite number is skipped as a malformed line."""
    (tmp_path / "tags.tsv").write_text("word1\tword2\tPOS\tnote\nold\tnew\tA\tx\n")
    with pytest.raises(FileFormatError) as caught:
        evaluate_word_pairs(trained, tmp_path / "tags.tsv")
    assert "line 1 is a header (word1, word2, POS, note) and no column after the words names a score" in str(
        caught.value
    )
    (tmp_path / "raters.tab").write_text("Word 1\tWord 2\tRaters\t1\t2\nold\tnew\t\t8\t9\n")
    with pytest.raises(FileFormatError, match="is a header"):  # its numbers name raters: none is the score
        evaluate_word_pairs(trained, tmp_path / "raters.tab")
    (tmp_path / "header.tsv").write_text("word1\tword2\n")
    with pytest.raises(FileFormatError) as caught:
        evaluate_word_pairs(trained, tmp_path / "header.tsv")
    assert str(caught.value).endswith(
        "no line reads word1<TAB>word2<TAB>score (1 skipped; line 1: it has 2 fields)"
    )
    vectors = Vectors(["a", "b", "c"], np.random.default_rng(1).standard_normal((3, 4)))
    (tmp_path / "nan.tsv").write_text("a\tb\tnan\na\tc\t1\nb\tc\t2\nc\ta\tinf\na\tb\t3\n")
    (tmp_path / "finite.tsv").write_text("a\tc\t1\nb\tc\t2\na\tb\t3\n")
    finite = evaluate_word_pairs(vectors, tmp_path / "finite.tsv")
    assert evaluate_word_pairs(vectors, tmp_path / "nan.tsv") == finite
    (tmp_path / "oov.tsv").write_text("zzzz\tqqqq\t1.0\nheader line\n")
    with pytest.raises(FileFormatError, match="no scored pair has both words in the vocabulary"):
        evaluate_word_pairs(trained, tmp_path / "oov.tsv")


def test_evaluation_lines_are_bounded_crlf_read_and_bad_bytes_named(tmp_path, caplog) -> None:
    """A line past the bound is skipped with one warning and the rest scored as the same file
    without it; CRLF files read as LF ones; a line that is not UTF-8 is one error naming it."""
    vectors = Vectors(["a", "b", "c", "d"], np.random.default_rng(0).standard_normal((4, 5)))
    pairs = "a\tb\t9\na\tc\t4\nb\td\t2\nc\td\t7\n"
    (tmp_path / "clean.tsv").write_text(pairs)
    crlf = pairs.replace("\n", "\r\n").encode()
    (tmp_path / "long.tsv").write_bytes(b"a\tb\t" + b"9" * (2 << 20) + b"\r\n" + crlf)
    expected = evaluate_word_pairs(vectors, tmp_path / "clean.tsv")
    assert evaluate_word_pairs(vectors, tmp_path / "long.tsv") == expected and expected.pairs == 4
    assert [m for m in caplog.messages if "skipped" in m] == [
        f"{tmp_path / 'long.tsv'}: skipped 1 line longer than 1 MiB (first: line 1); "
        "no word pair or analogy question is that long"
    ]
    (tmp_path / "q.txt").write_bytes(b": s\r\na b c d\r\na b \xff d\n")
    with pytest.raises(FileFormatError, match=r"q\.txt: line 3 is not UTF-8 text"):
        read_analogies(tmp_path / "q.txt")


def test_a_large_pairs_file_is_scored_in_bounded_memory(tmp_path) -> None:
    """Two (pairs x D) matrices were built at once: a million pairs on 300 dims took 4 GB. The
    cosines now come a block at a time and equal the float64 ones."""
    import tracemalloc

    rng = np.random.default_rng(0)
    vectors = Vectors([f"w{i}" for i in range(1000)], rng.standard_normal((1000, 300)).astype(np.float32))
    pairs = rng.integers(0, 1000, size=(200_000, 2))
    scores = rng.random(len(pairs))
    lines = (f"w{a}\tw{b}\t{score:.4f}\n" for (a, b), score in zip(pairs, scores, strict=True))
    (tmp_path / "pairs.tsv").write_text("".join(lines))
    tracemalloc.start()
    result = vectors.evaluate_word_pairs(tmp_path / "pairs.tsv")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400e6, peak  # 816 MB when the two (pairs x 300) matrices were built at once
    rows = vectors.vectors.astype(np.float64)
    unit = rows / np.linalg.norm(rows, axis=1)[:, None]
    cosines = np.einsum("nd,nd->n", unit[pairs[:, 0]], unit[pairs[:, 1]])
    expected = stats.spearmanr(np.round(scores, 4), cosines).statistic
    assert result[1][0] == pytest.approx(expected, abs=1e-6)


def test_analogies_report_their_progress_to_the_last_question(tmp_path, caplog) -> None:
    """The Google set takes about a minute on a large vocabulary, and nothing was shown meanwhile;
    unknown questions count as done."""
    import logging

    matrix = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    vectors = Vectors(["a", "b", "c", "d", "e"], matrix)
    (tmp_path / "q.txt").write_text(": one\na b c d\nb c d e\n: two\na b c zz\n")
    with caplog.at_level(logging.INFO, logger="nlp182.progress"):
        score = evaluate_analogies(vectors, tmp_path / "q.txt")
    assert score.total == 2 and score.oov == 1
    assert "analogies q.txt: 3/3 question (100%)" in caplog.text


def _wordsim_lines(prepared) -> list[list[str]]:
    lines = prepared.wordsim353.read_text().splitlines()
    return [line.split("\t") for line in lines if not line.startswith("#")]


def test_a_header_places_the_word_columns_wherever_they_stand(trained, prepared, tmp_path) -> None:
    """An id column before the words (pandas' to_csv writes its index so) was read as the first
    word: WordSim-353 scored Spearman -0.10 instead of 0.47, without a word."""
    rows = _wordsim_lines(prepared)
    plain = evaluate_word_pairs(trained, prepared.wordsim353)
    (tmp_path / "id.tsv").write_text("id\tword1\tword2\tscore\n" + "".join(
        f"{n}\t{a}\t{b}\t{s}\n" for n, (a, b, s) in enumerate(rows)))
    (tmp_path / "pandas.csv").write_text(",word1,word2,score\n" + "".join(
        f"{n},{a},{b},{s}\n" for n, (a, b, s) in enumerate(rows)))
    (tmp_path / "quoted.csv").write_text("".join(f'"{a}","{b}","{s}"\n' for a, b, s in rows))
    (tmp_path / "swapped.tsv").write_text("score\tnote\tword2\tword1\n" + "".join(
        f"{s}\tx\t{b}\t{a}\n" for a, b, s in rows))
    for name in ("id.tsv", "pandas.csv", "quoted.csv", "swapped.tsv"):
        score = evaluate_word_pairs(trained, tmp_path / name, delimiter=None)
        assert (score.spearman, score.pairs, score.oov_pairs) == pytest.approx(
            (plain.spearman, plain.pairs, plain.oov_pairs), abs=1e-12
        ), name
    headless = "".join(f"{n}\t{a}\t{b}\t{s}\n" for n, (a, b, s) in enumerate(rows))
    (tmp_path / "headless.tsv").write_text(headless)
    with pytest.raises(FileFormatError, match=r"line 1 \(0<TAB>love<TAB>sex<TAB>6.77\.\.\.\) starts with"):
        evaluate_word_pairs(trained, tmp_path / "headless.tsv", delimiter=None)


def test_a_pairs_file_that_reads_no_pair_says_why(trained, tmp_path) -> None:
    """A decimal comma, a file of comments and an empty file were all blamed on the vocabulary or
    on the field count of a line that had the right fields."""
    (tmp_path / "comma.tsv").write_text("tiger\tcat\t7,35\nold\tnew\t6,5\n")
    with pytest.raises(FileFormatError, match=r"2 skipped; line 1: its score '7,35' has a decimal comma"):
        evaluate_word_pairs(trained, tmp_path / "comma.tsv")
    files = {"empty.tsv": "", "comments.tsv": "# a comment\n# another\n", "header.tsv": "w1\tw2\tscore\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(FileFormatError, match=r"holds no word pair: write word1<TAB>word2<TAB>score"):
            evaluate_word_pairs(trained, tmp_path / name)


def test_skipped_lines_are_counted_in_a_warning_and_a_bom_is_not_a_word(
    trained, prepared, tmp_path, caplog
) -> None:
    rows = _wordsim_lines(prepared)
    plain = evaluate_word_pairs(trained, prepared.wordsim353)
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbf" + prepared.wordsim353.read_bytes())
    with caplog.at_level("WARNING", logger="nlp182.embeddings.evaluate"):
        bom = evaluate_word_pairs(trained, tmp_path / "bom.tsv")
    assert (bom.pairs, bom.oov_pairs) == (plain.pairs, plain.oov_pairs) and "skipped" not in caplog.text
    (tmp_path / "nan.tsv").write_text("word1\tword2\tscore\n" + "".join(
        f"{a}\t{b}\t{'nan' if n % 10 == 3 else s}\n" for n, (a, b, s) in enumerate(rows)))
    with caplog.at_level("WARNING", logger="nlp182.embeddings.evaluate"):
        evaluate_word_pairs(trained, tmp_path / "nan.tsv")
    skipped = len(range(3, len(rows), 10))
    assert f"skipped {skipped} lines that are not a word pair (first: line 5: its score 'nan'" in caplog.text


def test_evaluation_files_past_the_item_bound_are_refused(trained, tmp_path, monkeypatch) -> None:
    """A 100 MB pairs file took 2.8 GB and a 1 GB one ran out of memory: a file holds at most
    MAX_EVAL_ITEMS pairs or questions, read as they come."""
    from nlp182.embeddings import evaluate

    monkeypatch.setattr(evaluate, "MAX_EVAL_ITEMS", 50)
    (tmp_path / "many.tsv").write_text("a\tb\t1\n" * 51)
    with pytest.raises(FileFormatError, match=r"more than 50 word pairs"):
        evaluate_word_pairs(trained, tmp_path / "many.tsv")
    (tmp_path / "many.txt").write_text(": s\n" + "a b c d\n" * 51)
    with pytest.raises(FileFormatError, match=r"more than 50 analogy questions"):
        evaluate_analogies(trained, tmp_path / "many.txt")
    (tmp_path / "fifty.txt").write_text(": s\n" + "a b c d\n" * 50)
    fifty = evaluate_analogies(trained, tmp_path / "fifty.txt")
    assert fifty.total + fifty.oov == 50


@pytest.mark.parametrize("text", ["", ": a section\n: another\n"])
def test_an_analogy_file_without_a_question_is_refused(trained, tmp_path, text: str) -> None:
    """It scored 0% accuracy, and the CLI kept that 0 in metrics.json."""
    (tmp_path / "q.txt").write_text(text)
    with pytest.raises(FileFormatError, match=r"holds no analogy question"):
        evaluate_analogies(trained, tmp_path / "q.txt")
