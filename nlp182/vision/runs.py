"""Run folders for the vision core: train a digits CNN or a shapes segmenter and save everything.

A run folder holds ``config.json``, ``model.safetensors`` (weights and batch-norm statistics),
``metrics.json`` and PNG figures. It is written through ``nlp182.io.staged_directory``, so a failed
run leaves no half-written folder behind. ``nlp182 train digits`` and ``nlp182 train shapes`` map
their flags one to one onto :class:`DigitsRunConfig` and :class:`ShapesRunConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from nlp182.errors import InvalidInputError
from nlp182.io import atomic_write_json, check_run_folder, staged_directory, written_by
from nlp182.settings import check_settings, setting
from nlp182.train.checkpoint import save_model_weights
from nlp182.vision.data import load_digits_split, make_shapes_segmentation
from nlp182.vision.fit import FitConfig, accuracy, fit, predict_logits
from nlp182.vision.registry import create_model, list_models
from nlp182.vision.segmentation import iou_per_class, mean_iou, pixel_accuracy

log = logging.getLogger(__name__)
SEGMENTERS = list_models("segmentation")


@dataclass
class DigitsRunConfig:
    """A small CNN on scikit-learn's digits; ``width`` multiplies its channels (1: 16, then 32)."""

    width: float = setting(
        1.0, positive=True,
        help="channel multiplier of the network (1: 16 channels in the first convolution, doubling later)",
    )
    dropout: float = setting(0.0, minimum=0, below=1, help="dropout probability before the classifier")
    test_fraction: float = setting(
        0.25, below=1, positive=True,
        help="share of the digits held out for the test accuracy",
    )
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=15, progress=True))

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class ShapesRunConfig:
    """A UNet or FCN on the generated shapes segmentation set; ``width`` multiplies its channels (1: 16)."""

    model: str = setting(
        "unet", choices=SEGMENTERS,
        help="segmentation network: unet (skip connections) or fcn",
    )
    width: float = setting(
        1.0, positive=True,
        help="channel multiplier of the network (1: 16 channels in the first convolution, doubling later)",
    )
    size: int = setting(32, minimum=12, help="side of the generated square images, in pixels")
    train_size: int = setting(600, positive=True, help="generated training images")
    test_size: int = setting(200, positive=True, help="generated test images (mean IoU is measured on them)")
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=30, batch_size=16, progress=True))

    def __post_init__(self) -> None:
        check_settings(self)


def train_digits_run(
    config: DigitsRunConfig, out: str | os.PathLike[str], overwrite: bool = False
) -> dict[str, Any]:
    """Train ``small_cnn`` on the digits train split, evaluate on the test split, save the run folder.

    ``out`` is checked before training (:func:`nlp182.io.check_run_folder`): an earlier run there is
    replaced only with ``overwrite``. Returns the metrics (also written to ``metrics.json``).
    """
    check_run_folder(out, overwrite)
    from nlp182.vision.visualize import save_filter_grid, save_occlusion_maps, save_saliency_maps

    x_tr, y_tr, x_te, y_te = load_digits_split(config.test_fraction, config.fit.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.fit.seed)
        model = create_model(
            "small_cnn", in_channels=1, num_classes=10, width=config.width, dropout=config.dropout
        )
    start = time.perf_counter()
    history = fit(model, x_tr, y_tr, config.fit)
    seconds = time.perf_counter() - start
    metrics = {
        "test_accuracy": accuracy(predict_logits(model, x_te), y_te),
        "train_loss": history,
        "train_seconds": seconds,
        "train_size": len(x_tr),
        "test_size": len(x_te),
    }
    log.info(
        "digits: test accuracy %.4f after %d epochs (%.1f s)", metrics["test_accuracy"], len(history), seconds
    )
    with staged_directory(out, overwrite) as folder:
        atomic_write_json(folder / "config.json", {"task": "digits", **dataclasses.asdict(config)})
        save_model_weights(folder / "model.safetensors", model)
        atomic_write_json(folder / "metrics.json", {**metrics, "written_by": written_by()})
        model.cpu()
        save_filter_grid(model, folder / "filters.png")
        picks = [int(torch.nonzero(y_te == d)[0]) for d in range(0, 10, 2)]
        images, labels = [x_te[i] for i in picks], [int(y_te[i]) for i in picks]
        save_occlusion_maps(model, images, labels, folder / "occlusion.png")
        save_saliency_maps(model, images, labels, folder / "saliency.png")
    return metrics


def train_shapes_run(
    config: ShapesRunConfig, out: str | os.PathLike[str], overwrite: bool = False
) -> dict[str, Any]:
    """Train a segmenter on generated shapes, score it on a held-out set, save the run folder.

    ``out`` is checked before training, as in :func:`train_digits_run`.
    """
    check_run_folder(out, overwrite)
    from nlp182.vision.visualize import save_segmentation_grid

    if config.model not in SEGMENTERS:
        raise InvalidInputError(f"unknown segmenter {config.model!r}; use one of {', '.join(SEGMENTERS)}")
    x, y = make_shapes_segmentation(config.train_size, config.size, seed=config.fit.seed)
    x_te, y_te = make_shapes_segmentation(config.test_size, config.size, seed=config.fit.seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.fit.seed)
        model = create_model(config.model, in_channels=3, num_classes=4, width=config.width)
    start = time.perf_counter()
    history = fit(model, x, y, config.fit)
    seconds = time.perf_counter() - start
    pred = predict_logits(model, x_te).argmax(dim=1)
    metrics = {
        "mean_iou": mean_iou(pred, y_te, 4),
        "pixel_accuracy": pixel_accuracy(pred, y_te),
        "iou_per_class": iou_per_class(pred, y_te, 4).tolist(),
        "train_loss": history,
        "train_seconds": seconds,
    }
    log.info(
        "shapes: mIoU %.4f, pixel accuracy %.4f (%.1f s)",
        metrics["mean_iou"],
        metrics["pixel_accuracy"],
        seconds,
    )
    with staged_directory(out, overwrite) as folder:
        atomic_write_json(folder / "config.json", {"task": "shapes", **dataclasses.asdict(config)})
        save_model_weights(folder / "model.safetensors", model)
        atomic_write_json(folder / "metrics.json", {**metrics, "written_by": written_by()})
        show = range(min(4, len(x_te)))
        save_segmentation_grid(
            [x_te[i] for i in show],
            [y_te[i] for i in show],
            {config.model.upper(): [pred[i] for i in show]},
            folder / "segmentation.png",
            title=f"{config.model.upper()} on held-out shapes: mean IoU {metrics['mean_iou']:.3f}",
        )
    return metrics
