"""Tokenizer, vocabulary (checked against gensim's own tables) and corpus sources."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import sys
import tracemalloc
import unicodedata
from collections import Counter

import numpy as np
import pytest
from gensim.models import Word2Vec

from nlp182.bounded import ReadLimits, split_line
from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError, MissingFileError
from nlp182.text import encoded, wordscan
from nlp182.text.corpus import MAX_SENTENCE_TOKENS, CorpusSource, iter_token_lines
from nlp182.text.encoded import EncodedCorpus, encode, open_corpus
from nlp182.text.tokenize import WhitespaceTokenizer, WordTokenizer
from nlp182.text.vocab import VocabConfig, Vocabulary


def test_tokenizer_drops_punctuation_keeps_inner_apostrophes_and_hyphens() -> None:
    tokens = WordTokenizer()(
        "It's a state-of-the-art (well-known) 'quoted' -dash- don\u2019t, FULL: \uff26\uff55\uff4c\uff4c."
    )
    assert tokens == [
        "it's",
        "a",
        "state-of-the-art",
        "well-known",
        "quoted",
        "dash",
        "don't",
        "full",
        "full",
    ]


def test_words_written_with_combining_marks_stay_whole() -> None:
    """Devanagari, Tamil, Thai and vowelled Arabic write vowel signs as combining marks inside words;
    the C scanner leaves such lines to the Unicode path, so the block scan must keep them too."""
    text = "हिन्दी भाषा\nதமிழ் กินข้าว\nمُحَمَّد İzmir"
    expected = ["हिन्दी", "भाषा", "தமிழ்", "กินข้าว", "مُحَمَّد", "izmir"]
    tokenizer = WordTokenizer()
    assert tokenizer(text) == expected
    assert [t for t in tokenizer.block(text + "\n") if t != "\n"] == expected


def test_typographic_hyphens_soft_hyphens_and_turkish_capital_i_keep_one_spelling() -> None:
    """A compound written with U+2010 or U+2011, a word with an invisible soft hyphen (web text's
    ``&shy;``) or stretched by tatweels (Arabic's justification) and a lower-cased ``İ`` are the
    words their plain spellings are, on both paths."""
    text = ("state\u2010of\u2010the\u2010art state\u2011of\u2011the\u2011art hyphen\u00adation "
            "\u0130stanbul ISTANBUL J\u030cuan \u01f0uan \u0643\u062a\u0640\u0640\u0627\u0628")
    expected = ["state-of-the-art", "state-of-the-art", "hyphenation", "istanbul", "istanbul", "\u01f0uan",
                "\u01f0uan", "\u0643\u062a\u0627\u0628"]
    tokenizer = WordTokenizer()
    assert tokenizer(text) == expected == [t for t in tokenizer.block(text + "\n") if t != "\n"]
    cased = WordTokenizer(lowercase=False)
    assert cased("\u0130stanbul hyphen\u00adation") == ["\u0130stanbul", "hyphenation"]


def test_spacing_accents_never_start_a_word_with_a_combining_mark() -> None:
    """NFKC writes a spacing accent as a space and a combining mark: ``Proudhon´s`` (in the shipped
    corpus) gave ``proudhon`` and a word ``\u0301s``. Every character NFKC so splits leaves no word
    that starts with a mark; the acute accent typed for an apostrophe is one, and a spacing kana
    voicing mark joins its kana."""
    tokenizer = WordTokenizer()
    split = [chr(code) for code in range(0x80, sys.maxunicode + 1)
             if len(form := unicodedata.normalize("NFKC", chr(code))) > 1 and form[0].isspace()]
    assert len(split) >= 29, len(split)
    for accent in split:
        text = f"a{accent}b {accent}c\n{accent}d"
        for tokens in (tokenizer(text), tokenizer.block(text)):
            marked = [t for t in tokens if unicodedata.category(t[0]).startswith("M")]
            assert not marked, (hex(ord(accent)), tokens)
    line = "Proudhon\u00b4s ideas \u0301start \u304b\u309b \u00a8umlaut cafe\u0301"
    expected = ["proudhon's", "ideas", "start", "\u304c", "umlaut", "caf\u00e9"]
    assert tokenizer(line) == expected == [t for t in tokenizer.block(line + "\n") if t != "\n"]


def test_emoji_parts_are_not_words_and_joiners_inside_words_stay() -> None:
    """A variation selector (U+FE0F) and an emoji sequence's zero-width joiner were words of nothing
    a reader sees: in an emoji corpus U+200D was the most frequent word. A Persian word keeps the
    non-joiner inside it."""
    tokenizer = WordTokenizer()
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", a non-joiner inside
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    text = f"I \u2764\ufe0f you \u270c\ufe0fpeace die {family} familie {persian}"
    expected = ["i", "you", "peace", "die", "familie", persian]
    assert tokenizer(text) == expected == [t for t in tokenizer.block(text + "\n") if t != "\n"]


#: Tokens of text that took each rule to get right. A change to what the tokenizer gives for them
#: changes RULES_VERSION too, or an encoded corpus made by the old rules is reused as the new one's.
GOLDEN_TOKENS = {
    "Don't stop state-of-the-art": ["don't", "stop", "state-of-the-art"],
    "Proudhon\u00b4s \u2764\ufe0f caf\u00e9 cafe\u0301 \ufb01nance": [
        "proudhon's", "café", "café", "finance"],
    "\u0130stanbul J\u030cuan hyphen\u00adation l\u2019homme": [
        "istanbul", "\u01f0uan", "hyphenation", "l'homme"],
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e19\u0e49\u0e33 \u304b\u309b": [
        "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e19\u0e49\u0e4d\u0e32", "\u304c"],
    "\u0643\u062a\u0640\u0640\u0640\u0627\u0628 \u0643\u062a\u0627\u0628 \u0640": [
        "\u0643\u062a\u0627\u0628", "\u0643\u062a\u0627\u0628"],
}


def test_the_rules_version_changes_with_what_the_rules_give() -> None:
    """The encoded-corpus cache is keyed by the rules' signature: a change to the tokens once kept
    the version number, and upgraded users trained silently on corpora encoded by the old rules."""
    from nlp182.text.tokenize import RULES_VERSION

    tokenizer = WordTokenizer()
    assert {text: tokenizer(text) for text in GOLDEN_TOKENS} == GOLDEN_TOKENS
    assert RULES_VERSION == 7, "update GOLDEN_TOKENS and this number together"


def test_a_corpus_in_a_script_without_spaces_is_warned_about_unless_segmented(tmp_path, caplog) -> None:
    """Chinese text trained on whole sentences (9 "words" in all) without a word said."""
    sentences = ["\u6211\u559c\u6b22\u5728\u516c\u56ed\u91cc\u6563\u6b65\u3002",
                 "\u4eca\u5929\u7684\u5929\u6c14\u975e\u5e38\u597d\u3002"]
    (tmp_path / "zh.txt").write_text("\n".join(sentences * 50) + "\n", encoding="utf-8")
    segmented = [" ".join(words[i : i + 2] for i in range(0, len(words) - 1, 2)) for words in sentences]
    (tmp_path / "zh-seg.txt").write_text("\n".join(segmented * 50) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nlp182.text.encoded"):
        open_corpus(CorpusSource(str(tmp_path / "zh-seg.txt")), VocabConfig(min_count=1))
        assert "segment it first" not in caplog.text
        open_corpus(CorpusSource(str(tmp_path / "zh.txt")), VocabConfig(min_count=1))
    assert "zh.txt: 100% of the tokens are runs of 8 or more characters" in caplog.text
    assert "segment it first" in caplog.text


def test_tokenizer_can_keep_case() -> None:
    assert WordTokenizer(lowercase=False)("Paris, France.") == ["Paris", "France"]


SENTENCES = [["a", "b", "a", "c"], ["a", "b", "d"], ["e"] * 7, ["b", "a"]]


def test_vocabulary_counts_order_and_cuts() -> None:
    vocab = Vocabulary.build(SENTENCES, VocabConfig(min_count=2))
    assert vocab.words == ["e", "a", "b"]
    assert vocab.counts.tolist() == [7, 4, 3]
    assert vocab.total_words == 16
    assert Vocabulary.build(SENTENCES, VocabConfig(min_count=1, max_vocab=2)).words == ["e", "a"]
    with pytest.raises(EmptyCorpusError):
        Vocabulary.build(SENTENCES, VocabConfig(min_count=100))
    with pytest.raises(InvalidInputError):
        VocabConfig(min_count=-1)


def test_the_noise_distribution_is_the_counts_to_any_power() -> None:
    """gensim's ``ns_exponent``: counts 100, 10 and 1 to the power 0.5 favour the frequent words,
    0 draws every word alike and -0.5 favours the rare ones (hand values)."""
    vocab = Vocabulary(["a", "b", "c"], np.array([100, 10, 1]), 111)
    np.testing.assert_allclose(vocab.noise_distribution(0.5), [0.70610, 0.22329, 0.07061], atol=1e-5)
    np.testing.assert_allclose(vocab.noise_distribution(0.0), [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(vocab.noise_distribution(-0.5), [0.07061, 0.22329, 0.70610], atol=1e-5)


def test_subsampling_and_noise_match_gensim(prepared) -> None:
    sentences = list(iter_token_lines(CorpusSource(str(prepared.corpus))))[:150]
    vocab = Vocabulary.build(sentences, VocabConfig(min_count=5, sample=1e-3))
    model = Word2Vec(min_count=5, sample=1e-3, ns_exponent=0.75)
    model.build_vocab(sentences)
    assert model.wv.index_to_key[:50] == vocab.words[:50]
    gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / (2**32 - 1)
    np.testing.assert_allclose(vocab.keep_probabilities(1e-3), gensim_keep, atol=1e-6)
    gensim_noise = np.diff(np.concatenate([[0], model.cum_table.astype(np.float64)])) / model.cum_table[-1]
    order = [model.wv.key_to_index[w] for w in vocab.words]
    np.testing.assert_allclose(vocab.noise_distribution(0.75), gensim_noise[order], atol=1e-8)


def test_gensim_settings_outside_the_usual_ranges_keep_their_meaning(prepared) -> None:
    """gensim code often says ``min_count=0`` (every word, as 1) and may give ``sample`` as a count
    (1 or more); both used to be refused."""
    sentences = list(iter_token_lines(CorpusSource(str(prepared.corpus))))[:150]
    for sample in (1, 10, 250.5):  # 1 is a count too: a threshold of int(2.618) = 2 occurrences
        vocab = Vocabulary.build(sentences, VocabConfig(min_count=0, sample=sample))
        model = Word2Vec(min_count=0, sample=sample)
        model.build_vocab(sentences)
        assert vocab.words == Vocabulary.build(sentences, VocabConfig(min_count=1)).words
        assert set(model.wv.index_to_key) == set(vocab.words)
        gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / (2**32 - 1)
        assert gensim_keep.min() < 0.5
        np.testing.assert_allclose(vocab.keep_probabilities(sample), gensim_keep, atol=1e-6)
    for bad in ({"min_count": -1}, {"sample": -0.1}, {"sample": float("nan")}):
        with pytest.raises(InvalidInputError):
            VocabConfig(**bad)


def test_vocabulary_file_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(SENTENCES, VocabConfig(min_count=1))
    vocab.save(tmp_path / "counts.tsv")
    loaded = Vocabulary.load(tmp_path / "counts.tsv")
    assert loaded.words == vocab.words and loaded.counts.tolist() == vocab.counts.tolist()
    assert loaded.total_words == vocab.total_words
    (tmp_path / "bad.tsv").write_text("nonsense\n")
    with pytest.raises(FileFormatError):
        Vocabulary.load(tmp_path / "bad.tsv")


def test_missing_source_and_bad_format_are_clear_errors(tmp_path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        list(CorpusSource(str(tmp_path / "nope.txt")).lines())
    with pytest.raises(MissingFileError):
        list(CorpusSource(str(tmp_path / "nope.json")).lines())
    with pytest.raises(InvalidInputError, match="unknown corpus format"):
        list(CorpusSource(str(tmp_path / "x.txt"), fmt="xml").lines())


def _open(path, min_count: int, chunk_tokens: int, cache) -> tuple[EncodedCorpus, Vocabulary]:
    return open_corpus(CorpusSource(str(path)), VocabConfig(min_count=min_count), chunk_tokens, cache)


def test_encoded_corpus_drops_oov_splits_long_lines_and_cuts_chunks_at_sentences(tmp_path) -> None:
    long_line = " ".join(["a", "b"] * (MAX_SENTENCE_TOKENS // 2 + 5))
    (tmp_path / "c.txt").write_text(f"a zzz b\n\n{long_line}\nb a\nqq\nb")  # no final line break
    corpus, vocab = _open(tmp_path / "c.txt", 2, 4, tmp_path / "cache")
    chunks = list(corpus)
    assert all(len(c.ids) <= 4 or len(c.starts) == 2 for c in chunks)  # whole sentences, bounded
    ids = np.concatenate([c.ids for c in chunks])
    lengths = np.concatenate([np.diff(c.starts) for c in chunks])
    a, b = vocab.index["a"], vocab.index["b"]
    assert ids[:2].tolist() == [a, b] and ids.dtype == np.int32
    assert lengths.tolist() == [2, MAX_SENTENCE_TOKENS, 10, 2, 1]  # the long line became two sentences
    raw = 3 + len(long_line.split()) + 2 + 1 + 1
    assert sum(c.raw_words for c in chunks) == vocab.total_words == corpus.raw_words == raw


def test_a_stretch_without_vocabulary_words_counts_its_raw_words_with_the_next_chunk(tmp_path) -> None:
    """The learning rate follows the raw words: a chunk of only rare words was skipped uncounted,
    so a corpus with such a stretch never brought the rate down to min_alpha."""
    rare = "".join(f"r{i} s{i}\n" for i in range(6))  # twelve words seen once, two per line
    trailing = "".join(f"u{i} v{i}\n" for i in range(6))
    (tmp_path / "c.txt").write_text("a b\n" + rare + "a b\na b\n" + trailing)
    corpus, _ = _open(tmp_path / "c.txt", 2, 2, tmp_path / "cache")
    chunks = list(corpus)
    assert [c.raw_words for c in chunks] == [2, 12 + 2, 2 + 12]  # a trailing stretch joins the last
    assert sum(c.raw_words for c in chunks) == corpus.raw_words == 30


def test_encoding_once_counts_as_the_line_by_line_reference_and_is_reused(prepared, tmp_path) -> None:
    source = CorpusSource(str(prepared.corpus))
    reference = Vocabulary.build(iter_token_lines(source), VocabConfig(min_count=3, max_vocab=5000))
    text = encode(source, cache=tmp_path)
    vocab, remap = text.vocabulary(VocabConfig(min_count=3, max_vocab=5000))
    assert vocab.words == reference.words and vocab.counts.tolist() == reference.counts.tolist()
    assert vocab.total_words == reference.total_words
    assert [vocab.words[remap[i]] for i in np.flatnonzero(remap >= 0)[:50]] == [
        text.words[i] for i in np.flatnonzero(remap >= 0)[:50]
    ]
    first = [line for line in iter_token_lines(source) if line][:3]
    tokens = text.read(0, sum(map(len, first)))
    assert [text.words[i] for i in tokens] == [w for line in first for w in line]
    stamp = (text.folder / "tokens.u32").stat().st_mtime_ns
    again = encode(source, cache=tmp_path)
    assert again.folder == text.folder and (text.folder / "tokens.u32").stat().st_mtime_ns == stamp
    copy = tmp_path / "copy.txt"
    copy.write_bytes(prepared.corpus.read_bytes() + b"one more line\n")
    assert encode(CorpusSource(str(copy)), cache=tmp_path).folder != text.folder  # keyed by content


def test_the_c_scanner_and_the_python_paths_write_the_same_files(prepared, tmp_path, monkeypatch) -> None:
    """The C word scanner (one table over all pieces; non-ASCII lines tokenized here or by worker
    processes), the one-process Python pass and pieces tokenized by worker processes number words
    alike: the files are byte for byte the same (pieces cut mid-file, non-ASCII lines among ASCII
    ones, a last line without a line break)."""
    if not wordscan.available():
        pytest.skip("no C compiler: only the Python paths exist here")
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(
        prepared.corpus.read_bytes()[:200_000]
        + "\ncaf\u00e9 d\u00e9j\u00e0 the \u03a3\u039f\u03a3 \ufb01ne \u2019twas it\u2019s\n".encode()
        + prepared.corpus.read_bytes()[:50_000]
        + b"\nbad \xff\xfe bytes\ntail"
    )
    monkeypatch.setattr(encoded, "BLOCK_BYTES", 16_384)
    monkeypatch.setattr(encoded, "PARALLEL_MIN_BYTES", 0)
    runs = [encode(CorpusSource(str(corpus)), cache=tmp_path / f"c{n}", processes=n) for n in (1, 2)]
    monkeypatch.setattr(wordscan, "available", lambda: False)
    runs += [encode(CorpusSource(str(corpus)), cache=tmp_path / f"p{n}", processes=n) for n in (1, 2)]
    assert len(encoded._line_ranges(corpus, encoded.BLOCK_BYTES)) >= 4  # long lines: few cuts
    for name in ("tokens.u32", "words.txt", "counts.npy", "starts.npy", "meta.json"):
        assert len({(run.folder / name).read_bytes() for run in runs}) == 1, name
    scanned = runs[0]
    assert scanned.words[-1] == "tail" and {"café", "σος", "fine", "twas", "it's"} <= set(scanned.words)


@pytest.mark.parametrize(
    "tokenizer", [WordTokenizer(lowercase=True), WordTokenizer(lowercase=False), WhitespaceTokenizer()]
)
def test_the_scanner_numbers_blocks_as_one_python_pass_over_the_whole_text(tokenizer: WordTokenizer) -> None:
    """Random lines over ASCII joiners, punctuation, every whitespace ``str.split`` knows, word
    characters, NFKC-changed, case-context and invalid UTF-8 bytes, cut into three blocks: the words
    and numbers the C table gives are those of numbering the tokenizer's ``block`` of the whole
    text by first appearance, under the words rule (either case) and the whitespace rule."""
    if not wordscan.available():
        pytest.skip("no C compiler")
    rng = np.random.default_rng(0)
    pieces = [*"aB9_'- -'.,x\tZ\r+\x0b\x0c\x1c\x1d\x1e\x1f", "\u00e9", "\u03a3A\u03a3", "\u00df", "\ufb01",
              "\u2019", "\u216b", "\u0301", "\u65e5\u672c", "\u212a", "\u0130", "\u00bd", "\u00a0", "\u3000",
              "\x85", "\xff"]  # fmt: skip
    lines = ["".join(rng.choice(pieces, size=rng.integers(0, 30))) for _ in range(600)]
    blocks = ["\n".join(lines[i : i + 200]) + "\n" for i in range(0, 600, 200)]
    data = [block.encode("utf-8").replace("\xff".encode(), b"\xff") for block in blocks]  # invalid bytes
    whole = b"".join(data).decode("utf-8", errors="replace")
    expected_words, expected_ids = encoded._number(tokenizer.block(whole), "\n")
    words, ids = [], []
    with wordscan.Scanner(tokenizer) as scanner:
        for block in data:
            new, block_ids = scanner.number(block)
            words += new
            ids.append(block_ids)
        with pytest.raises(ValueError, match="whole lines"):
            scanner.number(b"no line break")
    assert words == expected_words and np.array_equal(np.concatenate(ids), expected_ids)
    assert any(not word.isascii() for word in words) and b"\xff" in data[0] + data[1] + data[2]


@pytest.mark.parametrize("lowercase", [True, False])
def test_ascii_block_scan_finds_the_same_tokens_as_bytes(lowercase: bool) -> None:
    text = "It's a State-of-the-art x_y2 -- 42nd o'neil-smith\n\nEnd. don't-'stop\n"
    tokenizer = WordTokenizer(lowercase=lowercase)
    assert [token.decode() for token in tokenizer.block_ascii(text.encode())] == tokenizer.block(text)


@pytest.mark.parametrize(
    ("lowercase", "words"),
    [
        (True, ["it's", "a", "state-of-the-art", "x_y2", "42nd", "o'neil-smith", "end", "don't", "stop", "b",
                "hello", "zed"]),
        (False, ["It's", "a", "State-of-the-art", "x_y2", "42nd", "o'neil-smith", "End", "don't", "stop", "b",
                 "Hello", "hello", "HELLO", "Zed"]),
    ],
)  # fmt: skip
def test_the_c_scanner_joins_and_lowercases_ascii_words_as_the_tokenizer_does(
    lowercase: bool, words: list[str]
) -> None:
    """All-ASCII lines, which the C scanner reads without Python: words join across an inner hyphen
    or apostrophe and are lowercased (or kept as written) exactly as the tokenizer's ``block`` has it."""
    if not wordscan.available():
        pytest.skip("no C compiler")
    text = "It's a State-of-the-art x_y2 -- 42nd o'neil-smith\n\nEnd. don't-'stop a- -b\n"
    text += "Hello hello HELLO Zed\n"
    tokenizer = WordTokenizer(lowercase=lowercase)
    with wordscan.Scanner(tokenizer) as scanner:
        scanned_words, ids = scanner.number(text.encode())
    cased = [11, 11, 11, 12] if lowercase else [11, 12, 13, 14]
    assert scanned_words == words
    assert ids.tolist() == [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 2, 10, 0, *cased, 0]
    expected_words, expected_ids = encoded._number(tokenizer.block(text), "\n")
    assert scanned_words == expected_words and np.array_equal(ids, expected_ids)


@pytest.mark.timeout(30, method="thread")
def test_the_c_scanner_numbers_more_words_than_its_first_table_holds() -> None:
    """20,000 different words, far past the 1024 slots the C table starts with: it grows as it fills.
    A full table would probe forever inside C, which a signal cannot stop: the timeout uses a thread."""
    if not wordscan.available():
        pytest.skip("no C compiler")
    text = "".join(f"w{n} w{n // 2}\n" for n in range(20_000))
    with wordscan.Scanner(WordTokenizer()) as scanner:
        words, ids = scanner.number(text.encode())
    assert words == [f"w{n}" for n in range(20_000)]
    assert ids.reshape(-1, 3).tolist() == [[n + 1, n // 2 + 1, 0] for n in range(20_000)]


def test_block_tokenization_equals_line_by_line() -> None:
    tokenizer = WordTokenizer()
    lines = [
        "It's a state-of-the-art \u2019quoted\u2019 caf\u00e9",
        "",
        "\uff26ull -- x_y",
        "d\u00e9j\u00e0-vu 42",
    ]
    expected = [token for line in lines for token in [*tokenizer(line), "\n"]]
    assert tokenizer.block("\n".join(lines) + "\n") == expected


def test_encoded_corpus_of_only_unknown_words_is_an_error(tmp_path) -> None:
    (tmp_path / "c.txt").write_text("x y z\n")
    text = encode(CorpusSource(str(tmp_path / "c.txt")), cache=tmp_path)
    vocab = Vocabulary(["w"], np.array([5]), 5)
    with pytest.raises(EmptyCorpusError):
        list(EncodedCorpus(text, vocab, np.full(len(text.words), -1, dtype=np.int32)))


def test_a_json_corpus_without_the_column_names_the_available_ones(tmp_path) -> None:
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "words here", "id": 1}) + "\n")
    with pytest.raises(FileFormatError) as error:
        list(iter_token_lines(CorpusSource(str(tmp_path / "c.jsonl"))))
    message = str(error.value)
    assert "no 'text' column" in message and "body, id" in message and "could not be read" not in message


def test_the_vocabulary_reads_only_its_words_and_a_damaged_cache_says_so(tmp_path) -> None:
    (tmp_path / "c.txt").write_text("b a b c\nc b d\n")
    text = encode(CorpusSource(str(tmp_path / "c.txt")), cache=tmp_path / "cache")
    vocab, remap = text.vocabulary(VocabConfig(min_count=2))
    assert vocab.words == ["b", "c"] and vocab.counts.tolist() == [3, 2] and remap.tolist() == [0, -1, 1, -1]
    assert "words" not in vars(text) and text.words == ["b", "a", "c", "d"]  # loaded only when asked
    (text.folder / "words.txt").write_text("b\na\nc")  # a word lost
    with pytest.raises(FileFormatError, match="inconsistent"):
        encoded.EncodedText.load(text.folder).vocabulary(VocabConfig(min_count=2))
    (text.folder / "words.txt").unlink()
    with pytest.raises(FileFormatError, match="delete it to re-encode"):
        encoded.EncodedText.load(text.folder)


_ENCODED_FILES = ("tokens.u32", "words.txt", "counts.npy", "starts.npy")


def _same_encoding(first: encoded.EncodedText, second: encoded.EncodedText) -> bool:
    """The two encodings' files are byte for byte the same (meta.json names the source file)."""
    def meta(text: encoded.EncodedText) -> dict:
        return {k: v for k, v in json.loads((text.folder / "meta.json").read_text()).items() if k != "source"}

    same = all((first.folder / n).read_bytes() == (second.folder / n).read_bytes() for n in _ENCODED_FILES)
    return same and meta(first) == meta(second)


def _pieces_on_lines(text: bytes, max_bytes: int) -> bytes:
    """``text`` with every line longer than ``max_bytes`` written as its pieces, one a line."""
    lines = []
    for line in text.split(b"\n"):
        long = len(line) > max_bytes
        spans = split_line(line, max_bytes, complete=True).spans if long else [(0, len(line))]
        lines += [line[start:end] for start, end in spans]
    return b"\n".join(lines)


@pytest.mark.parametrize("path", ["c", "p1", "p2", "c2"])
def test_lines_over_the_bound_come_in_pieces_cut_at_spaces_on_every_path(
    prepared, tmp_path, monkeypatch, caplog, path
) -> None:
    """A corpus with overlong lines (one mid-file, one with a run of 300 KiB without a space, one
    last without a line break) encodes as the same corpus with each overlong line written as its
    pieces, one a line, on the C and Python paths, in one process or in workers: no word is lost
    or cut, the run without a space is dropped, and one log line says so."""
    lines = prepared.corpus.read_bytes().splitlines(keepends=True)  # documents of up to 100 KB
    head, tail = b"".join(lines[:3]), b"".join(lines[3:6])
    dirty = tmp_path / "dirty.txt"
    dirty.write_bytes(head + b"zzqx " * 70_000 + b"\n" + tail + b"before " + b"q" * (300 << 10)
                      + b" after zzqz\n" + b"zzqy " * 70_000)
    clean = tmp_path / "clean.txt"
    clean.write_bytes(_pieces_on_lines(dirty.read_bytes(), 256 << 10))
    assert max(map(len, clean.read_bytes().split(b"\n"))) <= 256 << 10
    monkeypatch.setattr(encoded, "BLOCK_BYTES", 8192)
    monkeypatch.setattr(encoded, "PARALLEL_MIN_BYTES", 0)
    if path.startswith("p"):
        monkeypatch.setattr(wordscan, "available", lambda: False)
    elif not wordscan.available():
        pytest.skip("no C compiler: only the Python paths exist here")
    processes = int(path[-1]) if path[-1].isdigit() else 1
    limits = ReadLimits(max_line=256 << 10)
    caplog.set_level(logging.INFO, logger="nlp182.bounded")
    expected = encode(CorpusSource(str(clean)), cache=tmp_path / "clean", processes=processes)
    found = encode(CorpusSource(str(dirty), limits=limits), cache=tmp_path / "dirty", processes=processes)
    assert _same_encoding(expected, found)
    assert {"zzqx", "zzqy", "zzqz", "before", "after"} <= set(found.words) and "q" * 10 not in found.words
    assert found.counts[found.words.index("zzqx")] == 70_000 == found.counts[found.words.index("zzqy")]
    line = head.count(b"\n") + 1
    assert [m for m in caplog.messages if "dropped" in m or "pieces" in m] == [
        f"{dirty}: dropped 1 run of over 256 KiB without a space (first: line {line + 4}); "
        "pass --max-line-bytes to keep them",
        f"{dirty}: lines longer than 256 KiB read in pieces cut at spaces, each piece a sentence "
        f"(3 cuts, first in line {line}; --max-line-bytes sets the piece size)",
    ]
    as_text = CorpusSource(str(dirty), fmt="text", limits=limits)  # the record reader cuts alike
    assert [x for x in as_text.lines() if x] == [x for x in clean.read_text().split("\n") if x]


def test_a_corpus_of_one_line_trains_as_gensim_reads_it(tmp_path) -> None:
    """text8 is one 100 MB line: its words are counted as gensim's ``Text8Corpus`` counts them, and
    its sentences are at most 10,000 words, as gensim cuts them."""
    from gensim.models.word2vec import Text8Corpus

    rng = np.random.default_rng(0)
    corpus = tmp_path / "text8"
    corpus.write_text(" ".join(f"word{i}" for i in rng.zipf(1.3, size=500_000) % 5000))
    assert corpus.stat().st_size > 3 << 20 and b"\n" not in corpus.read_bytes()
    text = encode(CorpusSource(str(corpus)), cache=tmp_path / "cache")
    vocab, _ = text.vocabulary(VocabConfig(min_count=1))
    expected = Counter(word for sentence in Text8Corpus(str(corpus)) for word in sentence)
    assert dict(zip(vocab.words, vocab.counts.tolist(), strict=True)) == expected
    assert text.total_tokens == 500_000 and np.diff(text.starts).max() == MAX_SENTENCE_TOKENS


@pytest.mark.parametrize(("compress", "suffix"), [(gzip.compress, ".gz"), (bz2.compress, ".bz2")])
def test_a_compressed_corpus_encodes_as_its_text(prepared, tmp_path, compress, suffix) -> None:
    text = prepared.corpus.read_bytes()[:100_000]
    (tmp_path / "c.txt").write_bytes(text)
    (tmp_path / f"c.txt{suffix}").write_bytes(compress(text))
    plain = encode(CorpusSource(str(tmp_path / "c.txt")), cache=tmp_path / "a")
    packed = encode(CorpusSource(str(tmp_path / f"c.txt{suffix}")), cache=tmp_path / "b")
    assert _same_encoding(plain, packed) and plain.total_tokens > 10_000


def test_a_corpus_without_words_is_one_error_naming_it(tmp_path) -> None:
    corpus = tmp_path / "marks.txt"
    corpus.write_bytes(b"... ,,, !!! -- ??\n" * 300 + b"x" * 3000)  # punctuation, one overlong line
    with pytest.raises(EmptyCorpusError, match=r"marks\.txt has no words to train on"):
        encode(CorpusSource(str(corpus), limits=ReadLimits(max_line=2000)), cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.*"))  # nothing cached


def test_a_corpus_path_may_be_a_pathlib_path_or_name_a_file_with_glob_characters(tmp_path) -> None:
    records = tmp_path / "data[1].jsonl"
    records.write_text("".join(json.dumps({"text": "alpha beta gamma"}) + "\n" for _ in range(20)))
    for source in (CorpusSource(records), CorpusSource(str(records))):
        assert source.files() == [records]
        assert set(source.lines()) == {"alpha beta gamma"}


def test_a_glob_reads_every_file_it_names_and_a_missing_file_is_named_plainly(tmp_path) -> None:
    """``--corpus 'notes/*.txt'`` needs no ``--format text``; a user's missing file gets no hint to
    prepare the default corpus (that hint is for ``corpora/wiki.txt`` alone)."""
    (tmp_path / "notes").mkdir()
    for name, text in (("a.txt", "one two\n"), ("b.txt", "three\n")):
        (tmp_path / "notes" / name).write_text(text)
    source = CorpusSource(str(tmp_path / "notes" / "*.txt"))
    assert source.resolved_format() == "text"
    assert list(source.lines()) == ["one two", "three"]
    literal = tmp_path / "odd[1].txt"
    literal.write_text("four\n")
    assert CorpusSource(str(literal)).resolved_format() == "plain"  # a file named so is itself
    with pytest.raises(MissingFileError) as missing:
        CorpusSource(str(tmp_path / "mine.txt")).files()
    assert "corpus prepare" not in str(missing.value)
    with pytest.raises(MissingFileError, match="corpus prepare"):
        CorpusSource(str(tmp_path / "corpora" / "wiki.txt")).files()


def test_a_glob_recurses_at_double_stars_and_takes_the_format_of_its_files(tmp_path) -> None:
    """``notes/**/*.txt`` read one folder level (three of four files were dropped without a word),
    and a glob of JSON Lines shards was read as plain text: keys and escapes trained as words."""
    import gzip

    for depth, folder in enumerate(("notes", "notes/a", "notes/a/b", "notes/a/b/c")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / f"{depth}.txt").write_text(f"words at depth {depth}\n")
    source = CorpusSource(str(tmp_path / "notes" / "**" / "*.txt"))
    assert source.resolved_format() == "text" and len(source.files()) == 4
    assert sorted(source.lines()) == [f"words at depth {depth}" for depth in range(4)]
    (tmp_path / "shards").mkdir()
    for k in range(2):
        record = json.dumps({"id": k, "lang": "en", "text": f"th\u00e9 number {k}"}) + "\n"
        with gzip.open(tmp_path / "shards" / f"part-{k}.jsonl.gz", "wt") as handle:
            handle.write(record)
    (tmp_path / "shards" / "all.ndjson").write_text(json.dumps({"text": "th\u00e9 again"}) + "\n")
    shards = CorpusSource(str(tmp_path / "shards" / "part-*.jsonl.gz"))
    assert shards.resolved_format() == "json" and sorted(shards.lines()) == ["thé number 0", "thé number 1"]
    assert CorpusSource(str(tmp_path / "shards" / "all.ndjson")).resolved_format() == "json"
    (tmp_path / "shards" / "notes.txt").write_text("plain words\n")
    with pytest.raises(InvalidInputError, match="matches files of several formats \\(json, plain\\)"):
        CorpusSource(str(tmp_path / "shards" / "*")).resolved_format()


def test_the_debian_corpus_names_every_missing_package_in_one_line(monkeypatch, tmp_path, capsys) -> None:
    import shutil
    import sys

    from nlp182.corpora import debian

    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is Debian's")
    monkeypatch.setattr(debian, "PACKAGES", {"nlp182-no-such-package": r".*", "nlp182-nor-this": r".*"})
    monkeypatch.setattr(sys, "argv", ["debian", "--out", str(tmp_path / "debian.txt")])
    assert debian.main() == 2
    told = capsys.readouterr().err
    assert "apt-get install --no-install-recommends nlp182-no-such-package nlp182-nor-this" in told
    assert not (tmp_path / "debian.txt").exists()


def test_a_trainer_takes_a_path(tmp_path) -> None:
    from nlp182.embeddings.lsa import LSAConfig, train_lsa
    from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec

    path = tmp_path / "text.txt"
    path.write_text("alpha beta gamma delta\n" * 30)
    vectors, _, _ = train_word2vec(path, Word2VecConfig(vector_size=4, epochs=1, min_count=1, threads=1))
    assert set(vectors.words) == {"alpha", "beta", "gamma", "delta"}
    assert len(train_lsa(str(path), LSAConfig(dim=2, min_count=1))[0]) == 4


def test_blank_lines_cost_no_memory_while_encoding(tmp_path, monkeypatch) -> None:
    """Each blank line ended where the line before it did; it was kept as a boundary all the same
    (8 bytes each, and copies), so 60M of them took 1 GB. They collapse block by block now (small
    blocks here, so the boundaries of many blocks would add up as in a large corpus)."""
    from nlp182.text import encoded as encoded_module

    monkeypatch.setattr(encoded_module, "BLOCK_BYTES", 1 << 16)
    path = tmp_path / "blank.txt"
    path.write_text("\n" * 3_000_000 + "alpha beta\n" + "\n" * 3_000_000 + "gamma\n")
    tracemalloc.start()
    encoded = encode(CorpusSource(str(path)), cache=tmp_path / "cache", processes=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 << 20  # 108 MB before: the 6M boundaries (48 MB) and their copies
    corpus, _ = _open(path, 1, 100, tmp_path / "cache")
    assert [c.ids.tolist() for c in corpus] == [[0, 1, 2]] and encoded.total_tokens == 3


def test_trained_vectors_carry_their_counts_as_gensim_model_wv_does(tmp_path) -> None:
    from nlp182.embeddings.lsa import LSAConfig, train_lsa
    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
    from nlp182.text.vocab import Vocabulary

    path = tmp_path / "text.txt"
    path.write_text("alpha beta alpha gamma alpha beta rare\n" * 10)
    vectors, vocab, _ = train_word2vec(path, Word2VecConfig(vector_size=4, epochs=1, min_count=2, threads=1))
    assert vectors.get_vecattr("alpha", "count") == 30 and vectors.get_vecattr("gamma", "count") == 10
    lsa, _, _ = train_lsa(path, LSAConfig(dim=2, min_count=2))
    assert lsa.get_vecattr("beta", "count") == 20
    save_run(tmp_path / "run", vectors, vocab, {"method": "word2vec-sg"}, {})
    assert Vocabulary.load(tmp_path / "run" / "counts.tsv").total_words == 70  # the corpus's, rare too


def test_a_corpus_written_to_while_it_is_encoded_leaves_no_cache_entry(tmp_path, monkeypatch) -> None:
    """The cache key is the hash of the bytes read first; an encoding of other bytes (lines
    appended meanwhile) must not be kept under it, or a later run on the original text would train
    on the appended words."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\n" * 50)
    encode_into = encoded._encode_into

    def appending(source, tokenizer, folder, processes) -> None:
        encode_into(source, tokenizer, folder, processes)
        with corpus.open("a") as handle:
            handle.write("poison poison\n")

    monkeypatch.setattr(encoded, "_encode_into", appending)
    with pytest.raises(FileFormatError, match=r"c\.txt changed while it was read; run again once it is"):
        encode(CorpusSource(str(corpus)), cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
    monkeypatch.setattr(encoded, "_encode_into", encode_into)
    assert encode(CorpusSource(str(corpus)), cache=tmp_path / "cache").counts.tolist() == [50, 50, 50, 2]


def test_an_entry_removed_while_written_is_not_published_and_one_in_use_stays_readable(
    tmp_path, monkeypatch
) -> None:
    """A cache cleared during an encoding left a folder its last writes made anew, without the
    token file: it was published, and every later training on the corpus failed. A training whose
    entry was cleared died at its next chunk (the token file was opened by name for each)."""
    import shutil

    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\n" * 50)
    encode_into = encoded._encode_into

    def cleared(source, tokenizer, folder, processes) -> None:
        encode_into(source, tokenizer, folder, processes)
        (folder / encoded.TOKENS_FILE).unlink()  # what an rm -rf of the folder, then the last writes, leave

    monkeypatch.setattr(encoded, "_encode_into", cleared)
    with pytest.raises(FileFormatError, match=r"removed while it was written \(it lacks tokens\.u32\)"):
        encode(CorpusSource(str(corpus)), cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
    monkeypatch.setattr(encoded, "_encode_into", encode_into)
    text = encode(CorpusSource(str(corpus)), cache=tmp_path / "cache")
    shutil.rmtree(text.folder)  # nlp182 cache --clear while a training reads it
    assert text.read(0, 6).tolist() == [0, 1, 2, 0, 1, 2]


def test_two_encodings_of_one_text_at_once_keep_the_first_entry(tmp_path, monkeypatch) -> None:
    """Two trainings started together on a new corpus share its cache entry: the process that
    finishes second uses the entry the first made (the same content), where it had failed."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\n" * 50)
    encode_into = encoded._encode_into
    racing = []

    def with_a_rival(source, tokenizer, folder, processes) -> None:
        encode_into(source, tokenizer, folder, processes)
        if not racing:  # another process finishes first
            racing.append(True)
            monkeypatch.setattr(encoded, "_encode_into", encode_into)
            encode(source, cache=tmp_path / "cache")

    monkeypatch.setattr(encoded, "_encode_into", with_a_rival)
    text = encode(CorpusSource(str(corpus)), cache=tmp_path / "cache")
    assert racing and text.total_tokens == 150 and len(list((tmp_path / "cache").iterdir())) == 1


def test_encoding_progress_has_a_total_only_where_the_bytes_on_disk_are_the_bytes_read(
    tmp_path, caplog
) -> None:
    """A .gz corpus counted decompressed bytes against its size on disk: 280% and an ETA of nothing."""
    import gzip
    import logging

    text = "the quick brown fox jumps over the lazy dog\n" * 2000
    (tmp_path / "c.txt").write_text(text)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(text.encode()))
    with caplog.at_level(logging.INFO, logger="nlp182.progress"):
        encode(CorpusSource(str(tmp_path / "c.txt")), cache=tmp_path / "cache")
        encode(CorpusSource(str(tmp_path / "c.txt.gz")), cache=tmp_path / "cache")
    plain = [m for m in caplog.messages if m.startswith("encoding c.txt:")]
    packed = [m for m in caplog.messages if m.startswith("encoding c.txt.gz:")]
    assert plain and "(100%)" in plain[-1]
    assert packed and "%" not in packed[-1]


def test_shards_cut_at_other_places_are_other_corpora_to_the_cache(tmp_path) -> None:
    """A file's end is a line end, so ``split -b`` shards of one text at two sizes hold other
    sentences; their key hashed only the bytes, and the second glob trained on the first's tokens."""
    text = b"".join(b"alpha beta gamma delta %d epsilon\n" % i for i in range(40))
    for name, size in (("a", 100), ("b", 130)):
        (tmp_path / name).mkdir()
        for number, start in enumerate(range(0, len(text), size)):
            (tmp_path / name / f"part{number:03d}.txt").write_bytes(text[start : start + size])
    cache = tmp_path / "cache"
    first = encode(CorpusSource(str(tmp_path / "a" / "*.txt")), cache=cache)
    second = encode(CorpusSource(str(tmp_path / "b" / "*.txt")), cache=cache)
    fresh = encode(CorpusSource(str(tmp_path / "b" / "*.txt")), cache=tmp_path / "fresh")
    assert first.folder != second.folder
    np.testing.assert_array_equal(second.starts, fresh.starts)
    assert len(first.starts) != len(second.starts)  # each shard boundary cut a sentence in two


def test_a_text_glob_s_blocks_count_the_bytes_its_progress_total_counts(tmp_path) -> None:
    """Encoding a Cyrillic glob ended at 4.64M/8.48M B (55%): its blocks counted characters
    against a total in bytes, as if half the text had been lost."""
    (tmp_path / "ru").mkdir()
    line = "привет мир книга слово дом\n"
    for number in range(2):
        (tmp_path / "ru" / f"p{number}.txt").write_text(line * 500, encoding="utf-8")
    source = CorpusSource(str(tmp_path / "ru" / "*.txt"))
    counted = sum(size for _, size in source.blocks(block_bytes=4096))
    assert counted == source.progress_total() == 2 * 500 * len(line.encode())


def test_an_encoding_stopped_part_way_ends_its_workers_at_once(tmp_path, monkeypatch) -> None:
    """Ctrl-C while forked workers tokenized a large file waited for every queued piece (~10 s)."""
    import time

    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma delta\n" * 4000)
    monkeypatch.setattr(encoded, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(encoded, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(wordscan, "available", lambda: False)
    tokenize = encoded._tokenize

    def slow(text, tokenizer):  # called in the forked workers, which inherit this module's state
        time.sleep(2.0)
        return tokenize(text, tokenizer)

    monkeypatch.setattr(encoded, "_tokenize", slow)

    class Stop(Exception):
        pass

    numbering = encoded._Numbering.__call__
    monkeypatch.setattr(encoded._Numbering, "__call__",
                        lambda self, *a: (_ for _ in ()).throw(Stop()) if self.index else numbering(self, *a))
    started = time.perf_counter()
    with pytest.raises(Stop):
        encode(CorpusSource(str(corpus)), cache=tmp_path / "cache", processes=2)
    assert time.perf_counter() - started < 4.5  # the first two pieces, not the 4 queued behind them
