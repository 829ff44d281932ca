"""``forward_features``: every model's spatial map before pooling, the map its head pools."""

import pytest
import torch
from torch import nn

from nlp182.vision.models import VGG, InceptionNet, SmallCNN, resnet18


@pytest.mark.parametrize(
    ("build", "channels", "size", "grid"),
    [
        (lambda: resnet18(num_classes=5, width=0.125, small_input=True), 64, 16, 2),
        (lambda: VGG(((8, 1), (16, 1)), num_classes=5, hidden=16, pool_size=2), 16, 16, 4),
        (lambda: InceptionNet(num_classes=5, width=0.25), None, 16, 8),
        (lambda: SmallCNN(in_channels=3, num_classes=5, width=4), 8, 16, 8),
    ],
)
def test_forward_features_is_the_map_the_head_pools(build, channels, size, grid) -> None:
    torch.manual_seed(0)
    model: nn.Module = build().eval()
    x = torch.randn(2, 3, size, size)
    fmap = model.forward_features(x)
    assert fmap.shape == (2, model.num_features, grid, grid)
    if channels is not None:
        assert model.num_features == channels
    head = model.classifier if isinstance(model, VGG) else (lambda f: model.fc(f.mean(dim=(2, 3))))
    pooled = model.avgpool(fmap) if isinstance(model, VGG) else fmap
    torch.testing.assert_close(model(x), head(pooled))
