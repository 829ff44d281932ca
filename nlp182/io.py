"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A reader never sees a half-written model, index or checkpoint, and a crash leaves the previous
version intact. ``staged_directory`` does the same for a whole run folder. Files and folders get
the permissions the user's umask gives a new file (0644 / 0755 under the usual 022), not the
0600 / 0700 of the temporary files they start as.

The run-folder contract every command with ``--out`` follows (``check_run_folder``): an existing
non-empty folder is refused unless ``--overwrite``, and even then only a folder holding one of our
runs (its ``config.json``) is replaced; a regular file is never replaced; and the location is
checked for writability before any work, with the path the user gave in the message.

Staging folders and temporary files are named after their target, the id of the process that
makes them and the machine it runs on (``.NAME.PID.hTAG.XXXXXXXX.staging``, ``...tmp``; the tag is
:func:`nlp182.pids.process_space`). They are removed when the work fails or is interrupted (SIGTERM
too, see :mod:`nlp182.signals`); one left by a process that was killed outright is removed by the
next save to the same target on the same machine, with one log line.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import math
import os
import platform
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from nlp182.bounded import MAX_WHOLE_FILE_BYTES, read_capped
from nlp182.errors import OutputError
from nlp182.pids import owner_alive, process_space, same_space

log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """The package's cache (compiled kernels, encoded corpora), as an absolute path:
    ``$NLP182_CACHE`` when set (``~`` expanded), else ``$XDG_CACHE_HOME/nlp182``, else
    ``~/.cache/nlp182``. Where the default cannot be written (a service user without a home, a
    read-only home) a private folder in the system's temporary folder is used, with one warning; a
    ``$NLP182_CACHE`` that cannot be written is an error naming it."""
    given = os.environ.get("NLP182_CACHE", "").strip()
    if given:
        return _writable_cache(Path(given).expanduser().absolute(), chosen=True)
    base = Path(os.environ.get("XDG_CACHE_HOME", "").strip()).expanduser()
    if base.is_absolute():  # the XDG rule: a relative one is ignored
        return _writable_cache(base / "nlp182", chosen=False)
    try:
        home: Path | None = Path.home()
    except RuntimeError:  # no $HOME and no passwd entry for this user (a container's bare uid)
        home = None
    return _writable_cache(None if home is None else (home / ".cache" / "nlp182").absolute(), chosen=False)


_CHECKED_CACHES: dict[tuple[Path | None, bool], Path] = {}


def _writable_cache(folder: Path | None, chosen: bool) -> Path:
    """``folder`` once it exists and can be written; else (or with no folder: no home) the
    fallback (see ``cache_folder``)."""
    key = (folder, chosen)
    if key not in _CHECKED_CACHES:
        usable = False
        try:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                usable = os.access(folder, os.W_OK | os.X_OK)
        except OSError:
            usable = False
        if not usable and chosen:
            raise OutputError(f"the cache folder {folder} ($NLP182_CACHE) cannot be created or written; "
                              "set NLP182_CACHE to a folder this user can write")
        _CHECKED_CACHES[key] = folder if usable else _private_temporary_cache(folder)
    return _CHECKED_CACHES[key]


def _private_temporary_cache(wanted: Path | None) -> Path:
    """A folder of this user's alone in the temporary folder (mode 0700, owned by this user: one
    another user made could plant compiled kernels), used when ``wanted`` cannot be written."""
    folder = Path(tempfile.gettempdir()) / f"nlp182-cache-{os.getuid()}"
    wanted_text = str(wanted) if wanted is not None else "~/.cache/nlp182 (this user has no home)"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise OutputError(f"the cache folder {wanted_text} cannot be written, nor {folder} ({exc}); set "
                          "NLP182_CACHE to a folder this user can write") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OutputError(f"the cache folder {wanted_text} cannot be written, and {folder} is not this "
                          "user's private folder; set NLP182_CACHE to a folder this user can write")
    log.warning("the cache folder %s cannot be written; caching in %s (set NLP182_CACHE to choose)",
                wanted_text, folder)
    return folder


def written_by() -> dict[str, str]:
    """What wrote a run or index (kept in its ``metrics.json`` / ``index.json``): the versions of
    nlp182, Python and the libraries whose formats and numbers a run depends on, so a user can
    tell what made an old run, and a later version what it is reading."""
    from importlib import metadata

    import nlp182

    found = {"nlp182": nlp182.__version__, "python": platform.python_version()}
    for package in ("torch", "numpy", "faiss-cpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask: read from ``/proc/self/status`` where Linux shows it, else by setting it
    and putting it back under a lock. Setting it is process-wide, so two threads saving at once
    could each read the other's temporary 0o022 and write private files readable by all."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", final: Callable[[], Path] | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``, or to
    what ``final()`` names then (a file named by what was written, as a hash of it, in ``path``'s
    folder; ``path`` then names only the temporary file). A file already there under that name
    holds the same bytes and is kept as it is: a reader of it never sees it replaced."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open writes whole files: mode must be 'w' or 'wb'")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=leftover_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as exc:  # a read-only folder: name the file being written, not a temporary name
        exc.filename = str(target)
        raise
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if final is None:
            os.replace(tmp, target)
        elif os.path.exists(named := final()):  # the same content, written before: keep that file
            os.unlink(tmp)
        else:
            os.replace(tmp, named)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _note_target(exc, target)
        raise


_WRITING = "while writing "


def _note_target(exc: BaseException, target: Path) -> None:
    """Name ``target`` on an ``OSError`` that names no file (NumPy's short write on a full disk:
    "N requested and M written"), as a note :func:`failed_write_target` reads back."""
    noted = any(note.startswith(_WRITING) for note in getattr(exc, "__notes__", ()))
    if isinstance(exc, OSError) and exc.filename is None and not noted:
        exc.add_note(f"{_WRITING}{target}")


def _named_in_target(exc: BaseException, staging: Path, target: Path) -> None:
    """Name ``target`` in place of ``staging`` (a folder removed by now) in an ``OSError``: in its
    ``filename`` and its notes; one that names no file gets a note naming ``target``."""
    if not isinstance(exc, OSError):
        return
    inside = str(staging)

    def moved(name: str) -> str:
        return str(target) + name[len(inside):] if name.startswith(inside) else name

    if exc.filename is not None and exc.errno is not None:
        exc.filename = moved(str(exc.filename))
    notes = getattr(exc, "__notes__", [])
    for index, note in enumerate(notes):
        if note.startswith(_WRITING):
            notes[index] = _WRITING + moved(note.removeprefix(_WRITING))
    _note_target(exc, target)


def failed_write_target(exc: OSError) -> str | None:
    """The file an ``OSError`` was raised writing: its ``filename``, or what a write here noted."""
    notes = [note for note in getattr(exc, "__notes__", ()) if note.startswith(_WRITING)]
    return exc.filename or (notes[0].removeprefix(_WRITING) if notes else None)


def leftover_prefix(target: Path) -> str:
    """The start of the name of a temporary file or folder made for ``target`` by this process
    (``.NAME.PID.hTAG.``): what ``remove_dead_leftovers`` finds again once the process is gone."""
    return f".{target.name}.{os.getpid()}.{process_space()}."


#: What follows ``.NAME.`` in a leftover's name: the pid, the process space (absent in names
#: written before they carried one), then the temporary file's random part or ``backup``.
_OWNER = r"(\d+)\.(?:(h[0-9a-f]{8})\.)?"


def remove_dead_leftovers(path: str | os.PathLike[str], every_name: bool = False) -> list[Path]:
    """Remove the staging folders and temporary files of ``path`` whose process is gone; return them.

    Only names this module makes (``.NAME.PID.hTAG.XXXXXXXX.staging`` / ``.tmp`` / ``.old`` beside
    ``path``; with ``every_name``, of any ``NAME`` in that folder, for a folder of the package's
    own, as its cache) are considered, and only those of a process of this machine that no longer
    runs (:func:`nlp182.pids.owner_alive`), so a save in progress in another process, or on another
    machine sharing the folder, is never disturbed.
    A run folder's moved-aside previous run is put back before this, by :func:`check_run_folder`.
    """
    target = Path(path)
    name = r".+" if every_name else re.escape(target.name)
    pattern = re.compile(rf"\.{name}\.{_OWNER}[a-z0-9_]+\.(?:staging|tmp|old)")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            written = entry.stat(follow_symlinks=False).st_mtime
            if not same_space(match.group(2)) or owner_alive(int(match.group(1)), written):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d leftover(s) of an earlier run that was killed: %s", len(removed),
                 ", ".join(str(leftover) for leftover in removed))
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically; a nan or infinite number is written
    as ``null`` (``NaN`` is not JSON: strict readers, a browser's ``JSON.parse`` among them, refuse
    the file), as a correlation of constant scores is nan."""
    atomic_write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON text :func:`atomic_write_json` writes (nan and inf as null)."""
    return json.dumps(finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every float that is nan or infinite replaced by None, in dicts, lists and tuples
    (the files written here and the service's answers are standard JSON, RFC 8259)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_null(value) for value in obj]
    return obj


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` (no pickled objects) to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def check_input_file(path: str | os.PathLike[str], what: str = "", missing_hint: str = "") -> Path:
    """Return ``path`` if it names a regular file this process can read; else one error naming it.

    The one check of every input file the user names, so each says what is wrong: "does not
    exist" (then ``missing_hint``), "is a directory", "is not a regular file" (a device such as
    ``/dev/zero``, a pipe or a socket, which a reader would wait on or read without end) or
    "cannot be read". ``what`` is put before the path (``"--data"``, ``"image"``).
    """
    from nlp182.errors import InvalidInputError, MissingFileError

    target = Path(path)
    label = f"{what} {os.fspath(path)}" if what else os.fspath(path)
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFileError(f"{label} does not exist{missing_hint}") from None
    except OSError as exc:
        raise InvalidInputError(f"{label} cannot be read ({(exc.strerror or 'error').lower()})") from None
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{label} is a directory, not a file; name a file")
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{label} is not a regular file (a device, pipe or socket); name a file")
    if not os.access(target, os.R_OK):
        raise InvalidInputError(f"{label} cannot be read (permission denied)")
    return target


#: Objects and arrays a JSON document read whole may hold: each costs a hundred bytes or more
#: once parsed, so 256 MiB of ``[{},{},...]`` would take gigabytes. COCO's Karpathy file holds
#: about 1.6M.
MAX_JSON_CONTAINERS = 5_000_000


def parse_json(data: bytes | str, where: str, locate: bool = True) -> Any:
    """Parse one JSON document read whole, as a package error when it is not valid JSON, nests
    past Python's recursion limit, holds an integer of thousands of digits, or holds more than
    ``MAX_JSON_CONTAINERS`` objects and arrays (counted before parsing: ``{`` and ``[`` bytes).

    Raises:
        FileFormatError: naming ``where`` and (with ``locate``) the line where the parser stopped.
    """
    from nlp182.errors import FileFormatError

    marks = (b"{", b"[") if isinstance(data, bytes) else ("{", "[")
    opened = sum(data.count(mark) for mark in marks)  # type: ignore[arg-type]
    if opened > MAX_JSON_CONTAINERS:
        raise FileFormatError(
            f"{where} holds {opened:,} JSON objects and arrays, more than {MAX_JSON_CONTAINERS:,} read whole "
            "take memory for; write records as JSON Lines (one a line), which are read a line at a time"
        )
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        if locate:
            raise FileFormatError(f"{where} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        raise FileFormatError(f"{where} is not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8: {exc.reason} at byte {exc.start}"
        raise FileFormatError(f"{where} is not valid JSON ({reason})") from None
    except RecursionError:
        raise FileFormatError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise FileFormatError(f"{where}: not readable JSON ({exc})") from None


def read_json(path: str | os.PathLike[str], max_bytes: int = MAX_WHOLE_FILE_BYTES) -> Any:
    """Read a JSON file of at most ``max_bytes``, turning a missing, oversized or malformed file into
    a package error (:func:`parse_json`)."""
    target = check_input_file(path)
    return parse_json(read_capped(target, max_bytes), str(target))


RUN_MARKER = "config.json"


def _given(path: str | os.PathLike[str]) -> str:
    """The path as the user typed it (for messages), never a resolved or staging path."""
    return os.fspath(path)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or the closest ancestor of it that exists (``/`` at worst)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _probe_writable(folder: Path, given: str, flag: str) -> None:
    """Create and remove an empty folder inside ``folder``: the same call staging makes, so its
    success means the output can be written (``os.access`` says yes to root on ``/proc``)."""
    if not folder.is_dir():
        raise OutputError(f"cannot write {flag} {given}: {folder} is not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".nlp182-probe.", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        message = f"cannot write {flag} {given}: {folder} is not writable ({reason.lower()})"
        raise OutputError(message) from None
    os.rmdir(probe)


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a run of ours: a ``config.json`` that says what kind
    of run it is (:func:`run_kind`). A ``config.json`` alone is not enough: editors, web projects
    and other tools write one, and ``--overwrite`` replaced such a folder with all it held."""
    return Path(path).is_dir() and run_kind(path) is not None


def _replaceable(target: Path, given: str, flag: str, overwrite: bool) -> None:
    """Raise unless ``target`` may be replaced by a new run folder (see :func:`check_run_folder`)."""
    if not os.path.lexists(target):
        return
    if target.is_symlink() or not target.is_dir():
        raise OutputError(f"{flag} {given} is a file, not a folder; choose another {flag}")
    if not any(target.iterdir()):
        return
    if not overwrite:
        raise OutputError(
            f"{flag} {given} exists and is not empty; pass --overwrite to replace a previous run, "
            f"or choose another {flag}"
        )
    if not is_run_folder(target):
        raise OutputError(
            f"{flag} {given} holds files that are not an nlp182 run (no {RUN_MARKER} naming an nlp182 "
            f"task, method or model); refusing to replace it even with --overwrite"
        )


def check_output_path(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Check, before any work, that a file or folder can be created at ``path``; return it.

    Refuses an empty path, the current folder or one of its ancestors, and a location where
    nothing can be created (read-only, ``/proc``, ``/sys``, a parent that is a file). Messages name
    ``flag`` and the path as given.
    """
    given = _given(path)
    if not given.strip():
        raise OutputError(f"{flag} is empty; name a folder to write, e.g. {flag} runs/name")
    target = Path(given).expanduser()
    resolved = target.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        raise OutputError(f"{flag} {given} is the current folder or one above it; name a new folder")
    _probe_writable(_nearest_existing(resolved.parent), given, flag)
    return target


def check_run_folder(path: str | os.PathLike[str], overwrite: bool = False, flag: str = "--out") -> Path:
    """The run-folder contract, checked before any work: return ``path`` if a run may be written there.

    A missing or empty folder is fine. An existing non-empty folder is refused unless ``overwrite``,
    and even then only when it holds a run of ours (``config.json``). A regular file is never
    replaced. The location must be writable. Every refusal is an :class:`OutputError` naming
    ``flag`` and the path the user gave. A previous run that a killed swap moved aside is put back
    first (:func:`_put_back`), and checked as the run it is.
    """
    target = check_output_path(path, flag)
    _put_back(target)
    _replaceable(target, _given(path), flag, overwrite)
    return target


def check_output_file(path: str | os.PathLike[str], overwrite: bool = False, flag: str = "--out") -> Path:
    """Check, before any work, that a single file can be written at ``path``; return it.

    A folder is never replaced; an existing file only with ``overwrite``.
    """
    target = check_output_path(path, flag)
    given = _given(path)
    if target.is_dir():
        raise OutputError(f"{flag} {given} is a folder; name a file")
    if os.path.lexists(target) and not overwrite:
        raise OutputError(f"{flag} {given} exists; pass --overwrite to replace it, or choose another name")
    return target


def run_kind(path: str | os.PathLike[str]) -> str | None:
    """What a run folder holds (``"digits"``, ``"lsa"``, ``"seq2seq"``, ``"caption"``, ...) from
    its config, or None if it does not say. Seq2seq and captioning configs name no task: their
    model settings tell them apart (an ``architecture`` or an image ``encoder``)."""
    config = Path(path) / RUN_MARKER
    if not config.is_file():
        return None
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(config.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            model = data.get("model") if isinstance(data.get("model"), dict) else {}
            models = "caption" if "encoder" in model else "seq2seq" if "architecture" in model else None
            return data.get("task") or data.get("method") or models
    return None


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``path`` as a whole.

    ``path`` is checked first with :func:`check_run_folder`: a file or a folder of someone else's
    files is never replaced, and an earlier run only when ``overwrite``. On any exception the
    temporary folder is removed and ``path`` is left as it was, so a failed run never leaves a
    half-written run folder behind. The swap is two renames; if the second fails the previous
    run is put back.
    """
    target = check_run_folder(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=leftover_prefix(target), suffix=".staging", dir=target.parent))
    staging.chmod(0o777 & ~current_umask())
    try:
        yield staging
        _replaceable(target, _given(path), "--out", overwrite)  # still ours after the work?
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        _named_in_target(exc, staging, target)
        raise
    replace_directory(staging, target)


@contextlib.contextmanager
def staged_entry(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder that becomes ``path`` on success: an entry of a cache keyed by
    content, which two processes may make at once. If ``path`` is there by then (the other process
    finished first: the same content, so the same entry), the folder is dropped and that entry is
    kept. On any exception the temporary folder is removed; an ``OSError`` that names no file (a
    short write) names ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=leftover_prefix(target), suffix=".staging", dir=target.parent))
    staging.chmod(0o777 & ~current_umask())
    try:
        yield staging
        os.rename(staging, target)  # never replaces a folder that has files
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        made_meanwhile = isinstance(exc, OSError) and exc.errno in (errno.ENOTEMPTY, errno.EEXIST)
        if made_meanwhile and exc.filename == str(staging) and target.is_dir():
            return  # the rename found the entry another process made
        _named_in_target(exc, staging, target)
        raise


def _put_back(target: Path) -> None:
    """Where ``target`` is missing, move back the previous run a swap moved aside
    (``.NAME.PID.hTAG.backup.old``) before its process was killed between the swap's two renames:
    that command did not finish, so the folder is left as it was before it."""
    if os.path.lexists(target):
        return
    named = re.compile(rf"\.{re.escape(target.name)}\.{_OWNER}backup\.old")
    for backup in sorted(target.parent.glob(f".{glob.escape(target.name)}.*.backup.old")):
        owner = named.fullmatch(backup.name)
        if (owner is not None and same_space(owner.group(2))
                and not owner_alive(int(owner.group(1)), backup.stat().st_mtime)):
            os.replace(backup, target)
            log.warning("put %s back: a command killed while it replaced that run had moved it aside to %s",
                        target, backup.name)
            return


def replace_directory(staging: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Move the finished folder ``staging`` to ``path``, replacing what was there as a whole; the
    previous folder waits beside it (``.NAME.PID.hTAG.backup.old``) until the new one is in place."""
    staging, target = Path(staging), Path(path)
    backup = None
    if os.path.lexists(target):
        backup = target.with_name(f"{leftover_prefix(target)}backup.old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if backup is not None:
        _remove_previous(backup)


def _remove_previous(folder: Path) -> None:
    """Delete the replaced run ``folder``: one the user had made read-only is made writable first
    (it was theirs to replace), and what still cannot go is named in a warning, not left as a
    hidden copy of the old run without a word."""
    for inner, _, _ in os.walk(folder):  # symlinks are not followed
        with contextlib.suppress(OSError):
            os.chmod(inner, os.stat(inner).st_mode | stat.S_IWUSR | stat.S_IXUSR)
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        log.warning("the previous run moved aside to %s could not be deleted (%s); delete it by hand",
                    folder, (exc.strerror or str(exc)).lower())
