"""Intrinsic evaluation: WordSim-353 / SimLex-999 (Spearman) and the Google analogies.

The figures equal gensim's ``evaluate_word_pairs`` and ``evaluate_word_analogies``: the same
case-insensitive lookup (the most frequent case variant wins), the same ``restrict_vocab``, the
same skipping of out-of-vocabulary items (counted and reported), and the same rule for picking
an analogy answer (the best of the top 5 that is not a query word). Analogies are answered in
batches of matrix products instead of one query at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError

ANALOGY_METHODS = ("3cosadd", "3cosmul")


@dataclass
class PairScore:
    """Correlation of model similarities with human judgements."""

    spearman: float
    pearson: float
    pairs: int
    oov_pairs: int

    @property
    def oov_ratio(self) -> float:
        return self.oov_pairs / max(1, self.pairs + self.oov_pairs)


@dataclass
class AnalogyScore:
    """Accuracy overall and per section; ``oov`` questions were skipped."""

    accuracy: float
    correct: int
    total: int
    oov: int
    sections: dict[str, dict[str, float]] = field(default_factory=dict)


def _case_folded_vocab(vectors: Vectors, restrict_vocab: int) -> dict[str, int]:
    """Upper-cased word -> row over the first ``restrict_vocab`` words; the first variant wins."""
    return {w.upper(): i for i, w in reversed(list(enumerate(vectors.words[:restrict_vocab])))}


def _require(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"evaluation file {path} does not exist; run `nlp182 corpus prepare`")
    return path


def evaluate_word_pairs(
    vectors: Vectors, path: str | os.PathLike[str], restrict_vocab: int = 300_000, delimiter: str = "\t"
) -> PairScore:
    """Spearman and Pearson correlation between cosine similarity and the file's human scores.

    The file has ``word1<TAB>word2<TAB>score`` lines; ``#`` lines are comments.
    """
    vocab = _case_folded_vocab(vectors, restrict_vocab)
    gold, model, oov = [], [], 0
    for line in _require(path).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.upper().split(delimiter)
        try:
            a, b, score = parts
            gold_score = float(score)
        except ValueError:
            continue  # header or malformed line, as gensim skips it
        if a not in vocab or b not in vocab:
            oov += 1
            continue
        gold.append(gold_score)
        model.append(float(np.dot(vectors.normed[vocab[a]], vectors.normed[vocab[b]])))
    if not gold:
        raise FileFormatError(f"{path}: no scored pair has both words in the vocabulary")
    return PairScore(
        spearman=float(stats.spearmanr(gold, model).statistic),
        pearson=float(stats.pearsonr(gold, model).statistic),
        pairs=len(gold),
        oov_pairs=oov,
    )


def read_analogies(path: str | os.PathLike[str]) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of ``a b c d`` questions (upper-cased) from a ``: section`` delimited file."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for number, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(": "):
            sections.append((line[2:].strip(), []))
            continue
        words = line.upper().split()
        if len(words) != 4:
            continue
        if not sections:
            raise FileFormatError(f"{path}: line {number} comes before any ': section' header")
        sections[-1][1].append((words[0], words[1], words[2], words[3]))
    return sections


def _answer_batch(normed: np.ndarray, questions: np.ndarray, method: str) -> np.ndarray:
    """Top-5 candidate rows, best first, for ``(Q, 4)`` question rows (a, b, c, expected)."""
    a, b, c = (normed[questions[:, k]] for k in range(3))
    if method == "3cosadd":
        query = b - a + c
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        scores = query @ normed.T
    else:
        shift = lambda x: (1.0 + x @ normed.T) / 2.0  # noqa: E731
        scores = shift(b) * shift(c) / (shift(a) + 1e-6)
    rows = np.arange(len(questions))[:, None]
    scores[rows, questions[:, :3]] = -np.inf
    top = np.argpartition(-scores, 4, axis=1)[:, :5]
    order = np.argsort(-scores[rows, top], axis=1, kind="stable")
    return top[rows, order]


def evaluate_analogies(
    vectors: Vectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = 300_000,
    method: str = "3cosadd",
    batch_size: int = 512,
) -> AnalogyScore:
    """Accuracy on ``a : b :: c : ?`` questions, answered among the first ``restrict_vocab`` words."""
    if method not in ANALOGY_METHODS:
        raise InvalidInputError(f"unknown analogy method {method!r}; use one of {', '.join(ANALOGY_METHODS)}")
    vocab = _case_folded_vocab(vectors, restrict_vocab)
    normed = vectors.normed[:restrict_vocab]
    upper_words = [w.upper() for w in vectors.words[:restrict_vocab]]
    correct_total = total = oov = 0
    sections: dict[str, dict[str, float]] = {}
    for name, questions in read_analogies(path):
        known = [q for q in questions if all(w in vocab for w in q)]
        oov += len(questions) - len(known)
        rows = np.array([[vocab[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
        correct = 0
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            for question, candidates in zip(batch, _answer_batch(normed, batch, method), strict=True):
                ignore = {upper_words[i] for i in question[:3]}
                predicted = None
                for candidate in candidates:
                    predicted = upper_words[candidate]
                    if predicted in vocab and predicted not in ignore:
                        break
                correct += predicted == upper_words[question[3]]
        if len(rows):
            sections[name] = {"correct": correct, "total": len(rows), "accuracy": correct / len(rows)}
        correct_total += correct
        total += len(rows)
    return AnalogyScore(correct_total / total if total else 0.0, correct_total, total, oov, sections)


@dataclass
class EvaluationFiles:
    """The three standard evaluation sets (as laid out by ``nlp182 corpus prepare``)."""

    wordsim353: Path
    simlex999: Path
    analogies: Path

    @classmethod
    def in_folder(cls, folder: str | os.PathLike[str]) -> EvaluationFiles:
        folder = Path(folder)
        return cls(folder / "wordsim353.tsv", folder / "simlex999.txt", folder / "questions-words.txt")


def evaluate_all(vectors: Vectors, files: EvaluationFiles, restrict_vocab: int = 300_000) -> dict[str, Any]:
    """Every headline figure (what ``metrics.json`` and the CLI table show), plus the 3CosAdd
    accuracy of each analogy section under ``analogy_sections``."""
    wordsim = evaluate_word_pairs(vectors, files.wordsim353, restrict_vocab)
    simlex = evaluate_word_pairs(vectors, files.simlex999, restrict_vocab)
    add = evaluate_analogies(vectors, files.analogies, restrict_vocab, "3cosadd")
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
