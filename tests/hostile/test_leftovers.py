"""Staging folders and temporary files of a save: removed on SIGTERM, and after SIGKILL by the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from nlp182.io import check_run_folder, leftover_prefix, remove_dead_leftovers
from nlp182.pids import process_space
from tests.hostile.child import run_nlp182

# A save that is stopped half way: a run folder being staged, a file beside it being written.
SAVING = """
import sys, time
from pathlib import Path
from nlp182.io import atomic_open, staged_directory
from nlp182.signals import Terminated, interrupt_on_sigterm

interrupt_on_sigterm()
folder = Path(sys.argv[1])
try:
    with staged_directory(folder / "keep", overwrite=True) as staging:
        (staging / "config.json").write_text("{}")
        with atomic_open(folder / "notes.txt", "w") as handle:
            handle.write("half")
            print("saving", flush=True)
            time.sleep(60)
except Terminated:
    sys.exit(143)
"""


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".staging", ".tmp")))


def _stop_while_saving(folder: Path, signum: int) -> int:
    child = subprocess.Popen([sys.executable, "-c", SAVING, str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "saving"
    assert len(_leftovers(folder)) == 2  # the staging folder and the temporary file, named after the pid
    assert all(f".{child.pid}." in name for name in _leftovers(folder))
    child.send_signal(signum)
    return child.wait(timeout=30)


def test_sigterm_during_a_save_removes_its_staging_folder_and_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    previous = '{"task": "digits", "previous": true}'
    (tmp_path / "keep" / "config.json").write_text(previous)
    assert _stop_while_saving(tmp_path, signal.SIGTERM) == 143
    assert _leftovers(tmp_path) == []
    assert (tmp_path / "keep" / "config.json").read_text() == previous  # the old run intact
    assert not (tmp_path / "notes.txt").exists()


# Stopped once, the child is told so; then it sends itself a second SIGTERM while "cleaning up".
STOPPED_TWICE = """
import os, signal, sys, time
from nlp182.signals import Terminated, interrupt_on_sigterm

interrupt_on_sigterm()
try:
    print("ready", flush=True)
    time.sleep(30)
except Terminated:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    except Terminated:
        sys.exit(3)
sys.exit(0)
"""

# A child forked after the handler was set (a worker pool) that catches Ctrl-C as the parent does.
FORKED = """
import os, signal, time
from nlp182.signals import interrupt_on_sigterm

interrupt_on_sigterm()
ready, told = os.pipe()
child = os.fork()
if child == 0:
    try:
        os.write(told, b"r")  # a signal right after fork, before Python is set up in the child, is lost
        time.sleep(30)
    except KeyboardInterrupt:
        os._exit(3)
    os._exit(0)
os.read(ready, 1)
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}")
"""


def test_a_second_sigterm_ends_the_process_at_once() -> None:
    """The first SIGTERM raises so cleanup runs; a second one must end the process by the signal,
    so a cleanup that hangs can still be stopped with another `kill`."""
    child = subprocess.Popen([sys.executable, "-c", STOPPED_TWICE], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM


def test_a_child_forked_after_the_handler_ends_by_sigterm_without_the_parents_cleanup() -> None:
    """A forked worker that gets SIGTERM must end as by default, not raise into code copied from the
    parent, whose cleanup (removing a staging folder) belongs to the parent alone."""
    outcome = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=30)
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.strip() == str(int(signal.SIGTERM))


def test_leftovers_of_a_killed_save_are_removed_by_the_next_save_only_when_their_process_is_gone(
    tmp_path: Path,
) -> None:
    assert _stop_while_saving(tmp_path, signal.SIGKILL) == -signal.SIGKILL
    killed = _leftovers(tmp_path)
    assert len(killed) == 2
    # A save in progress in a live process (this one, started before its file) is never touched.
    live = tmp_path / f".keep.{os.getpid()}.abcdefgh.staging"
    live.mkdir()
    other = tmp_path / f".other.{os.getpid() + 10**7}.abcdefgh.staging"  # no such pid, other target
    other.mkdir()
    removed = remove_dead_leftovers(tmp_path / "keep")
    assert [p.name for p in removed] == [name for name in killed if name.startswith(".keep.")]
    assert live.is_dir() and other.is_dir()
    assert remove_dead_leftovers(tmp_path / "notes.txt")[0].name.startswith(".notes.txt.")
    assert _leftovers(tmp_path) == sorted([live.name, other.name])


def test_a_reused_pid_does_not_protect_an_older_leftover(tmp_path: Path) -> None:
    leftover = tmp_path / f".keep.{os.getpid()}.abcdefgh.staging"
    leftover.mkdir()
    parent = psutil.Process(os.getppid())  # alive, and started before this test
    reused = tmp_path / f".keep.{parent.pid}.zyxwvuts.staging"
    reused.mkdir()
    started = parent.create_time()
    os.utime(reused, (started - 3600, started - 3600))  # written an hour before that process began
    assert [p.name for p in remove_dead_leftovers(tmp_path / "keep")] == [reused.name]
    assert leftover.is_dir()


def test_a_zombie_process_does_not_protect_its_leftovers(tmp_path: Path) -> None:
    """A killed process its parent has not reaped (no init in a container) runs no more: its pid
    must count as dead, so its staging folder is removed."""
    from nlp182.pids import owner_alive

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert owner_alive(zombie.pid, time.time()) is False
        leftover = tmp_path / f".keep.{zombie.pid}.abcdefgh.staging"
        leftover.mkdir()
        assert remove_dead_leftovers(tmp_path / "keep") == [leftover] and not leftover.exists()
    finally:
        zombie.wait()


def test_a_leftover_of_another_machine_sharing_the_folder_is_left_to_it(tmp_path: Path) -> None:
    """A pid says nothing of a process on another host or in another container: its staging folder
    on a shared volume stays, though no process here has that pid; this machine's dead one goes."""
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ours = tmp_path / f"{leftover_prefix(tmp_path / 'keep')}abcdefgh.staging"
    ours.mkdir()
    assert f".{os.getpid()}.{process_space()}." in ours.name
    ours = ours.rename(tmp_path / ours.name.replace(f".{os.getpid()}.", f".{dead.pid}."))
    other_space = "h" + ("0" if process_space()[1] != "0" else "1") * 8
    theirs = tmp_path / f".keep.{dead.pid}.{other_space}.abcdefgh.staging"
    theirs.mkdir()
    moved_aside = tmp_path / f".keep.{dead.pid}.{other_space}.backup.old"  # another host's swap
    moved_aside.mkdir()
    assert [p.name for p in remove_dead_leftovers(tmp_path / "keep")] == [ours.name]
    assert theirs.is_dir()
    check_run_folder(tmp_path / "keep")  # puts back only this machine's moved-aside runs
    assert moved_aside.is_dir() and not (tmp_path / "keep").exists()


def test_import_removes_the_staging_folder_a_killed_import_left(tmp_path: Path) -> None:
    vectors = tmp_path / "vectors.txt"
    rows = np.random.default_rng(0).standard_normal((3, 4)).round(3)
    vectors.write_text("3 4\n" + "".join(f"w{i} {' '.join(map(str, row))}\n" for i, row in enumerate(rows)))
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.{dead.pid}.abcdefgh.staging"
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"half")
    time.sleep(0.01)
    outcome = run_nlp182("import", str(vectors), "--out", str(tmp_path / "out"))
    assert outcome.rc == 0, outcome.err
    assert not stale.exists() and (tmp_path / "out" / "vectors.npy").is_file()
    assert "removed 1 leftover(s) of an earlier run that was killed" in outcome.err


def test_encoding_a_corpus_sweeps_the_dead_staging_of_any_other_in_the_cache(tmp_path: Path) -> None:
    """A run killed while encoding corpus A leaves A's staging folder; encoding corpus B removes it
    (a killed process's folders are otherwise left until A is encoded again), never a live one."""
    from nlp182.text.corpus import CorpusSource
    from nlp182.text.encoded import encode

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = cache / f".corpus-a-key.{dead.pid}.abcdefgh.staging"
    stale.mkdir()
    (stale / "tokens.u32").write_bytes(b"\0" * 1024)
    live = cache / f".corpus-c-key.{os.getpid()}.abcdefgh.staging"
    live.mkdir()
    corpus = tmp_path / "b.txt"
    corpus.write_text("alpha beta gamma\n" * 10)
    encode(CorpusSource(str(corpus)), cache=cache)
    assert not stale.exists() and live.is_dir()


# Worker pools forked inside children_die_with_us and one outside it; the pids, then a long sleep.
POOLS = """
import json, multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from nlp182.signals import children_die_with_us

fork = multiprocessing.get_context("fork")
with children_die_with_us():
    guarded = fork.Pool(2)
    executor = ProcessPoolExecutor(2, mp_context=fork)
    executor.submit(os.getpid).result()
outside = fork.Pool(1)
pids = [p.pid for p in guarded._pool] + list(executor._processes), [p.pid for p in outside._pool]
print(json.dumps(pids), flush=True)
time.sleep(60)
"""


def test_pool_workers_forked_in_the_guard_end_when_their_parent_is_killed() -> None:
    """A kill -9 of a command (an out-of-memory kill, a CI timeout) left its tokenizing or
    Wikipedia workers blocked on their pipes for ever, each holding a quarter of a gigabyte."""
    child = subprocess.Popen([sys.executable, "-c", POOLS], stdout=subprocess.PIPE, text=True)
    guarded, outside = json.loads(child.stdout.readline())
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                  for pid in guarded) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [pid for pid in guarded
                 if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert len(guarded) == 4 and alive == [], alive
        assert all(psutil.pid_exists(pid) for pid in outside)  # unguarded: the orphan the guard prevents
    finally:
        for pid in guarded + outside:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
