"""Whether the process that left a file behind still runs: for the leftovers of killed runs.

Staging folders, temporary files, pid files and the server's metrics folder carry the id of the
process that made them. A later run removes such a leftover only when that process is gone: no
process has the id, it is a zombie, or the id now names a younger process (ids are reused), which
cannot have written a file older than itself.

A process id means something only on the machine (and in the container) that gave it, so names
that carry one also carry :func:`process_space`, a tag of that machine's boot and pid namespace;
a leftover whose tag is another's is left to the processes that can check it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform

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


@functools.cache
def process_space() -> str:
    """A tag of the space process ids are counted in: ``h`` and eight hex digits of this boot of
    this machine (Linux's ``boot_id``) and this pid namespace (a container has its own).

    Two machines sharing a cache folder over a network file system, or two containers sharing a
    volume, get different tags, so one never takes the other's live staging folder for a dead
    process's. Elsewhere than Linux it is the host's name.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            space = f"{boot.read().strip()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        space = platform.node()
    return "h" + hashlib.sha256(space.encode()).hexdigest()[:8]


def same_space(tag: str | None) -> bool:
    """Whether a name's process-space ``tag`` is this process's; ``None`` (a name written before
    names carried one) is taken as this machine's."""
    return tag is None or tag == process_space()
