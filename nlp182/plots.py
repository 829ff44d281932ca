"""Matplotlib (Agg) figures: loss curves, attention heatmaps, embedding maps.

Figures are ``matplotlib.figure.Figure`` objects rendered straight to bytes (``subplots``), never
through pyplot, so importing the package leaves the program's own backend (a notebook's inline
one) as it was and no figure piles up in pyplot's registry.

Every figure is written atomically in the format its file name asks for (``.png``, ``.pdf`` or
``.svg``; anything else is refused), so a reader never sees a half-written image. Each figure says
what it shows: a title, labelled axes, and a labelled colour bar wherever colour encodes a value.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.io import atomic_write_bytes

FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
#: Largest side of an attention heatmap, in inches; longer inputs get smaller cells and fewer labels.
HEATMAP_MAX_INCHES = 16.0
#: Most tick labels along one heatmap axis; beyond it every k-th token is labelled.
HEATMAP_MAX_LABELS = 60
# Marks that subword tokenizers put on tokens to record word boundaries (GPT-2, SentencePiece,
# WordPiece, BPE end-of-word); the figure shows the text without them.
BOUNDARY_MARKS = ("Ġ", "▁", "##", "</w>")
MARKERS_UP_TO = 30  # loss curves with this many points or fewer mark each point


def figure_format(path: str | os.PathLike[str], flag: str | None = None) -> str:
    """The format a figure at ``path`` is written in, from its extension; refuse others.

    ``flag`` (e.g. ``"--heatmap"``) names the option in the message.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        where = f"{flag} {os.fspath(path)}" if flag else os.fspath(path)
        raise InvalidInputError(f"{where}: a figure file must end in .png, .pdf or .svg")
    return FIGURE_FORMATS[suffix]


def subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """A new figure and its axes, as ``pyplot.subplots(*grid, figsize=..., **options)`` gives them,
    without pyplot."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Render ``fig`` to ``path`` atomically (format from the extension)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # words in scripts the font lacks are drawn as boxes, once each
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buffer, format=figure_format(path), dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


#: Line styles of the series in turn: Adam's and AdamW's losses differ by 0.3%, and one solid line
#: over the other hid it.
LINE_STYLES = ("-", "--", "-.", ":")
#: How many times its smallest value the largest may be before a loss plot's y axis is logarithmic.
LOG_SPAN = 100


def loss_curves(
    series: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    title: str = "loss",
    xlabel: str = "step",
    ylabel: str = "loss",
    log_y: bool | None = None,
) -> None:
    """Plot one line per named series (e.g. ``{"train": [...], "valid": [...]}``) into ``path``.

    Short series (a one-epoch run included) mark every point, so a single value is visible, and
    series take line styles in turn, so nearly equal ones both show. ``log_y=None`` puts the y
    axis on a log scale when the values are positive and span more than :data:`LOG_SPAN` times (a
    loss from 0.2 to 6e-5 lay flat on zero after its first epoch).
    """
    if log_y is None:
        values = np.array([v for line in series.values() for v in line], dtype=float)
        values = values[np.isfinite(values)]
        log_y = bool(len(values) and values.min() > 0 and values.max() / values.min() > LOG_SPAN)
    fig, ax = subplots(figsize=(8, 4.5))
    for index, (name, values) in enumerate(series.items()):
        marker = "o" if len(values) <= MARKERS_UP_TO else None
        style = LINE_STYLES[index % len(LINE_STYLES)]  # a line drawn over an equal one still shows
        ax.plot(np.arange(1, len(values) + 1), list(values), marker=marker, ms=3.5, label=name,
                linestyle=style)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path)


def clean_token(token: str) -> str:
    """A token as a reader writes it: word-boundary marks removed (``Ġcat`` -> ``cat``); a token
    that is only a mark is the space between words, shown as ``␣``."""
    if token in BOUNDARY_MARKS:
        return "␣"
    for mark in BOUNDARY_MARKS:
        if token.startswith(mark) and len(token) > len(mark):
            token = token[len(mark) :]
        if token.endswith(mark) and len(token) > len(mark):
            token = token[: -len(mark)]
    return token


def attention_title(source_tokens: Sequence[str], target_tokens: Sequence[str], width: int = 70) -> str:
    """The one title convention of attention heatmaps: what went in and what came out, each at most
    two wrapped lines (a long text ends in "...")."""
    source = " ".join(clean_token(t) for t in source_tokens)
    output = " ".join(clean_token(t) for t in target_tokens if t != "<eos>")
    lines = []
    for name, text in (("input", source), ("output", output)):
        lines += textwrap.wrap(textwrap.shorten(f"{name}: {text}", 2 * width, placeholder=" ..."), width)
    return "attention weights\n" + "\n".join(lines)


def _fit_title(title: str, width: int = 70, lines: int = 3) -> str:
    """``title`` wrapped to ``width`` characters and cut to ``lines`` lines (a long input would
    otherwise make the title taller than the heatmap)."""
    return textwrap.fill(textwrap.shorten(title, width * lines, placeholder=" ..."), width)


def _ticks(count: int) -> range:
    return range(0, count, max(1, math.ceil(count / HEATMAP_MAX_LABELS)))


def attention_heatmap(
    weights: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> None:
    """Draw attention ``weights`` of shape ``(T_target, T_source)``: input across, output down.

    Cells are ~0.45 inch until a side would exceed :data:`HEATMAP_MAX_INCHES`; then cells shrink and
    only every k-th token is labelled, so a long input still gives a readable figure. ``title``
    defaults to :func:`attention_title`.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ShapeError(
            f"weights have shape {weights.shape}, expected ({len(target_tokens)}, {len(source_tokens)})"
        )
    source = [clean_token(t) for t in source_tokens]
    target = [clean_token(t) for t in target_tokens]
    cell = min(0.45, HEATMAP_MAX_INCHES / max(len(source), len(target), 1))
    fontsize = 9 if cell >= 0.3 else 7
    fig, ax = subplots(figsize=(max(cell * len(source), 3.0) + 2.5, max(cell * len(target), 2.0) + 2.0))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(weights.max())), aspect="auto")
    xs, ys = _ticks(len(source)), _ticks(len(target))
    ax.set_xticks(list(xs), labels=[source[i] for i in xs], rotation=90, fontsize=fontsize)
    ax.set_yticks(list(ys), labels=[target[i] for i in ys], fontsize=fontsize)
    ax.set_xlabel("input tokens")
    ax.set_ylabel("output tokens")
    title = attention_title(source_tokens, target_tokens) if title is None else _fit_title(title)
    ax.set_title(title, fontsize=10, loc="left")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    colorbar.set_label("attention weight (each row sums to 1)")
    save_figure(fig, path)


def embedding_map(
    points: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str], title: str = "embedding map"
) -> None:
    """Scatter 2-D ``points`` of shape ``(N, 2)`` with a text label on each."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ShapeError(f"points must be (N, 2) with N == len(labels); got {points.shape}, {len(labels)}")
    fig, ax = subplots(figsize=(14, 11))
    ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5)
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=7, alpha=0.8)
    ax.set_title(title)
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)
