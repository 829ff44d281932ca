"""What the serving master checks before it starts workers (``nlp182.server.resources``), and a
metrics write that fails without failing the request."""

from __future__ import annotations

import logging
import resource
from collections import namedtuple

import pytest

from nlp182.errors import InvalidInputError
from nlp182.server import resources
from nlp182.server.metrics import Metrics

Usage = namedtuple("Usage", "total used free")


def _limits(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int) -> list[tuple[int, int]]:
    """Fake the open-file limits; returns the list of limits the code sets."""
    state = {"soft": soft}
    set_to: list[tuple[int, int]] = []

    def setrlimit(which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        set_to.append(limits)
        state["soft"] = limits[0]

    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (state["soft"], hard))
    monkeypatch.setattr(resources.resource, "setrlimit", setrlimit)
    return set_to


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(monkeypatch: pytest.MonkeyPatch) -> None:
    set_to = _limits(monkeypatch, 1024, 4096)
    assert resources.ensure_open_files(workers=2) == 4096
    assert set_to == [(4096, 4096)]
    set_to = _limits(monkeypatch, resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    assert resources.ensure_open_files(workers=2) == resource.RLIM_INFINITY and set_to == []
    set_to = _limits(monkeypatch, 1024, 1 << 30)  # a container's hard limit: raised to 65536, not it
    assert resources.ensure_open_files(workers=2) == 1 << 16 and set_to == [(1 << 16, 1 << 30)]


def test_an_unlimited_hard_limit_that_refuses_65536_takes_10240(monkeypatch: pytest.MonkeyPatch) -> None:
    set_to = _limits(monkeypatch, 256, resource.RLIM_INFINITY)
    real = resources.resource.setrlimit

    def macos(which: int, limits: tuple[int, int]) -> None:
        if limits[0] > 10240:
            raise ValueError("current limit exceeds maximum limit")
        real(which, limits)

    monkeypatch.setattr(resources.resource, "setrlimit", macos)
    assert resources.ensure_open_files(workers=4) == 10240
    assert set_to == [(10240, resource.RLIM_INFINITY)]


def test_too_few_open_files_are_refused_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ulimit -n 20``: every request was a 500 and the log grew by a million lines in seconds."""
    _limits(monkeypatch, 20, 20)
    with pytest.raises(InvalidInputError, match=r"open-file limit is 20 \(ulimit -n\).* at least 256"):
        resources.ensure_open_files(workers=2)
    _limits(monkeypatch, 256, 256)
    assert resources.ensure_open_files(workers=2) == 256


def test_a_metrics_folder_without_room_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """16 KiB free in TMPDIR: workers started, then died of SIGBUS writing their metrics maps."""
    monkeypatch.setattr(resources.shutil, "disk_usage", lambda path: Usage(1 << 30, 1 << 30, 16 << 10))
    with pytest.raises(InvalidInputError, match=rf"metrics folder {tmp_path} has 0.0 MiB free.*need 24 MiB"):
        resources.ensure_metrics_room(str(tmp_path), workers=2)
    monkeypatch.setattr(resources.shutil, "disk_usage", lambda path: Usage(1 << 30, 0, 24 << 20))
    resources.ensure_metrics_room(str(tmp_path), workers=2)


def test_a_metrics_write_that_fails_loses_the_count_not_the_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()

    def out_of_files(**labels: str) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(metrics.requests, "labels", out_of_files)
    with caplog.at_level(logging.WARNING, logger="nlp182.server.metrics"):
        for _ in range(3):
            metrics.observe("/v1/neighbors", "GET", 200, 0.001)
    assert metrics.lost == 3
    assert caplog.text.count("request metrics are not being counted: [Errno 24] Too many open files") == 1
