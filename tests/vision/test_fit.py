import math

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.fit import FitConfig, accuracy, fit, schedule_factor


def test_schedule_factors():
    assert schedule_factor(0, 100, "cosine") == pytest.approx(1.0)
    assert schedule_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert schedule_factor(37, 100, "constant") == 1.0
    cyclic = [schedule_factor(s, 100, "cyclic", 4) for s in range(100)]
    assert cyclic[0] == cyclic[25] == cyclic[50] == cyclic[75] == pytest.approx(1.0)
    assert cyclic[24] == pytest.approx(0.5 * (1 + math.cos(math.pi * 24 / 25)))
    with pytest.raises(InvalidInputError):
        schedule_factor(0, 10, "step")


def test_fit_learns_separable_data_and_calls_hooks():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Linear(2, 2)
    steps, cycles = [], []
    config = FitConfig(epochs=4, batch_size=50, lr=0.5, schedule="cyclic", cycles=2, device="cpu")
    history = fit(
        model, x, y, config, on_step=lambda m: steps.append(1), on_cycle_end=lambda m, c: cycles.append(c)
    )
    assert len(history) == 4 and history[-1] < history[0]
    assert len(steps) == 16 and cycles == [0, 1]
    assert accuracy(model(x), y) > 0.95


def test_fit_skips_frozen_parameters_and_validates():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    before = model[0].weight.clone()
    fit(
        model,
        torch.randn(20, 2),
        torch.randint(0, 2, (20,)),
        FitConfig(epochs=1, device="cpu", weight_decay=0.1),
    )
    assert torch.equal(before, model[0].weight)
    with pytest.raises(InvalidInputError, match="cycles"):
        fit(model, torch.randn(20, 2), torch.randint(0, 2, (20,)), FitConfig(epochs=3, cycles=2))
    with pytest.raises(ShapeError):
        fit(model, torch.randn(20, 2), torch.randint(0, 2, (19,)), FitConfig(epochs=1, device="cpu"))
    with pytest.raises(ShapeError):
        accuracy(torch.randn(3), torch.zeros(3))
