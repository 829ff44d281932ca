"""Word-level tokenisation: one definition for a line and for a block of many lines.

Normaliser: NFKC (skipped for ASCII text, where it changes nothing), typographic apostrophe and
hyphen to ASCII (the acute accent typed for an apostrophe too), soft hyphens (invisible: ``&shy;``
in web text), the Arabic tatweel (``ـ``, a stretch drawn to justify a line) and combining marks
that follow no letter removed, lowercase in NFC (Turkish
``İ`` to ``i``, not ``i`` and a combining dot). Words: runs of word characters joined by apostrophes or
hyphens ("it's", "state-of-the-art"); everything else is dropped, so punctuation never becomes a token, as
Wikipedia text needs. Word characters are Unicode's (the ``regex`` module's): letters, digits and
the combining marks that Devanagari, Tamil, Thai or vowelled Arabic write inside words, where
Python's ``re`` would cut them. ``block`` tokenizes megabytes of lines in one regular-expression
scan and marks each line end with ``LINE_BREAK``: the per-line Python overhead is what made
tokenizing a 20M-token corpus take a minute. ``signature`` names the rules, so an encoded corpus
made with other rules is never reused.

``WhitespaceTokenizer`` is the other rule, gensim's ``LineSentence``: the words are what splitting a
line at whitespace gives, case, punctuation and every character kept (for text already tokenized
by the user's own rules, and for sentences given as lists of tokens).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import regex

from nlp182.errors import InvalidInputError

WORD_PATTERN = r"\w+(?:['-]\w+)*"
LINE_BREAK = "\n"
#: Bump when the rules change: encoded corpora in the cache are keyed by the signature.
RULES_VERSION = 7

_WORDS = regex.compile(WORD_PATTERN)
_WORDS_AND_BREAKS = regex.compile(f"{WORD_PATTERN}|{LINE_BREAK}")
# On ASCII bytes the two modules agree, and ``re`` is the faster there.
_ASCII_WORDS_AND_BREAKS = re.compile(f"{WORD_PATTERN}|{LINE_BREAK}".encode())


#: The tokenization rules a corpus can be read with (``CorpusSource.tokens``).
TOKEN_RULES = ("words", "whitespace")
# What NFKC leaves that would cut or split a word: U+2019 and U+2010 (NFKC's form of U+2011) are
# the apostrophe and hyphen that join words; U+00AD only marks where a line may break, and the
# tatweel U+0640 only lengthens the stroke between two Arabic letters ("كتـــاب" is "كتاب"). (Replaced
# one by one: str.translate with a table takes several times as long on megabytes of text.)
_JOINERS_TO_ASCII = (("\u2019", "'"), ("\u2010", "-"), ("\u00ad", ""), ("\u0640", ""))
# NFKC writes a spacing accent (U+00B4 ´, U+00A8 ¨, U+02DC ˜, Greek tonos, isolated Arabic harakat:
# 50 characters) as a space and a combining mark, which would then start a word ("Proudhon´s" ->
# "proudhon", "\u0301s"). Before it: the acute accent typed for an apostrophe is one, and the kana
# voicing marks written spacing join their kana ("か゛" -> "が"). After it: a combining mark that
# follows no letter, digit or mark (an emoji's variation selector U+FE0F, a mark after a space) and a
# zero-width joiner or non-joiner that does not stand between two (an emoji sequence's U+200D) are
# dropped; they made words of nothing a reader sees ("I ❤️ you" gave a word U+FE0F).
_SPACING_MARKS_TO_JOINED = (("\u00b4", "'"), ("\u309b", "\u3099"), ("\u309c", "\u309a"))
_MARKS_WITHOUT_LETTER = regex.compile(
    r"(?<![\p{L}\p{N}\p{M}])[\p{M}\u200c\u200d]+|[\u200c\u200d]+(?![\p{L}\p{N}\p{M}])"
)
# What ``str.split()`` splits ASCII text at, beyond ``bytes.split()``'s six: the four separators.
_SEPARATORS_TO_SPACE = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")


class WordTokenizer:
    """Normalise and split text into words (Python's ``re`` on the normalised text)."""

    #: The rule's name (``TOKEN_RULES``); the C word scanner reads it too.
    rule = "words"

    def __init__(self, lowercase: bool = True) -> None:
        self.lowercase = lowercase

    @property
    def signature(self) -> str:
        """A string naming these rules (part of the encoded-corpus cache key)."""
        return f"words-v{RULES_VERSION}:{WORD_PATTERN}:lower={int(self.lowercase)}"

    def normalize(self, text: str) -> str:
        """NFKC, typographic apostrophes and hyphens to ASCII, soft hyphens out, combining marks
        and zero-width joiners that belong to no word out, then lowercase in NFC (when asked)."""
        if text.isascii():
            return text.lower() if self.lowercase else text
        for spacing, joined in _SPACING_MARKS_TO_JOINED:
            if spacing in text:
                text = text.replace(spacing, joined)
        text = unicodedata.normalize("NFKC", text)
        if _MARKS_WITHOUT_LETTER.search(text):
            text = _MARKS_WITHOUT_LETTER.sub("", text)
        for joiner, ascii_form in _JOINERS_TO_ASCII:
            if joiner in text:
                text = text.replace(joiner, ascii_form)
        if not self.lowercase:
            return text
        # str.lower() can leave a letter and a combining mark where NFC has one character ("J̌" ->
        # "ǰ"), and writes Turkish "İ" as "i" + U+0307: each a second spelling of the same word
        text = text.lower().replace("i\u0307", "i")
        return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one line of text."""
        return _WORDS.findall(self.normalize(text))

    def block(self, text: str) -> list[str]:
        """Tokens of many lines, each line's end marked by a ``LINE_BREAK`` item (same rules as
        calling the tokenizer on each line)."""
        return _WORDS_AND_BREAKS.findall(self.normalize(text))

    def block_ascii(self, data: bytes) -> list[bytes]:
        """``block`` of ASCII ``data``, tokens as bytes. On ASCII text the normaliser only
        lowercases, and a bytes pattern's ``\\w`` is the ASCII word class, so the tokens are the
        same as ``block(data.decode())``'s; the bytes scan is about a quarter faster."""
        return _ASCII_WORDS_AND_BREAKS.findall(data.lower() if self.lowercase else data)


class WhitespaceTokenizer(WordTokenizer):
    """gensim's ``LineSentence`` rule: a line's words are ``line.split()`` (Unicode whitespace,
    as Python's ``str.split`` has it), nothing normalised, nothing lowercased or dropped."""

    rule = "whitespace"

    def __init__(self) -> None:
        super().__init__(lowercase=False)

    @property
    def signature(self) -> str:
        """A string naming these rules (part of the encoded-corpus cache key)."""
        return "whitespace-v2"  # 2: a byte order mark is not part of the first word

    def normalize(self, text: str) -> str:
        """``text`` itself: the words are the user's."""
        return text

    def __call__(self, text: str) -> list[str]:
        return text.split()

    def block(self, text: str) -> list[str]:
        """Words of many lines, each line's end marked by a ``LINE_BREAK`` item."""
        return _split_lines(text.split(LINE_BREAK), LINE_BREAK)

    def block_ascii(self, data: bytes) -> list[bytes]:
        """``block`` of ASCII ``data``, tokens as bytes (``bytes.split`` once the separators
        ``str.split`` also splits at are spaces)."""
        line_break = LINE_BREAK.encode()
        return _split_lines(data.translate(_SEPARATORS_TO_SPACE).split(line_break), line_break)


def _split_lines(lines: list, line_break: str | bytes) -> list:
    """The whitespace-split words of ``lines`` (the pieces of a block between its line breaks),
    ``line_break`` after each line but the last piece."""
    tokens: list = []
    for line in lines[:-1]:
        tokens.extend(line.split())
        tokens.append(line_break)
    tokens.extend(lines[-1].split())
    return tokens


@lru_cache(maxsize=2)
def default_tokenizer(lowercase: bool = True) -> WordTokenizer:
    """A shared tokenizer instance."""
    return WordTokenizer(lowercase=lowercase)


def tokenizer_for(rule: str) -> WordTokenizer:
    """The tokenizer of a rule in ``TOKEN_RULES``: ``words`` (lowercased words, punctuation
    dropped) or ``whitespace`` (gensim's ``LineSentence``).

    Raises:
        InvalidInputError: another rule.
    """
    if rule == "words":
        return default_tokenizer()
    if rule == "whitespace":
        return WhitespaceTokenizer()
    raise InvalidInputError(f"unknown token rule {rule!r}; use one of {', '.join(TOKEN_RULES)}")
