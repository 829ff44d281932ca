"""Word-level tokenisation with the `tokenizers` library.

Normaliser: NFKC, typographic apostrophe to ASCII, lowercase. Pre-tokeniser: keeps runs of word
characters joined by apostrophes or hyphens ("it's", "state-of-the-art") and drops everything else,
so punctuation never becomes a token, as Wikipedia text needs.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Regex, normalizers, pre_tokenizers

WORD_PATTERN = r"\w+(?:['-]\w+)*"


class WordTokenizer:
    """Normalise and split text into words; the Rust pipeline of `tokenizers` does the work."""

    def __init__(self, lowercase: bool = True) -> None:
        steps = [normalizers.NFKC(), normalizers.Replace("\u2019", "'")]
        if lowercase:
            steps.append(normalizers.Lowercase())
        self._normalizer = normalizers.Sequence(steps)
        self._pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one line of text."""
        normalized = self._normalizer.normalize_str(text)
        return [token for token, _ in self._pre_tokenizer.pre_tokenize_str(normalized)]


@lru_cache(maxsize=2)
def default_tokenizer(lowercase: bool = True) -> WordTokenizer:
    """A shared tokenizer instance (construction compiles the regex once)."""
    return WordTokenizer(lowercase=lowercase)
