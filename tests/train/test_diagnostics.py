"""A run that went wrong says so: one warning each for a kept epoch scoring 0, a training loss that
stopped falling and a model that outputs nothing; a healthy run says nothing, and early stopping is
an ordinary end."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader

from nlp182.train import Trainer, TrainerConfig
from nlp182.train.diagnostics import (
    EMPTY_KEY,
    empty_share,
    kept_empty_outputs,
    loss_stalled,
    still_improving,
    zero_kept_score,
)
from tests.train.test_workflow import _data, _model, mse


def _fit(lr: float, eval_fn=None, **kw: object) -> Trainer:
    model = _model()
    config = TrainerConfig(**{"epochs": 6, "device": "cpu", "progress": False, **kw})  # type: ignore[arg-type]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), mse, config, eval_fn=eval_fn)
    trainer.fit(DataLoader(_data(), batch_size=16), DataLoader(_data(), batch_size=64))
    return trainer


def test_a_learning_run_has_no_warnings() -> None:
    trainer = _fit(0.02, early_stopping_patience=3)
    assert trainer.warnings == [] and trainer.stop_reason is None
    assert trainer.history[-1]["train_loss"] < 0.5 * trainer.history[0]["train_loss"]


def test_early_stopping_is_an_ordinary_end_and_a_flat_loss_warns_once(caplog) -> None:
    # lr = 0: the loss never moves, so validation never improves after epoch 1 and patience 2 ends
    # the run after epoch 3; too few epochs to call the loss flat. Patience running out is what it
    # is set for: a run that stopped so with a good model showed "1 WARNING".
    with caplog.at_level(logging.INFO, logger="nlp182.train.trainer"):
        trainer = _fit(0.0, early_stopping_patience=2)
    assert len(trainer.history) == 3
    assert trainer.stop_reason.startswith("early stopping after epoch 3: valid_loss has not improved")
    assert "for 2 epochs" in trainer.stop_reason and "s of training since)" in trainer.stop_reason
    assert trainer.warnings == [] and f"stopped: {trainer.stop_reason}" in caplog.text
    flat = _fit(0.0)  # six epochs at lr = 0, no early stopping
    assert len(flat.warnings) == 1 and flat.warnings[0].startswith("the training loss stopped falling")
    assert "epochs 5-6" in flat.warnings[0]


def test_the_stall_warning_reads_the_metric_the_config_names() -> None:
    """A loss with a surrogate term (REINFORCE's) names its honest part: a flat ``loss`` with a
    falling ``cross_entropy`` is no stall, and the other way round is one."""
    model = _model()
    calls = iter(range(10_000))

    def surrogate(net, batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = mse(net, batch)
        return loss * 0.0 + 1.0, {"cross_entropy": 100.0 / (1 + next(calls))}  # flat loss, falling CE

    for metric, warned in (("cross_entropy", False), ("loss", True)):
        config = TrainerConfig(epochs=6, device="cpu", progress=False, stall_metric=metric)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), surrogate, config)
        trainer.fit(DataLoader(_data(), batch_size=16), DataLoader(_data(), batch_size=64))
        assert any(w.startswith("the training loss stopped falling") for w in trainer.warnings) == warned


def test_a_flat_training_loss_beside_a_rising_validation_score_is_no_stall(caplog) -> None:
    """The note "still improving: more epochs would likely give a better one" came with the
    warning "the training loss stopped falling ... more epochs will not help"."""
    scores = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])

    def rising(model: nn.Module, batches) -> dict[str, float]:
        return {"valid_exact_match": next(scores)}

    with caplog.at_level(logging.INFO, logger="nlp182.train.trainer"):
        trainer = _fit(0.0, eval_fn=rising, monitor="valid_exact_match", monitor_mode="max", keep_best=True)
    assert "the model was still improving" in caplog.text and trainer.warnings == []


def test_patience_in_seconds_stops_a_run_that_stopped_improving() -> None:
    # Any positive patience in seconds is spent by the second epoch without a better score.
    trainer = _fit(0.0, early_stopping_patience_s=1e-9)
    assert len(trainer.history) == 2 and trainer.stop_reason.startswith("early stopping after epoch 2")


def test_a_kept_epoch_scoring_zero_warns() -> None:
    def never_right(model: nn.Module, batches) -> dict[str, float]:
        return {"valid_exact_match": 0.0}

    trainer = _fit(0.02, eval_fn=never_right, monitor="valid_exact_match", monitor_mode="max", keep_best=True)
    assert trainer.best_epoch == 6  # the last of the epochs tied at 0: the most trained
    assert trainer.warnings == [
        "the kept epoch (6) has valid_exact_match = 0: no epoch scored above 0 on validation; train "
        "longer or on more data"
    ]


def test_patience_after_nonzero_waits_for_a_first_score_above_zero() -> None:
    def never_right(model: nn.Module, batches) -> dict[str, float]:
        return {"valid_exact_match": 0.0}

    common = {"eval_fn": never_right, "monitor": "valid_exact_match", "monitor_mode": "max"}
    assert len(_fit(0.02, early_stopping_patience=2, **common).history) == 3
    waited = _fit(0.02, early_stopping_patience=2, patience_after_nonzero=True, **common)
    assert len(waited.history) == 6 and waited.stop_reason is None
    assert waited.warnings[0].startswith("the kept epoch (6) has valid_exact_match = 0")
    scores = iter([0.0, 0.0, 0.5, 0.5, 0.5, 0.5])

    def late(model: nn.Module, batches) -> dict[str, float]:
        return {"valid_exact_match": next(scores)}

    counted = _fit(
        0.02, early_stopping_patience=2, patience_after_nonzero=True, **{**common, "eval_fn": late}
    )
    assert len(counted.history) == 5 and counted.best_epoch == 3  # epochs 4 and 5 do not beat epoch 3

    def negative(model: nn.Module, batches) -> dict[str, float]:  # a score that can start below 0
        return {"valid_exact_match": -1.0}

    options = {**common, "eval_fn": negative, "patience_after_nonzero": True}
    below = _fit(0.02, early_stopping_patience=2, **options)
    assert len(below.history) == 6  # never above 0: patience never started


def test_a_perfect_score_ends_the_run_without_a_warning() -> None:
    scores = iter([0.5, 0.9, 1.0, 1.0, 1.0, 1.0])

    def climbing(model: nn.Module, batches) -> dict[str, float]:
        return {"valid_exact_match": next(scores)}

    common = {"monitor": "valid_exact_match", "monitor_mode": "max", "keep_best": True}
    trainer = _fit(0.02, eval_fn=climbing, monitor_limit=1.0, **common)
    assert len(trainer.history) == 3 and trainer.best_epoch == 3
    assert trainer.stop_reason == "valid_exact_match reached 1, its best possible value, in epoch 3"
    assert trainer.warnings == []
    scores = iter([0.5, 0.9, 1.0, 1.0, 1.0, 1.0])
    patient = _fit(0.02, eval_fn=climbing, early_stopping_patience=2, **common)  # no limit: patience ends it
    assert len(patient.history) == 5 and patient.best_epoch == 3 and patient.warnings == []


def test_the_checks_on_hand_made_records() -> None:
    falling = [{"train_loss": v} for v in (4.0, 3.0, 2.5, 2.0, 1.9, 1.8)]
    assert loss_stalled(falling) is None
    stalled = [{"train_loss": v} for v in (4.0, 3.0, 2.0, 2.0, 1.995, 2.01)]  # last two within 1% of 2.0
    assert "epochs 5-6 (1.995) is not 1% below its best before (2)" in loss_stalled(stalled)
    assert loss_stalled(stalled[:3]) is None  # too short to tell
    assert loss_stalled([{"train_loss": v} for v in (4.0, 3.0, 2.0, 2.0)]) is None  # the last two fell
    epochs = [{"epoch": n} for n in (1, 2, 3)]
    assert "was best in the last epoch (3)" in still_improving("valid_bleu", 3, epochs, None)
    assert still_improving("valid_bleu", 3, epochs, "the time budget (60 s)") is not None
    assert still_improving("valid_bleu", 2, epochs, None) is None  # an earlier epoch was best
    assert still_improving("valid_bleu", 3, epochs, "valid_bleu reached 100") is None  # nothing to gain
    assert still_improving("valid_bleu", 2, epochs[:2], None) is None  # too short to tell
    assert loss_stalled([{"train_loss": v} for v in (4.0, 1.0, 0.0, 0.0, 0.0, 0.0)]) is None  # a perfect fit
    rising = [{"train_loss": v} for v in (-5.0, -8.0, -10.0, -10.0, -9.95, -9.99)]  # a negative loss, flat
    assert "is not 1% below its best before (-10)" in loss_stalled(rising)
    assert loss_stalled([{"train_loss": v} for v in (-5.0, -8.0, -10.0, -10.0, -10.5, -11.0)]) is None
    assert zero_kept_score("valid_loss", "min", 0.0, 1) is None  # a loss of 0 is perfect
    assert zero_kept_score("valid_bleu4", "max", 0.5, 2) is None


def test_the_kept_epochs_own_validation_tells_whether_it_says_nothing() -> None:
    assert empty_share(["a red square", " ", "", "a disc"]) == 0.5 and empty_share([]) == 0.0
    history = [{"epoch": 1, EMPTY_KEY: 1.0}, {"epoch": 2, EMPTY_KEY: 0.25}, {"epoch": 3, EMPTY_KEY: 0.0}]
    assert kept_empty_outputs(history, 3, 8, "caption") is None  # the last epoch, not the kept one, is read
    assert kept_empty_outputs(history, 2, 8, "caption") == (
        "the kept model outputs an empty caption for 2 of 8 validation inputs"
    )
    assert kept_empty_outputs(history, 1, 8, "translation").endswith("(all of them: it says nothing)")
    assert kept_empty_outputs(history, None, 8, "caption") is None  # nothing kept
    assert kept_empty_outputs([{"epoch": 1}], 1, 8, "caption") is None  # not recorded
