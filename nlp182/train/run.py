"""A run folder that survives interruption: staged beside its destination, kept when a run stops.

``resumable_run("runs/g2p", resume)`` yields ``runs/g2p.incomplete``; the run writes everything
there (the Trainer's checkpoints under it). When the block finishes, that folder replaces
``runs/g2p`` as a whole, so a reader never sees half a run. When it fails or is interrupted
(Ctrl-C), the folder stays with every complete checkpoint, and ``resume=True`` picks it up again.
Starting a fresh run over an interrupted one that holds checkpoints is refused rather than
deleting them. One process at a time stages a run: a second run (or a ``--resume``) into the same
folder while the first still trains is refused, where it would have deleted the first's folder or
written its checkpoints and metrics beside the first's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, OutputError
from nlp182.io import atomic_write_json, check_run_folder, current_umask, read_json, replace_directory
from nlp182.settings import from_saved

log = logging.getLogger(__name__)

INCOMPLETE_SUFFIX = ".incomplete"
#: Settings a resumed run may change (one name each in every config); every other setting comes
#: from the interrupted run.
RESUME_OVERRIDES = ("epochs", "threads", "device", "progress", "time_budget_s")


def incomplete_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Where the run for ``out_dir`` is staged until it finishes."""
    out = Path(out_dir)
    return out.with_name(out.name + INCOMPLETE_SUFFIX)


def check_finished(run: Path, command: str) -> None:
    """Refuse to load an unfinished run as a model: ``OUT.incomplete`` holds a checkpoint's weights
    and a config (a translation from it printed garbage with exit 0), and a missing ``OUT`` beside
    one is a run to resume, which the message says with the ``command`` that trained it.

    Raises:
        InvalidInputError: ``run`` is a staging folder.
        MissingFileError: ``run`` does not exist but its staging folder does.
    """
    if run.name.endswith(INCOMPLETE_SUFFIX) and len(run.name) > len(INCOMPLETE_SUFFIX):
        out = run.with_name(run.name.removesuffix(INCOMPLETE_SUFFIX))
        raise InvalidInputError(
            f"{run} is an unfinished run (its weights are a checkpoint's, not a trained model's): "
            f"finish it with `{command} --resume --out {out}`, then use {out}"
        )
    if not run.exists() and incomplete_dir(run).is_dir():
        raise MissingFileError(
            f"{run} does not exist; {incomplete_dir(run)} holds its unfinished run: finish it with "
            f"`{command} --resume --out {run}`"
        )


def has_checkpoints(folder: Path) -> bool:
    """Whether the staged run ``folder`` holds a checkpoint to resume from."""
    return any(folder.rglob("step-*.safetensors"))


#: The file of a staged run holding what was chosen from the data, for a resumed run's metrics.json.
CHOSEN_FILE = "chosen.json"
#: The settings file of a run, which a trainer writes into its staged run last of what a resume
#: reads back (after :data:`CHOSEN_FILE`, a vocabulary, tokenisers).
SETTINGS_FILE = "config.json"


def holds_settings(staging: Path) -> bool:
    """Whether the staged run ``staging`` saved the settings a resume reads back: without them a
    resume has only the command line's, which name other data (``--data`` defaults to a demo)."""
    return (staging / SETTINGS_FILE).is_file() and (staging / CHOSEN_FILE).is_file()


def check_resumable(out_dir: str | os.PathLike[str]) -> Path:
    """The staged run of ``out_dir`` that ``--resume`` continues; before any data is read, a
    one-line error when there is none or it was stopped before it saved its settings."""
    staging = incomplete_dir(out_dir)
    if not staging.is_dir():
        raise MissingFileError(f"nothing to resume: {staging} does not exist (it holds an interrupted run)")
    if not holds_settings(staging):
        raise MissingFileError(f"nothing to resume: {staging} holds no settings (the run was stopped before "
                               "it saved them); start it again without --resume")
    return staging


def resumed_choices(staged: Path, typed: Collection[str] | None) -> dict[str, Any]:
    """What the interrupted run staged in ``staged`` chose from the data (its :data:`CHOSEN_FILE`;
    empty when it has none), without the settings the resumed run was given anew (``--epochs 7``:
    no longer the data's choice)."""
    chosen = read_json(staged / CHOSEN_FILE) if (staged / CHOSEN_FILE).is_file() else {}
    given_anew = set(typed or ()) & set(RESUME_OVERRIDES)
    return {name: why for name, why in chosen.items() if name not in given_anew}


#: The file of a staged run holding a digest of the data it trains on, compared by a resumed run.
DATA_FILE = "data.json"


def _data_digest(splits: Sequence[Iterable[Any]]) -> dict[str, Any]:
    """A digest of a run's data: the SHA-256 of its splits' items (each as JSON, in order) and the
    number of items in each split."""
    digest, counts = hashlib.sha256(), []
    for split in splits:
        count = 0
        for item in split:
            digest.update(json.dumps(item, ensure_ascii=False).encode())
            digest.update(b"\n")
            count += 1
        digest.update(b"\x00")
        counts.append(count)
    return {"sha256": digest.hexdigest(), "items": counts}


def check_same_data(staging: Path, splits: Sequence[Iterable[Any]], resumed: bool, source: str) -> None:
    """Record a digest of the data ``splits`` (items JSON can write) in a fresh run's ``staging``
    folder; refuse to resume a run whose data (read again from ``source``) is no longer what it
    started with: the run would go on training its model, vocabulary and schedule on other data
    without a word. A run staged without a digest is resumed unchecked."""
    digest = _data_digest(splits)
    path = staging / DATA_FILE
    if resumed and path.is_file():
        saved = read_json(path)
        if saved.get("sha256") != digest["sha256"]:
            raise InvalidInputError(
                f"--resume continues the interrupted run on the data it started with, and {source} "
                f"holds other data now ({'/'.join(map(str, digest['items']))} items in its splits, the run "
                f"had {'/'.join(map(str, saved.get('items', [])))}); put the original back, or train a "
                "new run (another --out)"
            )
        return
    atomic_write_json(path, digest)


def resumed_config(
    config_class: type, out_dir: str | os.PathLike[str], given: Any,
    overrides: Collection[str] = RESUME_OVERRIDES, typed: Collection[str] | None = None,
) -> Any:
    """The interrupted run's settled config (its staged ``config.json``), with the settings named in
    ``overrides`` that ``given`` (the config the resuming command built) sets: those a resumed run
    may change (more epochs, another device, ...). A setting counts as set when it is in ``typed``
    (the fields whose flags were on the command line, typed at their default value too) or differs
    from its default; any other setting set to another value than the run's is refused."""
    typed = frozenset(typed or ())
    path = incomplete_dir(out_dir) / "config.json"
    if not path.is_file():
        raise MissingFileError(f"nothing to resume: {path} does not exist (it holds an interrupted run)")
    saved = read_json(path)
    defaults = config_class()
    try:
        settled = from_saved(config_class, saved)  # former setting names read as today's
    except (TypeError, InvalidInputError) as exc:  # a damaged or hand-edited file: say which
        raise FileFormatError(f"{path} is not the config of this command: {exc}") from exc
    changed = _changed_settings(_as_json(given), _as_json(defaults), _as_json(settled), set(overrides), typed)
    if changed:
        raise InvalidInputError(
            f"--resume continues the interrupted run with its own settings, and {'; '.join(changed)}; only "
            f"{', '.join(overrides)} may change (other settings need a new run: another --out)"
        )
    moved = {name: value for name in overrides
             if (value := getattr(given, name)) != getattr(defaults, name) or name in typed}
    return dataclasses.replace(settled, **moved)


def _as_json(config: Any) -> dict[str, Any]:
    """A config as its ``config.json`` holds it (tuples as lists, nested configs as objects)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _changed_settings(given: dict[str, Any], defaults: dict[str, Any], saved: dict[str, Any],
                      allowed: set[str], typed: frozenset[str] = frozenset(), prefix: str = "") -> list[str]:
    """``"NAME was given as X, the run has Y"`` for each setting ``given`` sets (typed, or away from
    its default) to another value than the interrupted run's (nested configs field by field)."""
    changed = []
    for name, value in given.items():
        if not prefix and name in allowed:
            continue
        default, kept = defaults.get(name), saved.get(name)
        if isinstance(value, dict) and isinstance(kept, dict):
            changed += _changed_settings(value, default or {}, kept, allowed, typed, f"{prefix}{name}.")
        elif (value != default or name in typed) and value != kept:
            changed.append(f"{prefix}{name} was given as {value!r}, the run has {kept!r}")
    return changed


@contextlib.contextmanager
def _only_writer(out_dir: Path) -> Iterator[None]:
    """Hold the lock of ``out_dir``'s run (a file beside it, locked while the block runs and removed
    after); another process holding it is refused by name."""
    path = out_dir.with_name(f".{out_dir.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InvalidInputError(
                f"another process is writing the run {out_dir} (its {incomplete_dir(out_dir).name} folder); "
                "wait for it to finish, or choose another --out"
            ) from None
        with contextlib.suppress(FileNotFoundError):  # the file locked is still the one named
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        handle.close()  # its holder removed it while this process opened it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before the lock is let go: a process that opened it tries again
        handle.close()


@contextlib.contextmanager
def resumable_run(
    out_dir: str | os.PathLike[str], resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """Yield the staging folder of ``out_dir``; move it into place on success, keep it otherwise.
    ``out_dir`` follows the run-folder contract (:func:`~nlp182.io.check_run_folder`), before the
    run and again before the move: a file, or a folder of other files, is never replaced, and an
    earlier run only with ``overwrite``. The files only a resume reads (:data:`CHOSEN_FILE`,
    :data:`DATA_FILE`) are removed before the move. The whole run holds ``out_dir``'s lock
    (:func:`_only_writer`). One process writes a staged run: under ``torchrun`` every process would
    stage and write the same one, so that is refused."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InvalidInputError(
            f"this run is trained by one process, but torchrun started {os.environ['WORLD_SIZE']}; run the "
            "command without torchrun (torchrun serves word2vec and scripts on the Trainer)"
        )
    check_run_folder(out_dir, overwrite)
    with _only_writer(Path(out_dir)):
        yield from _staged_run(Path(out_dir), resume, overwrite)


def _staged_run(out_dir: Path, resume: bool, overwrite: bool) -> Iterator[Path]:
    staging = incomplete_dir(out_dir)
    if resume and not staging.is_dir():
        raise MissingFileError(f"nothing to resume: {staging} does not exist (it holds an interrupted run)")
    if not resume and staging.exists():
        if has_checkpoints(staging) and not overwrite:
            raise InvalidInputError(
                f"{staging} holds an interrupted run with checkpoints; pass --resume to continue it, "
                "or --overwrite to start over"
            )
        if has_checkpoints(staging):  # --overwrite starts over: it was refused with this folder in the way
            log.warning("starting over (--overwrite): the interrupted run in %s is deleted", staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    staging.chmod(0o777 & ~current_umask())
    try:
        yield staging
    except Exception:
        if has_checkpoints(staging) or resume:
            log.warning("the unfinished run is kept in %s", staging)
        else:  # an error before the first checkpoint (a misspelt setting): nothing to resume
            shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:  # Ctrl-C, SIGTERM: kept, to resume
        if resume or has_checkpoints(staging) or holds_settings(staging):
            log.warning("the unfinished run is kept in %s", staging)
        else:  # stopped before its settings were saved: nothing a resume could continue
            shutil.rmtree(staging, ignore_errors=True)
        raise
    for bookkeeping in (CHOSEN_FILE, DATA_FILE):  # what a resume reads: not part of the finished run
        (staging / bookkeeping).unlink(missing_ok=True)
    try:
        check_run_folder(out_dir, overwrite)  # still replaceable after the work?
    except OutputError:
        log.warning("the finished run is kept in %s", staging)
        raise
    replace_directory(staging, out_dir)
