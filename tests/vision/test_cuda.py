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
    width = 8 if name == "small_cnn" else 0.125
    kwargs = {"small_input": True} if name == "resnet18" else {}
    model = create_model(name, num_classes=10, in_channels=1, width=width, **kwargs)
    history = fit(model, x_tr, y_tr, FitConfig(epochs=4, lr=0.05, device="cuda"))
    assert next(model.parameters()).device.type == "cuda" and history[-1] < history[0]
    assert accuracy(predict_logits(model, x_te), y_te) > 0.9
