"""Fixtures of the similarity-service tests: run folders with real and synthetic vectors.

The real run is a small word2vec model trained by gensim (the reference library) on the Lee
corpus that ships in gensim's wheel, so neighbour lists and HNSW recall are measured on trained
vectors rather than random ones.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from nlp182.embeddings.vectors import Vectors
from server.config import IndexConfig
from server.index import SimilarityIndex

ROOT = Path(__file__).resolve().parents[2]
# `nlp182 ...` through the real dispatcher, with only this area's commands registered (so these
# tests do not depend on the other command modules being importable).
COMMAND = (
    "import sys\n"
    "from nlp182 import cli\n"
    "cli.COMMAND_MODULES = ('nlp182.commands.server',)\n"
    "sys.exit(cli.main())\n"
)


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``nlp182 serve`` in a subprocess (gunicorn), stopped with SIGTERM."""

    def __init__(self, run: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", COMMAND, "serve", str(run), "--port", str(self.port), *flags],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.process.stdout.read()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not become ready in 60 s")

    def workers(self, count: int, timeout: float = 60) -> list[psutil.Process]:
        """Wait until ``count`` workers have mapped the index (each has built its app); return them."""
        master = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loaded = [
                child for child in master.children(recursive=True)
                if any(m.path.endswith("index.faiss") for m in child.memory_maps(grouped=True))
            ]
            if len(loaded) >= count:
                return loaded
            time.sleep(0.1)
        raise RuntimeError(f"{count} workers did not load the index in {timeout} s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, wait for the graceful stop; returns (exit code, output)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


@pytest.fixture
def live_server(synthetic_run: Path) -> Iterator[LiveServer]:
    server = LiveServer(synthetic_run, "--workers", "2", "--threads", "4")
    yield server
    server.stop()
