"""``nlp182 cache``: what the package's cache holds, and ``--clear`` to free it.

The cache only saves time: an encoded corpus is made again from its text on the next ``train``, a
C kernel is built again on first use. Nothing removes its entries by itself, so one grows with
every corpus trained on (every list of sentences given in memory is a new one, and a change of
the tokenizer's rules leaves the old entries unused); this command shows what is there and frees
it. A file or folder still being written by a running process (a hidden name carrying its pid)
is left alone; one a killed process left is removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from nlp182.commands.flags import NON_NEGATIVE, checked
from nlp182.errors import InvalidInputError

#: What the cache holds: a label, and the entries of that kind under the cache folder.
KINDS = (
    ("encoded corpora", "corpora", "*"),
    ("sentences in memory", "sentences", "*.txt"),
    ("built C kernels", ".", "*.so"),
)
SECONDS_PER_DAY = 86_400


def _entries(cache: Path, folder: str, pattern: str) -> list[Path]:
    """The finished entries of one kind (hidden names are files in the making or leftovers)."""
    place = cache / folder
    if not place.is_dir():
        return []
    return sorted(path for path in place.glob(pattern) if not path.name.startswith("."))


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir() and not path.is_symlink():
        for inner, _, names in os.walk(path):
            yield from (Path(inner, name) for name in names)
    else:
        yield path


def _size(path: Path) -> int:
    total = 0
    for file in _files(path):
        try:
            total += file.lstat().st_size
        except OSError:  # removed meanwhile
            continue
    return total


def human_size(size: int) -> str:
    """``size`` bytes as ``12.3 MiB``."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _run_cache(args: argparse.Namespace) -> int:
    from nlp182.io import cache_folder, remove_dead_leftovers

    if args.older_than is not None and not args.clear:  # it would have listed everything, silently
        raise InvalidInputError("--older-than DAYS chooses what --clear removes: give both")
    cache = cache_folder()
    print(f"cache: {cache} (NLP182_CACHE chooses another)")
    cutoff = time.time() - args.older_than * SECONDS_PER_DAY if args.older_than is not None else None
    freed = removed = 0
    for label, folder, pattern in KINDS:
        entries = _entries(cache, folder, pattern)
        if args.clear:
            if (cache / folder).is_dir():
                removed += len(remove_dead_leftovers(cache / folder / "any", every_name=True))
            for entry in entries:
                try:
                    if cutoff is not None and entry.stat().st_mtime > cutoff:
                        continue
                    size = _size(entry)
                    _remove(entry)
                except FileNotFoundError:  # another clear got there first
                    continue
                freed, removed = freed + size, removed + 1
            entries = _entries(cache, folder, pattern)
        print(f"  {label:<22}{len(entries):>6} {'entry' if len(entries) == 1 else 'entries':<9}"
              f"{human_size(sum(map(_size, entries))):>12}")
    if args.clear:
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}, {human_size(freed)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cache`` to the ``nlp182`` command."""
    text = "show what the cache of encoded corpora and built kernels holds; --clear frees it"
    cache = subparsers.add_parser("cache", help=text, description=f"{text}. The cache only saves time: "
                                  "what is removed is made again when it is next needed.")
    cache.add_argument("--clear", action="store_true",
                       help="remove the entries (a training already running keeps reading its own)")
    cache.add_argument("--older-than", type=checked(float, NON_NEGATIVE), default=None, metavar="DAYS",
                       help="with --clear: only the entries made more than DAYS days ago")
    cache.set_defaults(func=_run_cache)
