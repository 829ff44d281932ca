"""Vision models by name: every family is registered, builds with the shared arguments, and counts match."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision import registry
from nlp182.vision.models import ResNet, resnet18, resnet34, resnet50
from nlp182.vision.registry import create_model, list_models, register_model


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


WIDTHS = {"small_cnn": 0.25, "unet": 0.25, "fcn": 0.25}  # 4 channels first; the families take 0.125


def test_registered_names_by_task() -> None:
    assert {"resnet18", "resnet34", "resnet50", "vgg16", "inception", "small_cnn"} <= set(
        list_models("classification"))
    assert {"unet", "fcn"} <= set(list_models("segmentation"))


@pytest.mark.parametrize("name", list_models("classification"))  # new models are checked without edits here
def test_every_classifier_builds_from_the_shared_arguments(name: str) -> None:
    model = create_model(name, num_classes=3, in_channels=1, width=WIDTHS.get(name, 0.125)).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", list_models("segmentation"))
def test_every_segmenter_builds_from_the_shared_arguments(name: str) -> None:
    model = create_model(name, num_classes=4, in_channels=3, width=WIDTHS.get(name, 0.25)).eval()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 4, 16, 16)


def test_resnet_depths_share_one_builder_with_their_own_layout() -> None:
    layouts = (
        ("resnet18", resnet18, "BasicBlock", [2, 2, 2, 2]),
        ("resnet34", resnet34, "BasicBlock", [3, 4, 6, 3]),
        ("resnet50", resnet50, "Bottleneck", [3, 4, 6, 3]),
    )
    for name, build, block, layers in layouts:
        model = build(num_classes=5, width=0.125)
        assert isinstance(model, ResNet) and build.__name__ == name
        assert name in (build.__doc__ or "").lower().replace("-", "")
        assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == layers
        assert type(model.layer1[0]).__name__ == block
        assert count(model) == count(create_model(name, num_classes=5, width=0.125))


def test_unknown_or_duplicate_names_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="unknown vision model 'resnet19'"):
        create_model("resnet19")
    monkeypatch.setattr(registry.MODELS, "_entries", dict(registry.MODELS._entries))
    with pytest.raises(InvalidInputError, match="registered twice"):
        register_model("resnet18")(lambda **kw: nn.Identity())
    with pytest.raises(InvalidInputError, match="unknown task"):
        register_model("x", task="detection")
    register_model("identity")(lambda **kw: nn.Identity())
    assert "identity" in list_models("classification")
