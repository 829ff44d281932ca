"""Fixtures of the hostile-input tests: the ``nlp182`` command run in a measured child process.

``cli(argv)`` runs a command as a user would (``nlp182.cli.main`` in a freshly forked process; see
``zygote.py``) and returns its exit code, output, time and peak resident memory. ``BASELINE`` is
the peak of a command that does nothing (``--help``): the imports alone. Every hostile case must
exit 0 or 2 within its time limit, with no traceback, at most one error line, and a peak memory
within ``margin`` of the baseline and under 1 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ZYGOTE = Path(__file__).with_name("zygote.py")
ROOT = Path(__file__).resolve().parents[2]
#: The bound every case meets (the tracker's), whatever the baseline.
HARD_RSS_BYTES = 1 << 30
#: Seconds a case may run before it is killed (and fails).
TIME_LIMIT_S = 120.0


@dataclass
class Outcome:
    """What a command did."""

    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int
    timed_out: bool

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("nlp182: error:")]


Cli = Callable[..., Outcome]


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Run ``nlp182 ARGV`` in a measured child: ``cli(argv, cwd=..., stdin=path, timeout=s)``."""
    process = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    assert process.stdin is not None and process.stdout is not None
    assert json.loads(process.stdout.readline()) == {"ready": True}
    folder = tmp_path_factory.mktemp("cli")
    counter = iter(range(10**6))

    def run(argv: list[str], cwd: Path | None = None, stdin: Path | None = None,
            timeout: float = TIME_LIMIT_S) -> Outcome:
        number = next(counter)
        out, err = folder / f"{number}.out", folder / f"{number}.err"
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd or folder), "stdout": str(out),
                   "stderr": str(err), "stdin": str(stdin) if stdin else None, "timeout": timeout}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        return Outcome(answer["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"),
                       answer["seconds"], answer["peak_rss_bytes"], answer["timed_out"])

    yield run
    process.terminate()  # no need to wait for the interpreter's slow teardown
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def baseline_rss(cli: Cli) -> int:
    """Peak memory of ``nlp182 corpus prepare --help``: what the imports alone hold."""
    outcome = cli(["corpus", "prepare", "--help"])
    assert outcome.rc == 0
    return outcome.peak_rss_bytes


@pytest.fixture
def bounded(baseline_rss: int) -> Callable[..., Outcome]:
    """``bounded(outcome, margin_mb, rc=None)``: assert the contract of a hostile case; returns it."""

    def check(outcome: Outcome, margin_mb: int, rc: int | None = None) -> Outcome:
        assert not outcome.timed_out, f"killed after {outcome.seconds:.0f} s"
        assert outcome.rc in (0, 2), outcome.stderr[-2000:]
        assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
        if rc is not None:
            assert outcome.rc == rc, outcome.stderr[-2000:]
        if outcome.rc == 2:
            assert len(outcome.error_lines) == 1, outcome.stderr[-2000:]
            assert outcome.stderr.rstrip("\n").splitlines()[-1] == outcome.error_lines[0]
        extra = outcome.peak_rss_bytes - baseline_rss
        assert outcome.peak_rss_bytes < HARD_RSS_BYTES
        peak = f"peak {outcome.peak_rss_bytes >> 20} MiB, {extra >> 20} MiB over the imports"
        assert extra < margin_mb << 20, peak
        return outcome

    return check
