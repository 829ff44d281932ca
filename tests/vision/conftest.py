"""Vision tests run torch on one thread (restored afterwards).

Their convolutions are tiny, so a second intra-op thread buys little on a quiet machine, while on a
busy shared one (more runnable threads than cores) spinning OpenMP workers made the same test up
to 50x slower in wall time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
