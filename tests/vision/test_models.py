import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision import resnet
from nlp182.vision.blocks import BasicBlock, Bottleneck, InceptionModule, VGGBlock
from nlp182.vision.models import InceptionNet, ResNet, SmallCNN, resnet18, resnet34, resnet50, vgg16
from nlp182.vision.normalization import BatchNorm


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_width_resnet18_has_torchvision_parameter_count():
    assert count(resnet18()) == 11_689_512


def test_other_full_width_counts_match_torchvision():
    with torch.device("meta"):  # shapes only: no memory, no time
        assert count(resnet34()) == 21_797_672
        assert count(resnet50()) == 25_557_032
        assert count(vgg16()) == 138_357_544
        assert count(vgg16(batch_norm=True)) == 138_365_992
        assert count(resnet(101)) == 44_549_160
        assert count(resnet.resnet152()) == 60_192_808


def test_resnet_module_has_torchvision_names_and_builds_by_depth_when_called():
    assert resnet.resnet50 is resnet50 and resnet.ResNet is ResNet and resnet.Bottleneck is Bottleneck
    with torch.device("meta"):
        for depth, parameters in resnet.PARAMETERS.items():
            model = resnet(depth)
            assert isinstance(model, ResNet) and count(model) == parameters
            assert count(getattr(resnet, f"resnet{depth}")()) == parameters
    torch.manual_seed(0)
    small = resnet(depth=50, num_classes=3, width=0.125, small_input=True)
    assert type(small.layer1[0]) is Bottleneck and small(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    assert resnet().fc.out_features == 1000 and type(resnet().layer1[0]) is BasicBlock
    for depth in (19, True, "18"):
        with pytest.raises(InvalidInputError, match="depth must be one of 18, 34, 50, 101, 152"):
            resnet(depth)


def _torchvision_keys(convs_per_block: int, blocks: tuple[int, ...], projection_in_layer1: bool) -> list[str]:
    """The state-dict keys of torchvision's ResNet, written out from its layout (torchvision does
    not import beside this torch build): a projection shortcut is ``downsample.0`` (1x1 conv) and
    ``downsample.1`` (batch norm)."""
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight", *(f"bn1.{n}" for n in norm)]
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for k in range(1, convs_per_block + 1):
                keys += [f"{prefix}.conv{k}.weight", *(f"{prefix}.bn{k}.{n}" for n in norm)]
            if block == 0 and (stage > 1 or projection_in_layer1):
                keys += [f"{prefix}.downsample.0.weight", *(f"{prefix}.downsample.1.{n}" for n in norm)]
    return [*keys, "fc.weight", "fc.bias"]


def test_state_dict_keys_are_torchvision_s_so_its_weights_load_strictly():
    assert sorted(resnet18().state_dict()) == sorted(_torchvision_keys(2, (2, 2, 2, 2), False))
    assert sorted(resnet50().state_dict()) == sorted(_torchvision_keys(3, (3, 4, 6, 3), True))
    saved = resnet18(num_classes=3, width=0.25)  # a run folder naming the projection "shortcut" still loads
    former = {key.replace(".downsample.", ".shortcut."): value for key, value in saved.state_dict().items()}
    loaded = resnet18(num_classes=3, width=0.25)
    loaded.load_state_dict(former, strict=True)
    pairs = zip(saved.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_width_multiplier_shrinks_and_small_input_keeps_resolution():
    small = resnet18(num_classes=10, width=0.25, in_channels=1, small_input=True)
    assert count(small) < count(resnet18()) / 10
    assert small.layer1[0].conv1.out_channels == 16
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert resnet18(num_classes=5, width=0.125)(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    with pytest.raises(InvalidInputError):
        resnet18(width=0)


def test_basic_block_projection_only_when_shapes_differ():
    same = BasicBlock(8, 8, 1)
    assert isinstance(same.downsample, nn.Identity)
    down = BasicBlock(8, 16, 2)
    conv, bn = down.downsample
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, BatchNorm)
    assert down(torch.randn(2, 8, 8, 8)).shape == (2, 16, 4, 4)
    # with zeroed residual branch the block is relu(shortcut(x))
    with torch.no_grad():
        same.bn2.weight.zero_()
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(same(x), torch.relu(x))


def test_bottleneck_expands_by_four_with_bn_after_each_conv():
    block = Bottleneck(16, 8, 2)
    assert block(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    assert sum(isinstance(m, BatchNorm) for m in block.modules()) == 4  # 3 convs + projection
    # 1x1: 16*8, 3x3: 8*8*9, 1x1: 8*32, projection: 16*32, BN: 2*(8+8+32+32)
    assert count(block) == 16 * 8 + 8 * 8 * 9 + 8 * 32 + 16 * 32 + 2 * (8 + 8 + 32 + 32)


def test_bottleneck_strides_on_its_3x3_convolution_as_torchvision_does() -> None:
    """ResNet v1.5: torchvision's ``resnet50`` weights compute the same only with the stride on the
    3x3 convolution; on the first 1x1 the block keeps its shapes and drops three pixels in four."""
    torch.manual_seed(0)
    block = Bottleneck(8, 4, 2).eval()
    norms = [m for m in block.modules() if isinstance(m, BatchNorm)]
    with torch.no_grad():
        for norm in norms:  # stats and affine parameters that are not the identity
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)

    def bn(x: torch.Tensor, m: BatchNorm) -> torch.Tensor:
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    x = torch.randn(2, 8, 7, 7)
    out = F.relu(bn(F.conv2d(x, block.conv1.weight), block.bn1))
    out = F.relu(bn(F.conv2d(out, block.conv2.weight, stride=2, padding=1), block.bn2))
    out = bn(F.conv2d(out, block.conv3.weight), block.bn3)
    shortcut = bn(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(out + shortcut))


def test_inception_module_branches_and_parameter_count():
    module = InceptionModule(192, 64, 96, 128, 16, 32, 32)  # GoogLeNet inception (3a)
    out = module(torch.randn(2, 192, 7, 7))
    assert out.shape == (2, 64 + 128 + 32 + 32, 7, 7)
    convs = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    bns = 2 * (64 + 96 + 128 + 16 + 32 + 32)
    assert count(module) == convs + bns


def test_vgg_block_and_small_models_forward():
    assert VGGBlock(3, 8, 3)(torch.randn(2, 3, 16, 16)).shape == (2, 8, 8, 8)
    assert InceptionNet(10, 1, 0.25)(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert SmallCNN(1, 10, 0.5)(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert vgg16(num_classes=3, width=0.0625, hidden=32)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_small_resnet_learns_a_batch():
    model = resnet18(num_classes=4, width=0.125, in_channels=1, small_input=True)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 4
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(12):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2


def test_an_image_smaller_than_the_pooling_allows_is_named() -> None:
    """VGG below 32x32 and SmallCNN at 1x1 failed inside torch's max pool ("Output size is too small")."""
    from nlp182.errors import ShapeError

    vgg = vgg16(num_classes=3, width=0.125, hidden=16).eval()
    assert vgg(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(ShapeError, match=r"VGG takes images of at least 32x32 pixels .* got 31x40"):
        vgg(torch.randn(1, 3, 31, 40))
    with pytest.raises(ShapeError, match="SmallCNN takes images of at least 2x2 pixels"):
        SmallCNN().eval()(torch.randn(2, 1, 1, 1))
