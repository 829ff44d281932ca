"""``vision.fit`` is the shared Trainer with nlp182.optim's SGD, schedules and weight-decay groups."""

import math

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.optim import SGD
from nlp182.vision.fit import FitConfig, TensorBatches, accuracy, fit, make_schedule


def _lrs(config: FitConfig, total: int) -> list[float]:
    optimizer = SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(optimizer, config, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return rates


def test_schedules() -> None:
    cosine = _lrs(FitConfig(schedule="cosine"), 100)
    assert cosine[0] == pytest.approx(1.0) and cosine[50] == pytest.approx(0.5)
    assert _lrs(FitConfig(schedule="constant"), 10) == [1.0] * 10
    cyclic = _lrs(FitConfig(schedule="cyclic", cycles=4), 100)
    assert cyclic[0] == cyclic[25] == cyclic[50] == cyclic[75] == pytest.approx(1.0)
    assert cyclic[24] == pytest.approx(0.5 * (1 + math.cos(math.pi * 24 / 25)))
    with pytest.raises(InvalidInputError, match="schedule must be one of constant, cosine, cyclic"):
        FitConfig(schedule="step")


def test_fit_equals_a_hand_written_torch_loop() -> None:
    """torch.optim.SGD (Nesterov), decay on the weight only, LambdaLR cosine, the same shuffles."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(90, 3, generator=gen, dtype=torch.float64), torch.randint(0, 3, (90,), generator=gen)
    torch.manual_seed(1)
    model = nn.Linear(3, 3).double()
    reference = nn.Linear(3, 3).double()
    reference.load_state_dict(model.state_dict())
    config = FitConfig(epochs=3, batch_size=32, lr=0.3, weight_decay=0.05, device="cpu")
    history = fit(model, x, y, config)

    optimizer = torch.optim.SGD([{"params": [reference.weight], "weight_decay": 0.05},
                                 {"params": [reference.bias], "weight_decay": 0.0}],
                                lr=0.3, momentum=0.9, nesterov=True)
    total = 3 * 3
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    order = torch.Generator().manual_seed(config.seed)
    losses = []
    for _ in range(3):
        epoch = []
        for idx in torch.randperm(90, generator=order).split(32):
            loss = nn.functional.cross_entropy(reference(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch.append((loss.item(), len(idx)))
        losses.append(sum(value * size for value, size in epoch) / 90)  # the mean over examples
    torch.testing.assert_close(model.weight, reference.weight, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.bias, reference.bias, rtol=0, atol=1e-12)
    assert history == pytest.approx(losses, abs=1e-12)


def test_fit_learns_separable_data_and_calls_hooks() -> None:
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


def test_tensor_batches_cover_every_row_once_per_pass() -> None:
    rows = torch.arange(10)
    batches = TensorBatches([rows, rows * 2], batch_size=4, seed=0)
    assert len(batches) == 3
    first = [b for b in batches]
    seen = torch.cat([b[0] for b in first])
    assert sorted(seen.tolist()) == list(range(10)) and all(torch.equal(b[1], b[0] * 2) for b in first)
    assert not torch.equal(seen, torch.cat([b[0] for b in batches]))  # reshuffled


def test_a_last_batch_of_one_example_joins_the_batch_before_it() -> None:
    """129 examples in batches of 64 ended each epoch on one example, which a batch norm cannot
    normalise by its batch: fit raised at the end of epoch 1 and the run was lost."""
    rows = torch.arange(129)
    assert [len(b[0]) for b in TensorBatches([rows], batch_size=64)] == [64, 65]
    assert [len(b[0]) for b in TensorBatches([torch.arange(130)], batch_size=64)] == [64, 64, 2]
    assert [len(b[0]) for b in TensorBatches([torch.arange(3)], batch_size=1)] == [1, 1, 1]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(129, 3, generator=gen), torch.randint(0, 2, (129,), generator=gen)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert len(fit(model, x, y, FitConfig(epochs=2, batch_size=64, device="cpu"))) == 2


def test_fit_skips_frozen_parameters_and_validates() -> None:
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
    with pytest.raises(InvalidInputError, match="no training examples"):  # not the schedule's 0 steps
        fit(model, torch.empty(0, 2), torch.empty(0, dtype=torch.long), FitConfig(epochs=1, device="cpu"))
    with pytest.raises(ShapeError):
        accuracy(torch.randn(3), torch.zeros(3))
