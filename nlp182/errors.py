"""Exceptions with messages that say what was wrong and what to do.

The CLI prints them as one line and exits non-zero; the server maps them to JSON
``{"error": {"code", "message"}}`` with a 4xx status. Each class carries the HTTP status
and a short machine-readable code so both front ends agree.
"""

from __future__ import annotations


class Nlp182Error(Exception):
    """Base class of every error the package raises on bad input."""

    status = 400
    code = "bad_request"

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInputError(Nlp182Error, ValueError):
    """A value, flag or argument is outside what the function accepts."""

    code = "invalid_input"


class NonFiniteError(InvalidInputError, RuntimeError):
    """A computed value (a loss, a gradient norm) is inf or NaN; a ``RuntimeError`` too, as torch raises."""

    code = "non_finite"


class OutputError(InvalidInputError):
    """An output path cannot or must not be written (a file, someone else's folder, read-only)."""

    code = "bad_output"


class ShapeError(InvalidInputError):
    """A tensor or array has the wrong shape or dimension."""

    code = "wrong_shape"


class FileFormatError(InvalidInputError):
    """A file exists but its content is not in the expected format (or is truncated)."""

    code = "bad_file"


class EmptyCorpusError(InvalidInputError):
    """The corpus holds no token that survives the vocabulary filters."""

    code = "empty_corpus"


class MissingFileError(Nlp182Error, FileNotFoundError):
    """A path the caller named does not exist."""

    status = 404
    code = "not_found"


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)`` for a message, cut to about ``limit`` characters (a 1 MB word makes a 1 MB line)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


class UnknownWordError(Nlp182Error, KeyError):
    """A word is not in the vocabulary; ``suggestions`` lists close vocabulary words.

    ``unknown`` lists every unknown word of the request, ``word`` first, so a batch with several
    is corrected in one round trip.
    """

    status = 404
    code = "unknown_word"

    def __init__(
        self, word: str, suggestions: list[str] | None = None, unknown: list[str] | None = None
    ) -> None:
        self.word = word
        self.suggestions = list(suggestions or [])
        self.unknown = list(unknown or [word])
        hint = f"; did you mean: {', '.join(self.suggestions)}" if self.suggestions else ""
        more = len(self.unknown) - 1
        also = f" (and {more} more unknown word{'s' if more > 1 else ''}: see 'unknown')" if more else ""
        super().__init__(f"word {shown(word)} is not in the vocabulary{hint}{also}")


class MissingExtraError(Nlp182Error, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""

    status = 501
    code = "missing_extra"


class TruncatedFileError(FileFormatError, EOFError):
    """A file ends before what its header promises (also an ``EOFError``, as gensim raises)."""
