"""progress(): a tqdm bar on a terminal, one log line per interval in a log."""

from __future__ import annotations

import logging

import pytest
from tqdm import tqdm

from nlp182 import progress as progress_module
from nlp182.progress import LogProgress, progress


def test_log_progress_writes_one_line_per_interval_and_a_final_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([0.0, 1.0, 2.5, 3.0, 6.0, 7.0, 7.5])
    original = progress_module.time.perf_counter
    progress_module.time.perf_counter = lambda: next(clock)  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.INFO, logger="nlp182.progress"):
            bar = LogProgress(total=100, desc="reading", unit="line", interval=2.0)  # start at t=0
            bar.update(10)  # t=1: too soon
            bar.update(10)  # t=2.5: line
            bar.set_postfix(loss=0.5)
            bar.update(10)  # t=3: too soon
            bar.update(30)  # t=6: line
            bar.update(5)  # t=7: too soon
            bar.close()  # t=7.5: final line
            bar.close()  # no second final line
    finally:
        progress_module.time.perf_counter = original  # type: ignore[assignment]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("reading: 20/100 line (20%)")
    assert "8 line/s" in lines[0]  # 20 lines in 2.5 s
    assert lines[1].startswith("reading: 60/100 line (60%)") and lines[1].endswith("loss=0.5")
    assert lines[2].startswith("reading: 65/100 line (65%)")
    assert "\r" not in "".join(lines)


def test_the_rate_counts_only_the_work_done_after_an_initial_offset(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed epoch starts its bar at `initial`; that offset was done before, so the logged rate
    (as tqdm's) is the units counted since the bar started over the seconds since then."""
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    with caplog.at_level(logging.INFO, logger="nlp182.progress"):
        bar = LogProgress(total=100, initial=50, desc="steps", unit="step", interval=0.0)
        now[0] = 101.0
        bar.update(10)
    line = caplog.records[-1].getMessage()
    assert line.startswith("steps: 60/100 step (60%)") and ", 10 step/s," in line


def test_a_last_line_that_showed_the_final_count_is_not_written_twice(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="nlp182.progress"):
        bar = LogProgress(total=3, desc="steps", unit="step", interval=0.0)  # a line every update
        for _ in range(3):
            bar.update()
        bar.close()
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "steps: 1/3 step (33%)", "steps: 2/3 step (67%)", "steps: 3/3 step (100%)"
    ]


def test_log_progress_iterates_and_counts() -> None:
    bar = LogProgress(range(7), desc="x", interval=1e9)
    assert list(bar) == list(range(7))
    assert bar.n == 7 and bar.total == 7


def test_progress_picks_tqdm_on_a_terminal_and_log_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    assert isinstance(progress(total=3), tqdm)
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    assert isinstance(progress(total=3), LogProgress)


def test_a_jupyter_cell_gets_a_bar_not_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a notebook stderr is the kernel's stream, not a terminal: progress went to INFO log lines,
    which a notebook does not show, and a long training looked frozen."""
    import io

    class OutStream(io.StringIO):  # what ipykernel puts in sys.stderr
        pass

    OutStream.__module__ = "ipykernel.iostream"
    monkeypatch.setattr("sys.stderr", OutStream())
    bar = progress(total=3, desc="epoch 1")
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()
    assert isinstance(progress(total=3, disable=True), tqdm)


def test_a_log_line_written_while_a_bar_is_drawn_starts_on_a_cleared_line() -> None:
    """On a terminal, log lines landed after the bar's text ("epoch 1: 40%|████ | 4/10 INFO ..."),
    leaving frozen bar pieces on screen."""
    import io

    from nlp182.progress import BarSafeHandler

    screen = io.StringIO()
    logger = logging.getLogger("nlp182.test.barsafe")
    handler = BarSafeHandler(screen)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        with tqdm(total=10, file=screen, desc="epoch 1", mininterval=0) as bar:
            bar.update(4)
            drawn = screen.getvalue()
            logger.warning("a log line")
            after = screen.getvalue()[len(drawn):]
    finally:
        logger.removeHandler(handler)
    assert "4/10" in drawn and after.index("a log line") > 0
    before = after[: after.index("a log line")]
    assert before.endswith("\r") and "4/10" not in before  # the bar was cleared, not written after
    assert "4/10" in after[after.index("a log line"):]  # and drawn again below the line
