"""Word / subword / character tokenisers for parallel text, built with Hugging Face ``tokenizers``.

A tokeniser is trained on one side of the training data only (never on held-out text). Spaces
become a visible ``▁`` marker (SentencePiece's Metaspace), so decoding a token sequence gives
back the exact string, ``"2018-05-09"`` included, for word-level, BPE and character models
alike, with two exceptions of Metaspace's: a ``▁`` written in the text itself comes back as a
space, and word-level and BPE models drop one leading space (the data readers strip each side,
so the second never shows in training). With ``split_digits`` every digit is its own token,
which lets a small vocabulary spell any number. A ``char`` tokeniser makes every character a
token (letters of a word for grapheme-to-phoneme), so nobody has to pre-space their text. The
normaliser (NFKC, optional lower-casing) is part of the tokeniser, so translate time applies
exactly what training did. Tokenisers are saved as the library's JSON (no pickling). The four
special tokens are ids the model adds, never text: ``<eos>`` written in a sentence is read as its
characters. That setting lives on the tokenizer object, not in its JSON, so a saved tokeniser is
opened with :func:`load_tokenizer`, which sets it again.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Encoding, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import check_input_file

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0..3 in every tokeniser trained here
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
TOKENIZER_KINDS = ("word", "bpe", "char")
#: The word-boundary marker that stands for a space inside tokens.
SPACE_MARK = "▁"


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "word",
    vocab_size: int = 8000,
    min_count: int = 1,
    lowercase: bool = False,
    split_digits: bool = True,
) -> Tokenizer:
    """Train a ``word`` (whole words and punctuation), ``bpe`` or ``char`` tokeniser on ``texts``.

    ``vocab_size`` caps the vocabulary (for ``word`` the most frequent words are kept);
    ``min_count`` drops rarer words / merges. Special tokens get ids 0-3 (pad, unk, bos, eos); the
    same strings written in the text are read as text.
    """
    if kind not in TOKENIZER_KINDS:
        raise InvalidInputError(f"unknown tokenizer {kind!r}; use one of {', '.join(TOKENIZER_KINDS)}")
    if vocab_size < len(SPECIAL_TOKENS) + 1 or min_count < 1:
        raise InvalidInputError("vocab_size must exceed the 4 special tokens and min_count be >= 1")
    if kind in ("word", "char"):
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_count, special_tokens=list(SPECIAL_TOKENS)
        )
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_count, special_tokens=list(SPECIAL_TOKENS)
        )
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if kind != "char":  # words: a run of spaces or a tab separates them as one space does
        steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    tokenizer.normalizer = normalizers.Sequence(steps)
    if kind == "char":
        # No leading marker: a single word is its letters only; inner spaces stay as "▁" tokens.
        splitters = [pre_tokenizers.Metaspace(prepend_scheme="never"),
                     pre_tokenizers.Split(Regex("."), behavior="isolated")]
        tokenizer.decoder = decoders.Metaspace(prepend_scheme="never")
    else:
        splitters = [pre_tokenizers.Metaspace()]
        if split_digits:
            splitters.append(pre_tokenizers.Digits(individual_digits=True))
        splitters.append(pre_tokenizers.Punctuation())
        tokenizer.decoder = decoders.Metaspace()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    tokenizer.encode_special_tokens = True  # "<eos>" written in the text is text (see load_tokenizer)
    tokenizer.train_from_iterator(texts, trainer)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        if min_count > 1:  # the count, not the data, left nothing
            raise InvalidInputError(
                f"no token of the training text occurs --min-count {min_count} times or more; lower it"
            )
        raise InvalidInputError("the training text produced no tokens; is the data empty?")
    return tokenizer


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens added)."""
    return [encoding.ids for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """The string for ``ids``, stopping at the first ``<eos>`` and dropping ``<pad>`` / ``<bos>``."""
    kept = []
    for token_id in ids:
        if token_id == EOS_ID:
            break
        if token_id not in (PAD_ID, BOS_ID):
            kept.append(int(token_id))
    return tokenizer.decode(kept, skip_special_tokens=False)


def tokens(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """The token strings of ``ids`` as stored (``▁`` marks a preceding space).

    Raises:
        InvalidInputError: an id the tokenizer does not have (ids from another tokenizer).
    """
    found = [tokenizer.id_to_token(int(token_id)) for token_id in ids]
    if None in found:
        unknown = int(ids[found.index(None)])
        raise InvalidInputError(
            f"token id {unknown} is not in this tokenizer's vocabulary of {tokenizer.get_vocab_size()}"
        )
    return found


def display_token(token: str) -> str:
    """A token as a person reads it (heatmap labels): the word-boundary marker dropped, a lone
    marker shown as a visible space symbol."""
    shown = token.replace(SPACE_MARK, "")
    return shown if shown else "␣"


def unknown_tokens(text: str, encoding: Encoding) -> list[str]:
    """The pieces of ``text`` that its ``encoding`` maps to ``<unk>`` (in order, without repeats;
    the space a word piece's offsets take with it left out, and a piece that is only whitespace
    shown as ``␣``: a space inside a number a model never saw spaced was otherwise not named),
    as the tokeniser's NFKC normalisation reads them."""
    found: list[str] = []
    for token_id, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
        if token_id != UNK_ID:
            continue
        while end < len(text) and unicodedata.combining(text[end]):  # NFKC composed them into this
            end += 1  # piece, whose offsets end at its base letter: "e" + U+0301 was named "e"
        raw = unicodedata.normalize("NFKC", text[start:end])
        piece = raw.strip() or ("␣" if raw else "")
        if token_id == UNK_ID and piece and piece not in found:
            found.append(piece)
    return found


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokeniser JSON written by ``tokenizer.save``; check its special-token ids."""
    path = check_input_file(path, missing_hint="; is this a seq2seq run folder?")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception
        raise FileFormatError(f"{path} is not a tokenizers JSON file: {exc}") from exc
    if [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise FileFormatError(f"{path} lacks the special tokens {SPECIAL_TOKENS} at ids 0-3")
    # The special tokens are ids the model adds, never text: "<eos>" written in a source or a
    # target (markup, code, PTB-style "<unk>") is read as its characters, not as the end of it.
    tokenizer.encode_special_tokens = True
    return tokenizer
