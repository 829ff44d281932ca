import numpy as np
import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision import ExponentialMovingAverage
from nlp182.vision.data import load_digits_split
from nlp182.vision.ensembles import (
    Ensemble,
    average_parameters,
    average_probabilities,
    average_state_dicts,
    bootstrap_indices,
    majority_vote,
    recompute_batchnorm,
    snapshot_ensemble,
    train_ensemble,
)
from nlp182.vision.fit import FitConfig, accuracy, predict_logits
from nlp182.vision.normalization import BatchNorm


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_average_probabilities_and_ensemble_module():
    logits = [torch.randn(5, 4, dtype=torch.float64) for _ in range(3)]
    expected = np.mean([_softmax(z.numpy()) for z in logits], axis=0)
    np.testing.assert_allclose(average_probabilities(logits).numpy(), expected, rtol=1e-12)
    members = [nn.Linear(3, 4) for _ in range(3)]
    x = torch.randn(6, 3)
    out = Ensemble(members)(x)
    torch.testing.assert_close(out.softmax(dim=1), average_probabilities([m(x) for m in members]))
    with pytest.raises(InvalidInputError):
        Ensemble([])


def test_majority_vote_with_tie_broken_by_mean_probability():
    a = torch.tensor([[2.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    c = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 0.5]])
    # row 0: two votes for class 1 although a is confident in 0; row 1: one vote each, class 0 most probable
    assert majority_vote([a, b, c]).tolist() == [1, 0]
    weak, strong = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 4.0, 0.0]])
    assert majority_vote([weak, strong]).tolist() == [1]  # a 1-1 tie goes to the higher mean probability
    assert majority_vote([strong, weak]).tolist() == [1]


def test_parameter_averaging_is_elementwise_mean_and_keeps_counters():
    models = [nn.Sequential(nn.Linear(3, 2), BatchNorm(2)) for _ in range(3)]
    for k, model in enumerate(models):
        model[1].num_batches_tracked.fill_(k + 5)
    averaged = average_parameters(models)
    torch.testing.assert_close(averaged[0].weight, torch.stack([m[0].weight for m in models]).mean(0))
    assert int(averaged[1].num_batches_tracked) == 5
    with pytest.raises(InvalidInputError, match="keys"):
        average_state_dicts([models[0].state_dict(), nn.Linear(3, 2).state_dict()])


@pytest.mark.parametrize("norm", [BatchNorm, nn.BatchNorm2d])
def test_recompute_batchnorm_gives_mean_of_batch_statistics(norm):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), norm(3))
    x = torch.randn(40, 1, 5, 5) * 2 + 1
    recompute_batchnorm(model, x, batch_size=10)
    assert not model.training
    with torch.no_grad():
        feats = model[0](x)
    batches = feats.split(10)
    mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model[1].running_var, var, atol=1e-5, rtol=1e-5)
    assert model[1].momentum == 0.1  # restored


def test_recompute_batchnorm_never_runs_a_batch_of_one_example():
    model = nn.Sequential(nn.Linear(3, 4), BatchNorm(4))
    x = torch.randn(21, 3)
    recompute_batchnorm(model, x, batch_size=10)  # 10 + 11, not 10 + 10 + 1
    with torch.no_grad():
        feats = model[0](x)
    mean = torch.stack([feats[:10].mean(0), feats[10:].mean(0)]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean, atol=1e-6, rtol=1e-6)


def test_ema_follows_the_float64_recursion_with_one_copy():
    model = nn.Sequential(nn.Linear(4, 2), BatchNorm(2))
    ema = ExponentialMovingAverage(model, decay=0.9)
    assert set(ema.shadow) == set(model.state_dict())  # one copy of the weights and statistics
    reference = model[0].weight.detach().double().clone()
    running = model[1].running_mean.double().clone()
    for _ in range(5):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(2, 4))
        model(torch.randn(8, 4))  # moves the batch-norm statistics
        ema.update(model)
        reference = 0.9 * reference + 0.1 * model[0].weight.detach().double()
        running = 0.9 * running + 0.1 * model[1].running_mean.double()
    torch.testing.assert_close(ema.shadow["0.weight"].double(), reference, atol=1e-6, rtol=1e-6)
    averaged = ema.averaged_model(model)
    torch.testing.assert_close(averaged[0].weight.double(), reference, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(averaged[1].running_mean.double(), running, atol=1e-6, rtol=1e-6)
    assert int(averaged[1].num_batches_tracked) == 5
    assert not torch.equal(model[0].weight, averaged[0].weight)
    with pytest.raises(InvalidInputError):
        ExponentialMovingAverage(model, decay=1.0)


def test_bootstrap_samples_cover_about_63_percent():
    samples = bootstrap_indices(10_000, 3, seed=1)
    assert len(samples) == 3 and all(len(s) == 10_000 for s in samples)
    for s in samples:
        assert len(torch.unique(s)) / 10_000 == pytest.approx(1 - np.exp(-1), abs=0.01)
    assert not torch.equal(samples[0], samples[1])
    assert all(torch.equal(a, b) for a, b in zip(samples, bootstrap_indices(10_000, 3, seed=1), strict=True))


def _mlp(_: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


def test_independent_and_bagged_ensembles_on_digits(digits):
    x_tr, y_tr, x_te, y_te = digits
    config = FitConfig(epochs=4, batch_size=64, lr=0.1, device="cpu")
    for bootstrap in (False, True):
        members = train_ensemble(_mlp, x_tr, y_tr, num_models=3, config=config, bootstrap=bootstrap)
        logits = [predict_logits(m, x_te) for m in members]
        singles = [accuracy(z, y_te) for z in logits]
        assert min(singles) > 0.85
        assert not torch.equal(members[0][1].weight, members[1][1].weight)
        assert accuracy(average_probabilities(logits).log(), y_te) >= np.mean(singles)


def test_snapshot_ensemble_takes_one_copy_per_cycle(digits):
    x_tr, y_tr, x_te, y_te = digits
    model = _mlp(0)
    snapshots, history = snapshot_ensemble(
        model, x_tr, y_tr, cycles=3, config=FitConfig(epochs=6, lr=0.1, device="cpu")
    )
    assert len(snapshots) == 3 and len(history) == 6
    assert all(s is not model for s in snapshots)
    torch.testing.assert_close(snapshots[-1][1].weight, model[1].weight)
    assert not torch.equal(snapshots[0][1].weight, snapshots[1][1].weight)
    assert accuracy(predict_logits(Ensemble(snapshots), x_te), y_te) > 0.9
    assert accuracy(predict_logits(average_parameters(snapshots), x_te), y_te) > 0.9


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_ensemble_log_probabilities_stay_finite_in_low_precision(dtype) -> None:
    """The log of the mean probability, clamped at 1e-30 (0 in float16), gave -inf for a class
    with logit -200; the log-mean-exp of the members' log-probabilities is finite in every dtype."""

    class Fixed(nn.Module):
        def __init__(self, logits: list[float]) -> None:
            super().__init__()
            self.logits = torch.tensor([logits], dtype=dtype)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(len(x), -1)

    members = [[0.0, -200.0, 5.0], [1.0, -150.0, 2.0]]
    out = Ensemble([Fixed(m) for m in members])(torch.zeros(2, 1))
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    reference = torch.logsumexp(torch.tensor(members, dtype=torch.float64).log_softmax(-1), 0) - np.log(2)
    tolerance = {torch.float16: 0.2, torch.bfloat16: 1.5, torch.float32: 1e-4}[dtype]
    np.testing.assert_allclose(out[0].double().numpy(), reference.numpy(), atol=tolerance, rtol=0.01)
