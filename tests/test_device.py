"""Device choice, seeding and the autocast policy."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from nlp182.device import (
    CUBLAS_WORKSPACE,
    autocast_dtype,
    deterministic_algorithms,
    seed_everything,
    select_device,
)
from nlp182.errors import InvalidInputError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu") == select_device(None)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda"


def test_explicit_choice_is_honoured_or_refused(monkeypatch) -> None:
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="no CUDA GPU"):
        select_device("cuda")
    with pytest.raises(InvalidInputError, match="unknown device"):
        select_device("tpu9")


def test_seeding_makes_every_generator_repeat() -> None:
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    generator = seed_everything(7)
    first, first_own = draw(), torch.rand(2, generator=generator)
    generator = seed_everything(7)
    assert draw() == first
    assert torch.equal(torch.rand(2, generator=generator), first_own)


def test_autocast_is_bf16_on_cuda_only() -> None:
    assert autocast_dtype(torch.device("cuda")) == torch.bfloat16
    assert autocast_dtype(torch.device("cpu")) is None


def test_deterministic_algorithms_are_set_within_the_block_and_restored_after(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    with deterministic_algorithms(False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
