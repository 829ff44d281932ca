"""Optimizers and tools without a torch.optim counterpart: hand-computed cases and known functions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from nlp182.errors import InvalidInputError
from nlp182.optim import (
    SGD,
    Adam,
    Cosine,
    CyclicCosine,
    ExponentialDecay,
    GradientNoise,
    InverseSqrtDecay,
    InverseTimeDecay,
    Newton,
    ProgressDecay,
    SignSGD,
    StepDecay,
    clip_grad_norm_,
    clip_grad_value_,
    module_closure,
)


def _param(values: list[float]) -> nn.Parameter:
    return nn.Parameter(torch.tensor(values, dtype=torch.float64))


def test_adam_without_bias_correction_hand_computed() -> None:
    w = _param([1.0, -2.0])
    opt = Adam([w], lr=0.1, betas=(0.9, 0.99), eps=0.0, bias_correction=False)
    w.grad = torch.tensor([0.5, -4.0], dtype=torch.float64)
    opt.step()
    # m = 0.1 g, v = 0.01 g², step = lr m / √v = 0.1 · 0.1 g / (0.1 |g|) = 0.1 sign(g)
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9], dtype=torch.float64), rtol=0, atol=1e-15)
    w.grad = torch.tensor([1.0, 0.0], dtype=torch.float64)
    opt.step()
    m = 0.9 * 0.05 + 0.1 * 1.0
    v = 0.99 * 0.01 * 0.25 + 0.01 * 1.0
    expected0 = 0.9 - 0.1 * m / math.sqrt(v)
    assert float(w.detach()[0]) == pytest.approx(expected0, abs=1e-14)


def test_signsgd_uses_only_the_sign_and_signum_momentum() -> None:
    w = _param([1.0, 1.0, 1.0])
    opt = SignSGD([w], lr=0.25)
    w.grad = torch.tensor([1e6, -1e-6, 0.0], dtype=torch.float64)
    opt.step()
    assert w.detach().tolist() == [0.75, 1.25, 1.0]
    v = _param([0.0])
    signum = SignSGD([v], lr=1.0, momentum=0.5)
    for g, expected in ((2.0, -1.0), (-1.0, -1.0), (-4.0, 0.0)):  # m: 1.0, 0.0 (sign 0), -2.0
        v.grad = torch.tensor([g], dtype=torch.float64)
        signum.step()
        assert float(v.detach()) == expected


def test_signum_keeps_one_minus_momentum_of_each_gradient_and_decays_before_the_sign() -> None:
    """Signum's buffer is ``m <- b m + (1 - b) g`` (b = 0.9, where b and 1 - b differ), weight decay
    joins the gradient before the sign (here it flips the step), and momentum 1 is refused."""
    v = _param([0.0])
    signum = SignSGD([v], lr=1.0, momentum=0.9)
    for g, expected in ((1.0, -1.0), (-0.5, -2.0), (-1.0, -1.0)):  # m: 0.1, 0.04, -0.064
        v.grad = torch.tensor([g], dtype=torch.float64)
        signum.step()
        assert float(v.detach()) == expected
    w = _param([1.0])
    w.grad = torch.tensor([-0.5], dtype=torch.float64)  # g + 1.0 w = 0.5: a step down, not up
    SignSGD([w], lr=0.25, weight_decay=1.0).step()
    assert float(w.detach()) == 0.75
    with pytest.raises(InvalidInputError, match="momentum"):
        SignSGD([w], momentum=1.0)


def test_signsgd_and_uncorrected_adam_converge_on_an_ill_conditioned_quadratic() -> None:
    scales = torch.tensor([1.0, 100.0], dtype=torch.float64)
    target = torch.tensor([3.0, -2.0], dtype=torch.float64)

    def loss(p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (scales * (p - target) ** 2).sum()

    for make in (
        lambda p: SignSGD([p], lr=0.05),
        lambda p: Adam([p], lr=0.05, bias_correction=False),
    ):
        w = _param([0.0, 0.0])
        opt = make(w)
        sched = InverseTimeDecay(opt, k=0.05)
        for _ in range(1500):
            opt.zero_grad()
            loss(w).backward()
            opt.step()
            sched.step()
        torch.testing.assert_close(w.detach(), target, rtol=0, atol=2e-3)


def test_newton_solves_a_quadratic_in_one_step() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = q @ q.T + 0.1 * torch.eye(6, dtype=torch.float64)  # ill-conditioned SPD
    b = torch.randn(6, generator=g, dtype=torch.float64)
    w = _param([0.0] * 6)
    opt = Newton([w])
    opt.step(lambda p: 0.5 * p[0] @ a @ p[0] - b @ p[0])
    torch.testing.assert_close(w.detach(), torch.linalg.solve(a, b), rtol=0, atol=1e-10)
    assert opt.last_step_length == 1.0


def test_newton_damping_and_backtracking_take_their_values_as_given() -> None:
    """Damping adds ``damping * I`` (0.3, not its square); the line search multiplies the step by
    ``backtrack`` until Armijo's ``f(x + t d) <= f(x) + c t g.d`` holds. On ``sqrt(1 + x^2)`` from
    2 the Newton direction is -10 exactly; with ``c = 0.5`` and ``backtrack = 0.3``, t = 1 and 0.3
    fail and t = 0.09 passes."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 4, generator=g, dtype=torch.float64)
    a, b = q @ q.T + 0.1 * torch.eye(4, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    w = _param([0.0] * 4)
    Newton([w], damping=0.3, line_search=False).step(lambda p: 0.5 * p[0] @ a @ p[0] - b @ p[0])
    torch.testing.assert_close(w.detach(), torch.linalg.solve(a + 0.3 * torch.eye(4, dtype=torch.float64), b),
                               rtol=0, atol=1e-12)
    x = _param([2.0])
    opt = Newton([x], armijo_c=0.5, backtrack=0.3)
    opt.step(lambda p: torch.sqrt(1 + p[0] ** 2).sum())
    assert opt.last_step_length == pytest.approx(0.09, rel=1e-12)
    assert float(x.detach()) == pytest.approx(2.0 - 0.09 * 10.0, rel=1e-10)


def test_newton_goes_to_the_saddle_that_gradient_descent_escapes() -> None:
    def saddle(p: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = p[0][0], p[0][1]
        return x**2 - y**2

    start = [1.0, 1e-3]
    w = _param(start)
    Newton([w]).step(saddle)
    assert w.detach().abs().max() < 1e-12  # exactly on the saddle, gradient 0: Newton stays there
    v = _param(start)
    gd = SGD([v], lr=0.1)
    for _ in range(60):
        gd.zero_grad()
        saddle((v,)).backward()
        gd.step()
    end = v.detach()
    assert abs(float(end[0])) < 1e-4 and abs(float(end[1])) > 1.0  # slid off along -y²
    assert float(saddle((end,))) < -1.0


def test_newton_with_line_search_minimises_rosenbrock_and_a_small_model() -> None:
    w = _param([-1.2, 1.0])
    opt = Newton([w])

    def rosen(p: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return (1 - p[0][0]) ** 2 + 100 * (p[0][1] - p[0][0] ** 2) ** 2

    for _ in range(40):
        opt.step(rosen)
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-8)

    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).long()
    model = nn.Linear(3, 2).double()
    newton = Newton(model.parameters(), damping=1e-3)
    closure = module_closure(model, nn.functional.cross_entropy, x, y)
    losses = [float(newton.step(closure)) for _ in range(8)]
    assert losses[-1] < 0.1 * losses[0]
    with pytest.raises(InvalidInputError, match="closure"):
        newton.step()


def test_newton_refuses_a_non_finite_point_and_takes_no_step_the_line_search_cannot_find() -> None:
    """A NaN loss was stepped into the parameters without a word, and a line search that found no
    step took its last trial anyway (the loss went from 1 to 1e6)."""
    from nlp182.errors import NonFiniteError

    w = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(NonFiniteError, match="Newton: the loss is not finite"):
        Newton([w]).step(lambda p: (p[0] ** 2).sum() * float("nan"))
    assert w.tolist() == [1.0, 2.0]
    cliff = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))

    def jump(p: tuple[torch.Tensor, ...]) -> torch.Tensor:  # any step to the left costs 1e6
        return torch.where(p[0] > 0.999999, p[0], 1e6 + 0 * p[0]).sum()

    optimizer = Newton([cliff], damping=1.0, max_backtracks=5)
    optimizer.step(jump)
    assert cliff.tolist() == [1.0] and optimizer.last_step_length == 0.0


def test_newton_tries_the_full_step_and_then_max_backtracks_shorter_ones() -> None:
    """The last halving was never tried, and max_backtracks=0 (allowed) took no step at all, even
    where the full step is exact."""
    def bowl(p: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return ((p[0] - 3.0) ** 2).sum()

    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = Newton([w], max_backtracks=0)
    optimizer.step(bowl)
    assert w.tolist() == [3.0, 3.0] and optimizer.last_step_length == 1.0
    v = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = Newton([v], lr=4.0, max_backtracks=2)  # 4 and 2 overshoot; the 2nd halving, 1, is exact
    optimizer.step(bowl)
    assert v.tolist() == [3.0] and optimizer.last_step_length == 1.0


def test_module_closure_matches_the_optimizer_s_parameters_by_identity() -> None:
    """``Newton([m.b, m.a])`` gave ``a`` the value of ``b`` inside the closure: the loss it reported
    and the step it took were another model's."""
    torch.manual_seed(0)
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randn(16, 2, dtype=torch.float64)
    results = []
    for order in ("model", "reversed"):
        torch.manual_seed(1)
        model = nn.Linear(3, 2).double()
        params = list(model.parameters())
        before = float(nn.functional.mse_loss(model(x), y))
        loss = Newton(params if order == "model" else params[::-1]).step(
            module_closure(model, nn.functional.mse_loss, x, y))
        assert float(loss) == pytest.approx(before, rel=1e-12)
        results.append([p.detach().clone() for p in model.parameters()])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_a_growing_exponential_rate_reaches_inf_as_torch_does() -> None:
    """gamma > 1 raised OverflowError after some thousand steps."""
    w = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([w], lr=1.0)
    schedule = ExponentialDecay(optimizer, gamma=1.5)
    assert schedule.decay(2000) == math.inf and schedule.decay(3) == 1.5**3


def test_newton_holds_frozen_parameters_fixed_whether_it_is_given_them_or_not() -> None:
    """A frozen layer moved by 0.84 in one step (torch's LBFGS: 0), and an optimizer over the
    trainable parameters alone failed inside module_closure. The step on the head equals Newton's
    on the head alone, with the frozen features computed once, outside."""
    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).long()
    heads = []
    for given in ("all", "trainable"):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        model[0].requires_grad_(False)
        frozen = [p.detach().clone() for p in model[0].parameters()]
        params = model.parameters() if given == "all" else [p for p in model.parameters() if p.requires_grad]
        Newton(params, damping=1e-3).step(module_closure(model, nn.functional.cross_entropy, x, y))
        assert all(torch.equal(p, q) for p, q in zip(model[0].parameters(), frozen, strict=True))
        heads.append([p.detach().clone() for p in model[2].parameters()])
        features = model[:2](x).detach()
    torch.manual_seed(1)
    reference = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()[2]
    Newton(reference.parameters(), damping=1e-3).step(
        module_closure(reference, nn.functional.cross_entropy, features, y))
    for head in heads:
        for got, want in zip(head, reference.parameters(), strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["nlp182", "torch"])
def test_newton_steps_a_model_with_batch_norm_in_training_mode(norm: str) -> None:
    """torch.func refused the in-place update of the running statistics (a raw RuntimeError); the
    step now equals Newton's on the same network whose batch norm keeps no statistics (the same
    batch-statistics forward), and leaves the statistics as they were."""
    from nlp182.vision.normalization import BatchNorm

    def network(track: bool) -> nn.Module:
        torch.manual_seed(1)
        kind = BatchNorm if norm == "nlp182" else nn.BatchNorm1d
        layer = kind(5, track_running_stats=track)
        return nn.Sequential(nn.Linear(3, 5), layer, nn.Tanh(), nn.Linear(5, 2)).double().train()

    torch.manual_seed(0)
    x = torch.randn(32, 3, dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    tracked, reference = network(True), network(False)
    statistics = tracked[1].running_mean.clone()
    for model in (tracked, reference):
        closure = module_closure(model, nn.functional.cross_entropy, x, y)
        Newton(model.parameters(), damping=1e-2).step(closure)
    for ours, theirs in zip(tracked.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert torch.equal(tracked[1].running_mean, statistics)


def test_schedules_closed_forms() -> None:
    def lrs(make, steps: int = 7) -> list[float]:
        opt = SGD([_param([0.0])], lr=0.8)
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ref = torch.optim.SGD([_param([0.0])], lr=0.8)
    torch_step = torch.optim.lr_scheduler.StepLR(ref, step_size=3, gamma=0.5)
    expected = []
    for _ in range(7):
        expected.append(ref.param_groups[0]["lr"])
        ref.step()
        torch_step.step()
    assert lrs(lambda o: StepDecay(o, step_size=3, gamma=0.5)) == pytest.approx(expected, abs=1e-15)
    assert lrs(lambda o: ExponentialDecay(o, gamma=0.9)) == pytest.approx([0.8 * 0.9**t for t in range(7)])
    assert lrs(lambda o: InverseTimeDecay(o, k=0.5)) == pytest.approx([0.8 / (1 + 0.5 * t) for t in range(7)])
    assert lrs(lambda o: InverseSqrtDecay(o, k=2.0)) == pytest.approx(
        [0.8 / math.sqrt(1 + 2 * t) for t in range(7)]
    )
    warm_cos = lrs(lambda o: Cosine(o, total_steps=4, min_factor=0.25, warmup_steps=2), steps=8)
    cos = [0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * min(t, 4) / 4)) for t in range(6)]
    assert warm_cos == pytest.approx([0.4, 0.8] + [0.8 * c for c in cos])


def _rates(optimizer: torch.optim.Optimizer, schedulers: list, steps: int) -> list[float]:
    """The rate of each step; a ReduceLROnPlateau sees a metric that never improves."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for scheduler in schedulers:
            if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
                scheduler.step(1.0)
            else:
                scheduler.step()
    return rates


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda o: ExponentialDecay(o, gamma=0.5), lambda o: lr_scheduler.ExponentialLR(o, gamma=0.5)),
        (lambda o: StepDecay(o, step_size=2, gamma=0.3), lambda o: lr_scheduler.StepLR(o, 2, gamma=0.3)),
    ],
)
def test_schedules_compose_with_torch_schedulers_as_torch_s_own(ours, theirs) -> None:
    """A warmup chained before the schedule and a plateau cut made beside it both stay in force, as
    with torch's StepLR/ExponentialLR; a closed form that overwrote the rate lost both."""
    def warmup(optimizer):
        return lr_scheduler.LinearLR(optimizer, 0.1, 1.0, total_iters=4)

    for build in (
        lambda o, decay: [lr_scheduler.ChainedScheduler([warmup(o), decay(o)])],
        lambda o, decay: [decay(o), lr_scheduler.ReduceLROnPlateau(o, factor=0.1, patience=0)],
    ):
        rates = {}
        for name, decay in (("ours", ours), ("theirs", theirs)):
            optimizer = torch.optim.SGD([_param([0.0])], lr=1.0)
            rates[name] = _rates(optimizer, build(optimizer, decay), 8)
        assert rates["ours"] == pytest.approx(rates["theirs"], rel=1e-12)
        assert rates["ours"] != pytest.approx([1.0 * 0.5**t for t in range(8)])


def test_progress_decay_follows_the_clock_it_is_given() -> None:
    clock = [0.0]

    def lrs(shape: str, min_factor: float = 0.0) -> list[float]:
        opt = SGD([_param([0.0])], lr=0.8)
        sched = ProgressDecay(opt, lambda: clock[0], shape, min_factor)
        out = []
        for p in (0.0, 0.25, 0.5, 1.0, 1.7):  # progress past the end is held at 1
            clock[0] = p
            opt.step()  # (no gradient: nothing moves) the order PyTorch's schedulers expect
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out

    assert lrs("constant") == pytest.approx([0.8] * 5)
    assert lrs("linear") == pytest.approx([0.8, 0.6, 0.4, 0.0, 0.0])
    assert lrs("linear", 0.5) == pytest.approx([0.8, 0.7, 0.6, 0.4, 0.4])
    half = 0.5 * (1 + math.cos(math.pi / 4))  # cos schedule at p = 1/4
    assert lrs("cosine") == pytest.approx([0.8, 0.8 * half, 0.4, 0.0, 0.0])
    assert lrs("cosine", 0.25) == pytest.approx([0.8, 0.8 * (0.25 + 0.75 * half), 0.5, 0.2, 0.2])
    opt = SGD([_param([0.0])], lr=1.0)
    assert "progress" not in ProgressDecay(opt, lambda: 0.0).state_dict()  # a function is no state
    with pytest.raises(InvalidInputError):
        ProgressDecay(opt, lambda: 0.0, "step")


def test_progress_decay_is_cosine_by_default_and_holds_a_negative_progress_at_the_start() -> None:
    """The default shape is the cosine; a clock read before the start (a share below 0) is held at
    0, so a linear rate does not rise above its base."""
    opt = SGD([_param([0.0])], lr=0.8)
    ProgressDecay(opt, lambda: 0.25)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.8 * 0.5 * (1 + math.cos(math.pi / 4)))
    ProgressDecay(opt, lambda: -0.5, "linear")
    assert opt.param_groups[0]["lr"] == pytest.approx(0.8)


def test_schedule_state_dict_resumes() -> None:
    opt = SGD([_param([0.0])], lr=1.0)
    sched = Cosine(opt, total_steps=10, warmup_steps=3)
    for _ in range(5):
        opt.step()
        sched.step()
    opt2 = SGD([_param([0.0])], lr=1.0)
    sched2 = Cosine(opt2, total_steps=10, warmup_steps=3)
    sched2.load_state_dict(sched.state_dict())
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # torch's other way back: last_epoch, with each group's initial_lr in place (StepLR's rule)
    opt3 = SGD([_param([0.0])], lr=1.0)
    opt3.param_groups[0]["initial_lr"] = 1.0
    Cosine(opt3, total_steps=10, warmup_steps=3, last_epoch=5)  # steps on to 6, as torch's do
    assert opt3.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    ref = torch.optim.SGD([_param([0.0])], lr=0.2)  # an optimizer saved at epoch 4: 0.8 halved twice
    ref.param_groups[0]["initial_lr"] = 0.8
    ours_opt = SGD([_param([0.0])], lr=0.2)
    ours_opt.param_groups[0]["initial_lr"] = 0.8
    theirs = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5, last_epoch=4)
    mine = StepDecay(ours_opt, step_size=2, gamma=0.5, last_epoch=4)
    for _ in range(3):
        ref.step()
        theirs.step()
        ours_opt.step()
        mine.step()
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], abs=1e-15)


def test_a_schedule_resumed_for_a_longer_run_decays_over_the_new_length() -> None:
    """A run resumed with more epochs builds its Cosine for the new total; loading the saved state
    took the old total back and every added step trained at rate 0."""
    opt = SGD([_param([0.0])], lr=1.0)
    sched = Cosine(opt, total_steps=10, warmup_steps=2)
    for _ in range(5):
        opt.step()
        sched.step()
    longer_opt = SGD([_param([0.0])], lr=1.0)
    longer_opt.load_state_dict(opt.state_dict())
    longer = Cosine(longer_opt, total_steps=20, warmup_steps=2)
    longer.load_state_dict(sched.state_dict())
    assert longer.total_steps == 20 and longer.last_epoch == 5
    resumed_rate = 0.5 * (1 + math.cos(math.pi * 3 / 20))  # step 5 of the new plan, after 2 of warmup
    assert longer_opt.param_groups[0]["lr"] == pytest.approx(resumed_rate, rel=1e-12)
    for step in range(6, 13):
        longer_opt.step()
        longer.step()
        expected = 0.5 * (1 + math.cos(math.pi * (step - 2) / 20))
        assert longer_opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)


def test_cyclic_cosine_cycles_take_the_ceiling_of_steps_over_cycles() -> None:
    """10 steps in 3 cycles are cycles of 4 steps (the last one cut short): the rate is back at its
    base at steps 4 and 8."""
    opt = SGD([_param([0.0])], lr=1.0)
    schedule = CyclicCosine(opt, total_steps=10, cycles=3)
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    expected = [0.5 * (1 + math.cos(math.pi * (t % 4) / 4)) for t in range(10)]
    assert rates == pytest.approx(expected, abs=1e-12)


def test_clipping_leaves_a_gradient_below_max_norm_as_it_is() -> None:
    """Only a norm above ``max_norm`` is scaled down (torch's rule); a smaller one is not scaled up."""
    mine, theirs = _param([0.0, 0.0, 0.0]), _param([0.0, 0.0, 0.0])
    mine.grad = torch.tensor([0.3, -0.4, 0.0], dtype=torch.float64)
    theirs.grad = mine.grad.clone()
    total = clip_grad_norm_([mine], max_norm=1.0)
    assert float(total) == pytest.approx(0.5) == float(torch.nn.utils.clip_grad_norm_([theirs], max_norm=1.0))
    assert mine.grad.tolist() == [0.3, -0.4, 0.0] and torch.equal(mine.grad, theirs.grad)


def test_a_chained_schedule_resumes_as_torch_s_and_a_fresh_optimizer_steps_at_the_saved_rate() -> None:
    """A resumed schedule forced its closed form and undid what the chain had done (a plateau cut
    came back 10x); a fresh optimizer took one step at its own rate before the schedule's; a group
    added later broke the schedule. Each now goes as torch's StepLR goes."""
    def run(decay, resume_at: int | None, fresh: bool = False) -> list[float]:
        optimizer = torch.optim.SGD([_param([0.0])], lr=0.1)
        schedule = decay(optimizer)
        plateau = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=0)
        used = []
        for step in range(12):
            if step == resume_at:
                saved = optimizer.state_dict(), schedule.state_dict(), plateau.state_dict()
                optimizer = torch.optim.SGD([_param([0.0])], lr=0.1)
                schedule, plateau = decay(optimizer), lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1,
                                                                                     patience=0)
                if not fresh:
                    optimizer.load_state_dict(saved[0])
                schedule.load_state_dict(saved[1])
                plateau.load_state_dict(saved[2])
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
            if step == 2:
                plateau.step(1.0)
                plateau.step(2.0)  # worse: the rate is cut once
        return used

    ours, theirs = (lambda o: StepDecay(o, 5, 0.5)), (lambda o: lr_scheduler.StepLR(o, 5, 0.5))
    warmed = run(lambda o: lr_scheduler.ChainedScheduler([lr_scheduler.LinearLR(o, 0.1, total_iters=6),
                                                          StepDecay(o, 5, 0.5)]), None)
    resumed = run(lambda o: lr_scheduler.ChainedScheduler([lr_scheduler.LinearLR(o, 0.1, total_iters=6),
                                                           StepDecay(o, 5, 0.5)]), 4)
    assert resumed == pytest.approx(warmed, rel=1e-12)  # a warmup in force at the checkpoint stays
    straight = run(theirs, None)
    assert run(ours, None) == pytest.approx(straight, rel=1e-12)
    for resume_at in (3, 7):  # 3: the cut came in the step before the checkpoint
        assert run(theirs, resume_at) == pytest.approx(straight, rel=1e-12)
        assert run(ours, resume_at) == pytest.approx(straight, rel=1e-12)
    fresh = run(ours, 7, fresh=True)  # only the schedule's state: its saved rate, from the first step
    assert fresh[7:] == pytest.approx(straight[7:], rel=1e-12)
    grown = {}
    for name, decay in (("ours", ours), ("theirs", theirs)):
        optimizer = torch.optim.SGD([_param([0.0])], lr=0.1)
        schedule = decay(optimizer)
        for step in range(12):
            if step == 3:  # progressive unfreezing
                optimizer.add_param_group({"params": [_param([0.0])], "lr": 0.01})
            optimizer.step()
            schedule.step()
        grown[name] = [group["lr"] for group in optimizer.param_groups]
    assert grown["ours"] == pytest.approx(grown["theirs"], rel=1e-12)


def test_clipping_matches_torch_and_returns_pre_clip_norm() -> None:
    torch.manual_seed(0)
    for norm_type in (2.0, 1.0, math.inf):
        a = [_param([0.0] * 5), _param([0.0] * 3)]
        b = [_param([0.0] * 5), _param([0.0] * 3)]
        for p, q in zip(a, b, strict=True):
            p.grad = torch.randn_like(p) * 10
            q.grad = p.grad.clone()
        total = clip_grad_norm_(a, max_norm=1.5, norm_type=norm_type, foreach=True)  # torch's keywords
        ref_total = torch.nn.utils.clip_grad_norm_(b, max_norm=1.5, norm_type=norm_type, foreach=True)
        assert float(total) == pytest.approx(float(ref_total), rel=1e-14)
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-14)
    c = _param([0.0, 0.0, 0.0])
    c.grad = torch.tensor([-5.0, 0.3, 7.0], dtype=torch.float64)
    clip_grad_value_([c], 1.0, foreach=True)  # torch's keywords
    assert c.grad.tolist() == [-1.0, 0.3, 1.0]
    clip_grad_value_([c], 0)  # torch takes 0 too: every coordinate to zero
    assert c.grad.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(InvalidInputError, match="clip_value must be >= 0"):
        clip_grad_value_([c], -1.0)
    c.grad = torch.tensor([math.nan, 0.0, 0.0], dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="gradient norm"):
        clip_grad_norm_([c], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="gradient norm"):  # what torch raises for it
        clip_grad_norm_([c], 1.0, error_if_nonfinite=True)
    assert c.grad.isnan().tolist() == [True, False, False]  # left as it was


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_gradient_norm_is_returned_and_scales_as_torch_does_by_default(bad: float) -> None:
    """torch's default does not raise: the norm comes back and the gradients are scaled by it (an
    infinite norm zeroes the finite coordinates), which the AMP recipe ``scaler.unscale_``, clip,
    ``scaler.step`` relies on; the step itself is skipped by the scaler."""
    grads = ([1.0, bad, 2.0], [3.0, 4.0])
    ours = [_param([0.0] * len(g)) for g in grads]
    theirs = [_param([0.0] * len(g)) for g in grads]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = torch.tensor(g, dtype=torch.float64), torch.tensor(g, dtype=torch.float64)
    total = clip_grad_norm_(parameters=ours, max_norm=1.0)  # torch's keyword names
    expected = torch.nn.utils.clip_grad_norm_(parameters=theirs, max_norm=1.0)
    torch.testing.assert_close(total, expected, equal_nan=True)
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p.grad, q.grad, equal_nan=True)


def test_a_max_norm_of_zero_zeroes_every_gradient_as_torch_does() -> None:
    mine, theirs = _param([0.0, 0.0]), _param([0.0, 0.0])
    mine.grad, theirs.grad = torch.tensor([3.0, -4.0], dtype=torch.float64), torch.tensor([3.0, -4.0],
                                                                                         dtype=torch.float64)
    assert float(clip_grad_norm_([mine], 0.0)) == float(torch.nn.utils.clip_grad_norm_([theirs], 0.0)) == 5.0
    assert mine.grad.tolist() == theirs.grad.tolist() == [0.0, 0.0]
    with pytest.raises(InvalidInputError, match="max_norm must be >= 0"):
        clip_grad_norm_([mine], -1.0)


def test_clipping_float16_gradients_takes_their_norm_wide() -> None:
    """Finite float16 gradients of joint norm 600,000 had a float16 norm of inf, and clipping
    refused the step as if a layer had produced inf/NaN."""
    from nlp182.optim.clipping import grad_norm

    a = torch.nn.Parameter(torch.zeros(100, dtype=torch.float16))
    a.grad = torch.full((100,), 60000.0, dtype=torch.float16)
    assert float(grad_norm([a])) == pytest.approx(600_000.0, rel=1e-6)
    assert float(clip_grad_norm_([a], 1.0)) == pytest.approx(600_000.0, rel=1e-6)
    assert a.grad.dtype == torch.float16 and float(a.grad.float().norm()) == pytest.approx(1.0, rel=1e-3)


def test_clipping_takes_the_norm_types_torch_takes() -> None:
    for norm_type in ("inf", torch.tensor(3.0)):
        a, b = _param([0.0] * 4), _param([0.0] * 4)
        a.grad = torch.tensor([3.0, -4.0, 1.0, 0.5], dtype=torch.float64)
        b.grad = a.grad.clone()
        total = clip_grad_norm_([a], torch.tensor(1.0), norm_type=norm_type)
        assert float(total) == float(torch.nn.utils.clip_grad_norm_([b], 1.0, norm_type=norm_type))
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-15)


def test_gradient_noise_variance_anneals() -> None:
    w = _param([0.0] * 20000)
    noise = GradientNoise([w], eta=0.3, gamma=0.55, seed=0)
    for t in (0, 1, 9):
        noise.t = t
        w.grad = torch.zeros_like(w)
        sigma = noise.step()
        assert sigma == pytest.approx(math.sqrt(0.3 / (1 + t) ** 0.55))
        assert float(w.grad.std()) == pytest.approx(sigma, rel=0.03)
        assert abs(float(w.grad.mean())) < 4 * sigma / math.sqrt(20000)
    replay = GradientNoise([w], eta=0.3, seed=0)
    replay.load_state_dict(noise.state_dict())
    w.grad = torch.zeros_like(w)
    noise.step()
    first = w.grad.clone()
    w.grad = torch.zeros_like(w)
    replay.step()
    assert torch.equal(first, w.grad)


def test_each_gradient_noise_step_anneals_to_the_next_sigma() -> None:
    """``step`` advances the count itself: successive calls use sigma_0, sigma_1, sigma_2."""
    w = _param([0.0])
    noise = GradientNoise([w], eta=0.3, gamma=0.55, seed=0)
    w.grad = torch.zeros_like(w)
    expected = [math.sqrt(0.3 / (1 + t) ** 0.55) for t in range(3)]
    assert [noise.step() for _ in range(3)] == pytest.approx(expected)
    assert noise.t == 3 and noise.state_dict()["t"] == 3


def test_bad_hyperparameters_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="lr"):
        Adam([_param([0.0])], lr=-1.0)
    with pytest.raises(InvalidInputError, match="Nesterov"):
        SGD([_param([0.0])], lr=0.1, nesterov=True)
    with pytest.raises(InvalidInputError, match="Hessian"):
        Newton([nn.Parameter(torch.zeros(30_000))])
    with pytest.raises(InvalidInputError, match="max_backtracks"):
        Newton([_param([0.0])], max_backtracks=-1)
    flat_in_one_direction = Newton([_param([1.0, 1.0])])
    with pytest.raises(InvalidInputError, match="damping > 0"):
        flat_in_one_direction.step(lambda ps: ps[0][0] ** 2)
    damped = _param([1.0, 1.0])
    Newton([damped], damping=1.0).step(lambda ps: ps[0][0] ** 2)  # (H + I) d = -g: d = (-2/3, 0)
    torch.testing.assert_close(damped.detach(), torch.tensor([1 / 3, 1.0], dtype=torch.float64))


def test_nan_or_negative_settings_of_schedules_and_noise_are_refused() -> None:
    """Checks written as ``x < low`` let nan through (a nan learning rate), and a schedule's gamma
    was not checked at all (a negative one swung the rate negative)."""
    from nlp182.optim.noise import GradientNoise

    optimizer = SGD([_param([0.0])], lr=0.1)
    nan = float("nan")
    for build, setting in ((lambda: StepDecay(optimizer, 2, gamma=nan), "gamma"),
                           (lambda: StepDecay(optimizer, 2, gamma=-0.5), "gamma"),
                           (lambda: ExponentialDecay(optimizer, gamma=nan), "gamma"),
                           (lambda: Cosine(optimizer, total_steps=nan), "total_steps"),
                           (lambda: Cosine(optimizer, total_steps=10, warmup_steps=nan), "warmup_steps"),
                           (lambda: GradientNoise([_param([0.0])], eta=nan), "eta")):
        with pytest.raises(InvalidInputError, match=setting):
            build()


def test_clip_grad_value_clamps_a_sparse_gradient_as_the_sums_the_step_applies() -> None:
    """torch's clip_grad_value_ raises on an Embedding(sparse=True); its rows are clamped here
    after coalescing, so a row looked up twice is clamped as its summed gradient."""
    from nlp182.optim.clipping import clip_grad_value_

    sparse, dense = torch.nn.Embedding(5, 3, sparse=True), torch.nn.Embedding(5, 3)
    dense.load_state_dict(sparse.state_dict())
    for table in (sparse, dense):
        (table(torch.tensor([1, 1, 2, 4])) * torch.tensor([1.0, -2.0, 3.0])).sum().backward()
        clip_grad_value_(table.parameters(), 1.5)
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    assert dense.weight.grad[1].tolist() == [1.5, -1.5, 1.5]  # 2, -4, 6 clamped


def test_a_group_added_after_a_schedule_began_records_its_initial_rate() -> None:
    """The added group gets ``initial_lr`` as torch's schedulers give their groups, which a schedule
    built later to resume (``last_epoch``) needs from every group."""
    optimizer = torch.optim.SGD([_param([0.0])], lr=0.1)
    schedule = StepDecay(optimizer, step_size=1, gamma=0.5)
    optimizer.add_param_group({"params": [_param([0.0])], "lr": 0.02})
    optimizer.step()
    schedule.step()
    assert [group["initial_lr"] for group in optimizer.param_groups] == [0.1, 0.02]
    StepDecay(optimizer, step_size=1, gamma=0.5, last_epoch=1)


def test_a_progress_schedule_follows_a_group_added_after_it_began() -> None:
    """ProgressDecay failed at its next step once a group was added (progressive unfreezing),
    where the step-counted schedules take the new group from its own rate on."""
    from nlp182.optim.schedules import ProgressDecay

    done = [0.0]
    optimizer = torch.optim.SGD([_param([0.0])], lr=0.1)
    schedule = ProgressDecay(optimizer, lambda: done[0], shape="linear")
    optimizer.add_param_group({"params": [_param([0.0])], "lr": 0.02})
    done[0] = 0.5
    optimizer.step()
    schedule.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.05, 0.01], rel=1e-12)
