"""Tokenizer, vocabulary (checked against gensim's own tables) and corpus sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gensim.models import Word2Vec

from nlp182.errors import EmptyCorpusError, FileFormatError, InvalidInputError, MissingFileError
from nlp182.text.corpus import MAX_SENTENCE_TOKENS, CorpusSource, EncodedCorpus, iter_token_lines
from nlp182.text.tokenize import WordTokenizer
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
        VocabConfig(min_count=0)


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


def test_vocabulary_file_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(SENTENCES, VocabConfig(min_count=1))
    vocab.save(tmp_path / "counts.tsv")
    loaded = Vocabulary.load(tmp_path / "counts.tsv")
    assert loaded.words == vocab.words and loaded.counts.tolist() == vocab.counts.tolist()
    assert loaded.total_words == vocab.total_words
    (tmp_path / "bad.tsv").write_text("nonsense\n")
    with pytest.raises(FileFormatError):
        Vocabulary.load(tmp_path / "bad.tsv")


def test_datasets_sources_stream_the_same_tokens_as_plain_text(tmp_path) -> None:
    texts = ["The cat sat.", "A dog's bark, loud!", "", "Well-known facts"]
    (tmp_path / "c.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "c.jsonl").write_text(
        "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts))
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": texts}), tmp_path / "c.parquet")
    plain = list(iter_token_lines(CorpusSource(str(tmp_path / "c.txt"))))
    assert plain == [
        ["the", "cat", "sat"],
        ["a", "dog's", "bark", "loud"],
        ["well-known", "facts"],
    ]  # blank line skipped
    assert list(iter_token_lines(CorpusSource(str(tmp_path / "c.jsonl")))) == plain
    assert list(iter_token_lines(CorpusSource(str(tmp_path / "c.parquet"), column="body"))) == plain
    assert list(iter_token_lines(CorpusSource(str(tmp_path / "c.txt"), fmt="text"))) == plain
    with pytest.raises(FileFormatError, match="column"):
        list(iter_token_lines(CorpusSource(str(tmp_path / "c.parquet"))))


def test_missing_source_and_bad_format_are_clear_errors(tmp_path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        list(CorpusSource(str(tmp_path / "nope.txt")).lines())
    with pytest.raises(MissingFileError):
        list(CorpusSource(str(tmp_path / "nope.json")).lines())
    with pytest.raises(InvalidInputError, match="unknown corpus format"):
        list(CorpusSource(str(tmp_path / "x.txt"), fmt="xml").lines())


def test_encoded_corpus_drops_oov_splits_long_lines_and_caches(tmp_path) -> None:
    long_line = " ".join(["a", "b"] * (MAX_SENTENCE_TOKENS // 2 + 5))
    (tmp_path / "c.txt").write_text(f"a zzz b\n\n{long_line}\nb a\n")
    source = CorpusSource(str(tmp_path / "c.txt"))
    vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(min_count=2))
    corpus = EncodedCorpus(source, vocab, chunk_tokens=4)
    chunks = list(corpus)
    ids = np.concatenate([c.ids for c in chunks])
    sentence = np.concatenate([c.sentence for c in chunks])
    a, b = vocab.index["a"], vocab.index["b"]
    assert ids[:2].tolist() == [a, b] and sentence[:2].tolist() == [0, 0]
    assert len(ids) == 2 + len(long_line.split()) + 2
    assert sentence.max() == 3  # the long line became two sentences
    assert sum(c.raw_words for c in chunks) == vocab.total_words == corpus.raw_words
    assert all(x is y for x, y in zip(list(corpus), chunks, strict=True))  # cached, not re-read


def test_preload_caches_a_small_corpus_and_leaves_a_large_one_streaming(tmp_path) -> None:
    (tmp_path / "c.txt").write_text("a b a\nb a c\n")
    source = CorpusSource(str(tmp_path / "c.txt"))
    vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(min_count=1))
    small = EncodedCorpus(source, vocab)
    assert small.preload() and small._cache is not None
    (tmp_path / "c.txt").unlink()  # held in memory: no further reads
    assert sum(len(c.ids) for c in small) == 6
    large = EncodedCorpus(source, vocab, cache_limit=5)  # 6 tokens > 5: not read at all now
    assert not large.preload()


def test_encoded_corpus_of_only_unknown_words_is_an_error(tmp_path) -> None:
    (tmp_path / "c.txt").write_text("x y z\n")
    vocab = Vocabulary(["w"], np.array([5]), 5)
    with pytest.raises(EmptyCorpusError):
        list(EncodedCorpus(CorpusSource(str(tmp_path / "c.txt")), vocab))
