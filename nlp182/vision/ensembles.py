"""Ensembles: prediction averaging and voting, parameter averaging, snapshot ensembles, EMA, bagging.

- Independent models combined by averaging their predicted probabilities (always helps) or voting.
- Parameter averaging of *independent* models rarely works (equivalent networks permute their
  units), but snapshots of one run lie close together, so averaging them often does.
- Snapshot ensembles (Huang et al. 2017): one run with a cyclic cosine LR, a snapshot at the end of
  each cycle. An exponential moving average of the weights keeps a single extra copy instead.
- Bagging: each member trains on its own bootstrap sample (drawn with replacement).

``ExponentialMovingAverage`` lives in :mod:`nlp182.train.averaging` (the Trainer keeps one) and is
exported here too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.fit import FitConfig, LossFn, fit
from nlp182.vision.normalization import batch_spans, recalibrate_batch_norm


def _stack(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    if not logits_list:
        raise InvalidInputError("an ensemble needs at least one member's logits")
    stacked = torch.stack(list(logits_list))
    if stacked.dim() != 3:
        raise ShapeError(f"each member's logits must be (B, K); got {tuple(stacked.shape[1:])}")
    return stacked


def average_probabilities(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of the members' softmax probabilities: M tensors ``(B, K)`` -> ``(B, K)``."""
    return _stack(logits_list).softmax(dim=-1).mean(dim=0)


def majority_vote(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Class chosen by most members (argmax votes), ties broken by the mean probability.

    M tensors ``(B, K)`` -> classes ``(B,)``.
    """
    stacked = _stack(logits_list)
    votes = nn.functional.one_hot(stacked.argmax(dim=-1), stacked.shape[-1]).sum(dim=0).to(stacked.dtype)
    # Mean probabilities lie in [0, 1], so half of one never outweighs a whole vote.
    return (votes + 0.5 * stacked.softmax(dim=-1).mean(dim=0)).argmax(dim=-1)


class Ensemble(nn.Module):
    """Prediction-averaging ensemble of classifiers with the same output classes.

    forward returns ``log(mean_m softmax(f_m(x)))`` ``(B, K)``: its argmax is the averaged
    prediction and its softmax gives back the averaged probabilities, so it can stand in for
    logits (e.g. as a distillation teacher).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise InvalidInputError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # log-mean-exp of the log-probabilities: exact in any dtype, where the log of the mean
        # probability met 0 (a clamp at 1e-30 is 0 in float16) and gave -inf
        log_probs = _stack([m(x) for m in self.members]).log_softmax(dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point entries; integer entries (counters) come from the first."""
    if not states:
        raise InvalidInputError("need at least one state dict to average")
    keys = states[0].keys()
    if any(s.keys() != keys for s in states):
        raise InvalidInputError("state dicts come from different architectures (their keys differ)")
    return {
        key: (
            torch.stack([s[key].double() for s in states]).mean(0).to(states[0][key].dtype)
            if states[0][key].is_floating_point()
            else states[0][key].clone()
        )
        for key in keys
    }


def average_parameters(models: Sequence[nn.Module]) -> nn.Module:
    """A copy of ``models[0]`` whose parameters and buffers are the members' average.

    Batch-norm statistics of an average are not the average of statistics: follow with
    :func:`recompute_batchnorm` on training data.
    """
    if not models:
        raise InvalidInputError("average_parameters needs at least one model")
    averaged = copy.deepcopy(models[0])
    averaged.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    return averaged


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every batch norm's running statistics on ``inputs`` ``(N, ...)``.

    The running statistics become the plain mean of the per-batch statistics (momentum ``1/k`` at
    batch ``k``), as SWA does after averaging weights: :func:`~nlp182.vision.recalibrate_batch_norm`
    over ``inputs`` in batches of ``batch_size``. Returns ``model`` in eval mode.
    """
    device = next(model.parameters()).device
    spans = batch_spans(len(inputs), batch_size)  # never a batch of one example
    recalibrate_batch_norm(model, (inputs[start:stop].to(device) for start, stop in spans))
    return model.eval()


def _build(make_model: Callable[[int], nn.Module], index: int, seed: int) -> nn.Module:
    # A private RNG stream per member: reproducible inits without disturbing the caller's state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_model(index)


def bootstrap_indices(n: int, num_models: int, seed: int = 0) -> list[torch.Tensor]:
    """One bootstrap sample per member: ``n`` indices drawn with replacement from ``range(n)``."""
    if n < 1 or num_models < 1:
        raise InvalidInputError(f"need n >= 1 and num_models >= 1; got {n}, {num_models}")
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n, (n,), generator=generator) for _ in range(num_models)]


def train_ensemble(
    make_model: Callable[[int], nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    num_models: int = 5,
    config: FitConfig | None = None,
    bootstrap: bool = False,
    loss_fn: LossFn | None = None,
) -> list[nn.Module]:
    """Train ``num_models`` independent members (``make_model(i)``, own init and shuffling seed).

    ``bootstrap=True`` is bagging: member ``i`` sees its own bootstrap sample of the data.
    """
    config = config or FitConfig()
    samples = bootstrap_indices(len(inputs), num_models, config.seed) if bootstrap else None
    members = []
    for i in range(num_models):
        model = _build(make_model, i, config.seed + i)
        x, y = (inputs, targets) if samples is None else (inputs[samples[i]], targets[samples[i]])
        fit(model, x, y, _with_seed(config, config.seed + i), loss_fn)
        members.append(model)
    return members


def _with_seed(config: FitConfig, seed: int) -> FitConfig:
    clone = copy.copy(config)
    clone.seed = seed
    return clone


def snapshot_ensemble(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    cycles: int = 5,
    config: FitConfig | None = None,
    loss_fn: LossFn | None = None,
) -> tuple[list[nn.Module], list[float]]:
    """Train ``model`` once with a cyclic cosine LR of ``cycles`` cycles; keep a copy at each cycle's end.

    ``inputs`` ``(N, ...)`` and ``targets`` ``(N,)`` are the training set. ``config.epochs`` must be a
    multiple of ``cycles``; its ``schedule``/``cycles`` are overridden.
    Returns the snapshots (oldest first) and the run's per-epoch training loss.
    """
    config = copy.copy(config or FitConfig())
    config.schedule, config.cycles = "cyclic", cycles
    snapshots: list[nn.Module] = []
    history = fit(
        model, inputs, targets, config, loss_fn, on_cycle_end=lambda m, _: snapshots.append(copy.deepcopy(m))
    )
    return snapshots, history
