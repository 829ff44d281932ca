"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest
import torch

from corpora.prepare import PreparedCorpus, prepare

# Tests must be reproducible and small: cap threads so two workers do not thrash 2 cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedCorpus:
    """The default corpus and evaluation files, built from gensim's shipped data (a few seconds)."""
    return prepare(tmp_path_factory.mktemp("corpora"))
