"""Optimizer trajectories on the test landscapes, drawn as one figure per landscape.

Contours of the loss in log scale (with a colour bar), one path per optimizer, the start and the
minimum (or the saddle point) marked, and the legend beside the plot so it never hides a path. Paths
that leave the window are clipped at its edge, and the legend says which ones did.
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import torch

from nlp182.course.landscapes import OPTIMIZER_NAMES, Landscape, trajectory
from nlp182.plots import save_figure, subplots

FORMULAS = {
    "quadratic": "½(x² + 25y²)",
    "saddle": "x² − y²",
    "rosenbrock": "(1 − x)² + 100(y − x²)²",
}


def _inside(point: np.ndarray, landscape: Landscape) -> bool:
    (x0, x1), (y0, y1) = landscape.xlim, landscape.ylim
    return bool(x0 <= point[0] <= x1 and y0 <= point[1] <= y1)


def plot_landscape(landscape: Landscape, path: str | os.PathLike[str], steps: int | None = None) -> dict:
    """Draw every optimizer's path on ``landscape`` into ``path``; return the final points by name."""
    xs = np.linspace(*landscape.xlim, 300)
    ys = np.linspace(*landscape.ylim, 300)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys)), dtype=torch.float64)
    values = landscape.fn(grid).numpy()
    fig, ax = subplots(figsize=(9, 6))
    shifted = values - values.min() + 1e-3
    contours = ax.contour(xs, ys, np.log10(shifted), levels=30, cmap="Greys", linewidths=0.6)
    colorbar = fig.colorbar(contours, ax=ax, pad=0.02)
    colorbar.set_label("log10(loss − lowest loss in view)")
    finals = {}
    colors = matplotlib.colormaps["tab10"](np.linspace(0, 1, len(OPTIMIZER_NAMES)))
    for name, color in zip(OPTIMIZER_NAMES, colors, strict=True):
        points = trajectory(name, landscape, steps)
        finals[name] = points[-1].tolist()
        note = "" if _inside(points[-1], landscape) else ", left the view"
        beta = f", β {landscape.momenta.get(name, 0.9):g}" if name in ("Momentum", "Nesterov") else ""
        ax.plot(
            points[:, 0], points[:, 1], "-", color=color, lw=1.4,
            label=f"{name} (lr {landscape.lrs[name]:g}{beta}{note})",
        )
        ax.plot(points[-1, 0], points[-1, 1], "o", color=color, ms=4)
    ax.plot(*landscape.start, "k^", ms=9, label="start")
    if landscape.minimum is not None:
        ax.plot(*landscape.minimum, "r*", ms=14, label="minimum", zorder=5)
    else:
        ax.plot(0.0, 0.0, "rx", ms=11, mew=2, label="saddle point", zorder=5)
    used = steps or landscape.steps
    formula = FORMULAS.get(landscape.name, landscape.name)
    ax.set(
        xlim=landscape.xlim, ylim=landscape.ylim, xlabel="x (first parameter)", ylabel="y (second parameter)",
        title=f"{landscape.name} {formula}: {used} steps of each optimizer from the same start",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.22, 1.0), title="optimizer (dot: last step)")
    save_figure(fig, path)
    return finals
