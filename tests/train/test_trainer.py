"""The Trainer's loop equals a hand-written loop, and its options do what they say."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.errors import InvalidInputError
from nlp182.train import Trainer, TrainerConfig


def _data(n: int = 64, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    w = torch.arange(1.0, 6.0, dtype=torch.float64)
    y = x @ w + 0.5 + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    return TensorDataset(x, y)


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def _config(**kw: object) -> TrainerConfig:
    return TrainerConfig(**{"epochs": 3, "device": "cpu", "progress": False, **kw})  # type: ignore[arg-type]


def test_fit_equals_hand_written_loop() -> None:
    data = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = Trainer(model, opt, mse, _config()).fit(DataLoader(data, batch_size=16))

    ref = _model()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        for batch in DataLoader(data, batch_size=16):
            ref_opt.zero_grad()
            mse(ref, batch).backward()
            ref_opt.step()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["step"] == 12


def test_grad_accumulation_matches_bigger_batch() -> None:
    data = _data()
    small = _model()
    Trainer(small, torch.optim.SGD(small.parameters(), lr=0.1), mse, _config(grad_accum_steps=2)).fit(
        DataLoader(data, batch_size=8)
    )
    big = _model()
    Trainer(big, torch.optim.SGD(big.parameters(), lr=0.1), mse, _config()).fit(
        DataLoader(data, batch_size=16)
    )
    for p, q in zip(small.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


def test_clipping_and_step_scheduler() -> None:
    data = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    Trainer(
        model, opt, mse, _config(epochs=1, clip_grad_norm=0.5), scheduler=sched, scheduler_interval="step"
    ).fit(DataLoader(data, batch_size=16))

    ref = _model()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=2, gamma=0.5)
    for batch in DataLoader(data, batch_size=16):
        ref_opt.zero_grad()
        mse(ref, batch).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        ref_opt.step()
        ref_sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_clipping_refuses_non_finite_gradients_and_hooks_run() -> None:
    model = _model()
    weights = [p.detach().clone() for p in model.parameters()]

    def nan_gradient(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mse(net, batch) + (net[0].weight[0, 0] * 0).sqrt()  # finite loss, NaN gradient

    with pytest.raises(InvalidInputError, match="gradient norm is nan"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nan_gradient,
                _config(clip_grad_norm=1.0)).fit(DataLoader(_data(), batch_size=16))
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))
    steps, epochs = [], []
    model = _model()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, _config(epochs=2),
            on_step=lambda net: steps.append(net is model),
            on_epoch_end=lambda net, record: epochs.append(record["epoch"])).fit(
        DataLoader(_data(), batch_size=16))
    assert steps == [True] * 8 and epochs == [1, 2]


def test_validation_early_stopping_metrics_and_plot(tmp_path) -> None:
    data = _data()
    model = _model()
    # With lr = 0 the validation loss never improves after epoch 1, so patience 2 stops after epoch 3.
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    cfg = _config(epochs=20, out_dir=str(tmp_path), early_stopping_patience=2, log_every=1)
    history = Trainer(model, opt, mse, cfg).fit(
        DataLoader(data, batch_size=16), DataLoader(data, batch_size=32)
    )
    assert len(history) == 3  # epoch 1 sets the best; 2 and 3 do not improve on it (lr = 0)
    assert all("valid_loss" in r for r in history)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for e in lines if e["kind"] == "step") == 12
    assert [e["epoch"] for e in lines if e["kind"] == "epoch"] == [1, 2, 3]
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "best.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 20


def test_eval_fn_and_loss_metrics() -> None:
    data = _data()
    model = _model()

    def loss_with_metric(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        loss = mse(m, batch)
        return loss, {"rmse": float(loss.detach().sqrt())}

    def eval_fn(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        return {"valid_mae": float(torch.cat([(m(x).squeeze(-1) - y).abs() for x, y in loader]).mean())}

    history = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        loss_with_metric,
        _config(epochs=2),
        eval_fn=eval_fn,
    ).fit(DataLoader(data, batch_size=16), DataLoader(data))
    assert {"train_loss", "train_rmse", "valid_mae", "samples_per_s"} <= set(history[-1])


def test_batches_in_dicts_are_moved_and_bad_config_rejected() -> None:
    model = _model()

    def dict_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return mse(m, (batch["x"], batch["y"]))

    loader = [{"x": x, "y": y} for x, y in DataLoader(_data(), batch_size=32)]
    history = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), dict_loss, _config(epochs=1)).fit(
        loader
    )
    assert history[0]["step"] == 2
    with pytest.raises(InvalidInputError, match="grad_accum_steps"):
        TrainerConfig(grad_accum_steps=0)
    with pytest.raises(InvalidInputError, match="scheduler_interval"):
        Trainer(
            model, torch.optim.SGD(model.parameters(), lr=0.01), mse, _config(), scheduler_interval="batch"
        )
