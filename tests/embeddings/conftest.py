"""Fixtures for the embedding tests: the real prepared corpus and a small slice of it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp182.corpora.prepare import PreparedCorpus

# Without a GPU the Triton kernels run in Triton's interpreter; Triton reads this when a kernel is
# decorated, so it is set before any test module imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def small_corpus(prepared: PreparedCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 200k tokens of the real corpus (the first lines), for quick training runs."""
    lines, tokens = [], 0
    for line in prepared.corpus.read_text(encoding="utf-8").splitlines():
        lines.append(line)
        tokens += len(line.split())
        if tokens > 200_000:
            break
    path = tmp_path_factory.mktemp("small") / "small.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def topic_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Sentences drawn from 8 disjoint topics of 12 words each; returns the file and word -> topic.

    Words of one topic only ever share sentences with each other, so any working word2vec puts
    a word's nearest neighbours in its own topic.
    """
    rng = np.random.default_rng(0)
    topics = {f"t{t}w{w}": t for t in range(8) for w in range(12)}
    words_of = [[w for w, t in topics.items() if t == topic] for topic in range(8)]
    lines = []
    for _ in range(3000):
        topic = rng.integers(8)
        lines.append(" ".join(rng.choice(words_of[topic], size=12)))
    path = tmp_path_factory.mktemp("topics") / "topics.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, topics
