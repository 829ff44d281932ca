"""Every optimizer torch.optim also has gives the same parameters after 200 float64 steps (to 1e-10)."""

from __future__ import annotations

import copy
import functools
import inspect

import pytest
import torch
from torch import nn

from nlp182 import optim as ours
from nlp182.errors import InvalidInputError

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


def _positional(cls: type) -> list[str]:
    kinds = inspect.signature(cls).parameters.values()
    return [p.name for p in kinds if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_positional_arguments_mean_what_they_mean_in_torch(name: str) -> None:
    """Code written for torch.optim passes hyperparameters by position: each one lands where
    torch puts it (Adam's sixth is amsgrad, RMSprop's eighth capturable, Adagrad's seventh foreach;
    bias_correction is by keyword only)."""
    mine, theirs = _positional(getattr(ours, name)), _positional(getattr(torch.optim, name))
    assert mine == theirs
    if name.startswith("Adam"):
        results = []
        for cls in (getattr(ours, name), getattr(torch.optim, name)):
            p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
            opt = cls([p], 0.1, (0.9, 0.999), 1e-8, 0.0, True)  # amsgrad, by position
            for grad in ([5.0, -2.0, 0.5], [0.01, 0.02, -0.01], [0.01, -0.02, 0.01]):
                p.grad = torch.tensor(grad, dtype=torch.float64)
                opt.step()
            results.append(p.detach())
        torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-14)


def test_rmsprop_takes_the_alphas_torch_takes() -> None:
    """alpha = 1 never updates the average (torch allows it: steps of lr * g / eps); above 1 it is
    refused, as a negative weight on the new square."""
    for alpha in (0.0, 1.0):
        mine = _run(lambda p, alpha=alpha: ours.RMSprop(p, lr=1e-3, alpha=alpha), "cpu")
        ref = _run(lambda p, alpha=alpha: torch.optim.RMSprop(p, lr=1e-3, alpha=alpha, foreach=True), "cpu")
        for a, b in zip(mine, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    with pytest.raises(InvalidInputError, match=r"alpha must be in \[0, 1\], got 1.5"):
        ours.RMSprop(nn.Linear(2, 2).parameters(), alpha=1.5)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_torch_code_passing_foreach_or_fused_runs_unchanged(name: str) -> None:
    mine = _run(lambda p: getattr(ours, name)(p, lr=1e-3, foreach=False, fused=True), "cpu")
    ref = _run(lambda p: getattr(torch.optim, name)(p, lr=1e-3, foreach=True), "cpu")
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    with pytest.raises(InvalidInputError, match="fused must be True, False or None"):
        getattr(ours, name)(nn.Linear(2, 2).parameters(), fused="yes")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_torch_code_passing_capturable_differentiable_or_decoupled_decay_runs(name: str) -> None:
    """torch >= 2.6 code writes ``Adam(..., decoupled_weight_decay=True)`` for AdamW and passes
    ``capturable``/``differentiable``: they raised TypeError here."""
    extra = {"decoupled_weight_decay": True, "weight_decay": 0.1} if name == "Adam" else {}
    options = {"lr": 1e-3, "capturable": False, "differentiable": False, **extra}
    taken = inspect.signature(getattr(torch.optim, name)).parameters  # torch's SGD has no capturable
    options = {key: value for key, value in options.items() if key in taken}
    mine = _run(lambda p: getattr(ours, name)(p, **options), "cpu")
    ref = _run(lambda p: getattr(torch.optim, name)(p, **options), "cpu")
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    if name == "Adam":  # it is AdamW
        adamw = _run(lambda p: ours.AdamW(p, lr=1e-3, weight_decay=0.1), "cpu")
        for a, b in zip(mine, adamw, strict=True):
            assert torch.equal(a, b)
    with pytest.raises(InvalidInputError, match="capturable=True is not supported"):
        getattr(ours, name)(nn.Linear(2, 2).parameters(), capturable=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nesterov_rounds_as_torch_in_float32_and_bfloat16(dtype: torch.dtype) -> None:
    """One update ``w − lr (g + μ v)``, rounded once as torch rounds it: two half-updates lost the
    first bfloat16 step entirely (each under half an ulp) and differed in most float32 elements."""
    runs = []
    for make in (ours.SGD, functools.partial(torch.optim.SGD, foreach=True)):
        g = torch.Generator().manual_seed(0)
        p = nn.Parameter(1.5 + torch.randn(1000, generator=g).to(dtype))
        opt = make([p], lr=0.01, momentum=0.9, nesterov=True)
        for _ in range(20):
            p.grad = (0.3 * torch.randn(1000, generator=g)).to(dtype)
            opt.step()
        runs.append(p.detach())
    assert torch.equal(runs[0], runs[1])


SPARSE_CASES = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.9, "dampening": 0.5, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-6, "maximize": True}),
]


SPARSE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(SPARSE_CASES)]


@pytest.mark.parametrize(("name", "kwargs"), SPARSE_CASES, ids=SPARSE_IDS)
def test_sparse_embedding_gradients_step_as_in_torch(name: str, kwargs: dict) -> None:
    """``nn.Embedding(sparse=True)`` with SGD or Adagrad (GloVe's), the classic pairings for large
    vocabularies, steps as torch's does, SGD's momentum buffer sparse; weight decay is refused by name."""
    runs = []
    for cls in (getattr(ours, name), getattr(torch.optim, name)):
        torch.manual_seed(0)
        embed, head = nn.Embedding(50, 4, sparse=True).double(), nn.Linear(4, 1).double()
        opt = cls([*embed.parameters(), *head.parameters()], lr=0.1, **kwargs)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            opt.zero_grad()
            head(embed(torch.randint(0, 50, (16,), generator=g))).pow(2).mean().backward()
            opt.step()
        runs.append([embed.weight.detach(), head.weight.detach()])
        if "momentum" in kwargs:
            assert opt.state[embed.weight]["momentum_buffer"].is_sparse
    for mine, theirs in zip(*runs, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-14)
    embed = nn.Embedding(5, 2, sparse=True)
    embed(torch.tensor([1])).sum().backward()
    with pytest.raises(InvalidInputError, match="weight_decay needs dense gradients"):
        getattr(ours, name)(embed.parameters(), lr=0.1, weight_decay=0.1).step()
    with pytest.raises(InvalidInputError, match="Adam does not support sparse gradients"):
        ours.Adam(embed.parameters()).step()


def test_betas_may_be_tensors_as_in_torch() -> None:
    runs = []
    betas = (torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.95, dtype=torch.float64))
    for make in (ours.Adam, functools.partial(torch.optim.Adam, foreach=False)):  # torch's one path for them
        p = nn.Parameter(torch.ones(3, dtype=torch.float64))
        opt = make([p], lr=0.1, betas=betas)
        for _ in range(3):
            p.grad = p.detach() * 2
            opt.step()
        runs.append(p.detach())
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-14)
