"""What a killed ``nlp182 serve`` leaves behind, and the checks a new one makes before it binds.

A master killed with SIGKILL runs no cleanup: its pid file and its Prometheus multiprocess folder
stay. The next ``serve`` removes them when it can prove they are a dead master's (see
:func:`nlp182.pids.owner_alive`): the pid file names a process that is gone, or one that is not an
``nlp182 serve``; the metrics folder carries its master's pid in its name
(``nlp182-metrics-<pid>-*``, in the temporary folder, owned by this user). A pid file of a live
server is refused in one line, and so is a port something else already listens on (gunicorn
would otherwise retry for five seconds and exit with a page of log lines).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import psutil

from nlp182.errors import InvalidInputError
from nlp182.pids import owner_alive

log = logging.getLogger(__name__)

METRICS_PREFIX = "nlp182-metrics-"
_METRICS_NAME = re.compile(rf"{METRICS_PREFIX}(\d+)-")


def metrics_folder() -> str:
    """Create this master's Prometheus multiprocess folder, named after its pid; return its path."""
    return tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")


def _is_serve(pid: int) -> bool:
    """True when ``pid`` runs ``nlp182 ... serve`` (the command line names both)."""
    try:
        args = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "serve" in args and any("nlp182" in arg for arg in args)


def remove_dead_metrics_folders(pid: int | None = None) -> list[Path]:
    """Remove metrics folders of masters that are gone (only ``pid``'s when given); return them."""
    removed = []
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            match = _METRICS_NAME.match(folder.name)
            if match is None or (pid is not None and int(match.group(1)) != pid):
                continue
            try:
                info = folder.lstat()
            except OSError:
                continue
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
                continue
            if owner_alive(int(match.group(1)), info.st_mtime):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def clear_dead_metrics_folders() -> None:
    """Remove the metrics folders of every master that is gone, with one log line if there were any."""
    removed = remove_dead_metrics_folders()
    if removed:
        names = ", ".join(str(folder) for folder in removed)
        log.info("removed the metrics folder(s) of stopped server(s): %s", names)


def claim_pid_file(path: str | os.PathLike[str]) -> None:
    """Make way for this master's pid file at ``path``, or refuse in one line.

    A pid file of a running ``nlp182 serve`` is refused; one holding no pid, a pid that is gone or
    one that is not a server (a reused id) is stale: it is removed with its master's metrics
    folder, and one line says so.
    """
    target = Path(path)
    try:
        info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"--pid-file {path} is not a regular file; choose another --pid-file")
        with target.open("rb") as handle:
            text = handle.read(64).decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        _check_writable_folder(target)
        return
    except OSError as exc:
        raise InvalidInputError(f"--pid-file {path} cannot be read ({exc.strerror}); choose another "
                                "--pid-file") from None
    if (text and not (text.isascii() and text.isdigit())) or info.st_size > 32:
        raise InvalidInputError(
            f"--pid-file {path} holds something other than a process id; it is left as it is: "
            "choose another --pid-file"
        )
    _check_writable_folder(target)
    written = info.st_mtime
    pid = int(text) if text else 0
    if pid and owner_alive(pid, written) and _is_serve(pid):
        raise InvalidInputError(
            f"--pid-file {path}: nlp182 serve already runs as pid {pid}; stop it (kill {pid}) "
            "or choose another --pid-file"
        )
    target.unlink(missing_ok=True)
    folders = remove_dead_metrics_folders(pid) if pid else []
    also = f" and its metrics folder {folders[0]}" if folders else ""
    log.info("removed the stale pid file %s%s (pid %s is not a running server)", path, also, pid or "missing")


def _check_writable_folder(pid_file: Path) -> None:
    folder = pid_file.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"--pid-file {pid_file}: the folder {folder} does not exist or cannot be written; create it "
            "or choose another --pid-file"
        )


def check_port_free(host: str, port: int) -> None:
    """Refuse in one line when ``host:port`` cannot be bound (another process listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInputError(
                    f"--port {port}: {host}:{port} is already in use by another process; stop it "
                    "or choose another --port"
                ) from None
            raise InvalidInputError(f"--host {host} --port {port} cannot be bound ({exc.strerror})") from None
