"""The whitespace token rule (gensim's ``LineSentence``) and sentences given in memory as lists of
words (gensim's ``Word2Vec(sentences=...)``): words come back exactly as given, by every path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nlp182.bounded import MAX_LINE_BYTES
from nlp182.cli import main
from nlp182.embeddings.lsa import LSAConfig, train_lsa
from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
from nlp182.errors import EmptyCorpusError, InvalidInputError
from nlp182.text import encoded, wordscan
from nlp182.text.corpus import MAX_SENTENCE_TOKENS, CorpusSource, as_source, iter_token_lines
from nlp182.text.encoded import encode
from nlp182.text.sentences import sentences_folder, write_sentences
from nlp182.text.tokenize import WhitespaceTokenizer, tokenizer_for

# Every kind of whitespace str.split() knows, ASCII and not, beside words with case and punctuation.
ODD_TEXT = (
    "New_York C++\tU.S.\x0bit's\x0c\r\n"
    "\n"
    "  caf\u00e9\u00a0d\u00e9j\u00e0\u3000\u2028x\x1cy\x1dz\x1e\x1fEnd.\x85tail \n"
    "\ufb01ne \u2019twas \u00bd\n"
    "no-break-at-end"
)


def _tiny_w2v(**overrides) -> Word2VecConfig:
    return Word2VecConfig(**{"vector_size": 8, "epochs": 1, "min_count": 1, "threads": 1, **overrides})


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path, monkeypatch) -> None:
    """With the whitespace rule, a file a Windows editor saved began with the word '\\ufeffHaus',
    a second spelling of 'Haus'."""
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfHaus Baum\nHaus T\xc3\xbcr\n")
    for rule in ("whitespace", "words"):
        source = CorpusSource(str(tmp_path / "bom.txt"), tokens=rule)
        lines = list(iter_token_lines(source))
        assert [line[0] for line in lines] == (["Haus", "Haus"] if rule == "whitespace" else ["haus", "haus"])
        assert encode(source).words[0] in ("Haus", "haus")


def test_a_first_word_that_starts_with_u_feff_is_kept_as_given(tmp_path, monkeypatch) -> None:
    """Sentences in memory are written to a file whose readers drop a byte order mark at its start:
    '\ufeffabc' as the first word came back as 'abc' (counts 19/21 where gensim has 20/20)."""
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    sentences = [["\ufeffabc", "x", "abc"], ["\ufeff", "x"]] * 10
    _, vocab, _ = train_word2vec(sentences, _tiny_w2v())
    assert dict(zip(vocab.words, vocab.counts.tolist(), strict=True)) == {
        "\ufeffabc": 10, "x": 20, "abc": 10, "\ufeff": 10}


def test_whitespace_rule_is_str_split_of_each_line_in_blocks_too() -> None:
    tokenizer = WhitespaceTokenizer()
    lines = ODD_TEXT.split("\n")
    expected = [token for line in lines[:-1] for token in [*line.split(), "\n"]] + lines[-1].split()
    assert tokenizer.block(ODD_TEXT) == expected
    assert "C++" in expected and "U.S." in expected and "\ufb01ne" in expected  # nothing normalised
    assert tokenizer("  A  b\tC ") == ["A", "b", "C"]
    ascii_text = "".join(ch for ch in ODD_TEXT if ch.isascii())
    assert [t.decode() for t in tokenizer.block_ascii(ascii_text.encode())] == tokenizer.block(ascii_text)
    assert tokenizer.signature != tokenizer_for("words").signature  # never one cache entry for both
    with pytest.raises(InvalidInputError, match=r"unknown token rule 'spaces'.*words, whitespace"):
        CorpusSource("corpus.txt", tokens="spaces")


def test_whitespace_encoding_is_the_same_by_the_scanner_and_python_and_reads_as_line_sentence(
    tmp_path, monkeypatch
) -> None:
    """The encoded files are byte for byte the same by the C scanner and the Python path (one
    process and worker processes), and the words are those gensim's ``LineSentence`` reads."""
    corpus = tmp_path / "c.txt"
    corpus.write_text((ODD_TEXT + "\n") * 400 + ODD_TEXT, encoding="utf-8")
    source = CorpusSource(str(corpus), tokens="whitespace")
    monkeypatch.setattr(encoded, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(encoded, "PARALLEL_MIN_BYTES", 0)
    scanned = wordscan.available()
    runs = [encode(source, cache=tmp_path / f"c{n}", processes=n) for n in (1, 2)] if scanned else []
    monkeypatch.setattr(wordscan, "available", lambda: False)
    runs += [encode(source, cache=tmp_path / f"p{n}", processes=n) for n in (1, 2)]
    for name in ("tokens.u32", "words.txt", "counts.npy", "starts.npy", "meta.json"):
        assert len({(run.folder / name).read_bytes() for run in runs}) == 1, name
    words = runs[0].words
    assert {"New_York", "C++", "U.S.", "it's", "End.", "\u2019twas", "no-break-at-end"} <= set(words)
    assert runs[0].folder != encode(CorpusSource(str(corpus)), cache=tmp_path / "c1").folder
    line_sentence = pytest.importorskip("gensim.models.word2vec").LineSentence
    expected = [tokens for tokens in line_sentence(str(corpus)) if tokens]
    assert list(iter_token_lines(source)) == expected


def test_sentences_in_memory_train_as_the_same_text_in_a_file(tmp_path, monkeypatch) -> None:
    """Lists of words (a generator too) train the vectors a file of those lines trains with the
    whitespace rule, every word as given; the same sentences are one cached file."""
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    vocabulary = ["New_York", "new_york", "C++", "U.S.", "caf\u00e9", "the", "The", ",", "1.5"]
    sentences = [[str(w) for w in rng.choice(vocabulary, size=rng.integers(1, 15))] for _ in range(400)]
    path = tmp_path / "same.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")

    from_memory, vocab, _ = train_word2vec(sentences, _tiny_w2v())
    from_file, _, _ = train_word2vec(CorpusSource(str(path), tokens="whitespace"), _tiny_w2v())
    assert sorted(from_memory.words) == sorted(vocabulary) and from_memory.words == from_file.words
    np.testing.assert_array_equal(from_memory.vectors, from_file.vectors)
    assert vocab.total_words == sum(len(s) for s in sentences)
    assert from_memory.get_vecattr("C++", "count") == sum(s.count("C++") for s in sentences)
    lsa, _, _ = train_lsa((tuple(s) for s in sentences), LSAConfig(dim=3, min_count=1))
    assert sorted(lsa.words) == sorted(vocabulary)
    files = list(sentences_folder().iterdir())
    assert len(files) == 1 and files[0].read_bytes() == path.read_bytes()  # one file, no leftovers
    # Written again (another training of the same sentences, maybe in another process, reading
    # it now), the file is left as it is: the same inode, so a reader sees no change.
    before = files[0].stat()
    as_source(sentences)
    after = files[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(sentences_folder().iterdir()) == files


def test_a_sentence_longer_than_a_sentence_is_cut_as_a_file_line_would_be(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    long = [f"w{i % 97}" for i in range(2 * MAX_SENTENCE_TOKENS + 5)]
    path = tmp_path / "long.txt"
    path.write_text("a b\n" + " ".join(long) + "\n", encoding="utf-8")
    expected = encode(CorpusSource(str(path), tokens="whitespace"), cache=tmp_path / "file")
    found = encode(as_source([["a", "b"], long]), cache=tmp_path / "memory")
    np.testing.assert_array_equal(found.starts, expected.starts)
    np.testing.assert_array_equal(found.starts, [0, 2, 2 + MAX_SENTENCE_TOKENS, 2 + 2 * MAX_SENTENCE_TOKENS,
                                                 len(long) + 2])  # fmt: skip
    assert found.read(0, found.total_tokens).tolist() == expected.read(0, expected.total_tokens).tolist()


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        (["the cat sat"], "sentence 0 is a str, not a list of words"),
        ([["a"], b"raw text"], "sentence 1 is a bytes"),
        ([["a"], [b"word"]], "sentence 1: the word b'word' is bytes, not str"),
        ([["a"], ["b", 7]], "sentence 1: the word 7 is int, not str"),
        ([["a", "New York"]], "the word 'New York' is empty or holds whitespace"),
        ([["a", ""]], "the word '' is empty"),
        ([["a", "b\nc"]], "holds whitespace"),
        ([["a"], [None]], "the word None is NoneType"),
        ([[0.5]], "the word 0.5 is float"),
        ([["a", "\udcff"]], "sentence 0 holds text that is not valid Unicode"),
        ([["a"], ["b\x00c"]], "sentence 1: the word 'b\\\\x00c' holds a NUL character"),
        ([[], [[]]], "sentence 1: the word \\[\\] is list"),
        ([["a"], ["b", "x" * (2 << 20)]], "sentence 1: the word 'xxx.* is over 1 MiB"),
        (42, "not int"),
    ],
)
def test_sentences_that_would_not_come_back_as_given_are_refused_by_place(
    tmp_path, monkeypatch, sentences, message
) -> None:
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InvalidInputError, match=message):
        train_word2vec(sentences, _tiny_w2v())
    assert not sentences_folder().exists() or not list(sentences_folder().iterdir())  # nothing left


def test_a_sentence_of_long_words_is_written_in_pieces_a_line_may_hold(tmp_path, monkeypatch) -> None:
    """Item ids of 120 bytes, 9,000 to a session, make lines over 1 MiB: they used to be refused,
    where the same text from a file (read in pieces cut at spaces) and gensim train."""
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    sentences = [[f"item-{s}-{i % 300:04d}-" + "x" * 110 for i in range(9000)] for s in range(3)]
    path = write_sentences(sentences, max_tokens=10_000)
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) > 3 and max(map(len, lines)) <= MAX_LINE_BYTES
    assert [word.decode() for line in lines for word in line.split(b" ")] == [w for s in sentences for w in s]
    vectors, _, _ = train_word2vec(sentences, _tiny_w2v())
    assert len(vectors) == 900


def test_sentences_without_words_or_a_failing_generator_leave_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    for empty in ([], [[], []], iter(())):
        with pytest.raises(EmptyCorpusError, match="the sentences hold no words"):
            train_lsa(empty, LSAConfig(dim=2, min_count=1))

    def failing():
        yield ["alpha", "beta"]
        raise OSError("the reader behind the generator failed")

    with pytest.raises(OSError, match="reader behind"):
        as_source(failing())
    assert not list(sentences_folder().iterdir())


def test_the_tokens_flag_keeps_words_as_written_and_the_run_records_it(tmp_path, capsys) -> None:
    corpus = tmp_path / "tokenized.txt"
    corpus.write_text("The C++ compiler , the U.S. ; C++ again .\n" * 50, encoding="utf-8")
    common = ["--corpus", str(corpus), "--min-count", "1", "--eval-dir", str(tmp_path / "none")]
    common += ["--dim", "3"]
    assert main(["train", "lsa", *common, "--tokens", "whitespace", "--out", str(tmp_path / "w")]) == 0
    assert main(["train", "lsa", *common, "--out", str(tmp_path / "d")]) == 0
    kept = (tmp_path / "w" / "vocab.txt").read_text(encoding="utf-8").split()
    default = (tmp_path / "d" / "vocab.txt").read_text(encoding="utf-8").split()
    assert {"The", "the", "C++", "U.S.", ",", ";", "."} <= set(kept)
    assert set(default) == {"the", "c", "compiler", "u", "s", "again"}
    assert json.loads((tmp_path / "w" / "config.json").read_text())["tokens"] == "whitespace"
    assert json.loads((tmp_path / "d" / "config.json").read_text())["tokens"] == "words"
    capsys.readouterr()
    assert main(["neighbors", str(tmp_path / "w"), "C++", "--k", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
