"""Weight decay reaches matrices and kernels only; a model can exempt more by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.optim import SGD, AdamW, weight_decay_groups
from nlp182.vision.models import SmallCNN
from nlp182.vision.normalization import BatchNorm


def test_matrices_decay_biases_and_norms_do_not() -> None:
    model = SmallCNN(1, 10, width=0.25)
    decayed, plain = weight_decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {names[id(p)] for p in decayed["params"]} == {
        n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1
    }
    norms = {id(p) for m in model.modules() if isinstance(m, BatchNorm) for p in m.parameters()}
    assert norms and norms <= {id(p) for p in plain["params"]}
    assert "fc.bias" in {names[id(p)] for p in plain["params"]}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("optimizer", [SGD, AdamW])
def test_a_step_with_zero_gradient_shrinks_only_the_matrices(optimizer: type) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = optimizer(weight_decay_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, param in model.named_parameters():
        if name in ("0.weight", "2.weight"):
            torch.testing.assert_close(param, before[name] * (1 - 0.1 * 0.5))  # L2 and decoupled agree here
        else:
            assert torch.equal(param, before[name]), name


def test_the_model_can_exempt_more_and_frozen_parameters_are_left_out() -> None:
    class WithTable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.zeros(4, 3))
            self.head = nn.Linear(3, 2)
            self.frozen = nn.Linear(2, 2).requires_grad_(False)

        def no_weight_decay(self) -> set[str]:
            return {"table"}

    model = WithTable()
    decayed, plain = weight_decay_groups(model, 0.01)
    assert [p is model.head.weight for p in decayed["params"]] == [True]
    assert {id(p) for p in plain["params"]} == {id(model.table), id(model.head.bias)}
    (only,) = weight_decay_groups(nn.Linear(2, 2, bias=False), 0.1)  # an empty group is dropped
    assert only["params"][0].shape == (2, 2) and only["weight_decay"] == 0.1
    assert [g["weight_decay"] for g in weight_decay_groups(nn.LayerNorm(3), 0.1)] == [0.0]
    model.no_weight_decay = lambda: {"missing"}  # type: ignore[method-assign]
    with pytest.raises(InvalidInputError, match="missing"):
        weight_decay_groups(model, 0.1)
    with pytest.raises(InvalidInputError, match="must be >= 0"):  # refused for itself, on a sound model
        weight_decay_groups(nn.Linear(2, 2), -0.5)


def test_a_model_with_no_trainable_parameter_is_named_as_such() -> None:
    """A fully frozen model reached torch's "optimizer got an empty parameter list"."""
    from nlp182.vision import freeze

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    freeze(model)
    with pytest.raises(InvalidInputError, match=r"Sequential has no trainable parameter \(4 frozen"):
        weight_decay_groups(model, 0.1)
