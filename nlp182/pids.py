"""Whether the process that left a file behind still runs: for the leftovers of killed runs.

Staging folders, temporary files, pid files and the server's metrics folder carry the id of the
process that made them. A later run removes such a leftover only when that process is gone: no
process has the id, it is a zombie, or the id now names a younger process (ids are reused), which
cannot have written a file older than itself.
"""

from __future__ import annotations

import os

import psutil

#: Seconds of slack between a process's recorded start and the time stamp of a file it wrote.
CLOCK_SLACK_S = 1.0


def owner_alive(pid: int, written_at: float) -> bool:
    """True when process ``pid`` runs and started before ``written_at`` (seconds since the epoch).

    Such a process may be the one that wrote a file at ``written_at``, so its file must be left
    alone; when in doubt (the process exists but cannot be inspected) the answer is True.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= written_at + CLOCK_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
