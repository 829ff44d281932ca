"""The digits task the optimizer pictures and the hyperparameter search use.

scikit-learn's 8x8 digits (1797 images, shipped with the library: nothing is downloaded), pixels
scaled to [0, 1], split into train and validation deterministically. Logistic regression on it is
softmax + cross-entropy over a linear map: convex, so differences between optimizers are about
speed, not about which minimum they find.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from nlp182.errors import InvalidInputError


def digits_datasets(valid_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(train, valid) datasets of ``(x, y)``: ``x`` is ``(N, 64)`` float32 in [0, 1], ``y`` is ``(N,)``."""
    if not 0.0 < valid_fraction < 1.0:
        raise InvalidInputError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    from sklearn.datasets import load_digits  # here: scikit-learn costs every command a second to import

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_valid = round(valid_fraction * len(y))
    valid, train = order[:n_valid], order[n_valid:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[valid], y[valid])


def classification_loss(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of ``model(x)`` (logits ``(B, C)``) against ``y`` ``(B,)``, plus the accuracy."""
    x, y = batch
    logits = model(x)
    accuracy = float((logits.argmax(-1) == y).float().mean())
    return nn.functional.cross_entropy(logits, y), {"accuracy": accuracy}
