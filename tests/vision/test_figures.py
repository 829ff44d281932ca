"""The vision figures: a segmentation grid rather than a strip, actmax scores that show a pattern."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from nlp182.vision.data import make_shapes_segmentation
from nlp182.vision.visualize import (
    activation_maximization,
    actmax_start,
    save_actmax_grid,
    save_occlusion_maps,
    save_saliency_maps,
    save_segmentation_grid,
)


def test_segmentation_is_a_grid_of_examples_by_columns(tmp_path) -> None:
    x, y = make_shapes_segmentation(4, 16, seed=0)
    path = tmp_path / "segmentation.png"
    save_segmentation_grid(list(x), list(y), {"A": list(y), "B": list(y)}, path)
    width, height = Image.open(path).size
    assert 0.8 < width / height < 1.6  # 4 rows x 4 columns plus the key, not one 16-panel strip


def test_actmax_raises_the_class_score_far_above_its_start() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    start = model(actmax_start((1, 8, 8)))[0, 3]
    image = activation_maximization(model, 3, (1, 8, 8), steps=100, lr=0.05, l2=0.05, jitter=0)
    assert model(image.unsqueeze(0))[0, 3] > start + 1.0
    first = activation_maximization(model, 3, (1, 8, 8), steps=1, lr=1e-9, jitter=0)
    assert torch.allclose(first, actmax_start((1, 8, 8))[0], atol=1e-6)


def test_map_figures_and_actmax_grid_are_written(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(128, 10))
    images, labels = [torch.rand(1, 8, 8) for _ in range(3)], [0, 1, 2]
    save_occlusion_maps(model, images, labels, tmp_path / "occlusion.png")
    save_saliency_maps(model, images, labels, tmp_path / "saliency.png")
    save_actmax_grid(images, ["a", "b", "c"], [0.0] * 3, [1.0] * 3, tmp_path / "actmax.png", columns=2)
    for name in ("occlusion.png", "saliency.png", "actmax.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
