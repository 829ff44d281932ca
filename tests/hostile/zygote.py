"""Runs ``nlp182`` commands for the hostile-input tests, each in a fresh forked process.

Started once per test session: it imports the CLI (and torch, gensim, ...) once, then for each
JSON request on stdin forks a child that runs ``nlp182.cli.main(argv)`` with its own stdin,
stdout and stderr files and working folder, exactly as the ``nlp182`` console script would. The
parent waits with ``os.wait4``, which gives that child's peak resident memory (``ru_maxrss``, the
pages it shares with this process included, as a fresh ``nlp182`` holds them too), kills it past
its time limit, and answers one JSON line: ``rc``, ``seconds``, ``peak_rss_bytes``, ``timed_out``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import traceback

import gensim.corpora.wikicorpus  # noqa: F401  (imported once here, not in every child)
import torch._dynamo  # noqa: F401  (what torch.optim imports on its first optimizer)

import nlp182.embeddings.importing
import nlp182.seq2seq.train
import nlp182.seq2seq.translator  # noqa: F401
from nlp182.cli import build_parser, main


def _child(request: dict) -> None:
    """Become the command: fresh standard streams on the request's files, then ``main``."""
    for fd, path, flags in ((0, request.get("stdin") or os.devnull, os.O_RDONLY),
                            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
    os.chdir(request["cwd"])
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        code = main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # a traceback reaching the user: the tests look for it in stderr
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(request: dict) -> dict:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request)
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > request["timeout"]:
            os.kill(pid, signal.SIGKILL)
            timed_out = True
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    return {"rc": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - started,
            "peak_rss_bytes": usage.ru_maxrss * 1024, "timed_out": timed_out}


if __name__ == "__main__":
    build_parser()  # imports every command module once
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(_run(json.loads(line))), flush=True)
