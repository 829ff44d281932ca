"""Run ``nlp182`` on hostile input in a child process and hold it to the contract for bad input.

Every case must end with exit code 0 or 2 within two minutes, print a bad input as one line (no
traceback), and stay under a peak resident set of 1 GB, measured for the child alone
(its ``VmHWM``, polled while it runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PEAK_RSS_LIMIT = 1 << 30
TIME_LIMIT_S = 120.0


@dataclass
class Outcome:
    """How a child ``nlp182`` ended: exit code, output, peak resident set (bytes) and wall seconds."""

    rc: int
    out: str
    err: str
    peak_rss: int
    seconds: float

    def assert_refused(self, *needles: str) -> str:
        """Assert exit code 2 with one error line holding every needle (and no traceback); return it."""
        assert self.rc == 2, (self.rc, self.err[-3000:])
        line = self.err.strip()
        assert "\n" not in line and line.startswith("nlp182"), self.err[-3000:]
        for needle in needles:
            assert needle in line, (needle, line)
        return line


# The command line's dispatcher with only the command's own module registered (as ``ServeProcess``
# runs ``serve``): the same code path, without loading every other command's libraries.
ONE_COMMAND = (
    "import sys\n"
    "from nlp182 import cli\n"
    "cli.COMMAND_MODULES = (sys.argv.pop(1),)\n"
    "sys.exit(cli.main())\n"
)
COMMAND_MODULES = {"caption": "captioning", "train": "captioning", "import": "importing", "serve": "server"}


def _high_water_mark(pid: int) -> int:
    """Peak resident bytes of ``pid``'s own program (``VmHWM``; 0 once it has exited).

    Not ``os.wait4``'s ``ru_maxrss``: Linux keeps that across ``execve``, so a child forked from
    this test process would report this process's peak, whatever the child itself used.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(line.split()[1]) * 1024 if line else 0


def run_nlp182(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """``nlp182 ARGS`` in a child; checks the exit code, time and memory bounds of every case."""
    start = time.monotonic()
    module = f"nlp182.commands.{COMMAND_MODULES[args[0]]}"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-c", ONE_COMMAND, module, *args], stdout=out,
                                   stderr=err, env={**os.environ, **(env or {})})
        peak = 0
        while True:
            peak = max(peak, _high_water_mark(process.pid))
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > TIME_LIMIT_S:
                process.kill()
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        outcome = Outcome(process.returncode, out.read().decode(errors="replace"),
                          err.read().decode(errors="replace"), peak,
                          time.monotonic() - start)
    assert outcome.seconds < TIME_LIMIT_S, f"still running after {TIME_LIMIT_S:.0f} s"
    assert outcome.rc in (0, 2), (outcome.rc, outcome.err[-3000:])
    assert "Traceback" not in outcome.err, outcome.err[-3000:]
    assert outcome.peak_rss <= PEAK_RSS_LIMIT, f"peak RSS {outcome.peak_rss / 2**20:.0f} MiB"
    return outcome
