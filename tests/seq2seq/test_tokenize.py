"""Tokenisers: exact round trips, special-token ids, training only on what they are given, loading."""

from __future__ import annotations

import pytest

from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.seq2seq.tokenize import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    decode,
    encode,
    load_tokenizer,
    tokens,
    train_tokenizer,
    unknown_tokens,
)

TEXTS = ["May 9th, 2018", "2018-05-09", "the cat sat on the mat.", "9/5/18", "über naïve café"]


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_round_trip_is_exact(kind: str) -> None:
    tokenizer = train_tokenizer(TEXTS * 3, kind=kind, vocab_size=200)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID]
    for text, ids in zip(TEXTS, encode(tokenizer, TEXTS), strict=True):
        assert UNK_ID not in ids
        assert decode(tokenizer, [BOS_ID, *ids, EOS_ID, PAD_ID, 7]) == text


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_extra_spaces_and_tabs_between_words_are_one_space(kind: str) -> None:
    """``"the  cat"``, ``"the cat "`` and ``"the\tcat"`` each gained an <unk> (the space the
    single-space splitter left over), and a tab made the whole input one unknown word."""
    tokenizer = train_tokenizer(TEXTS * 3, kind=kind, vocab_size=200)
    expected = encode(tokenizer, ["the cat sat"])[0]
    for messy in ("the  cat sat", "the cat sat ", " the cat sat", "the\tcat sat", "the \t cat\u00a0sat"):
        assert encode(tokenizer, [messy])[0] == expected, messy


@pytest.mark.parametrize("kind", ["word", "bpe", "char"])
def test_special_token_strings_in_the_text_are_text(kind: str, tmp_path) -> None:
    """A target that writes "<eos>" (markup, code, PTB's "<unk>") must not end there, and a "<pad>"
    must not vanish from the loss: the four strings are read as characters, before and after a
    save."""
    texts = ["use <eos> tags", "the <pad> element", "an <unk> word <bos>"]
    tokenizer = train_tokenizer(texts * 2, kind=kind, vocab_size=200)
    tokenizer.save(str(tmp_path / "tok.json"))
    for model in (tokenizer, load_tokenizer(tmp_path / "tok.json")):
        for text, ids in zip(texts, encode(model, texts), strict=True):
            assert not {PAD_ID, UNK_ID, BOS_ID, EOS_ID} & set(ids) and decode(model, ids) == text


def test_digits_are_split_and_unknown_words_map_to_unk() -> None:
    tokenizer = train_tokenizer(["2018-05-09"], kind="word")
    assert tokens(tokenizer, encode(tokenizer, ["2018-05-09"])[0]) == list("▁2018-05-09")
    assert encode(tokenizer, ["zebra"])[0][-1] == UNK_ID
    words = train_tokenizer(["the cat"], kind="word")
    (found,) = words.encode_batch(["the zebra and \u2603"])  # a word's offsets take its space along
    assert unknown_tokens("the zebra and \u2603", found) == ["zebra", "and", "\u2603"]
    letters = train_tokenizer(["50494", "1234"], kind="char")  # numbers never written with a space
    (spaced,) = letters.encode_batch(["50 494"])
    assert UNK_ID in spaced.ids and unknown_tokens("50 494", spaced) == ["␣"]  # it was not named
    accents = train_tokenizer(["cafe"], kind="char")  # "e" + U+0301 is "é" after NFKC: it was named "e"
    (decomposed,) = accents.encode_batch(["cafe\u0301"])
    assert unknown_tokens("cafe\u0301", decomposed) == ["\u00e9"]
    joined = train_tokenizer(["2018-05-09"], kind="word", split_digits=False)
    assert tokens(joined, encode(joined, ["2018-05-09"])[0]) == ["▁2018", "-", "05", "-", "09"]


def test_token_strings_of_an_id_the_tokenizer_lacks_are_refused() -> None:
    """Ids from a larger tokenizer gave ``None`` strings that failed later, far from the cause."""
    tokenizer = train_tokenizer(["the cat"], kind="word")
    size = tokenizer.get_vocab_size()
    assert tokens(tokenizer, [UNK_ID, size - 1]) == ["<unk>", tokenizer.id_to_token(size - 1)]
    refusal = f"token id {size + 5} is not in this tokenizer's vocabulary of {size}"
    with pytest.raises(InvalidInputError, match=refusal):
        tokens(tokenizer, [BOS_ID, size + 5])


def test_lowercase_and_vocab_size_options() -> None:
    lower = train_tokenizer(["May may MAY"], lowercase=True)
    assert len(set(encode(lower, ["May may MAY"])[0])) == 1
    capped = train_tokenizer(["a b c d e f g h a b a"], vocab_size=6)
    assert capped.get_vocab_size() == 6
    with pytest.raises(InvalidInputError):
        train_tokenizer(["x"], kind="unigram")
    with pytest.raises(InvalidInputError):
        train_tokenizer([], kind="word")


def test_save_and_load(tmp_path) -> None:
    tokenizer = train_tokenizer(TEXTS, kind="bpe", vocab_size=100)
    tokenizer.save(str(tmp_path / "tok.json"))
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert encode(loaded, TEXTS) == encode(tokenizer, TEXTS)
    with pytest.raises(MissingFileError):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(FileFormatError):
        load_tokenizer(tmp_path / "bad.json")


def test_a_min_count_above_every_token_count_is_named() -> None:
    """It said "the training text produced no tokens; is the data empty?" of a text it had read."""
    with pytest.raises(InvalidInputError, match="no token of the training text occurs --min-count 1000"):
        train_tokenizer(["the cat sat", "the dog ran"], kind="word", min_count=1000)
    with pytest.raises(InvalidInputError, match="produced no tokens; is the data empty"):
        train_tokenizer([""], kind="word")
