"""SIGTERM raised like Ctrl-C, so that a stopped command cleans up as an interrupted one does.

Python's default for SIGTERM ends the process at once: no ``finally`` block runs, and a staging
folder or temporary file of a save in progress stays behind. :func:`interrupt_on_sigterm` makes
SIGTERM raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread instead, so every
cleanup written for Ctrl-C runs for it too. A second SIGTERM ends the process at once.

Processes forked inside :func:`children_die_with_us` (worker pools) are ended by the kernel when
the process that forked them dies, even of SIGKILL, which runs no cleanup at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

PR_SET_PDEATHSIG = 1  # prctl option number (linux/prctl.h)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (raised where it was, like ``KeyboardInterrupt`` for SIGINT)."""


def interrupt_on_sigterm() -> bool:
    """Raise :class:`Terminated` on SIGTERM in this process; False when not on the main thread.

    Only the process that called this raises: a child forked later (a worker pool) that receives
    SIGTERM before it sets its own handler ends as by default.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    owner = os.getpid()

    def _raise(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != owner:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)
    return True


def die_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent exits; False off Linux."""
    if not sys.platform.startswith("linux"):
        return False
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


_guarding = 0  # blocks of children_die_with_us open in this process
_forking_parent = 0  # the pid that is forking, read by the child it forks
_guard_lock = threading.Lock()
_hooked = False


def _before_fork() -> None:
    global _forking_parent
    _forking_parent = os.getpid()


def _after_fork_in_child() -> None:
    if _guarding and die_with_parent(signal.SIGKILL) and os.getppid() != _forking_parent:
        os._exit(1)  # the parent died before the kernel was asked: nobody would end this one


@contextlib.contextmanager
def children_die_with_us() -> Iterator[None]:
    """Every process forked inside this block (a worker pool: ours, ``multiprocessing``'s, a
    library's such as gensim's ``WikiCorpus``) is killed by the kernel (SIGKILL) when the process
    that forked it dies. Without it a ``kill -9`` of a command (an out-of-memory kill, a CI job's
    timeout) left its pool workers blocked on their pipes for ever, each holding its memory.

    The kernel ties the signal to the thread that forked: fork from a thread that outlives the
    children (pools here fork from their caller). Linux only; elsewhere nothing changes.
    """
    global _guarding, _hooked
    with _guard_lock:
        if not _hooked:
            os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
            _hooked = True
        _guarding += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guarding -= 1
