"""The Trainer's loop equals a hand-written loop, and its options do what they say."""

from __future__ import annotations

import json
import re

import pytest
import safetensors.torch
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from nlp182.errors import FileFormatError, InvalidInputError, NonFiniteError
from nlp182.train import Trainer, TrainerConfig, checkpoint, load_checkpoint, save_checkpoint
from nlp182.train.averaging import ExponentialMovingAverage


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


class _Stream(IterableDataset):
    """Rows of a dataset streamed: a DataLoader over it has ``__len__`` that raises TypeError."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def __iter__(self):
        return (self.data[i] for i in range(len(self.data)))


@pytest.mark.parametrize("loader_kind", ["list", "iterator", "stream"])
def test_gradient_accumulation_averages_each_group_including_a_short_last_one(loader_kind: str) -> None:
    """5 batches in groups of 2: steps on the mean gradient of batches (1, 2), (3, 4), then (5) alone,
    from a list, an iterator or a DataLoader over an IterableDataset (a stream of unknown length)."""
    data = _data(n=40)
    batches = list(DataLoader(data, batch_size=8))
    loader = {"list": batches, "iterator": iter(batches),
              "stream": DataLoader(_Stream(data), batch_size=8)}[loader_kind]
    model = _model()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse,
            _config(epochs=1, grad_accum_steps=2, amp=False)).fit(loader)
    ref = _model()
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    for group in (batches[0:2], batches[2:4], batches[4:5]):
        opt.zero_grad()
        (sum(mse(ref, batch) for batch in group) / len(group)).backward()
        opt.step()
    for mine, theirs in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_epoch_and_validation_means_weigh_each_batch_by_what_it_holds(tmp_path) -> None:
    """40 examples in batches of 16, 16 and 8: each metric is the mean over examples, not over the
    three batches; with units_fn, over its units; a logged step of two micro-batches, their mean."""
    data, model = _data(n=40), _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), mse,
                      _config(epochs=1, out_dir=str(tmp_path), log_every=1, grad_accum_steps=2))
    (record,) = trainer.fit(DataLoader(data, batch_size=16), DataLoader(data, batch_size=16))
    with torch.no_grad():
        losses = [float(mse(model, batch)) for batch in DataLoader(data, batch_size=16)]
        whole = float(mse(model, data.tensors))
    assert record["train_loss"] == pytest.approx(whole, rel=1e-12)
    assert record["valid_loss"] == pytest.approx(whole, rel=1e-12)
    assert whole != pytest.approx(sum(losses) / 3, rel=1e-6)  # the mean of batch means differs
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [entry["loss"] for entry in steps if entry["kind"] == "step"]
    assert logged == pytest.approx([(losses[0] + losses[1]) / 2, losses[2]], rel=1e-12)
    weighted = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), mse, _config(epochs=1),
                       units_fn=lambda batch: 1.0)  # one unit a batch: each batch counts once
    (record,) = weighted.fit(DataLoader(data, batch_size=16), DataLoader(data, batch_size=16))
    assert record["valid_loss"] == pytest.approx(sum(losses) / 3, rel=1e-12)


def _plain_run(batches: list, accum: int = 1) -> list[torch.Tensor]:
    model = _model()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), mse,
            _config(epochs=2, grad_accum_steps=accum)).fit(batches)
    return [param.detach().clone() for param in model.parameters()]


def test_gradients_the_caller_left_are_not_stepped() -> None:
    """A backward run before fit (to look at the gradients) was added into the first step."""
    batches = list(DataLoader(_data(n=48), batch_size=8))
    model = _model()
    mse(model, batches[0]).backward()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    Trainer(model, optimizer, mse, _config(epochs=2)).fit(batches)
    for mine, plain in zip(model.parameters(), _plain_run(batches), strict=True):
        assert torch.equal(mine, plain)


@pytest.mark.parametrize("where", ["backward", "step", "after_step"])
def test_fit_again_after_an_interruption_ends_as_an_uninterrupted_run(where: str) -> None:
    """Ctrl-C inside a backward left its gradient to be counted twice; inside an optimizer step
    the batches were counted as done and the step was lost (11 steps of 12); inside an ``on_step``
    hook, after the step was in the weights, its group ran and stepped again."""
    batches = list(DataLoader(_data(n=48), batch_size=8))  # 6 batches, groups of 2: 3 steps an epoch
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    calls = {"backward": 0, "step": 0}
    if where == "backward":
        def interrupt_once(grad: torch.Tensor) -> torch.Tensor:
            calls["backward"] += 1
            if calls["backward"] == 8:  # the 2nd epoch's first group, its 2nd batch, part way
                raise KeyboardInterrupt
            return grad
        model[0].weight.register_hook(interrupt_once)
    elif where == "after_step":
        def on_step(model: nn.Module) -> None:
            calls["step"] += 1
            if calls["step"] == 2:
                raise KeyboardInterrupt
    else:
        real_step = optimizer.step

        def step_once(*args, **kwargs):
            calls["step"] += 1
            if calls["step"] == 5:
                raise KeyboardInterrupt
            return real_step(*args, **kwargs)
        optimizer.step = step_once
    trainer = Trainer(model, optimizer, mse, _config(epochs=2, grad_accum_steps=2),
                      on_step=on_step if where == "after_step" else None)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(batches)
    trainer.fit(batches)
    assert trainer.global_step == 6
    for mine, plain in zip(model.parameters(), _plain_run(batches, accum=2), strict=True):
        torch.testing.assert_close(mine, plain, rtol=0, atol=1e-15)


def test_a_checkpoint_with_one_weight_a_batch_resumes_into_means_over_examples() -> None:
    """An older checkpoint's epoch sums count batches; the epoch it resumes weighs examples. Its
    mean stands for the batches it covers, weighed by their examples on replay (1.1111 was
    reported for five batches at 2.0 and five at 1.0, all of eight examples)."""
    loader = DataLoader(_data(n=80), batch_size=8)

    def constant(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return (model(batch[0]) * 0).sum() + 1.0

    model = _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), constant, _config(epochs=1))
    state = trainer.state_dict()
    state["position"] = {"epoch": 0, "batch_in_epoch": 5, "global_step": 5}
    state["epoch_rng"] = None
    state["epoch_sums"] = {"loss": 5 * 2.0, "batches": 5.0}
    resumed = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), constant, _config(epochs=1))
    resumed.load_state_dict(state)
    (record,) = resumed.fit(loader)
    assert record["train_loss"] == pytest.approx(1.5, rel=1e-12)


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


def test_the_trainer_leaves_the_callers_random_state_unless_given_a_seed() -> None:
    """Every Trainer re-seeded Python, NumPy and torch with 0: runs the caller seeded with 1 and 2
    shuffled and dropped out alike and ended with the same weights."""

    def weights_after(caller_seed: int, **config: object) -> torch.Tensor:
        model = _model()
        model.insert(1, nn.Dropout(0.3))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        torch.manual_seed(caller_seed)
        Trainer(model, opt, mse, _config(**config)).fit(DataLoader(_data(), batch_size=16, shuffle=True))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert not torch.equal(weights_after(1), weights_after(2))
    assert torch.equal(weights_after(1), weights_after(1))
    assert torch.equal(weights_after(1, seed=5), weights_after(2, seed=5))  # a given seed decides


def test_a_run_gone_non_finite_says_where_keeps_its_best_epoch_and_saves_no_spoilt_checkpoint(
    tmp_path,
) -> None:
    """NaN that a finite loss let through in a late step: the run ended "well" with NaN weights and
    a NaN checkpoint that a resume took up; keep_best's weights were not put back; the error named
    the wrong step and advised a lower learning rate for bad data."""
    data = _data()
    model = _model()

    def late_nan(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        spoil = trainer.global_step >= 6  # the fourth epoch's first step (2 steps an epoch)
        return mse(net, batch) + ((net[0].weight[0, 0] * 0).sqrt() if spoil else 0.0)

    config = _config(epochs=4, keep_best=True, out_dir=str(tmp_path / "run"))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), late_nan, config)
    with pytest.raises(NonFiniteError, match=r"gradient norm is nan .* in epoch 4, batch 1 \(step 7\); "
                                             r"lower the learning rate.*the best epoch's \(3\) weights"):
        trainer.fit(DataLoader(data, batch_size=32), [next(iter(DataLoader(data, batch_size=64)))])
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    for saved in (tmp_path / "run" / "checkpoints").glob("*.safetensors"):
        tensors = safetensors.torch.load_file(saved).values()
        assert all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"weights hold inf/NaN at step 6 \(0.weight\)"):
        trainer.save()
    bad = TensorDataset(torch.full((4, 5), float("nan"), dtype=torch.float64), torch.zeros(4).double())
    fresh = _model()
    with pytest.raises(NonFiniteError, match="no update was made yet, so the batch holds inf/NaN"):
        Trainer(fresh, torch.optim.SGD(fresh.parameters(), lr=0.05), mse, _config()).fit(DataLoader(bad))


@pytest.mark.parametrize("clip", [None, 0.5])
def test_sparse_gradients_train_with_and_without_clipping_as_a_hand_written_loop(clip) -> None:
    """The gradient check every step makes (and clipping) took the multi-tensor norm, which has no
    kernel for an ``Embedding(sparse=True)``'s gradient."""
    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Embedding(20, 4, sparse=True), nn.Flatten(), nn.Linear(8, 1))

    ids = torch.randint(0, 20, (32, 2), generator=torch.Generator().manual_seed(1))
    data = TensorDataset(ids, torch.randn(32, generator=torch.Generator().manual_seed(2)))

    def loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ((net(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()

    model = make()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss,
            _config(epochs=1, clip_grad_norm=clip)).fit(DataLoader(data, batch_size=8))
    ref = make()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for batch in DataLoader(data, batch_size=8):
        opt.zero_grad()
        loss(ref, batch).backward()
        if clip is not None:
            total = torch.sqrt(sum(p.grad.coalesce().values().pow(2).sum() if p.grad.is_sparse
                                   else p.grad.pow(2).sum() for p in ref.parameters()))
            for p in ref.parameters():
                p.grad.mul_(min(1.0, clip / (float(total) + 1e-6)))
        opt.step()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_a_model_frozen_whole_is_refused_by_name() -> None:
    """It failed at the first backward with torch's "element 0 of tensors does not require grad"."""
    model = _model().requires_grad_(False)
    with pytest.raises(InvalidInputError, match="no parameter with requires_grad=True"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, _config())


def test_early_stopping_on_a_score_nan_from_the_start_ends_with_a_reason() -> None:
    """Every epoch nan: the stop message formatted the best value, None, and raised TypeError."""
    model = _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse,
                      _config(epochs=5, early_stopping_patience=2),
                      eval_fn=lambda m, b: {"valid_loss": float("nan")})
    history = trainer.fit(DataLoader(_data(), batch_size=16), [None])
    assert len(history) == 2 and trainer.stop_reason == (
        "early stopping after epoch 2: valid_loss has been nan in all 2 epochs")


def test_a_score_still_at_zero_keeps_the_latest_epoch_without_counting_it_as_progress(tmp_path) -> None:
    """An exact match of 0 in every epoch kept the first epoch's weights through all the training
    after it; ties at the floor keep the later epoch, and patience still runs out on them."""
    model = _model()
    snapshots = []
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse,
                      _config(epochs=6, keep_best=True, monitor="valid_exact", monitor_mode="max",
                              early_stopping_patience=3, out_dir=str(tmp_path)),
                      eval_fn=lambda m, b: {"valid_exact": 0.0},
                      on_epoch_end=lambda m, r: snapshots.append(_weights(m)))
    history = trainer.fit(DataLoader(_data(), batch_size=16), [None])
    assert len(history) == 4 and trainer.best_epoch == 4  # stopped by patience, the last epoch kept
    assert all(torch.equal(_weights(model)[name], snapshots[-1][name]) for name in snapshots[-1])
    assert load_checkpoint(tmp_path / "best.safetensors")["epoch"] == 4


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

    for clip in (1.0, None):  # without clipping too: the step wrote NaN into every weight, unsaid
        with pytest.raises(InvalidInputError, match=r"gradient norm is nan \(the loss finite\) in epoch 1, "
                                                    r"batch 1 \(step 1\); no update was made yet"):
            Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nan_gradient,
                    _config(clip_grad_norm=clip)).fit(DataLoader(_data(), batch_size=16))
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


def test_nested_batches_keep_their_containers_and_report_their_first_batch_size() -> None:
    """Named tuples are rebuilt field by field; the batch size is the leading dimension of the first
    tensor that has one (leaves without a tensor and 0-d tensors are passed over)."""
    from collections import namedtuple

    from nlp182.train.nested import batch_size_of, move_to_device

    Pair = namedtuple("Pair", "x y")
    batch = {"meta": ["id", None], "pair": Pair(torch.tensor(0.5), [torch.zeros(4, 2)])}
    moved = move_to_device(batch, torch.device("cpu"))
    assert isinstance(moved["pair"], Pair) and moved["meta"] == ["id", None]
    assert torch.equal(moved["pair"].y[0], batch["pair"].y[0])
    assert batch_size_of(batch) == 4 and batch_size_of(torch.tensor(1.0)) is None


# ---------------------------------------------------------------- ema_decay: an exact moving average
# that validation scores and the run keeps, without changing what training does
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
    trainer.fit(DataLoader(_data(), batch_size=16), valid)
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
    assert len(steps) == len(plain_steps) == 12
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
        expected = _recursion(start, steps[: 4 * epoch], 0.8)
        torch.testing.assert_close(scored[epoch - 1]["0.weight"], expected["0.weight"])
    torch.testing.assert_close(model[0].weight, scored[1]["0.weight"])  # the kept epoch: its average


def test_keep_best_resumed_from_a_checkpoint_path_into_a_new_folder_keeps_the_best_epoch(tmp_path) -> None:
    """Resumed from RUN/checkpoints/step-N into another out_dir, the run ended on its last epoch's
    weights while best_epoch named an earlier one: the best epoch's weights are read from the run
    the checkpoint came from."""
    def run(out_dir, resume=None) -> tuple[dict[str, torch.Tensor], Trainer]:
        scores = iter([1.0, 3.0, 2.0, 2.5][(2 if resume else 0):])  # epoch 2 is the best

        def eval_fn(model: nn.Module, _batches: object) -> dict[str, float]:
            return {"valid_score": next(scores)}

        torch.manual_seed(0)
        model = _model()
        config = TrainerConfig(epochs=4, device="cpu", progress=False, out_dir=str(out_dir), resume=resume,
                               keep_best=True, monitor="valid_score", monitor_mode="max", keep_last=4)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse, config, eval_fn=eval_fn)
        trainer.fit(DataLoader(_data(), batch_size=16), [None])
        return _weights(model), trainer

    whole, trainer = run(tmp_path / "a")
    after_epoch_2 = sorted((tmp_path / "a" / "checkpoints").iterdir())[1]
    resumed, other = run(tmp_path / "b", resume=str(after_epoch_2))
    assert trainer.best_epoch == other.best_epoch == 2 and not (tmp_path / "b" / "best.safetensors").exists()
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), name


def test_checkpoint_carries_the_average(tmp_path) -> None:
    _, _, _, trainer = _fit(0.8)
    save_checkpoint(tmp_path / "ckpt.safetensors", trainer.state_dict())
    state = load_checkpoint(tmp_path / "ckpt.safetensors")
    fresh = _model()
    other = Trainer(fresh, torch.optim.SGD(fresh.parameters(), lr=0.05), mse,
                    TrainerConfig(epochs=3, device="cpu", progress=False, ema_decay=0.8))
    other.load_state_dict(state)
    assert other.ema is not None and other.ema.num_updates == 12
    for k, value in trainer.ema.shadow.items():
        assert torch.equal(other.ema.shadow[k], value)


def test_an_average_of_another_model_is_refused() -> None:
    """A saved average must hold this model's weights: one of another architecture is refused by
    name, not loaded to fail at the next update."""
    ema = ExponentialMovingAverage(nn.Linear(3, 2))
    other = ExponentialMovingAverage(nn.Linear(3, 2, bias=False))
    with pytest.raises(InvalidInputError, match="does not hold"):
        ema.load_state_dict(other.state_dict())


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_decay_outside_0_1_is_refused(decay: float) -> None:
    with pytest.raises(InvalidInputError, match="ema_decay"):
        TrainerConfig(ema_decay=decay)


class _TiedLanguageModel(nn.Module):
    """The output layer reuses the embedding matrix (tied weights, as language models tie them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens))


def _next_token_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def test_a_compiled_model_trains_and_checkpoints_under_its_plain_names(tmp_path) -> None:
    """torch.compile wraps a model and prefixes every name with ``_orig_mod.``: its checkpoints and
    best weights did not load into the plain model, so no run trained compiled could be resumed."""
    data, model = _data(n=32), _model()
    compiled = torch.compile(model, backend="eager")
    trainer = Trainer(compiled, torch.optim.SGD(model.parameters(), lr=0.05), mse,
                      _config(epochs=2, out_dir=str(tmp_path), checkpoint_every=2, keep_best=True))
    trainer.fit(DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
    saved = load_checkpoint(trainer.last_checkpoint())
    assert set(saved["model"]) == set(model.state_dict())
    assert set(load_checkpoint(tmp_path / "best.safetensors")["model"]) == set(model.state_dict())
    plain = _model()
    resumed = Trainer(plain, torch.optim.SGD(plain.parameters(), lr=0.05), mse, _config(epochs=2))
    resumed.load_state_dict(saved)
    for mine, theirs in zip(plain.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    prefixed = {f"_orig_mod.{name}": value for name, value in saved["model"].items()}
    resumed.load_state_dict({**saved, "model": prefixed})  # a checkpoint written by a compiled model


def test_a_model_with_tied_weights_checkpoints_and_resumes_as_one_tensor(tmp_path) -> None:
    """safetensors refuses two tensors that share memory, which tied weights are in a state dict:
    the run crashed after its first epoch. A tensor met twice is stored once and comes back as one
    tensor; a slice of stored memory is stored as its own copy; the run resumes to the same weights."""
    g = torch.Generator().manual_seed(0)
    data = [tuple(torch.randint(0, 10, (2, 8), generator=g)) for _ in range(3)]

    def run(epochs: int, out_dir) -> nn.Module:
        model = _TiedLanguageModel()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        config = _config(epochs=epochs, out_dir=str(out_dir), amp=False)
        Trainer(model, optimizer, _next_token_loss, config).fit(data)
        return model

    straight = run(2, tmp_path / "straight")
    run(1, tmp_path / "resumed")
    resumed = run(2, tmp_path / "resumed")  # the same out_dir: resumes after epoch 1
    assert torch.equal(resumed.embed.weight, straight.embed.weight)
    assert resumed.out.weight is resumed.embed.weight

    base = torch.arange(6.0)
    shared = {"a": base, "b": base, "part": base[2:4], "n": base.numpy()}
    save_checkpoint(tmp_path / "shared.safetensors", shared)
    state = load_checkpoint(tmp_path / "shared.safetensors")
    assert state["a"] is state["b"] and state["part"].tolist() == [2.0, 3.0]
    assert state["n"].tolist() == base.tolist()

    from nlp182.train.checkpoint import load_model_weights, save_model_weights

    save_model_weights(tmp_path / "model.safetensors", straight)
    fresh = _TiedLanguageModel()
    load_model_weights(tmp_path / "model.safetensors", fresh)
    assert torch.equal(fresh.embed.weight, straight.embed.weight) and fresh.out.weight is fresh.embed.weight


def test_weights_whose_shapes_differ_from_the_config_are_refused_before_the_model_is_built(tmp_path) -> None:
    """A run folder's config decides the model's size: a config saying 16000 beside weights of size 4
    allocated gigabytes before the mismatch showed. The file's header is compared with the model built
    on the meta device, and the model is built for real only when they agree."""
    from nlp182.train.checkpoint import build_and_load_weights, check_model_shapes, save_model_weights

    path = tmp_path / "model.safetensors"
    save_model_weights(path, nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4)))
    devices = []

    def build(size: int = 4, norm: bool = True) -> nn.Module:
        devices.append(torch.get_default_device().type)
        return nn.Sequential(nn.Embedding(10, size), *([nn.LayerNorm(size)] if norm else []))

    cases = {
        f"{path}: tensor 0.weight has shape (10, 16000) by the run's config but (10, 4) in the file; "
        "config.json and the weights are from different models": lambda: build(16000),
        f"{path} holds tensor 1.bias (4,), which the run's config lacks": lambda: build(norm=False),
    }
    for message, wrong in cases.items():
        with pytest.raises(FileFormatError, match=f"^{re.escape(message)}$"):
            build_and_load_weights(path, wrong)
    assert devices == ["meta", "meta"]  # neither wrong model was allocated
    save_model_weights(path, nn.Sequential(nn.Embedding(10, 4)))
    lacking = f"{path} lacks tensor 1.weight, of shape (4,) by the run's config"
    with pytest.raises(FileFormatError, match=re.escape(lacking)):
        check_model_shapes(path, build)
    (tmp_path / "text.safetensors").write_text("not weights")
    with pytest.raises(FileFormatError, match=r"text\.safetensors is not a safetensors weights file"):
        check_model_shapes(tmp_path / "text.safetensors", build)
    header = json.dumps({"0.weight": {"dtype": "F32", "shape": [10, 16000], "data_offsets": [0, 640000]}})
    (tmp_path / "hollow.safetensors").write_bytes(len(header).to_bytes(8, "little") + header.encode())
    with pytest.raises(FileFormatError, match=r"hollow\.safetensors is not a safetensors weights file"):
        build_and_load_weights(tmp_path / "hollow.safetensors", lambda: build(16000, norm=False))
    assert devices == ["meta", "meta", "meta", "meta", "meta"]  # a header without its bytes: nothing built
    model = build_and_load_weights(path, lambda: build(norm=False))
    assert devices[-2:] == ["meta", "cpu"] and model[0].weight.device.type == "cpu"
    torch.testing.assert_close(model.state_dict(), safetensors.torch.load_file(path))


def test_a_sparse_tensor_in_the_state_round_trips(tmp_path) -> None:
    sparse = torch.sparse_coo_tensor([[0, 3, 3]], [1.0, 2.0, 0.5], (5,), check_invariants=True)
    save_checkpoint(tmp_path / "s.safetensors", {"momentum_buffer": sparse})
    back = load_checkpoint(tmp_path / "s.safetensors")["momentum_buffer"]
    assert back.is_sparse and back.to_dense().tolist() == [1.0, 0.0, 0.0, 2.5, 0.0]
    # kept uncoalesced, entry for entry: summing duplicates in another order made a resumed run
    # with sparse SGD momentum drift by 3e-6 from the run it continued
    assert not back.is_coalesced() and torch.equal(back._indices(), sparse._indices())
    assert torch.equal(back._values(), sparse._values())
    merged = sparse.coalesce()
    save_checkpoint(tmp_path / "c.safetensors", {"momentum_buffer": merged})
    assert load_checkpoint(tmp_path / "c.safetensors")["momentum_buffer"].is_coalesced()
    # a damaged sparse tensor (an index past its size) is one clear error, not a read past memory
    tensors = checkpoint._Tensors()
    damaged = torch.sparse_coo_tensor([[9]], [1.0], (5,), check_invariants=False)
    tree = json.dumps(checkpoint._encode({"s": damaged}, tensors))
    metadata = {"format": checkpoint.FORMAT, "tree": tree, "sha256": checkpoint._digest(tensors.by_key)}
    (tmp_path / "bad.safetensors").write_bytes(safetensors.torch.save(tensors.by_key, metadata=metadata))
    with pytest.raises(FileFormatError, match=r"bad.safetensors holds a damaged state tree.*sparse"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_the_logged_rate_is_the_one_each_step_used(tmp_path) -> None:
    """A per-step schedule moves the optimizer's rate on right after a step: the logs showed the
    next step's rate (a cosine run's last epoch logged lr = 0 while it trained at 0.025 down)."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5**t)
    config = _config(epochs=2, out_dir=str(tmp_path), log_every=1)
    Trainer(model, optimizer, mse, config, scheduler=schedule, scheduler_interval="step").fit(
        DataLoader(_data(48), batch_size=16)
    )
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["lr"] for e in lines if e["kind"] == "step"] == [0.5**t for t in range(6)]
    assert [e["lr"] for e in lines if e["kind"] == "epoch"] == [0.5**2, 0.5**5]  # each epoch's last step
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(InvalidInputError, match="scheduler_interval='epoch'"):
        Trainer(model, optimizer, mse, _config(), scheduler=plateau, scheduler_interval="step")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_the_average_follows_a_model_cast_to_another_dtype(dtype: torch.dtype) -> None:
    model = nn.Linear(3, 2)
    ema = ExponentialMovingAverage(model, decay=0.5)
    model.to(dtype)
    ema.update(model)
    assert all(value.dtype == (torch.float32 if dtype == torch.bfloat16 else dtype)
               for value in ema.shadow.values())


def test_a_half_precision_model_is_averaged_in_float32() -> None:
    """At decay 0.999 each step moves a bfloat16 average by less than its rounding: the average of
    a weight going from 1 to 3 stayed 1.0, and the Trainer wrote it back into the model."""
    model = nn.Linear(1, 1, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ExponentialMovingAverage(model, decay=0.999)
    reference = 1.0
    for step in range(1, 1001):
        with torch.no_grad():
            model.weight.fill_(1.0 + 2.0 * step / 1000)
        ema.update(model)
        reference = 0.999 * reference + 0.001 * float(model.weight)
    assert float(ema.shadow["weight"]) == pytest.approx(reference, rel=1e-5)
    ema.copy_to(model)
    assert model.weight.dtype == torch.bfloat16 and float(model.weight) == pytest.approx(reference, rel=1e-2)


def test_the_stop_reason_names_the_budget_as_the_caller_labels_it() -> None:
    """The captioner spends part of the user's budget pre-training before ``fit``; its stop reason
    read "the time budget (85.7 s)" for a --time-budget-s of 120."""
    model = _model()
    config = _config(epochs=4, time_budget_s=1e-6)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), mse, config)
    trainer.budget_label = "120 s, 34.3 s of it pre-training the encoder"
    trainer.fit(DataLoader(_data(16), batch_size=8))
    label = "120 s, 34.3 s of it pre-training the encoder"
    assert trainer.stop_reason == f"the time budget ({label}) ran out in epoch 1"


def test_mistakes_in_what_the_trainer_is_given_are_named(caplog) -> None:
    """A per-sample loss or a float from loss_fn failed deep inside ("Boolean value of Tensor ...
    ambiguous"), an empty train loader trained nothing without a word, a nan max norm wrote nan into
    every gradient, and a nan validation loss silently disabled keep_best."""
    from nlp182.optim.clipping import clip_grad_norm_

    data = DataLoader(_data(), batch_size=16)
    for loss_fn, returned in ((lambda m, b: (m(b[0]) - b[1]) ** 2, r"a tensor of shape \(16, "),
                              (lambda m, b: 1.0, "float"), (lambda m, b: {"loss": mse(m, b)}, "dict")):
        model = _model()
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), loss_fn,
                          TrainerConfig(epochs=1, device="cpu", progress=False))
        with pytest.raises(InvalidInputError, match=f"one-element loss tensor.*it returned {returned}"):
            trainer.fit(data)
    model = _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse,
                      TrainerConfig(epochs=2, device="cpu", progress=False))
    with pytest.raises(InvalidInputError, match="train_loader yielded no batches"):
        trainer.fit([])
    with pytest.raises(InvalidInputError, match="clip_grad_norm must be > 0"):
        TrainerConfig(clip_grad_norm=float("nan"))
    with pytest.raises(InvalidInputError, match="max_norm must be >= 0"):
        clip_grad_norm_(model.parameters(), float("nan"))
    model = _model()
    kept = TrainerConfig(epochs=1, device="cpu", progress=False, keep_best=True)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse, kept,
                      eval_fn=lambda m, b: {"valid_loss": float("nan")})
    trainer.fit(data, [None])
    assert "valid_loss is nan in epoch 1: it cannot be compared" in caplog.text


def test_keeping_or_stopping_on_a_validation_score_without_validation_data_is_refused_up_front() -> None:
    """keep_best with no valid_loader kept nothing and said nothing (a run that diverged left its
    last, worst epoch), and early stopping failed only after a whole epoch of training; a training
    score may still be monitored."""
    data = DataLoader(_data(), batch_size=16)
    for setting, named in (({"keep_best": True}, "keep_best follow"),
                           ({"early_stopping_patience": 2}, "early_stopping_patience follow"),
                           ({"keep_best": True, "monitor_limit": 0.0}, "keep_best, monitor_limit follow")):
        model = _model()
        before = [p.detach().clone() for p in model.parameters()]
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse, _config(**setting))
        with pytest.raises(InvalidInputError, match=f"{named} monitor='valid_loss'.*no valid_loader"):
            trainer.fit(data)
        assert trainer.epoch == 0
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    model = _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), mse,
                      _config(keep_best=True, monitor="train_loss"))
    history = trainer.fit(data)
    assert trainer.best_epoch == 1 + min(range(3), key=lambda i: history[i]["train_loss"])
