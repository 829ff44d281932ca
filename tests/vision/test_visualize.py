import numpy as np
import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.data import make_bars
from nlp182.vision.fit import FitConfig, accuracy, fit, predict_logits
from nlp182.vision.models import SmallCNN
from nlp182.vision.visualize import (
    GRID_PAD_COLOUR,
    activation_maximization,
    colorize_labels,
    filter_grid,
    occlusion_map,
    saliency_map,
    save_filter_grid,
    save_images,
    save_maps,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bar_model():
    torch.manual_seed(0)
    x, y, _ = make_bars(600, seed=0)
    model = SmallCNN(1, 2, width=0.5)
    fit(model, x, y, FitConfig(epochs=6, batch_size=32, lr=0.05, device="cpu"))
    return model


def test_filter_grid_layout_and_scaling():
    weight = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2)
    grid = filter_grid(weight)
    assert grid.shape == (5, 5, 3)
    tile = grid[:2, :2]
    assert tile.min() == 0.0 and tile.max() == 1.0
    padding = np.array(GRID_PAD_COLOUR)  # not white: white is each tile's largest weight
    assert np.all(grid[2, :] == padding) and np.all(grid[:, 2] == padding)
    grey = filter_grid(torch.randn(6, 1, 3, 3), columns=3)
    tiles = grey[:3, :3], grey[4:7, 8:11]
    assert grey.shape == (7, 11, 3) and all(np.allclose(t[..., 0], t[..., 1]) for t in tiles)  # grey tiles
    with pytest.raises(ShapeError):
        filter_grid(torch.randn(3, 3))


def test_occlusion_minimum_lies_on_the_object(bar_model):
    x, y, boxes = make_bars(40, seed=1)
    assert accuracy(predict_logits(bar_model, x), y) > 0.95
    patch = 4
    for image, label, (x0, y0, x1, y1) in zip(x[:12], y[:12], boxes[:12].tolist(), strict=True):
        heat = occlusion_map(bar_model, image, int(label), patch=patch, stride=1)
        assert heat.shape == (13, 13)
        top, left = divmod(int(heat.argmin()), heat.shape[1])
        # the patch [left, left + 4) x [top, top + 4) overlaps the bar's box
        assert left < x1 and left + patch > x0 and top < y1 and top + patch > y0, (
            top,
            left,
            (x0, y0, x1, y1),
        )
        assert heat.min() < heat.max() - 0.3


def test_saliency_of_a_linear_model_is_its_weights():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    image = torch.randn(2, 4, 4)
    expected = model[1].weight[1].detach().view(2, 4, 4).abs().amax(dim=0)
    torch.testing.assert_close(saliency_map(model, image, 1), expected)


def test_saliency_concentrates_on_the_object(bar_model):
    x, y, boxes = make_bars(10, seed=2)
    x0, y0, x1, y1 = boxes[0].tolist()
    sal = saliency_map(bar_model, x[0], int(y[0]))
    inside = sal[y0:y1, x0:x1].mean()
    assert inside > 2 * sal.mean()


def test_activation_maximization_reaches_the_regularised_optimum():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    # maximise w.x - l2 |x|^2  =>  x* = w / (2 l2)
    image = activation_maximization(model, 0, (1, 4, 4), steps=300, lr=0.05, l2=0.5, jitter=0)
    target = model[1].weight[0].detach().view(1, 4, 4)
    torch.testing.assert_close(image, target, atol=2e-3, rtol=0)
    with pytest.raises(InvalidInputError):
        activation_maximization(model, 0, (1, 4, 4), steps=0)


def test_activation_maximization_with_jitter_raises_the_class_score(bar_model):
    start = bar_model(torch.full((1, 1, 16, 16), 0.0))[0, 1].item()
    image = activation_maximization(bar_model, 1, (1, 16, 16), steps=40, lr=0.05, l2=1e-3, jitter=1)
    assert bar_model(image[None])[0, 1].item() > start + 1.0


def test_figures_are_written_as_png(tmp_path, bar_model):
    x, y, _ = make_bars(2, seed=3)
    save_filter_grid(bar_model, tmp_path / "filters.png")
    heat = [occlusion_map(bar_model, img, int(lbl), patch=4, stride=2) for img, lbl in zip(x, y, strict=True)]
    save_maps(list(x), heat, ["a", "b"], tmp_path / "occlusion.png")
    save_images(list(x), ["a", "b"], tmp_path / "images.png")
    for name in ("filters.png", "occlusion.png", "images.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(InvalidInputError):
        save_maps(list(x), heat[:1], ["a", "b"], tmp_path / "bad.png")


def test_colorize_labels_uses_one_colour_per_class(tmp_path):
    labels = torch.tensor([[0, 1], [2, 3]])
    rgb = colorize_labels(labels)
    assert rgb.shape == (3, 2, 2)
    torch.testing.assert_close(rgb[:, 0, 0], torch.zeros(3))
    colours = {tuple(rgb[:, i, j].tolist()) for i in range(2) for j in range(2)}
    assert len(colours) == 4
    save_images(
        [rgb, colorize_labels(torch.ones(2, 2, dtype=torch.long))],
        ["a", "b"],
        tmp_path / "l.png",
        rescale=False,
    )
    assert (tmp_path / "l.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ShapeError):
        colorize_labels(torch.zeros(1, 2, 2))


def test_maps_leave_the_model_as_they_found_it():
    """Mid-training (train mode, gradients held for the next step) and under no_grad."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, in_channels=1, width=0.5).train()
    image = torch.rand(1, 8, 8)
    held = [torch.full_like(p, 0.25) for p in model.parameters()]
    for p, g in zip(model.parameters(), held, strict=True):
        p.grad = g.clone()
    with torch.no_grad():
        saliency = saliency_map(model, image, 2)
    x = image.unsqueeze(0).requires_grad_(True)
    model.eval()
    (expected,) = torch.autograd.grad(model(x)[0, 2], x)
    model.train()
    torch.testing.assert_close(saliency, expected[0].abs().amax(dim=0))
    activation_maximization(model, 1, (1, 8, 8), steps=3)
    occlusion_map(model, image, 1, patch=4, stride=2)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), held, strict=True))
    with pytest.raises(InvalidInputError, match="stride"):
        occlusion_map(model, image, 1, patch=4, stride=0)


def test_activation_maximization_follows_the_model_dtype() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).double()
    image = activation_maximization(model, target=1, shape=(1, 8, 8), steps=3)
    assert image.dtype == torch.float64 and image.shape == (1, 8, 8)


@pytest.mark.parametrize("target", [-1, 3, 1.0, True, "1"])
def test_maps_refuse_a_target_that_is_not_a_class(target) -> None:
    """-1 explained the last class without a word (Python's indexing); 3 of 3 classes fell with a
    bare IndexError."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    image = torch.randn(2, 4, 4)
    for explain in (
        lambda: saliency_map(model, image, target),
        lambda: occlusion_map(model, image, target, patch=2),
        lambda: activation_maximization(model, target, (2, 4, 4), steps=1),
    ):
        with pytest.raises(InvalidInputError, match=r"target must be a class index from 0 to 2"):
            explain()


def test_a_numpy_or_tensor_class_index_is_a_target() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    image = torch.randn(2, 4, 4)
    expected = saliency_map(model, image, 2)
    torch.testing.assert_close(saliency_map(model, image, np.int64(2)), expected)
    torch.testing.assert_close(saliency_map(model, image, torch.tensor(2)), expected)
