"""``nlp182 serve`` as a child process on a free loopback port: started, awaited, stopped.

The tests and ``bench/serve.py`` both drive the real gunicorn server this way, through the same
entry as the ``nlp182`` console script.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from nlp182.server.probe import wait_ready

SERVE_COMMAND = "import sys\nfrom nlp182 import cli\nsys.exit(cli.main())\n"  # the `nlp182` console script


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``nlp182 serve RUN FLAGS...`` in a child process; the constructor returns once ``/readyz``
    answers 200 and raises ``RuntimeError`` (with the server's output) if it exits or times out.

    Args:
        run: the run folder to serve.
        flags: further ``nlp182 serve`` flags.
        timeout: seconds to wait for readiness.
        port: the port to serve on (unset: a free one).
        env: variables added to this process's environment for the server.
    """

    def __init__(self, run: Path, *flags: str, timeout: float = 60.0, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the server)
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE_COMMAND, "serve", str(run), "--port", str(self.port), *flags],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", **(env or {})},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()[-3000:]}")
            if wait_ready(self.url, 0.5):
                return
        self.stop()
        raise RuntimeError(f"server did not become ready in {timeout:.0f} s")

    def output(self) -> str:
        """Everything the server printed so far."""
        self._log.seek(0)
        return self._log.read()

    def workers(self, count: int, timeout: float = 60.0) -> list[psutil.Process]:
        """Wait until ``count`` workers have mapped the index (each has built its app); return them."""
        master = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loaded = [
                child
                for child in master.children(recursive=True)
                if any(m.path.endswith("index.faiss") for m in child.memory_maps(grouped=True))
            ]
            if len(loaded) >= count:
                return loaded
            time.sleep(0.1)
        raise RuntimeError(f"{count} workers did not load the index in {timeout:.0f} s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM and wait for the graceful stop (SIGKILL after 30 s); returns (exit code, output)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.output()
