"""timm's model contract, checked on every registered vision model (new ones without edits here).

``forward_features`` is the last feature map, ``forward_head`` finishes the forward pass from it
(``pre_logits=True`` stops before the classifier), ``get_classifier`` is the layer that makes
logits and ``reset_classifier(n)`` swaps it for one with ``n`` outputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.contract import VisionModel
from nlp182.vision.models import VGG, InceptionNet, SmallCNN, resnet18
from nlp182.vision.registry import MODELS, create_model, list_models

SIZE = 32  # VGG-16 halves its input five times
#: Widths that keep every model tiny (the families have 64+ channels at 1, the small nets 16).
WIDTHS = {"small_cnn": 0.25, "unet": 0.25, "fcn": 0.25}
#: VGG's head would hold 4096 hidden units by default.
OPTIONS = {"vgg16": {"hidden": 16}}


def _build(name: str) -> VisionModel:
    torch.manual_seed(0)
    width = WIDTHS.get(name, 0.125)
    return create_model(name, num_classes=5, in_channels=3, width=width, **OPTIONS.get(name, {})).eval()


@pytest.mark.parametrize("name", list_models())
def test_every_model_answers_the_contract(name: str) -> None:
    model = _build(name)
    segmenter = MODELS.entry(name).meta["task"] == "segmentation"
    x = torch.randn(2, 3, SIZE, SIZE)
    features = model.forward_features(x)
    assert features.dim() == 4 and features.shape[:2] == (2, model.num_features)
    logits = model(x)
    torch.testing.assert_close(model.forward_head(features), logits)
    pre = model.forward_head(features, pre_logits=True)
    if segmenter:
        assert pre.shape == (2, model.num_features, SIZE, SIZE)
    else:
        assert pre.shape == (2, model.head_hidden_size)
        if not isinstance(model, VGG):  # a global-average-pool head: the pooled map, nothing more
            assert model.head_hidden_size == model.num_features
            torch.testing.assert_close(pre, features.mean(dim=(2, 3)))
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear | nn.Conv2d)
    torch.testing.assert_close(classifier(pre), logits)

    assert model.num_classes == 5
    model.reset_classifier(3)
    new = model.get_classifier()
    assert new is not classifier and all(p.requires_grad for p in new.parameters())
    assert (new.out_channels if segmenter else new.out_features) == 3 == model.num_classes
    assert model(x).shape == ((2, 3, SIZE, SIZE) if segmenter else (2, 3))
    torch.testing.assert_close(model.forward_head(features, pre_logits=True), pre)  # the body is untouched
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


@pytest.mark.parametrize(
    ("build", "channels", "grid"),
    [
        (lambda: resnet18(num_classes=5, width=0.125, small_input=True), 64, 2),
        (lambda: VGG(((8, 1), (16, 1)), num_classes=5, hidden=16, pool_size=2), 16, 4),
        (lambda: InceptionNet(num_classes=5, width=0.25), None, 8),
        (lambda: SmallCNN(in_channels=3, num_classes=5, width=0.25), 8, 8),
    ],
)
def test_forward_features_is_the_map_the_head_pools(build, channels, grid) -> None:
    torch.manual_seed(0)
    model = build().eval()
    fmap = model.forward_features(torch.randn(2, 3, 16, 16))
    assert fmap.shape == (2, model.num_features, grid, grid)
    if channels is not None:
        assert model.num_features == channels


@pytest.mark.parametrize(("width", "channels"), [(0.25, 4), (0.5, 8), (1.0, 16), (2.0, 32)])
def test_width_multiplies_the_small_nets_channels(width: float, channels: int) -> None:
    assert SmallCNN(width=width).block1[0][0].out_channels == channels
    assert create_model("unet", width=width).num_features == channels
    assert create_model("fcn", width=width).num_features == channels


@pytest.mark.parametrize("name", list_models())
def test_zero_classes_returns_the_pre_logit_features_as_timm_does(name: str) -> None:
    """``num_classes=0``, built or reset, leaves ``nn.Identity`` as the head: a feature extractor
    (it was a ``Linear(n, 0)`` giving ``(B, 0)`` logits, and ``reset_classifier(0)`` was refused)."""
    x = torch.randn(2, 3, SIZE, SIZE)
    torch.manual_seed(0)
    width = WIDTHS.get(name, 0.125)
    bare = create_model(name, num_classes=0, in_channels=3, width=width, **OPTIONS.get(name, {})).eval()
    assert isinstance(bare.get_classifier(), nn.Identity) and bare.num_classes == 0
    torch.testing.assert_close(bare(x), bare.forward_head(bare.forward_features(x), pre_logits=True))

    model = _build(name)
    features = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
    torch.testing.assert_close(model(x), features)
    model.reset_classifier(4)  # from no head back to one: its width is the pre-logit features'
    assert model.num_classes == 4 and model(x).shape[:2] == (2, 4)


@pytest.mark.parametrize("bad", [-3, 2.5, True])
def test_a_class_count_that_is_not_a_whole_number_at_least_0_is_refused(bad) -> None:
    with pytest.raises(InvalidInputError, match="num_classes must be a whole number >= 0"):
        resnet18(num_classes=bad)
    with pytest.raises(InvalidInputError, match="num_classes must be a whole number >= 0"):
        _build("small_cnn").reset_classifier(bad)
