"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from nlp182.corpora.prepare import PreparedCorpus, prepare

# Tests must be reproducible and small: cap threads so two workers do not thrash 2 cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


TESTS = Path(__file__).resolve().parent
# Test folders whose models are tiny: a second intra-op thread only adds synchronisation there, and
# on a busy shared machine (more runnable threads than cores) spinning OpenMP workers made the same
# test up to 50x slower in wall time. Tests elsewhere keep the two threads set above.
ONE_THREAD_DIRS = frozenset({"attention", "captioning", "seq2seq", "vision"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cuda`` on a machine without CUDA (``bench/gpu.sh`` runs them on one)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the tests of ``ONE_THREAD_DIRS`` on one torch thread, restored afterwards."""
    if Path(request.path).resolve().relative_to(TESTS).parts[0] not in ONE_THREAD_DIRS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedCorpus:
    """The default corpus and evaluation files, built from gensim's shipped data (a few seconds);
    skipped where gensim does not import (a GPU machine without its wheel)."""
    pytest.importorskip("gensim", reason="the default corpus is built from gensim's shipped data")
    return prepare(tmp_path_factory.mktemp("corpora"))


@pytest.fixture
def interrupt_after_epoch(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Callable[[], None]]:
    """``lift = interrupt_after_epoch(n)``: every Trainer raises ``KeyboardInterrupt`` (Ctrl-C) right
    after logging epoch ``n``, as a user stopping a run would; ``lift()`` lets training run on."""
    from nlp182.train import Trainer

    log_epoch = Trainer._log_epoch

    def install(epoch: int) -> Callable[[], None]:
        def interrupting(self: Trainer, record: dict) -> None:
            log_epoch(self, record)
            if record["epoch"] == epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(Trainer, "_log_epoch", interrupting)
        return lambda: monkeypatch.setattr(Trainer, "_log_epoch", log_epoch)

    return install
