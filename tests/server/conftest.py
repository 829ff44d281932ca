"""Fixtures of the similarity-service tests: run folders with real and synthetic vectors.

The real run is a small word2vec model trained by gensim (the reference library) on the Lee
corpus that ships in gensim's wheel, so neighbour lists and HNSW recall are measured on trained
vectors rather than random ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nlp182.embeddings.vectors import Vectors
from nlp182.server.config import IndexConfig
from nlp182.server.index import SimilarityIndex
from nlp182.server.process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]

def write_run(folder: Path, vectors: Vectors) -> Path:
    """A run folder as the trainers write it (vectors, vocab, config, metrics)."""
    vectors.save(folder)
    (folder / "config.json").write_text(json.dumps({"model": "test", "dim": vectors.dim}))
    (folder / "metrics.json").write_text("{}")
    return folder


@pytest.fixture(scope="session")
def real_vectors() -> Vectors:
    """Skip-gram vectors (32 dims) of the Lee corpus, trained by gensim with one worker."""
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="utf-8") as handle:
        sentences = [line.lower().split() for line in handle]
    model = Word2Vec(sentences, vector_size=32, window=5, min_count=3, sg=1, epochs=8, workers=1, seed=3)
    words = list(model.wv.index_to_key)
    return Vectors(words, model.wv.vectors.astype(np.float32))


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory, real_vectors: Vectors) -> Path:
    """The real vectors with an exact (flat) index."""
    folder = write_run(tmp_path_factory.mktemp("real-run"), real_vectors)
    SimilarityIndex.build(real_vectors, IndexConfig(kind="flat")).save(folder)
    return folder


def make_synthetic_vectors() -> Vectors:
    """2,000 clustered 24-dim vectors named w0..w1999 (w0 most frequent)."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 24))
    matrix = centres[rng.integers(0, 40, 2000)] + 0.4 * rng.standard_normal((2000, 24))
    return Vectors([f"w{i}" for i in range(2000)], matrix.astype(np.float32))


def make_synthetic_run(folder: Path) -> Path:
    """The synthetic vectors with an exact index, in ``folder``."""
    vectors = make_synthetic_vectors()
    write_run(folder, vectors)
    SimilarityIndex.build(vectors, IndexConfig(kind="flat")).save(folder)
    return folder


@pytest.fixture(scope="session")
def synthetic_vectors() -> Vectors:
    return make_synthetic_vectors()


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_run(tmp_path_factory.mktemp("synthetic-run"))


@pytest.fixture
def live_server(synthetic_run: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(synthetic_run, "--workers", "2", "--threads", "4")
    yield server
    server.stop()
