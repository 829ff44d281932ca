"""The vision core trains on CUDA through ``vision.fit`` (the shared Trainer) as well as on the CPU."""

from __future__ import annotations

import pytest

from nlp182.vision.data import load_digits_split
from nlp182.vision.fit import FitConfig, accuracy, fit, predict_logits
from nlp182.vision.registry import create_model

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_digits_train_on_cuda(name: str) -> None:
    x_tr, y_tr, x_te, y_te = load_digits_split(seed=0)
    width = 0.5 if name == "small_cnn" else 0.125
    kwargs = {"small_input": True} if name == "resnet18" else {}
    model = create_model(name, num_classes=10, in_channels=1, width=width, **kwargs)
    history = fit(model, x_tr, y_tr, FitConfig(epochs=4, lr=0.05, device="cuda"))
    assert next(model.parameters()).device.type == "cuda" and history[-1] < history[0]
    assert accuracy(predict_logits(model, x_te), y_te) > 0.9


def test_ema_taken_on_the_cpu_follows_the_model_to_cuda():
    """``fit`` moves the model after the caller took its average (bench.vision does): found on an H100."""
    import torch
    from torch import nn

    from nlp182.vision import ExponentialMovingAverage

    model = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))
    ema = ExponentialMovingAverage(model, decay=0.5)
    start = model[0].weight.detach().double().clone()
    model.cuda()(torch.randn(8, 4, device="cuda"))
    ema.update(model)
    assert ema.shadow["0.weight"].device.type == "cuda"
    expected = 0.5 * start + 0.5 * model[0].weight.detach().double().cpu()
    torch.testing.assert_close(ema.shadow["0.weight"].double().cpu(), expected)
    assert int(ema.shadow["1.num_batches_tracked"]) == 1
