"""The per-layer monitors report the right numbers and flag update/weight ratios above 1e-2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nlp182.train import Trainer, TrainerConfig


def test_monitor_values_and_flags(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ((m(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()

    # Expected numbers from a by-hand forward/backward of the first step.
    ref = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    ref.load_state_dict(start)
    loss_fn(ref, (x, y)).backward()
    hidden = ref[0](x).detach()

    lr = 0.5
    cfg = TrainerConfig(epochs=1, device="cpu", out_dir=str(tmp_path), monitor_every=1, progress=False)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), loss_fn, cfg).fit([(x, y), (x, y)])
    entries = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    monitors = [e for e in entries if e["kind"] == "monitor"]
    assert [m["step"] for m in monitors] == [1, 2]
    first = monitors[0]
    for name, param in ref.named_parameters():
        grad_norm = float(param.grad.norm())
        assert first["grad_norm"][name] == pytest.approx(grad_norm, rel=1e-9)
        assert first["update_ratio"][name] == pytest.approx(
            lr * grad_norm / float(param.detach().norm()), rel=1e-9
        )
    assert first["act_mean"]["0"] == pytest.approx(float(hidden.mean()), rel=1e-9)
    assert first["act_std"]["1"] == pytest.approx(float(torch.tanh(hidden).std()), rel=1e-9)
    weights = {name for name, param in ref.named_parameters() if param.dim() >= 2}  # biases never
    above = [name for name, ratio in first["update_ratio"].items() if ratio > 1e-2 and name in weights]
    assert first["flagged"] == sorted(above)
    assert first["flagged"]  # lr = 0.5 is far too high for this model by the course's rule of thumb


def test_activations_cover_every_call_of_a_step_and_biases_are_not_flagged(tmp_path: Path) -> None:
    """With two accumulated batches the statistics described the last one alone, and a bias a step
    from its start was flagged on every step of an ordinary run."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].bias.fill_(1e-4)  # tiny: any step moves it by more than 1% of its norm
    batches = [(torch.randn(8, 4, dtype=torch.float64) + shift, torch.randn(8, dtype=torch.float64))
               for shift in (0.0, 3.0)]
    hidden = torch.cat([model[0](x).detach() for x, _ in batches])
    cfg = TrainerConfig(epochs=1, device="cpu", out_dir=str(tmp_path), monitor_every=1, progress=False,
                        grad_accum_steps=2)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=1e-3),
            lambda m, b: ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean(), cfg).fit(batches)
    entries = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (monitor,) = [e for e in entries if e["kind"] == "monitor"]
    assert monitor["act_mean"]["0"] == pytest.approx(float(hidden.mean()), rel=1e-9)
    assert monitor["act_std"]["0"] == pytest.approx(float(hidden.std()), rel=1e-9)
    assert monitor["update_ratio"]["0.bias"] > 1e-2 and monitor["flagged"] == []


def test_activation_spread_is_exact_beside_a_large_mean() -> None:
    """From a sum of squares less the squared sum, a mean of 1e6 and a spread of 1e-3 gave 0.016."""
    from nlp182.train.monitors import LayerMonitor

    model = nn.Sequential(nn.Linear(2, 3)).double()
    with torch.no_grad():
        model[0].weight.mul_(1e-3)
        model[0].bias.fill_(1e6)
    monitor = LayerMonitor(model)
    monitor.attach()
    monitor.set_active(True)
    inputs = [torch.randn(16, 2, dtype=torch.float64) for _ in range(3)]
    outputs = torch.cat([model(x).detach() for x in inputs])  # recorded a batch at a time
    monitor.before_step()
    report = monitor.after_step()
    assert report["act_std"]["0"] == pytest.approx(float(outputs.std()), rel=1e-6)
    assert report["act_mean"]["0"] == pytest.approx(float(outputs.mean()), rel=1e-12)


def test_the_model_carries_no_hooks_after_fit_and_a_zero_bias_is_never_flagged(tmp_path: Path) -> None:
    """After a monitored fit the model pickles and saves whole (the hooks were closures left on it,
    one more set per Trainer); a bias that starts at zero has no update ratio to flag (it was
    1e6 at lr = 1e-6, with a warning that the learning rate was too high)."""
    import io
    import pickle

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].bias.zero_()
    x, y = torch.randn(8, 4), torch.randn(8)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ((m(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()

    for run in range(2):
        out = tmp_path / f"run{run}"
        cfg = TrainerConfig(epochs=1, device="cpu", out_dir=str(out), monitor_every=1, progress=False)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=1e-6), loss_fn, cfg).fit([(x, y)])
        assert all(not module._forward_hooks for module in model.modules())
    pickle.dumps(model)
    torch.save(model, io.BytesIO())
    monitor = next(json.loads(line) for line in (tmp_path / "run0" / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["kind"] == "monitor")  # fmt: skip
    assert monitor["update_ratio"]["0.bias"] is None and monitor["flagged"] == []
    assert set(monitor["act_mean"]) == {"0", "1", "2"}


def test_a_monitor_records_its_active_step_alone_on_leaf_modules_hooked_once() -> None:
    """Hooks sit on leaf modules, once however often ``attach`` is called (and again after
    ``remove``); they record between ``set_active(True)`` and ``after_step`` only; a parameter
    without a gradient is left out, and the default flag is 1e-2."""
    from nlp182.train.monitors import LayerMonitor

    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 2)), nn.Linear(2, 1)).double()
    model[1].weight.requires_grad_(False)
    x = torch.randn(4, 3, dtype=torch.float64)
    monitor = LayerMonitor(model)
    monitor.attach()
    hidden = model[0](x).detach()
    model(x + 100)  # not an active step: not recorded
    monitor.set_active(True)
    model(x).sum().backward()
    monitor.before_step()
    with torch.no_grad():
        model[0][0].weight.mul_(1.05)  # an update ratio of 0.05
    report = monitor.after_step()
    assert set(report["act_mean"]) == {"0.0", "1"}
    assert report["act_mean"]["0.0"] == pytest.approx(float(hidden.mean()), rel=1e-9)
    assert report["act_std"]["0.0"] == pytest.approx(float(hidden.std()), rel=1e-9)
    assert set(report["grad_norm"]) == {"0.0.weight", "0.0.bias", "1.bias"}
    assert report["flagged"] == ["0.0.weight"]
    model(x)  # after the step: not recorded
    monitor.remove()
    monitor.attach()
    monitor.set_active(True)
    output = model(x).detach()
    assert monitor.after_step()["act_std"]["1"] == pytest.approx(float(output.std()), rel=1e-9)


def test_a_layer_the_step_made_nan_is_flagged() -> None:
    """A nan update/weight ratio compared False with the flag, so the destroyed layer was the one
    left out of the warning."""
    from nlp182.train.monitors import LayerMonitor

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model(torch.randn(4, 3)).sum().backward()
    monitor = LayerMonitor(model, attach=False)
    monitor.before_step()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    report = monitor.after_step()
    assert "1.weight" in report["flagged"] and "0.weight" not in report["flagged"]
