"""Build C sources into a shared library on first use, cached, for ctypes.

The package's C kernels (word2vec and LSA counting in ``nlp182.embeddings``, the ASCII word
scanner in ``nlp182.text``) need only a C compiler (``$CC`` or ``cc``), not PyTorch's headers, so a
build takes about a second. Libraries are cached under ``$NLP182_CACHE`` (default
``~/.cache/nlp182``), named by a hash of the sources, the flags, the compiler and the CPU, and
written atomically, so concurrent first uses and upgrades are safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from nlp182.errors import Nlp182Error
from nlp182.io import cache_folder, current_umask, leftover_prefix

# The parts of -ffast-math that let the compiler vectorise the dot products, without -ffast-math
# itself: linked into a shared library it sets flush-to-zero for the whole process (crtfastmath).
FLAGS = (
    "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
    "-fno-signed-zeros", "-freciprocal-math", "-fPIC", "-shared", "-std=c11",
)  # fmt: skip


class NativeKernelUnavailable(Nlp182Error, RuntimeError):
    """A C kernel could not be built here (no compiler, or compilation failed)."""

    status = 500
    code = "native_kernel_unavailable"


def _compile(compiler: str, sources: Sequence[Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # named as io's temporary files are, so a killed build's is found as theirs are (nlp182 cache --clear)
    handle, temporary = tempfile.mkstemp(prefix=leftover_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, "-o", temporary, *map(str, sources), "-lm"], capture_output=True, text=True
        )
        if done.returncode != 0:
            names = " ".join(source.name for source in sources)
            raise NativeKernelUnavailable(f"{compiler} failed on {names}: {done.stderr.strip()}")
        # readable by whoever shares the cache (as the umask allows): mkstemp's 0600 made it 0711,
        # which another user's process could not load
        os.chmod(temporary, 0o755 & ~current_umask())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _cpu_signature() -> bytes:
    """The machine type and, on Linux, the CPU's feature flags: ``-march=native`` code built on
    one CPU may not run on another that shares the cache folder (a network home, say)."""
    signature = platform.machine()
    with contextlib.suppress(OSError):
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
        signature += flags[0] if flags else ""
    return signature.encode()


def build(name: str, sources: Sequence[Path]) -> ctypes.CDLL:
    """The library ``name`` compiled from ``sources``, built now unless a cached copy matches
    these sources, flags, compiler and CPU. Callers cache the result and declare its functions.

    Raises:
        NativeKernelUnavailable: there is no C compiler, it failed, or the library cannot be
            written or loaded.
    """
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise NativeKernelUnavailable("no C compiler found (set $CC or install gcc)")
    key = hashlib.sha256()
    for part in (
        *(source.read_bytes() for source in sources),
        " ".join(FLAGS).encode(),
        compiler.encode(),
        _cpu_signature(),
    ):
        key.update(part)
    target = cache_folder() / f"{name}-{key.hexdigest()[:16]}.so"
    try:
        if not target.exists():
            _compile(compiler, sources, target)
        return ctypes.CDLL(str(target))
    except OSError as exc:  # unwritable cache folder, unloadable library
        raise NativeKernelUnavailable(f"cannot build or load {target}: {exc}") from exc


def builds(library: Callable[[], ctypes.CDLL]) -> bool:
    """Whether ``library()`` (a kernel's cached ``build`` with its functions declared) builds and
    loads on this machine; callers without it take their Python path."""
    try:
        library()
    except NativeKernelUnavailable:
        return False
    return True
