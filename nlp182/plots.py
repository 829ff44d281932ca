"""Matplotlib (Agg) figures: loss curves, attention heatmaps, embedding maps.

Every figure is written atomically to a PNG so a reader never sees a half-written image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from nlp182.io import atomic_write_bytes


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Render ``fig`` to PNG at ``path`` atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def loss_curves(
    series: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    title: str = "loss",
    xlabel: str = "step",
    ylabel: str = "loss",
    log_y: bool = False,
) -> None:
    """Plot one line per named series (e.g. ``{"train": [...], "valid": [...]}``) into ``path``."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), list(values), label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def attention_heatmap(
    weights: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "attention",
) -> None:
    """Draw attention ``weights`` of shape ``(T_target, T_source)``: source across, target down."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"weights have shape {weights.shape}, expected ({len(target_tokens)}, {len(source_tokens)})"
        )
    fig, ax = plt.subplots(figsize=(0.45 * len(source_tokens) + 2, 0.45 * len(target_tokens) + 1.5))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(weights.max())))
    ax.set_xticks(range(len(source_tokens)), labels=list(source_tokens), rotation=90)
    ax.set_yticks(range(len(target_tokens)), labels=list(target_tokens))
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)


def embedding_map(
    points: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str], title: str = "embedding map"
) -> None:
    """Scatter 2-D ``points`` of shape ``(N, 2)`` with a text label on each."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"points must be (N, 2) with N == len(labels); got {points.shape}, {len(labels)}")
    fig, ax = plt.subplots(figsize=(14, 11))
    ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5)
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=7, alpha=0.8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)
