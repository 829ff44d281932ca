"""``nlp182 cache``: the cache's entries shown by kind, and ``--clear`` removing finished entries
(by age with ``--older-than``) and dead leftovers, never what a live process is writing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nlp182 import cli


def _fill(cache: Path) -> dict[str, Path]:
    corpus = cache / "corpora" / ("a" * 32)
    corpus.mkdir(parents=True)
    (corpus / "tokens.u32").write_bytes(b"\0" * 4096)
    old = cache / "corpora" / ("b" * 32)
    old.mkdir()
    (old / "tokens.u32").write_bytes(b"\0" * 1024)
    two_days_ago = time.time() - 2 * 86_400
    os.utime(old, (two_days_ago, two_days_ago))
    (cache / "sentences").mkdir()
    (cache / "sentences" / ("c" * 32 + ".txt")).write_text("the cat sat\n")
    (cache / "sgns-0123456789abcdef.so").write_bytes(b"\0" * 100)
    live = cache / "corpora" / f".{'d' * 32}.{os.getpid()}.abcd1234.staging"  # being written now
    live.mkdir()
    dead = cache / "corpora" / f".{'e' * 32}.99999999.abcd1234.staging"  # a killed process's
    dead.mkdir()
    return {"corpus": corpus, "old": old, "live": live, "dead": dead}


def test_cache_shows_each_kind_and_clears_finished_entries_only(tmp_path, monkeypatch, capsys) -> None:
    """The cache grew with every corpus and list of sentences trained on, and nothing showed or
    freed it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLP182_CACHE", str(cache))
    made = _fill(cache)
    assert cli.main(["cache"]) == 0
    shown = capsys.readouterr().out
    assert f"cache: {cache}" in shown
    assert "encoded corpora" in shown and " 2 entries" in shown and "5.0 KiB" in shown
    assert "sentences in memory" in shown and "built C kernels" in shown
    assert made["corpus"].is_dir()  # showing removes nothing

    assert cli.main(["cache", "--clear", "--older-than", "1"]) == 0
    assert "removed 2 entries, 1.0 KiB" in capsys.readouterr().out  # the old corpus, the dead leftover
    assert not made["old"].exists() and not made["dead"].exists() and made["corpus"].is_dir()

    assert cli.main(["cache", "--clear"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert made["live"].is_dir()  # a process still writing it keeps it
    assert sorted(p.name for p in cache.rglob("*") if not p.name.startswith(".")) == ["corpora", "sentences"]


def test_older_than_counts_days(tmp_path, monkeypatch, capsys) -> None:
    """``--older-than 1`` frees what was made over a day ago, as the corpus guide says: an entry of two
    hours stays, one of 25 hours goes."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLP182_CACHE", str(cache))
    entries = {}
    for name, hours in (("a", 2), ("b", 25)):
        entries[hours] = cache / "corpora" / (name * 32)
        entries[hours].mkdir(parents=True)
        made = time.time() - hours * 3600
        os.utime(entries[hours], (made, made))
    assert cli.main(["cache", "--clear", "--older-than", "1"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert entries[2].is_dir() and not entries[25].exists()


def test_cache_refuses_a_negative_age(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["cache", "--clear", "--older-than", "-1"])
    assert "--older-than must be at least 0, got -1" in capsys.readouterr().err


def test_an_age_without_clear_is_refused(capsys) -> None:
    """`nlp182 cache --older-than 7` listed the whole cache, as if the age had filtered something."""
    assert cli.main(["cache", "--older-than", "7"]) == 2
    assert "--older-than DAYS chooses what --clear removes" in capsys.readouterr().err
