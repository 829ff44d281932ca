"""Every optimizer torch.optim also has gives the same parameters after 200 float64 steps (to 1e-10)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nlp182 import optim as ours

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "weight_decay": 1e-2}),
    ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 1e-2}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 1e-3, "weight_decay": 1e-2, "initial_accumulator_value": 0.1}),
    ("Adam", {"lr": 1e-3}),
    ("Adam", {"lr": 1e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}),
    ("AdamW", {"lr": 1e-3, "weight_decay": 0.1}),
    ("Adam", {"lr": 1e-3, "amsgrad": True, "weight_decay": 1e-2}),
    ("AdamW", {"lr": 1e-3, "amsgrad": True, "maximize": True}),
    ("Adam", {"lr": 1e-3, "maximize": True, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True, "weight_decay": 1e-2}),
    ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.5, "maximize": True, "weight_decay": 1e-2}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 1e-3, "maximize": True, "weight_decay": 1e-2}),
]
MATH_CASES = [case for case in CASES if not case[1].get("maximize")]  # maximize climbs: no common loss


def _model(device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).to(
        device, torch.float64
    )


def _run(make_opt, device: str) -> list[torch.Tensor]:
    model = _model(device)
    opt = make_opt(model.parameters())
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        x = torch.randn(32, 6, generator=g, dtype=torch.float64).to(device)
        y = torch.randint(0, 3, (32,), generator=g).to(device)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().cpu() for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_200_steps_equal_torch_optim(name: str, kwargs: dict, device: str) -> None:
    mine = _run(lambda p: getattr(ours, name)(p, **kwargs), device)
    ref = _run(lambda p: getattr(torch.optim, name)(p, foreach=True, **kwargs), device)
    start = [p.detach().cpu() for p in _model(device).parameters()]
    moved = max(float((a - s).abs().max()) for a, s in zip(mine, start, strict=True))
    assert moved > 1e-3, "the optimizer barely moved: the comparison would be vacuous"
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_state_dict_round_trip_continues_identically() -> None:
    model = _model("cpu")
    opt = ours.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    clone = _model("cpu")
    clone.load_state_dict(model.state_dict())
    opt2 = ours.Adam(clone.parameters(), lr=1e-2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # a saved checkpoint shares no tensors
    for m, o in ((model, opt), (clone, opt2)):
        o.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_a_torch_optim_checkpoint_resumes_here_and_back(name: str, kwargs: dict) -> None:
    """A state_dict saved by torch.optim (tensor steps, its own group keys) continues exactly here,
    and ours continues exactly in torch.optim."""
    for first, second in ((torch.optim, ours), (ours, torch.optim)):
        model = _model("cpu")
        opt = getattr(first, name)(model.parameters(), **kwargs)
        x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        clone = copy.deepcopy(model)
        resumed = getattr(second, name)(clone.parameters(), **kwargs)
        resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
        for _ in range(5):
            for m, o in ((model, opt), (clone, resumed)):
                o.zero_grad()
                nn.functional.cross_entropy(m(x), y).backward()
                o.step()
        for a, b in zip(model.parameters(), clone.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("name", "kwargs"), [case for case in MATH_CASES if case[0] != "SGD"])
def test_complex_parameters_step_as_torch_optim_does(name: str, kwargs: dict) -> None:
    """Real and imaginary parts are two real coordinates (squares and roots taken per part)."""
    results = []
    for library in (ours, torch.optim):
        torch.manual_seed(2)
        z = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
        opt = getattr(library, name)([z], **kwargs)
        for _ in range(20):
            opt.zero_grad()
            (z.abs() ** 3).sum().backward()
            opt.step()
        results.append(z.detach())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adagrad", "Adam", "AdamW"])
def test_a_tensor_learning_rate_works_as_in_torch(name: str) -> None:
    mine = _run(lambda p: getattr(ours, name)(p, lr=torch.tensor(1e-3, dtype=torch.float64)), "cpu")
    ref = _run(lambda p: getattr(torch.optim, name)(p, lr=torch.tensor(1e-3, dtype=torch.float64)), "cpu")
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
