"""The Trainer's workflow features: the best epoch kept, a time budget, throughput timed over training
steps only, Ctrl-C naming the last checkpoint, and a resume at an epoch boundary that shuffles as before."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.train import Trainer, TrainerConfig


def _data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return TensorDataset(x, x @ torch.arange(1.0, 6.0, dtype=torch.float64))


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Linear(5, 1).double()


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def _config(**kw: object) -> TrainerConfig:
    return TrainerConfig(**{"epochs": 3, "device": "cpu", "progress": False, **kw})  # type: ignore[arg-type]


def _fit(epochs: int, keep_best: bool, **kw: object) -> tuple[nn.Module, Trainer]:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    # Epochs 1-2 learn; epoch 3 runs at 100x the rate and blows the fit up, so epoch 2 is the best.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 100.0 if epoch >= 2 else 1.0)
    trainer = Trainer(model, opt, mse, _config(epochs=epochs, keep_best=keep_best, **kw), scheduler=sched)
    trainer.fit(DataLoader(_data(), batch_size=16), DataLoader(_data(), batch_size=64))
    return model, trainer


def test_keep_best_restores_the_best_epoch_weights(tmp_path) -> None:
    two, _ = _fit(2, keep_best=False)
    last, plain = _fit(3, keep_best=False)
    best, trainer = _fit(3, keep_best=True, out_dir=str(tmp_path))
    losses = [r["valid_loss"] for r in trainer.history]
    assert losses[2] > losses[1] and trainer.best_epoch == 2
    assert all(torch.equal(p, q) for p, q in zip(best.parameters(), two.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(last.parameters(), two.parameters(), strict=True))
    assert plain.best_epoch is None and (tmp_path / "best.safetensors").is_file()


def test_time_budget_stops_mid_epoch_and_records_a_partial_epoch() -> None:
    model = _model()
    slow_calls = []

    def slow_mse(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        slow_calls.append(1)
        time.sleep(0.05)
        return mse(m, batch)

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), slow_mse,
                      _config(epochs=5, time_budget_s=0.12))
    history = trainer.fit(DataLoader(_data(), batch_size=8))  # 8 steps an epoch
    assert len(history) == 1 and history[0]["partial"] and 2 <= history[0]["step"] < 8
    assert trainer.train_time_s >= 0.12


def test_throughput_counts_training_steps_only() -> None:
    model = _model()

    def slow_eval(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        time.sleep(0.5)
        return {"valid_loss": 1.0}

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), mse, _config(epochs=2),
                      eval_fn=slow_eval, units_fn=lambda batch: 3 * len(batch[0]))
    start = time.perf_counter()
    history = trainer.fit(DataLoader(_data(), batch_size=16), [None])
    wall = time.perf_counter() - start
    assert wall > 1.0 and trainer.train_time_s < 0.5  # the 2 x 0.5 s of validation is not training time
    for record in history:
        assert record["tokens_per_s"] == pytest.approx(3 * 64 / record["time_s"])
        assert record["samples_per_s"] == pytest.approx(64 / record["time_s"])


def test_ctrl_c_names_the_last_complete_checkpoint(tmp_path, caplog) -> None:
    model = _model()

    def interrupt_in_epoch_2(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if trainer.epoch == 1 and trainer.batch_in_epoch == 2:
            raise KeyboardInterrupt
        return mse(m, batch)

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), interrupt_in_epoch_2,
                      _config(out_dir=str(tmp_path)))
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        trainer.fit(DataLoader(_data(), batch_size=16))
    assert "step-000000004.safetensors" in caplog.text  # epoch 1's checkpoint (4 steps)
    assert trainer.last_checkpoint().name == "step-000000004.safetensors"


def test_resume_at_an_epoch_boundary_replays_the_same_shuffle(tmp_path) -> None:
    def loader() -> DataLoader:
        return DataLoader(_data(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))

    straight = _model()
    Trainer(straight, torch.optim.SGD(straight.parameters(), lr=0.02), mse, _config()).fit(loader())
    first = _model()
    Trainer(first, torch.optim.SGD(first.parameters(), lr=0.02), mse, _config(epochs=1, out_dir=str(tmp_path))
            ).fit(loader())
    resumed = _model()
    Trainer(resumed, torch.optim.SGD(resumed.parameters(), lr=0.02), mse,
            _config(out_dir=str(tmp_path), resume="auto")).fit(loader())
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), straight.parameters(), strict=True))


def test_resuming_with_fewer_epochs_than_were_trained_is_refused(tmp_path) -> None:
    """A run of 3 trained epochs resumed with epochs=2 logged "nothing to train" and saved a record
    of epochs=2 beside a kept epoch 3; the same count finishes quietly, as before."""
    from nlp182.errors import InvalidInputError

    first = _model()
    Trainer(first, torch.optim.SGD(first.parameters(), lr=0.02), mse, _config(out_dir=str(tmp_path))
            ).fit(DataLoader(_data(), batch_size=16))
    again = _model()
    with pytest.raises(InvalidInputError, match="has trained 3 epochs, more than epochs=2; give at least 3"):
        Trainer(again, torch.optim.SGD(again.parameters(), lr=0.02), mse,
                _config(epochs=2, out_dir=str(tmp_path), resume="auto")).fit(
            DataLoader(_data(), batch_size=16))
    same = Trainer(again, torch.optim.SGD(again.parameters(), lr=0.02), mse,
                   _config(out_dir=str(tmp_path), resume="auto"))
    assert len(same.fit(DataLoader(_data(), batch_size=16))) == 3


def _logged(path) -> list[tuple[str, int]]:
    """The (kind, step or epoch) of each line of a run's metrics.jsonl."""
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [(entry["kind"], entry["epoch"] if entry["kind"] == "epoch" else entry["step"]) for entry in lines]


@pytest.mark.parametrize("where", ["before_any_checkpoint", "after_the_epoch_record"])
def test_a_resumed_run_logs_each_step_and_epoch_once(tmp_path, where: str) -> None:
    """Interrupted before its first checkpoint, a run resumed with ``resume="auto"`` starts over
    and wrote its steps a second time after the first try's; interrupted after an epoch's record
    but before its end-of-epoch save (a checkpoint at its last step), it wrote that record twice."""
    straight, model = tmp_path / "straight", _model()
    config = _config(out_dir=str(straight), log_every=1, checkpoint_every=4)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), mse, config).fit(DataLoader(_data(), 16))
    out = tmp_path / "interrupted"
    calls = {"n": 0}

    def interrupt_once(model: nn.Module, record: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    def interrupt_at_step_3(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return mse(model, batch)

    every = 100 if where == "before_any_checkpoint" else 4  # 4 steps an epoch: a save at its last step
    for attempt in range(2):
        model = _model()
        hooks = {"on_epoch_end": interrupt_once} if where == "after_the_epoch_record" else {}
        loss = interrupt_at_step_3 if where == "before_any_checkpoint" else mse
        config = _config(out_dir=str(out), log_every=1, checkpoint_every=every, resume="auto")
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loss, config, **hooks)
        if attempt == 0:
            with pytest.raises(KeyboardInterrupt):
                trainer.fit(DataLoader(_data(), batch_size=16))
        else:
            trainer.fit(DataLoader(_data(), batch_size=16))
    assert _logged(out) == _logged(straight)
