"""Progress for long work: a tqdm bar on a terminal, one log line per interval elsewhere.

A bar redrawn with carriage returns is what a person at a terminal wants; in a log file it becomes
megabytes of ``\\r``. ``progress`` looks at whether standard error is a terminal and returns either a
real ``tqdm`` bar or a ``LogProgress`` with the same small interface (``update``, ``set_postfix``,
``close``, iteration, context manager) that logs one line every ``interval`` seconds and a final
line at the end. Both show one rate: the count over the wall time since the bar started.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

LOGGER = logging.getLogger("nlp182.progress")

#: Seconds between two log lines when standard error is not a terminal.
DEFAULT_LOG_INTERVAL = 10.0


def _scaled(value: float, unit_scale: bool) -> str:
    """Format a count as tqdm does with ``unit_scale``: 1.2k, 3.4M; plain otherwise."""
    if not unit_scale:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}"
    return f"{value:.0f}"


def known_length(items: object) -> int | None:
    """``len(items)``, or None when it cannot tell: no ``__len__``, or one that raises ``TypeError``
    (a ``DataLoader`` over an ``IterableDataset``)."""
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


class LogProgress:
    """tqdm's interface, written as one log line per ``interval`` seconds (for logs, not terminals)."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        unit_scale: bool = False,
        initial: float = 0,
        interval: float = DEFAULT_LOG_INTERVAL,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            total = known_length(iterable)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.unit_scale = unit_scale
        self.n = initial
        self._initial = initial
        self.interval = interval
        self.logger = logger
        self._postfix = ""
        self._start = time.perf_counter()
        self._last_log = self._start
        self._logged_n: float | None = None  # the count the last line showed
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress was made without an iterable")
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        """Remember ``key=value`` pairs to print after the count on the next line."""
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{key}={value}" for key, value in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Change the label printed at the start of each line."""
        self.desc = desc or ""

    def update(self, n: float = 1) -> None:
        """Count ``n`` more units; log a line when ``interval`` seconds have passed since the last."""
        self.n += n
        now = time.perf_counter()
        if now - self._last_log >= self.interval:
            self._last_log = now
            self._log(now)
            self._logged_n = self.n

    def refresh(self) -> None:
        """tqdm compatibility: nothing to redraw in a log."""

    def _log(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self._initial) / elapsed
        done = _scaled(self.n, self.unit_scale)
        if self.total:
            share = 100.0 * self.n / self.total
            done += f"/{_scaled(self.total, self.unit_scale)} {self.unit} ({share:.0f}%)"
        else:
            done += f" {self.unit}"
        line = f"{self.desc}: {done}, {_scaled(rate, self.unit_scale)} {self.unit}/s, {elapsed:.0f} s"
        if self._postfix:
            line += f", {self._postfix}"
        self.logger.info(line)

    def close(self) -> None:
        """Log the final line once, unless the last line already showed the final count."""
        if not self._closed:
            self._closed = True
            if self._logged_n != self.n:
                self._log(time.perf_counter())


class BarSafeHandler(logging.StreamHandler):
    """A log handler that writes around tqdm's bars: a line logged while a bar is drawn on a
    terminal used to land after the bar's text and leave frozen bar pieces on screen; ``tqdm.write``
    clears the bars of the stream, writes the line and draws them again (elsewhere it just writes)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own rule: a handler's failure is reported, never raised
            self.handleError(record)


def on_terminal() -> bool:
    """True when standard error is an interactive terminal (where a redrawn bar makes sense)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def in_notebook() -> bool:
    """True when standard error is a Jupyter kernel's output stream: not a terminal, but a cell
    shows a bar (tqdm's widget, or its text redrawn), and the log lines that stand in for one
    elsewhere are not shown by a notebook's default logging."""
    return type(sys.stderr).__module__.startswith("ipykernel")


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    unit_scale: bool = False,
    initial: float = 0,
    disable: bool = False,
    interval: float = DEFAULT_LOG_INTERVAL,
) -> Any:
    """A progress reporter for ``iterable`` (or for manual ``update`` calls when it is None).

    On a terminal this is ``tqdm``, in a Jupyter notebook ``tqdm.auto``'s bar; otherwise a
    ``LogProgress`` that logs one line per ``interval`` seconds. ``disable=True`` returns a tqdm
    bar that draws nothing (tests, quiet runs).
    """
    if not disable and in_notebook():
        from tqdm.auto import tqdm as notebook_tqdm

        return notebook_tqdm(
            iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
        )
    if disable or on_terminal():
        return tqdm(
            iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
            disable=disable,
        )
    return LogProgress(
        iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial, interval=interval
    )
