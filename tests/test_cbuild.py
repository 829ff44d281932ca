"""``nlp182.cbuild``: where a C compiler exists, every C kernel of the package builds and loads."""

from __future__ import annotations

import os
import shutil

import pytest

from nlp182.embeddings import native
from nlp182.text import wordscan


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler here")
def test_every_c_kernel_builds_where_a_compiler_exists() -> None:
    """The kernels' tests skip where their library is unavailable, so a C file that stopped compiling
    would pass as skipped tests: here it fails, naming the compiler's error."""
    native.library()  # raises NativeKernelUnavailable with the compiler's message
    wordscan.library()
    assert native.available() and wordscan.available()
