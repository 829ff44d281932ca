"""What a serving master makes sure of before it starts workers: open files to spare, and room
where the workers' metrics files live.

Both fail late and badly otherwise. Out of file descriptors, a worker answers every request with
a 500 (opening a metrics file or importing a module fails) and asyncio logs an ``accept()``
traceback per connection, a million lines in seconds. Out of room, the Prometheus client's files
are sparse memory maps: a worker that writes a page the filesystem cannot back is killed with
SIGBUS mid-request, after startup went well.
"""

from __future__ import annotations

import resource
import shutil

from nlp182.errors import InvalidInputError

#: Open files a worker needs beyond its connections: modules, the run's files, metrics, pipes.
FILES_PER_WORKER = 64
#: Open files for connections: what a worker takes before it refuses to accept more is the OS's
#: business, but fewer than this makes a busy service fail on ordinary load.
MIN_CONNECTION_FILES = 128
#: The open-file limit a serving master raises its own (and its workers') to, where the hard limit allows.
WANTED_OPEN_FILES = 1 << 16
#: macOS's per-process cap (kern.maxfilesperproc) where the hard limit reads unlimited.
MACOS_OPEN_FILES = 10240
#: Room each worker's metrics files may grow into (they start at 64 KiB each, a few per worker).
METRICS_BYTES_PER_WORKER = 4 << 20
#: Room kept free beside them for the master and the filesystem's other users.
METRICS_SPARE_BYTES = 16 << 20


def ensure_open_files(workers: int) -> int:
    """Raise the soft open-file limit to the hard one (an unprivileged process may), and refuse to
    serve with fewer than the ``workers`` need; returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    # At most WANTED_OPEN_FILES (a container's hard limit of a billion makes code that sweeps every
    # descriptor crawl); where the hard limit is unlimited, macOS takes no more than 10240.
    wanted = [WANTED_OPEN_FILES, MACOS_OPEN_FILES] if hard == unlimited else [min(hard, WANTED_OPEN_FILES)]
    for raised in wanted:
        if soft == unlimited or raised <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        except (ValueError, OSError):  # a limit the kernel caps lower: try the next, or keep the soft one
            continue
        soft = raised
        break
    needed = MIN_CONNECTION_FILES + FILES_PER_WORKER * workers
    if soft != unlimited and soft < needed:
        raise InvalidInputError(
            f"the open-file limit is {soft} (ulimit -n), and {workers} worker(s) need at least {needed}: "
            "raise it (ulimit -n 65536, or LimitNOFILE= in the systemd unit), or serve with fewer --workers"
        )
    return soft


def ensure_metrics_room(folder: str, workers: int) -> None:
    """Refuse to serve when the filesystem of the metrics ``folder`` has too little free space for
    ``workers`` workers' memory-mapped metrics files."""
    free = shutil.disk_usage(folder).free
    needed = METRICS_SPARE_BYTES + METRICS_BYTES_PER_WORKER * workers
    if free < needed:
        raise InvalidInputError(
            f"the metrics folder {folder} has {free / 2**20:.1f} MiB free, and {workers} worker(s) need "
            f"{needed / 2**20:.0f} MiB (its files are memory maps: a full filesystem kills a worker with "
            "SIGBUS); free space there, or point TMPDIR (or PROMETHEUS_MULTIPROC_DIR) at a folder with room"
        )
