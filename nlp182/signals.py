"""SIGTERM raised like Ctrl-C, so that a stopped command cleans up as an interrupted one does.

Python's default for SIGTERM ends the process at once: no ``finally`` block runs, and a staging
folder or temporary file of a save in progress stays behind. :func:`interrupt_on_sigterm` makes
SIGTERM raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread instead, so every
cleanup written for Ctrl-C runs for it too. A second SIGTERM ends the process at once.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


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
