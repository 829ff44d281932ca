"""Intrinsic evaluation: WordSim-353 / SimLex-999 (Spearman) and the Google analogies.

The figures equal gensim's ``evaluate_word_pairs`` and ``evaluate_word_analogies``: a
case-insensitive lookup in which the most frequent case variant wins (folded to lower case in
NFKC, where gensim upper-cases: the two agree on ASCII words, see :func:`_fold`), the same
``restrict_vocab``, the same skipping of out-of-vocabulary items (counted and reported; or, with
``dummy4unknown``, scored 0), and the same rule for picking an analogy answer (the best of the
top 5 that is not a query word). Analogies are answered in batches by the query core
(``nlp182.embeddings.query``), which scores a block of rows at a time: memory stays bounded (as
gensim's ``restrict_vocab`` bounds its own) however large the vocabulary, and no unit-normalised
copy of the matrix is made.
"""

from __future__ import annotations

import codecs
import csv
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nlp182.bounded import MAX_LINE_BYTES, BoundedLines, mib
from nlp182.embeddings import query
from nlp182.embeddings.vectors import RESTRICT_VOCAB, Vectors
from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import check_input_file
from nlp182.progress import progress
from nlp182.text.tokenize import WordTokenizer

log = logging.getLogger(__name__)

ANALOGY_METHODS = ("3cosadd", "3cosmul")


@dataclass
class PairScore:
    """Correlation of model similarities with human judgements, with the p-values scipy gives.

    With ``dummy4unknown`` the ``oov_pairs`` are also among the ``pairs`` (scored 0), and the ratio
    is taken over ``pairs``, as gensim does.
    """

    spearman: float
    pearson: float
    pairs: int
    oov_pairs: int
    dummy4unknown: bool = False
    spearman_pvalue: float = float("nan")
    pearson_pvalue: float = float("nan")

    @property
    def oov_ratio(self) -> float:
        """Percent of the pairs with an unknown word (gensim's ``oov_ratio``, 0-100)."""
        if self.dummy4unknown:
            return 100.0 * self.oov_pairs / max(1, self.pairs)
        return 100.0 * self.oov_pairs / max(1, self.pairs + self.oov_pairs)

    def as_gensim(self) -> tuple[tuple[float, float], tuple[float, float], float]:
        """``((pearson, p), (spearman, p), oov_ratio)``: what gensim's ``evaluate_word_pairs`` returns."""
        return (self.pearson, self.pearson_pvalue), (self.spearman, self.spearman_pvalue), self.oov_ratio


@dataclass
class AnalogyScore:
    """Accuracy overall and per section; ``oov`` questions were skipped (or, with ``dummy4unknown``,
    counted wrong)."""

    accuracy: float
    correct: int
    total: int
    oov: int
    sections: dict[str, dict[str, float]] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)
    """With ``keep_questions``: every section of the file in order, then ``"Total accuracy"``, as
    ``{"section": name, "correct": [(a, b, c, d), ...], "incorrect": [...]}`` (gensim's layout)."""

    def as_gensim(self) -> tuple[float, list[dict[str, Any]]]:
        """``(score, sections)``: what gensim's ``evaluate_word_analogies`` returns."""
        return self.accuracy, self.questions


_KEEP_CASE, _FOLD_CASE = WordTokenizer(lowercase=False), WordTokenizer(lowercase=True)


def _fold(word: str, case_insensitive: bool) -> str:
    """``word`` as the word tokenizer writes corpus words, so an evaluation file meets the
    vocabulary whatever spelling it uses for the same text: NFKC (``café`` and ``cafe`` + U+0301,
    Thai ``ำ`` typed as one character or two), typographic apostrophes and hyphens as ASCII
    (``l’option``); and lower-cased in NFC if ``case_insensitive``, with Turkish ``İ`` as ``i``.
    gensim upper-cases instead, which gives the same keys for ASCII words but merges distinct words
    elsewhere (``Maße`` and ``Masse``, Turkish ``sınır`` and ``sinir``) and misses ``İstanbul``."""
    return (_FOLD_CASE if case_insensitive else _KEEP_CASE).normalize(word)


def _shown(delimiter: str | None) -> str:
    """A delimiter as a message shows it: ``<TAB>`` for a tab, ``<SPACE>`` for runs of whitespace."""
    return {"\t": "<TAB>", None: "<SPACE>"}.get(delimiter, delimiter)


SCORE_COLUMNS = ("simlex999", "human (mean)", "score", "mean", "similarity", "relatedness", "sim", "gold")
"""Header names of the score column in the published files that put more than a score beside the two
words (the official SimLex-999 names it ``SimLex999``; WordSim-353's ``set1.tab`` ``Human (mean)``)."""
#: Parts of a score column's name in a header whose first columns name the words (``Human mean``,
#: ``Score (0-10)``): the column is found by name there, never as a rater's number.
SCORE_NAME_PARTS = ("simlex", "mean", "score", "similar", "related", "gold", "average", "rating")
#: A header's name of the first word's column: ``word1``, ``Word 1``, ``w1``, ``term_1``.
FIRST_WORD_HEADER = re.compile(r"(word|w|term)[ _-]?1", re.IGNORECASE)
#: A header's name of the second word's column.
SECOND_WORD_HEADER = re.compile(r"(word|w|term)[ _-]?2", re.IGNORECASE)
#: The most word pairs or analogy questions a file may hold: the published sets hold thousands
#: (SimLex-999: 999, the Google analogies: 19,544), and a file read whole stays within ~0.5 GB.
MAX_EVAL_ITEMS = 1_000_000
#: A score written with a decimal comma (``7,35``), named as such when it fails to read.
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


@dataclass(frozen=True)
class PairsLayout:
    """Where a word-pairs file keeps its fields: the two words are columns ``words`` (0-based; the
    first two unless a header names others), the score is column ``score``; ``delimiter`` None
    splits at runs of whitespace. A ``wide`` file has more columns than these three."""

    delimiter: str | None
    score: int = 2
    wide: bool = False
    words: tuple[int, int] = (0, 1)

    def split(self, line: str) -> list[str]:
        """The fields of ``line``; a comma-separated line with quotes is read as CSV (``"1,000"`` is
        one field, ``"love"`` the word love: Python's ``csv.QUOTE_ALL`` and pandas write such)."""
        return split_fields(line, self.delimiter)

    def fits(self, fields: list[str]) -> bool:
        """Whether ``fields`` are as many as a pair of this layout has: gensim's layout takes exactly
        ``word1, word2, score``; a wide one every column up to the last it reads."""
        return len(fields) > max(self.score, *self.words) if self.wide else len(fields) == 3

    def score_of(self, fields: list[str]) -> float | None:
        """The score of a line's ``fields``, or None when they are not a pair of this layout or
        the score is not a finite number."""
        return _number(fields[self.score]) if self.fits(fields) else None


def split_fields(line: str, delimiter: str | None) -> list[str]:
    """``line`` split at ``delimiter`` (None: runs of whitespace), a quoted comma-separated line as CSV."""
    if delimiter == "," and '"' in line:
        return next(csv.reader([line]))
    return line.split(delimiter)


def pairs_layout(
    path: str | os.PathLike[str], line: str, number: int, delimiter: str | None
) -> PairsLayout | None:
    """The layout of a pairs file, read from its first line that shows one; None for a line that
    neither is a pair nor names the columns (a title: skipped, as gensim skips a malformed line).

    ``delimiter=None`` picks it from that line: a tab, else a comma, else whitespace (MEN's files).
    A line of at most three fields is gensim's ``word1, word2, score``. A wider one is either a
    header (the words' columns found by name, ``word1`` and ``word2``, wherever they stand, as
    after pandas' index column; the score column by name: the official SimLex-999 and WordSim-353
    files) or a first pair (the score is the first number after the words: the Rare Words and
    SimVerb files). A header that names the words but no score is refused: its numbers are raters'
    names, not scores. So is a wide first pair that starts with a number: an id column, which
    would be read as the first word.
    """
    if delimiter is None:
        delimiter = "\t" if "\t" in line else "," if "," in line else None
    fields = split_fields(line, delimiter)
    if len(fields) <= 3:
        return PairsLayout(delimiter)
    names = [name.strip().lower() for name in fields]
    first = next((i for i, name in enumerate(names) if FIRST_WORD_HEADER.fullmatch(name)), None)
    header = first is not None
    words = (0, 1)
    if header:
        second = next((i for i, name in enumerate(names) if SECOND_WORD_HEADER.fullmatch(name)), first + 1)
        words = (first, second)
    named = [i for i, name in enumerate(names) if i not in words and (
        name in SCORE_COLUMNS or (header and any(part in name for part in SCORE_NAME_PARTS)))]
    if named:
        return PairsLayout(delimiter, named[0], wide=True, words=words)
    shown = _shown(delimiter)
    if header:
        raise FileFormatError(
            f"{path}: line {number} is a header ({', '.join(fields)}) and no column after the words names a "
            f"score ({', '.join(SCORE_COLUMNS)}); name it so, or write word1{shown}word2{shown}score lines"
        )
    if _number(fields[0]) is not None:
        raise FileFormatError(
            f"{path}: line {number} ({shown.join(fields[:4])}...) starts with a number, as an id or row "
            f"number column does, which would be read as the first word; start the file with a header "
            f"that names the columns (e.g. id{shown}word1{shown}word2{shown}score), or drop the column"
        )
    numbers = [i for i, value in enumerate(fields) if i >= 2 and _number(value) is not None]
    return PairsLayout(delimiter, numbers[0], wide=True) if numbers else None


def _number(text: str) -> float | None:
    """``text`` as a finite number, or None (a word, a header name, ``nan``, ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class SkippedLines:
    """Lines of a pairs file that are not a pair: how many, and the first one's number and why."""

    count: int = 0
    first: tuple[int, str] | None = None

    def add(self, number: int, reason: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (number, reason)


def read_word_pairs(
    path: str | os.PathLike[str], delimiter: str | None = "\t", case_insensitive: bool = True
) -> tuple[list[tuple[str, str, float]], SkippedLines, PairsLayout | None]:
    """``(pairs, skipped, layout)`` of a word-pairs file: ``(word1, word2, score)`` with the words
    folded as :func:`_fold` folds them when ``case_insensitive`` (else as written), the lines that
    are not a pair (gensim skips them too; a header is not counted) and the layout read (None for
    a file of comments). ``#`` lines are comments. More than ``MAX_EVAL_ITEMS`` pairs are refused,
    so that a huge or wrong file costs bounded memory. Skipped lines are logged, with the first
    one's reason."""
    pairs: list[tuple[str, str, float]] = []
    skipped, layout, first_row = SkippedLines(), None, True
    for number, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        if layout is None:
            layout = pairs_layout(path, line, number, delimiter)
            if layout is None:
                skipped.add(number, "it is not a pair and names no columns")
                continue
        fields = layout.split(_file_text(line, case_insensitive))
        score = layout.score_of(fields)
        if score is not None:
            pairs.append((fields[layout.words[0]], fields[layout.words[1]], score))
            if len(pairs) > MAX_EVAL_ITEMS:
                raise FileFormatError(
                    f"{path}: more than {MAX_EVAL_ITEMS:,} word pairs; similarity sets hold thousands "
                    "(SimLex-999: 999), so this is not one"
                )
        elif not (first_row and layout.fits(fields) and _is_name(fields[layout.score])):  # else a header
            skipped.add(number, _why_not_a_pair(fields, layout))
        first_row = False
    if skipped.count and pairs:
        number, reason = skipped.first
        log.warning("%s: skipped %d line%s that %s not a word pair (first: line %d: %s)", path, skipped.count,
                    "" if skipped.count == 1 else "s", "is" if skipped.count == 1 else "are", number, reason)
    return pairs, skipped, layout


def _is_name(text: str) -> bool:
    """Whether a score field is a column's name (``score``), not a number, ``nan`` or ``7,35``."""
    try:
        float(text)
    except ValueError:
        return DECIMAL_COMMA.fullmatch(text.strip()) is None
    return False


def _why_not_a_pair(fields: list[str], layout: PairsLayout) -> str:
    """Why ``fields`` are not a pair of ``layout``: too few or too many fields, or a score that is
    not a finite number (with a decimal comma named)."""
    if not layout.fits(fields):
        return f"it has {len(fields)} field{'' if len(fields) == 1 else 's'}"
    value = fields[layout.score].strip()
    if DECIMAL_COMMA.fullmatch(value):
        return f"its score {value!r} has a decimal comma; write {value.replace(',', '.')}"
    return f"its score {value!r} is not a finite number"


class _VocabRows:
    """Row of a word of an evaluation file among the first ``restrict_vocab`` words.

    Case-insensitive, the word is folded by ``_fold`` and the first (most frequent) word of that
    fold answers, as gensim's upper-casing does. Case-sensitive, an exact match wins and a word
    in another normal form (``café`` decomposed) finds its stored form only when no stored word is
    spelt as given: ``ﬁnance`` and ``finance`` in one vocabulary stay two words.
    """

    def __init__(self, vectors: Vectors, restrict_vocab: int, case_insensitive: bool) -> None:
        words = vectors.words[:restrict_vocab]
        self.case_insensitive = case_insensitive
        self.folded = {_fold(w, case_insensitive): i for i, w in reversed(list(enumerate(words)))}
        self.exact = {} if case_insensitive else {w: i for i, w in reversed(list(enumerate(words)))}
        #: what decides whether two rows answer alike: their fold, or case-sensitive their spelling
        self.keys = [_fold(w, True) for w in words] if case_insensitive else list(words)

    def get(self, word: str) -> int | None:
        row = self.exact.get(word)
        return self.folded.get(_fold(word, self.case_insensitive)) if row is None else row

    def __contains__(self, word: str) -> bool:
        return self.get(word) is not None

    def __getitem__(self, word: str) -> int:
        row = self.get(word)
        if row is None:
            raise KeyError(word)
        return row


def _file_text(line: str, case_insensitive: bool) -> str:
    """A line of an evaluation file as its words are looked up: folded when case-insensitive (as
    gensim upper-cases it), else as written (:class:`_VocabRows` folds a word it cannot find)."""
    return _fold(line, True) if case_insensitive else line


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of an evaluation file, lines of at most ``MAX_LINE_BYTES`` (longer
    ones are skipped, with one warning: no pair or question is that long), ``\r`` ends removed."""
    target = check_input_file(path, "evaluation file", missing_hint="; run `nlp182 corpus prepare`")
    with target.open("rb") as handle:
        lines = BoundedLines(handle, MAX_LINE_BYTES, str(path))
        for number, line in lines:
            if number == 1 and line.startswith(codecs.BOM_UTF8):  # a BOM glued to the first word
                line = line[len(codecs.BOM_UTF8) :]
            try:
                yield number, line.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"{path}: line {number} is not UTF-8 text ({exc.reason})") from None
        if lines.skipped:
            count = len(lines.skipped)
            log.warning("%s: skipped %d line%s longer than %s (first: line %d); no word pair or analogy "
                        "question is that long", path, count, "" if count == 1 else "s", mib(MAX_LINE_BYTES),
                        lines.skipped[0])


def evaluate_word_pairs(
    vectors: Vectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = RESTRICT_VOCAB,
    delimiter: str | None = "\t",
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
) -> PairScore:
    """Spearman and Pearson correlation between cosine similarity and the file's human scores.

    The file has ``word1<TAB>word2<TAB>score`` lines (``delimiter=None``: tab, comma or whitespace,
    as the file's first line shows); ``#`` lines are comments. Published files with more columns
    read too (:func:`pairs_layout`): the official SimLex-999, WordSim-353's ``set1.tab``, Rare Words,
    SimVerb. A line that is not a pair (a header, a score that is not a finite number) is skipped,
    as gensim skips it. Pairs with a word outside the first ``restrict_vocab`` words are skipped, or
    with ``dummy4unknown`` scored 0. Fewer than two pairs in the vocabulary give no correlation: a
    :class:`TooFewPairsError`, whose ``score`` is the NaN score gensim would return (what a table
    of several sets shows for the set a small vocabulary misses). When every gold score, or every
    cosine, is the same the correlation is undefined too: NaN, with a warning that says why.
    """
    vocab = _VocabRows(vectors, restrict_vocab, case_insensitive)
    pairs, skipped, layout = read_word_pairs(path, delimiter, case_insensitive)
    gold, rows, oov = [], [], 0
    for a, b, gold_score in pairs:
        if a not in vocab or b not in vocab:
            oov += 1
            if dummy4unknown:
                gold.append(gold_score)
                rows.append(None)
            continue
        gold.append(gold_score)
        rows.append((vocab[a], vocab[b]))
    if not pairs:
        shown = _shown(layout.delimiter if layout else delimiter)
        if not skipped.count:
            raise FileFormatError(f"{path} holds no word pair: write word1{shown}word2{shown}score lines")
        number, reason = skipped.first
        raise FileFormatError(
            f"{path}: no line reads word1{shown}word2{shown}score ({skipped.count} skipped; line {number}: "
            f"{reason})"
        )
    if len(gold) < 2:
        raise TooFewPairsError(
            f"{path}: {'no' if not gold else 'only 1'} scored pair has both words in the vocabulary; a "
            "correlation needs at least 2", _nan_score(len(gold), oov, dummy4unknown))
    known = np.array([pair for pair in rows if pair is not None], dtype=np.int64).reshape(-1, 2)
    similarities = iter(_pair_cosines(vectors, known).tolist())
    model = [0.0 if pair is None else next(similarities) for pair in rows]
    for name, values in (("human score", gold), ("cosine", model)):
        if min(values) == max(values):
            log.warning("%s: every %s of its %d pairs is %g, so their correlation is undefined (nan)",
                        path, name, len(values), values[0])
    with warnings.catch_warnings():  # said above in one line, where scipy's names its source line
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        spearman, pearson = stats.spearmanr(gold, model), stats.pearsonr(gold, model)
    return PairScore(
        spearman=float(spearman.statistic),
        pearson=float(pearson.statistic),
        pairs=len(gold),
        oov_pairs=oov,
        dummy4unknown=dummy4unknown,
        spearman_pvalue=float(spearman.pvalue),
        pearson_pvalue=float(pearson.pvalue),
    )


class TooFewPairsError(FileFormatError):
    """Fewer than two pairs of a pairs file have both words in the vocabulary: no correlation.
    ``score`` is the NaN score that stands for it where a table of sets wants one."""

    def __init__(self, message: str, score: PairScore) -> None:
        super().__init__(message)
        self.score = score


def _nan_score(pairs: int, oov: int, dummy4unknown: bool) -> PairScore:
    return PairScore(spearman=math.nan, pearson=math.nan, pairs=pairs, oov_pairs=oov,
                     dummy4unknown=dummy4unknown, spearman_pvalue=math.nan, pearson_pvalue=math.nan)


#: Word pairs scored at a time: two ``(PAIR_BLOCK, D)`` blocks of unit rows at most.
PAIR_BLOCK = 16_384


def _pair_cosines(vectors: Vectors, pairs: np.ndarray) -> np.ndarray:
    """``(N,)`` cosines of the rows of ``(N, 2)`` ``pairs``, a block at a time: a pairs file of a
    million lines on 300-dim vectors held two (N, D) matrices, 4 GB."""
    cosines = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), PAIR_BLOCK):
        block = pairs[start : start + PAIR_BLOCK]
        first, second = vectors.rows.unit(block[:, 0]), vectors.rows.unit(block[:, 1])
        cosines[start : start + len(block)] = np.einsum("nd,nd->n", first, second)
    return cosines


def read_analogies(
    path: str | os.PathLike[str], case_insensitive: bool = True
) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of ``a b c d`` questions (folded by ``_fold`` when ``case_insensitive``) from a
    ``: section`` file. A file with no question, or more than ``MAX_EVAL_ITEMS``, is refused: an
    empty file scored 0% accuracy, and a huge one took gigabytes."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    count = 0
    for number, line in _lines(path):
        if line.startswith(": "):
            sections.append((line[2:].strip(), []))
            continue
        words = _file_text(line, case_insensitive).split()
        if len(words) != 4:
            continue
        if not sections:
            raise FileFormatError(f"{path}: line {number} comes before any ': section' header")
        sections[-1][1].append((words[0], words[1], words[2], words[3]))
        count += 1
        if count > MAX_EVAL_ITEMS:
            raise FileFormatError(
                f"{path}: more than {MAX_EVAL_ITEMS:,} analogy questions; analogy sets hold thousands "
                "(the Google set: 19,544), so this is not one"
            )
    if not count:
        raise FileFormatError(
            f"{path} holds no analogy question: write ': section' lines, each followed by 'a b c d' lines "
            "(a is to b as c is to d)"
        )
    return sections


def answer_analogies(
    vectors: Vectors, questions: np.ndarray, method: str, restrict_vocab: int
) -> list[np.ndarray]:
    """Top-5 candidate rows, best first, for ``(Q, 3)`` question rows ``a, b, c`` (``a : b :: c : ?``).

    The query words are left out; answers come from the first ``restrict_vocab`` rows. The query
    core scores a block of rows at a time, so memory does not grow with the vocabulary.
    """
    rows = vectors.rows
    a, b, c = (rows.unit(questions[:, k]) for k in range(3))
    exclude = [set(q) for q in questions.tolist()]
    if method == "3cosadd":
        queries = query.mean_vector(np.stack([b, c, a], axis=1), np.array([1.0, 1.0, -1.0]))
        found = query.search(rows, queries, 5, exclude, stop=restrict_vocab)
    else:
        positive, negative = np.stack([b, c], axis=1), a[:, None, :]
        found = query.search_cosmul(rows, positive, negative, 5, exclude, stop=restrict_vocab)
    return [ids for ids, _ in found]


def evaluate_analogies(
    vectors: Vectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = RESTRICT_VOCAB,
    method: str = "3cosadd",
    batch_size: int = 512,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    keep_questions: bool = False,
) -> AnalogyScore:
    """Accuracy on ``a : b :: c : ?`` questions, answered among the first ``restrict_vocab`` words.

    As gensim, the answer is the best of the top 5 that is not a query word; questions with a word
    outside the first ``restrict_vocab`` are skipped, or with ``dummy4unknown`` counted wrong.
    ``keep_questions`` lists which questions were right and wrong (``AnalogyScore.questions``).
    """
    if method not in ANALOGY_METHODS:
        raise InvalidInputError(f"unknown analogy method {method!r}; use one of {', '.join(ANALOGY_METHODS)}")
    vocab = _VocabRows(vectors, restrict_vocab, case_insensitive)
    folded = vocab.keys
    correct_total = total = oov = 0
    sections: dict[str, dict[str, float]] = {}
    listed: list[dict[str, Any]] = []
    read = read_analogies(path, case_insensitive)
    bar = progress(total=sum(len(questions) for _, questions in read), desc=f"analogies {Path(path).name}",
                   unit="question")  # the Google set takes a minute on a large vocabulary
    for name, questions in read:
        known = [q for q in questions if all(w in vocab for w in q)]
        unknown = len(questions) - len(known)
        oov += unknown
        bar.update(unknown)
        rows = np.array([[vocab[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
        right = np.zeros(len(rows), dtype=bool)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            answers = answer_analogies(vectors, batch[:, :3], method, restrict_vocab)
            for offset, (question, candidates) in enumerate(zip(batch, answers, strict=True)):
                ignore = {folded[i] for i in question[:3]}
                predicted = None
                for candidate in candidates.tolist():
                    predicted = folded[candidate]
                    if predicted in vocab and predicted not in ignore:
                        break
                right[start + offset] = predicted == folded[question[3]]
            bar.update(len(batch))
        correct = int(right.sum())
        asked = len(rows) + (unknown if dummy4unknown else 0)
        if asked:
            sections[name] = {"correct": correct, "total": asked, "accuracy": correct / asked}
        if keep_questions:
            listed.append(_listed_section(name, questions, dict(zip(known, right.tolist(), strict=True)),
                                          dummy4unknown, case_insensitive))
        correct_total += correct
        total += asked
    bar.close()
    if keep_questions:
        listed.append({"section": "Total accuracy",
                       "correct": [q for section in listed for q in section["correct"]],
                       "incorrect": [q for section in listed for q in section["incorrect"]]})
    accuracy = correct_total / total if total else 0.0
    return AnalogyScore(accuracy, correct_total, total, oov, sections, listed)


def _listed_section(
    name: str,
    questions: list[tuple[str, str, str, str]],
    right: dict[tuple[str, str, str, str], bool],
    dummy4unknown: bool,
    case_insensitive: bool,
) -> dict[str, Any]:
    """One section in gensim's layout; questions keep their file order, unknown ones are wrong with
    ``dummy4unknown`` and left out without it; case-insensitive words upper-cased, as gensim
    lists them."""

    def shown(question: tuple[str, str, str, str]) -> tuple[str, ...]:
        return tuple(word.upper() for word in question) if case_insensitive else question

    correct = [shown(q) for q in questions if right.get(q)]
    incorrect = [shown(q) for q in questions
                 if (q in right and not right[q]) or (q not in right and dummy4unknown)]
    return {"section": name, "correct": correct, "incorrect": incorrect}


@dataclass
class EvaluationFiles:
    """The three standard evaluation sets (as laid out by ``nlp182 corpus prepare``)."""

    wordsim353: Path
    simlex999: Path
    analogies: Path

    @classmethod
    def in_folder(cls, folder: str | os.PathLike[str]) -> EvaluationFiles:
        """The three sets under the names `nlp182 corpus prepare` writes into ``folder``."""
        folder = Path(folder)
        return cls(folder / "wordsim353.tsv", folder / "simlex999.txt", folder / "questions-words.txt")


def evaluate_all(
    vectors: Vectors, files: EvaluationFiles, restrict_vocab: int = RESTRICT_VOCAB
) -> dict[str, Any]:
    """Every headline figure (what ``metrics.json`` and the CLI table show), plus the 3CosAdd
    accuracy of each analogy section under ``analogy_sections``.

    A pairs set with fewer than two pairs in the vocabulary is NaN, with a warning, as long as
    another set scores the run; when none does (a run in another language, a tiny vocabulary) it
    is a ``TooFewPairsError`` naming each set."""
    scored, problems = [], []
    for path in (files.wordsim353, files.simlex999):
        try:
            scored.append(evaluate_word_pairs(vectors, path, restrict_vocab))
        except TooFewPairsError as exc:
            scored.append(exc.score)
            problems.append(exc)
    wordsim, simlex = scored
    add = evaluate_analogies(vectors, files.analogies, restrict_vocab, "3cosadd")
    if len(problems) == 2 and not add.total:
        raise TooFewPairsError(f"no evaluation set scores this run: {problems[0]}; {problems[1]}; and no "
                               f"question of {files.analogies} has its four words in the vocabulary",
                               problems[0].score)
    for problem in problems:
        log.warning("%s (left as nan)", problem)
    mul = evaluate_analogies(vectors, files.analogies, restrict_vocab, "3cosmul")
    return {
        "wordsim353_spearman": wordsim.spearman,
        "wordsim353_pairs": wordsim.pairs,
        "wordsim353_oov": wordsim.oov_pairs,
        "simlex999_spearman": simlex.spearman,
        "simlex999_pairs": simlex.pairs,
        "simlex999_oov": simlex.oov_pairs,
        "analogy_3cosadd": add.accuracy,
        "analogy_3cosmul": mul.accuracy,
        "analogy_questions": add.total,
        "analogy_oov": add.oov,
        "analogy_sections": {name: section["accuracy"] for name, section in add.sections.items()},
    }
