"""The built-in CMUdict data set: stress removed, a stable hash split, every pronunciation kept."""

from __future__ import annotations

import re
from functools import cache

from nlp182.seq2seq import Seq2SeqConfig
from nlp182.seq2seq.cmudict import bucket, cmudict_splits, split_of
from nlp182.seq2seq.train import build_translator, group_references, load_pairs


@cache
def _splits() -> tuple[list, list, list]:
    return cmudict_splits()


def test_split_is_a_stable_partition_of_words() -> None:
    train, valid, test = _splits()
    words = [{w for w, _ in part} for part in (train, valid, test)]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    total = sum(len(w) for w in words)
    assert total > 120_000  # ~125k words of letters and apostrophes
    assert 0.04 < len(words[2]) / total < 0.06 and 0.04 < len(words[1]) / total < 0.06
    assert bucket("hello") == bucket("hello") and split_of("hello") in ("train", "valid", "test")
    assert all(split_of(w) == "test" for w in list(words[2])[:50])


def test_pairs_are_letters_to_stress_free_phonemes_with_all_references() -> None:
    train, valid, test = _splits()
    phone = re.compile(r"[A-Z]+( [A-Z]+)*")
    assert all(re.fullmatch(r"[a-z']+", w) and phone.fullmatch(p) for w, p in train[:2000] + test[:2000])
    assert len({w for w, _ in train}) == len(train)  # training: the first pronunciation only
    sources, references = group_references(valid + test)
    several = [refs for refs in references if len(refs) > 1]
    assert len(several) > 300 and all(len(set(refs)) == len(refs) for refs in several)
    lookup = dict(zip(sources, references, strict=True))
    if "tomato" in lookup:  # T AH M EY T OW / T AH M AA T OW, stress digits gone
        assert "T AH M EY T OW" in lookup["tomato"]


def test_cmudict_config_brings_char_letters_and_word_phonemes() -> None:
    config = Seq2SeqConfig(data="cmudict")
    assert config.tokenizer_kinds() == ("char", "word") and config.metric_names() == ["wer", "per"]
    train, _, _ = load_pairs(config)
    translator = build_translator(config, train[:3000])
    encoded = translator.source_tokenizer.encode("O'Neil", add_special_tokens=False)
    assert encoded.tokens == ["o", "'", "n", "e", "i", "l"]  # lower-cased, one token per letter
    phones = translator.target_tokenizer.encode("HH AH L OW", add_special_tokens=False)
    assert translator.target_tokenizer.decode(phones.ids) == "HH AH L OW"
