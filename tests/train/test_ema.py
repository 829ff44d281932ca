"""The Trainer's ``ema_decay``: an exact moving average that validation scores and the run keeps,
without changing what training does."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.errors import InvalidInputError
from nlp182.train import Trainer, TrainerConfig, load_checkpoint, save_checkpoint
from nlp182.train.averaging import ExponentialMovingAverage


def _data() -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 5, generator=g, dtype=torch.float64)
    noise = 0.1 * torch.randn(48, generator=g, dtype=torch.float64)
    y = x @ torch.arange(1.0, 6.0, dtype=torch.float64) + noise
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _recursion(start: dict[str, torch.Tensor], steps: list[dict[str, torch.Tensor]], decay: float):
    """The warmed-up EMA by hand: update n (from 1) uses min(decay, (1 + n) / (10 + n))."""
    average = {k: v.clone() for k, v in start.items()}
    for n, weights in enumerate(steps, start=1):
        d = min(decay, (1 + n) / (10 + n))
        average = {k: d * average[k] + (1 - d) * weights[k] for k in average}
    return average


def _fit(ema_decay: float | None, eval_fn=None, **kw: object):
    model = _model()
    start = _weights(model)
    seen: list[dict[str, torch.Tensor]] = []
    config = TrainerConfig(epochs=3, device="cpu", progress=False, ema_decay=ema_decay, **kw)  # type: ignore[arg-type]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), mse, config,
                      eval_fn=eval_fn, on_step=lambda m: seen.append(_weights(m)))
    valid = [None] if eval_fn is not None else None
    trainer.fit(_data(), valid)
    return model, start, seen, trainer


def test_warmed_up_ema_follows_its_float64_recursion() -> None:
    model = _model()
    start, steps = _weights(model), []
    ema = ExponentialMovingAverage(model, decay=0.6, warmup=True)  # warm-up until update 13, then 0.6
    for _ in range(30):
        with torch.no_grad():
            model[0].weight.add_(torch.randn_like(model[0].weight))
        steps.append(_weights(model))
        ema.update(model)
    expected = _recursion(start, steps, 0.6)
    torch.testing.assert_close(ema.shadow["0.weight"], expected["0.weight"])
    assert ema.current_decay() == 0.6 and ema.num_updates == 30


def test_ema_leaves_training_alone_and_the_run_ends_with_the_average() -> None:
    plain, _, plain_steps, _ = _fit(None)
    averaged, start, steps, _ = _fit(0.8)
    assert len(steps) == len(plain_steps) == 9
    for mine, theirs in zip(steps, plain_steps, strict=True):  # the same training trajectory
        for k in mine:
            assert torch.equal(mine[k], theirs[k])
    expected = _recursion(start, steps, 0.8)
    for k, value in averaged.state_dict().items():
        torch.testing.assert_close(value, expected[k])
    assert not torch.equal(averaged[0].weight, plain[0].weight)


def test_validation_scores_the_average_and_the_best_epoch_keeps_it() -> None:
    scored: list[dict[str, torch.Tensor]] = []
    scores = iter([1.0, 3.0, 2.0])  # epoch 2 is the best

    def eval_fn(model: nn.Module, _batches: object) -> dict[str, float]:
        scored.append(_weights(model))
        return {"valid_score": next(scores)}

    kept = {"keep_best": True, "monitor": "valid_score", "monitor_mode": "max"}
    model, start, steps, trainer = _fit(0.8, eval_fn, **kept)
    assert trainer.best_epoch == 2
    for epoch in (1, 2, 3):
        expected = _recursion(start, steps[: 3 * epoch], 0.8)
        torch.testing.assert_close(scored[epoch - 1]["0.weight"], expected["0.weight"])
    torch.testing.assert_close(model[0].weight, scored[1]["0.weight"])  # the kept epoch: its average


def test_checkpoint_carries_the_average(tmp_path) -> None:
    _, _, _, trainer = _fit(0.8)
    save_checkpoint(tmp_path / "ckpt.safetensors", trainer.state_dict())
    state = load_checkpoint(tmp_path / "ckpt.safetensors")
    fresh = _model()
    other = Trainer(fresh, torch.optim.SGD(fresh.parameters(), lr=0.05), mse,
                    TrainerConfig(epochs=3, device="cpu", progress=False, ema_decay=0.8))
    other.load_state_dict(state)
    assert other.ema is not None and other.ema.num_updates == 9
    for k, value in trainer.ema.shadow.items():
        assert torch.equal(other.ema.shadow[k], value)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_decay_outside_0_1_is_refused(decay: float) -> None:
    with pytest.raises(InvalidInputError, match="ema_decay"):
        TrainerConfig(ema_decay=decay)
