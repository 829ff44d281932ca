"""Seeing inside a CNN: first-layer filters, occlusion maps, saliency maps and activation maximisation.

Each method returns the array it computes (so it can be tested) and has a ``save_*`` companion that
writes a PNG atomically through :mod:`nlp182.plots`.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.optim import Adam
from nlp182.plots import Figure, save_figure, subplots

#: The colour between filter tiles: a blue no grey filter takes (white and black are each
#: filter's own largest and smallest weight, and would merge with the padding).
GRID_PAD_COLOUR = (0.35, 0.55, 0.85)


def filter_grid(weight: torch.Tensor, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile first-layer filters ``(O, C, F_H, F_W)`` into one image, each filter scaled to [0, 1].

    3-channel filters become RGB tiles; others are shown as the mean over input channels.
    Returns ``(rows * (F_H + pad) - pad, columns * (F_W + pad) - pad, 3)`` floats in [0, 1]
    (the padding is :data:`GRID_PAD_COLOUR`).
    """
    if weight.dim() != 4:
        raise ShapeError(f"filters must have shape (O, C, F_H, F_W); got {tuple(weight.shape)}")
    w = weight.detach().double().cpu()
    w = w if w.shape[1] == 3 else w.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    w = ((w - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1).numpy()
    count, fh, fw = w.shape[0], w.shape[1], w.shape[2]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.empty((rows * (fh + pad) - pad, columns * (fw + pad) - pad, 3))
    grid[:] = GRID_PAD_COLOUR
    for k in range(count):
        r, c = divmod(k, columns)
        grid[r * (fh + pad) : r * (fh + pad) + fh, c * (fw + pad) : c * (fw + pad) + fw] = w[k]
    return grid


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` in registration order."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise InvalidInputError(f"{type(model).__name__} has no Conv2d layer to visualise")


def save_filter_grid(
    model: nn.Module, path: str | os.PathLike[str], title: str = "first-layer filters"
) -> None:
    """Write the first convolution's filters of ``model`` as a PNG grid.

    Each filter is scaled to its own range, so the colour bar reads per filter: black is its most
    negative weight, white its most positive (the mean over input channels unless they are RGB).
    """
    weight = first_conv(model).weight
    grid = filter_grid(weight)
    fig, ax = subplots(figsize=(4.8, 4.2))
    ax.imshow(grid, interpolation="nearest")
    size = "x".join(str(n) for n in weight.shape[2:])
    ax.set_title(f"{title}\n{weight.shape[0]} filters of {size} pixels", fontsize=10)
    ax.axis("off")
    _per_image_key(fig, ax, "weight, scaled per filter", ("most\nnegative", "most\npositive"))
    save_figure(fig, path)


def _per_image_key(
    fig: Figure, ax: object, label: str, ends: tuple[str, str] = ("lowest", "highest")
) -> None:
    """A grey colour bar for images each stretched to their own range: its ends say lowest/highest."""
    from matplotlib.cm import ScalarMappable

    axes = ax.ravel().tolist() if hasattr(ax, "ravel") else ax
    colorbar = fig.colorbar(ScalarMappable(cmap="gray"), ax=axes, fraction=0.046, pad=0.04, ticks=[0, 1])
    colorbar.ax.set_yticklabels(list(ends), fontsize=8)
    colorbar.set_label(label, fontsize=8)


def _check_image(image: torch.Tensor) -> None:
    if image.dim() != 3:
        raise ShapeError(f"image must have shape (C, H, W); got {tuple(image.shape)}")


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in evaluation mode for the block, then back in the mode it was in."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


@torch.no_grad()
def occlusion_map(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    patch: int = 4,
    stride: int = 1,
    fill: float = 0.5,
    batch_size: int = 256,
) -> torch.Tensor:
    """Probability of class ``target`` as a ``patch x patch`` grey square slides over the image.

    image: ``(C, H, W)``. Returns ``((H - patch) // stride + 1, (W - patch) // stride + 1)``: entry
    ``(i, j)`` is the probability with the patch's top-left corner at ``(i * stride, j * stride)``.
    Low values mark the regions the decision depends on.
    """
    _check_image(image)
    h, w = image.shape[1:]
    if not 1 <= patch <= min(h, w):
        raise InvalidInputError(f"patch must be between 1 and {min(h, w)}; got {patch}")
    if stride < 1 or batch_size < 1:
        raise InvalidInputError(f"stride and batch_size must be at least 1; got {stride} and {batch_size}")
    with _evaluating(model):
        return _occlusion(model, image, target, patch, stride, fill, batch_size)


def _occlusion(
    model: nn.Module, image: torch.Tensor, target: int, patch: int, stride: int, fill: float, batch_size: int
) -> torch.Tensor:
    c, h, w = image.shape
    device = next(model.parameters()).device
    tops = list(range(0, h - patch + 1, stride))
    lefts = list(range(0, w - patch + 1, stride))
    positions = [(y, x) for y in tops for x in lefts]
    probs = []
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        batch = image.to(device).expand(len(chunk), c, h, w).clone()
        for k, (y, x) in enumerate(chunk):
            batch[k, :, y : y + patch, x : x + patch] = fill
        probs.append(_of_class(model(batch).softmax(dim=1), target).float().cpu())
    return torch.cat(probs).view(len(tops), len(lefts))


def _of_class(scores: torch.Tensor, target: int) -> torch.Tensor:
    """Column ``target`` of a model's ``(B, K)`` class scores, ``(B,)``, after checking it names a
    class: -1 explained the last class without a word (Python's indexing), and ``K`` fell with a
    bare IndexError."""
    classes = scores.shape[-1]
    try:
        index = None if isinstance(target, bool) else operator.index(target)
    except TypeError:
        index = None
    if index is None or not 0 <= index < classes:
        raise InvalidInputError(f"target must be a class index from 0 to {classes - 1}; got {target!r}")
    return scores[:, index]


def saliency_map(model: nn.Module, image: torch.Tensor, target: int) -> torch.Tensor:
    """Simonyan et al. (2014): ``max_c |d score_target / d image[c]|`` per pixel.

    Uses the unnormalised class score (logit), not the softmax, so the map shows what raises this
    class rather than what lowers the others. image: ``(C, H, W)``; returns ``(H, W)``. The model's
    parameter gradients and its train/eval mode are left as they were (it may be mid-training).
    """
    _check_image(image)
    device = next(model.parameters()).device
    with _evaluating(model), torch.enable_grad():
        x = image.detach().to(device).unsqueeze(0).requires_grad_(True)
        (gradient,) = torch.autograd.grad(_of_class(model(x), target)[0], x)
    return gradient[0].abs().amax(dim=0).cpu()


def activation_maximization(
    model: nn.Module,
    target: int,
    shape: tuple[int, int, int],
    steps: int = 200,
    lr: float = 0.1,
    l2: float = 1e-2,
    jitter: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Gradient ascent on an input to maximise ``score_target(x) - l2 * ||x||^2``.

    Each step rolls the image by a random shift of up to ``jitter`` pixels before the forward pass
    and back after, which discourages high-frequency patterns that only work at one alignment.
    shape: ``(C, H, W)``; returns the optimised image ``(C, H, W)``.
    """
    if steps < 1 or lr <= 0 or l2 < 0 or jitter < 0:
        raise InvalidInputError("need steps >= 1, lr > 0, l2 >= 0 and jitter >= 0")
    weight = next(model.parameters())
    generator = torch.Generator().manual_seed(seed)
    start = 0.01 * torch.randn(1, *shape, generator=generator)
    x = start.to(device=weight.device, dtype=weight.dtype).requires_grad_(True)
    optimizer = Adam([x], lr=lr)
    with _evaluating(model), torch.enable_grad():  # only the image's gradient: the model's stay as they are
        for _ in range(steps):
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            objective = _of_class(model(shifted), target)[0] - l2 * x.pow(2).sum()
            (x.grad,) = torch.autograd.grad(-objective, x)
            optimizer.step()
    return x.detach()[0].cpu()


def save_maps(
    images: list[torch.Tensor],
    maps: list[torch.Tensor],
    titles: list[str],
    path: str | os.PathLike[str],
    cmap: str = "magma",
    title: str = "heat maps",
    map_label: str = "value",
    row_label: str = "map",
) -> None:
    """Write a two-row PNG: the images ``(C, H, W)`` on top, their heat maps ``(h, w)`` below.

    The rows are labelled, ``title`` says what the maps are, and one colour bar labelled
    ``map_label`` (shared scale across the maps) says what a colour means.
    """
    if not len(images) == len(maps) == len(titles):
        raise InvalidInputError("images, maps and titles must have the same length")
    arrays = [heat.detach().cpu().double().numpy() for heat in maps]
    low = min(float(a.min()) for a in arrays)
    high = max(max(float(a.max()) for a in arrays), low + 1e-12)
    fig, axes = subplots(2, len(images), figsize=(2.2 * len(images) + 1.6, 5.0), squeeze=False)
    for k, (image, heat, name) in enumerate(zip(images, arrays, titles, strict=True)):
        axes[0][k].imshow(_to_display(image), cmap="gray", interpolation="nearest")
        axes[0][k].set_title(name, fontsize=9)
        shown = axes[1][k].imshow(heat, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        for ax in (axes[0][k], axes[1][k]):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("input image", fontsize=9)
    axes[1][0].set_ylabel(row_label, fontsize=9)
    colorbar = fig.colorbar(shown, ax=axes[1].tolist(), fraction=0.05, pad=0.02)
    colorbar.set_label(map_label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def save_occlusion_maps(
    model: nn.Module,
    images: list[torch.Tensor],
    labels: list[int],
    path: str | os.PathLike[str],
    patch: int = 3,
) -> None:
    """Occlusion figure: where a grey ``patch`` hides what the model needs (dark = needed)."""
    pairs = zip(images, labels, strict=True)
    maps = [occlusion_map(model, image, label, patch=patch) for image, label in pairs]
    save_maps(
        images, maps, [f"digit {label}" for label in labels], path, cmap="magma",
        title=f"Occlusion: probability of the true digit when a {patch}x{patch} grey patch covers "
        "each spot\n(dark = covering it hurts: the model relies on that region)",
        map_label="p(true digit) with the patch there",
        row_label="occlusion (patch positions)",
    )


def save_saliency_maps(
    model: nn.Module, images: list[torch.Tensor], labels: list[int], path: str | os.PathLike[str]
) -> None:
    """Saliency figure: how strongly each pixel moves the true class's score (bright = strongly)."""
    maps = [saliency_map(model, image, label) for image, label in zip(images, labels, strict=True)]
    save_maps(
        images, maps, [f"digit {label}" for label in labels], path, cmap="viridis",
        title="Saliency: gradient of the true digit's score with respect to each pixel\n"
        "(bright = a small change of that pixel moves the score most)",
        map_label="|d score / d pixel|",
        row_label="saliency (pixels)",
    )


def actmax_start(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """The image ``(1, C, H, W)`` activation maximisation starts from: faint noise of ``seed``."""
    return 0.01 * torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))


def save_actmax_grid(
    images: list[torch.Tensor],
    class_names: list[str],
    start_scores: list[float],
    final_scores: list[float],
    path: str | os.PathLike[str],
    columns: int = 5,
) -> None:
    """A grid of activation-maximisation images ``(C, H, W)``, one per class, each titled with the
    class name and its score at the start and at the end (a real pattern raises it a lot)."""
    rows = math.ceil(len(images) / columns)
    fig, axes = subplots(rows, columns, figsize=(2.1 * columns, 2.4 * rows + 0.6), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(_to_display(images[k]), cmap="gray", interpolation="nearest")
            scores = f"score {start_scores[k]:.1f} -> {final_scores[k]:.1f}"
            ax.set_title(f"{class_names[k]}\n{scores}", fontsize=9)
    fig.suptitle(
        "Activation maximisation: the input each class's score likes best\n"
        "(gradient ascent from faint noise; score = the class's logit before and after)",
        fontsize=10,
    )
    _per_image_key(fig, axes, "pixel value, scaled per image")
    save_figure(fig, path)


SHAPE_CLASSES = ("background", "square", "disc", "triangle")


def save_segmentation_grid(
    images: list[torch.Tensor],
    truth: list[torch.Tensor],
    predictions: dict[str, list[torch.Tensor]],
    path: str | os.PathLike[str],
    class_names: tuple[str, ...] = SHAPE_CLASSES,
    title: str = "Segmentation of held-out shapes",
) -> None:
    """A grid: one row per example; columns image ``(3, H, W)``, true label map ``(H, W)`` and each
    model's predicted map, with a key of the class colours."""
    from matplotlib.patches import Patch

    columns = [("image", images), ("truth", truth), *predictions.items()]
    fig, axes = subplots(
        len(images), len(columns), figsize=(1.9 * len(columns), 1.9 * len(images) + 0.6), squeeze=False
    )
    for c, (name, items) in enumerate(columns):
        axes[0][c].set_title(name, fontsize=10)
        for r, item in enumerate(items):
            shown = item if c == 0 else colorize_labels(item)
            axes[r][c].imshow(_channels_last(shown.detach().double().cpu().clamp(0, 1).numpy()),
                              interpolation="nearest")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        for r in range(len(images)):
            axes[r][0].set_ylabel(f"example {r + 1}", fontsize=9)
    key = [Patch(facecolor=PALETTE[i], edgecolor="grey", label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=key, loc="center left", bbox_to_anchor=(0.92, 0.5), title="class", fontsize=9)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def save_images(
    images: list[torch.Tensor], titles: list[str], path: str | os.PathLike[str], rescale: bool = True
) -> None:
    """Write images ``(C, H, W)`` side by side as a PNG.

    ``rescale=True`` stretches each image to [0, 1] on its own; ``False`` shows values as they are
    (clipped to [0, 1]), which keeps colours comparable across images (e.g. :func:`colorize_labels`).
    """
    fig, axes = subplots(1, len(images), figsize=(2.2 * len(images), 2.4), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles, strict=True):
        shown = (
            _to_display(image)
            if rescale
            else _channels_last(image.detach().double().cpu().clamp(0, 1).numpy())
        )
        ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    save_figure(fig, path)


PALETTE = (
    (0.0, 0.0, 0.0),
    (0.9, 0.2, 0.2),
    (0.2, 0.8, 0.2),
    (0.25, 0.45, 1.0),
    (1.0, 0.85, 0.1),
    (0.8, 0.3, 0.9),
)


def colorize_labels(labels: torch.Tensor) -> torch.Tensor:
    """Map a label map ``(H, W)`` of class ids to an RGB image ``(3, H, W)`` with a fixed palette."""
    if labels.dim() != 2:
        raise ShapeError(f"labels must have shape (H, W); got {tuple(labels.shape)}")
    palette = torch.tensor(PALETTE)
    return palette[labels.long().cpu() % len(PALETTE)].permute(2, 0, 1)


def _to_display(image: torch.Tensor) -> np.ndarray:
    array = image.detach().double().cpu().numpy()
    return _channels_last((array - array.min()) / max(float(array.max() - array.min()), 1e-12))


def _channels_last(array: np.ndarray) -> np.ndarray:
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
