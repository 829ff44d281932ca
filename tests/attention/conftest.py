"""Run these small-tensor tests single-threaded (restored afterwards).

The models here are tiny: a second intra-op thread only adds synchronisation, and on a shared
two-core machine it makes each step many times slower.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
