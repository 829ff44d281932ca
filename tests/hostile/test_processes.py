"""Processes killed outright: a serve master's workers stop with it, and the next run cleans up.

Covers ``kill -9`` of the ``serve`` master (workers, port, pid file, metrics folder), a pid file
of a live server, a port already taken, and SIGTERM / a dead owner's staging folders of a save.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import psutil
import pytest

from nlp182.errors import InvalidInputError
from nlp182.server.process import ServeProcess, free_port
from nlp182.server.worker import Worker
from tests.hostile.child import run_nlp182
from tests.server.conftest import make_synthetic_run


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_kill_9_of_the_master_stops_its_workers_and_the_next_serve_clears_leftovers(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run")
    pid_file = tmp_path / "serve.pid"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    flags = ("--workers", "2", "--threads", "2", "--pid-file", str(pid_file), "--request-timeout", "5")
    first = ServeProcess(run, *flags, env=env)
    workers = [p.pid for p in first.workers(2)]
    # A request still arriving when the master dies (held by the 5 s request timeout): its worker
    # answers it 408 and exits, within the graceful timeout (7 s) the master would have enforced.
    arriving = socket.create_connection(("127.0.0.1", first.port), timeout=10)
    try:
        arriving.sendall(b"POST /v1/neighbors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 100\r\n\r\n{")
        (metrics,) = temp.glob("nlp182-metrics-*")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        stopped = _wait(lambda: all(_gone(pid) for pid in workers) and not _listening(first.port), 15.0)
    finally:
        arriving.close()
        for pid in workers:  # only if the test failed: never leave a worker of ours behind
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert stopped, f"workers {workers} or port {first.port} still alive 15 s after the master died"
    assert pid_file.read_text().strip() == str(first.process.pid) and metrics.is_dir()  # nothing cleaned yet

    second = ServeProcess(run, *flags, port=first.port, env=env)
    try:
        assert pid_file.read_text().strip() == str(second.process.pid)
        assert not metrics.exists() and len(list(temp.glob("nlp182-metrics-*"))) == 1
        assert f"removed the stale pid file {pid_file} and its metrics folder {metrics}" in second.output()
        # A second server on the same pid file, or on the same port, is refused in one line.
        other_port = str(free_port())
        refused = run_nlp182("serve", str(run), "--port", other_port, "--pid-file", str(pid_file), env=env)
        refused.assert_refused(f"nlp182 serve already runs as pid {second.process.pid}")
        taken = run_nlp182("serve", str(run), "--port", str(second.port), env=env)
        taken.assert_refused(f"--port {second.port}", "already in use")
    finally:
        code, output = second.stop()
    assert code == 0 and "Traceback" not in output, output[-3000:]
    assert not pid_file.exists() and not list(temp.glob("nlp182-metrics-*"))


def test_a_pid_file_naming_a_process_that_is_not_a_server_is_stale(tmp_path: Path) -> None:
    from nlp182.server.leftovers import claim_pid_file, metrics_folder

    pid_file = tmp_path / "serve.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this pytest process: alive, but not `nlp182 serve`
    claim_pid_file(pid_file)
    assert not pid_file.exists()
    with pytest.raises(InvalidInputError, match="--pid-file /dev/zero is not a regular file"):
        claim_pid_file("/dev/zero")  # never read: it has no end
    notes = tmp_path / "notes.txt"  # a mistyped --pid-file naming a user's file: refused, kept
    for text in ("important notes\n", "1 2\n"):
        notes.write_text(text)
        with pytest.raises(InvalidInputError, match="holds something other than a process id"):
            claim_pid_file(notes)
        assert notes.read_text() == text
    with pytest.raises(InvalidInputError, match="does not exist or cannot be written"):
        claim_pid_file(tmp_path / "no" / "such" / "serve.pid")
    # A dead pid: its metrics folder goes with the pid file; another master's folder stays.
    dead = psutil.Popen(["true"])
    dead.wait()
    os.environ["TMPDIR"], before = str(tmp_path), os.environ.get("TMPDIR")
    import tempfile

    tempfile.tempdir = None
    try:
        mine = Path(metrics_folder())
        stale = tmp_path / f"nlp182-metrics-{dead.pid}-abc"
        stale.mkdir()
        pid_file.write_text(f"{dead.pid}\n")
        claim_pid_file(pid_file)
        assert not pid_file.exists() and not stale.exists() and mine.is_dir()
    finally:
        if before is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None


def test_a_worker_asks_the_kernel_for_sigterm_when_its_parent_dies() -> None:
    script = (
        "import ctypes, signal\n"
        "from nlp182.server.worker import die_with_parent\n"
        "assert die_with_parent()\n"
        "value = ctypes.c_int()\n"
        "ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG\n"
        "print(value.value == signal.SIGTERM)\n"
    )
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"


def test_a_worker_whose_parent_changed_stops_itself_within_a_poll() -> None:
    """The portable fallback: the parent check sends the worker its own graceful SIGTERM, and
    exits outright if that stop outlasts the graceful timeout."""
    worker = SimpleNamespace(ppid=os.getppid(), parent_poll_s=0.05, log=logging.getLogger("test"),
                             cfg=SimpleNamespace(graceful_timeout=0.2))
    with mock.patch("os.kill") as kill, mock.patch("os._exit") as exit_now:
        async def adopted() -> None:  # the master dies after two polls: the worker's parent changes
            task = asyncio.create_task(Worker._watch_parent(worker))
            await asyncio.sleep(0.12)
            assert not kill.called
            worker.ppid = -1
            await asyncio.sleep(0.1)
            kill.assert_called_once_with(os.getpid(), signal.SIGTERM)
            assert not exit_now.called  # the graceful stop has its time first
            await asyncio.wait_for(task, 1.0)

        asyncio.run(adopted())
    exit_now.assert_called_once_with(0)
