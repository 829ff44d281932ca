import math

import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.init import (
    fan_in_and_out,
    fixed_normal_,
    he_normal_,
    he_uniform_,
    init_weights,
    xavier_normal_,
    xavier_uniform_,
)


def test_fan_in_linear_and_conv_match_torch():
    for layer in (nn.Linear(300, 200), nn.Conv2d(16, 32, (3, 5))):
        expected = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        assert fan_in_and_out(layer.weight) == expected
    assert fan_in_and_out(nn.Conv2d(16, 32, 3).weight)[0] == 3 * 3 * 16  # F_H x F_W x C


@pytest.mark.parametrize(
    ("fill", "variance"),
    [
        (xavier_normal_, 2 / (144 + 9 * 512)),  # Glorot's, as torch.nn.init
        (xavier_uniform_, 2 / (144 + 9 * 512)),
        (he_normal_, 2 / 144),
        (he_uniform_, 2 / 144),
        (lambda w: he_normal_(w, negative_slope=0.5), 2 / (1.25 * 144)),  # leaky ReLU: 2 / ((1 + a^2) F_in)
        (lambda w: he_uniform_(w, negative_slope=0.5), 2 / (1.25 * 144)),
        (lambda w: xavier_normal_(w, mode="fan_in"), 1 / 144),  # the course's derivation
        (lambda w: xavier_uniform_(w, mode="fan_in"), 1 / 144),
        (lambda w: fixed_normal_(w, 0.01), 1e-4),
    ],
)
def test_sample_variance_matches_formula(fill, variance):
    weight = torch.empty(512, 16, 3, 3)  # fan_in 144
    fill(weight)
    assert weight.double().var().item() == pytest.approx(variance, rel=0.03)
    assert abs(weight.double().mean().item()) < 4 * math.sqrt(variance / weight.numel())


@pytest.mark.parametrize(("ours", "theirs"), [(xavier_normal_, nn.init.xavier_normal_),
                                               (xavier_uniform_, nn.init.xavier_uniform_)])
def test_xavier_matches_torch_xavier_variance(ours, theirs):
    mine, ref = torch.empty(1000, 10), torch.empty(1000, 10)
    ours(mine)
    theirs(ref)
    assert mine.var().item() == pytest.approx(ref.var().item(), rel=0.05)


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier_draws_torch_values_from_the_same_generator(gain):
    pairs = ((xavier_normal_, nn.init.xavier_normal_), (xavier_uniform_, nn.init.xavier_uniform_))
    for ours, theirs in pairs:
        mine, ref = torch.empty(7, 5, 3), torch.empty(7, 5, 3)
        ours(mine, gain, torch.Generator().manual_seed(4))  # torch's positions
        theirs(ref, gain, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(mine, ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize(("slope", "mode"), [(0.0, "fan_in"), (0.2, "fan_in"), (0.0, "fan_out")])
def test_he_draws_torch_kaiming_values_from_the_same_generator(slope, mode):
    for ours, theirs in ((he_normal_, nn.init.kaiming_normal_), (he_uniform_, nn.init.kaiming_uniform_)):
        mine, ref = torch.empty(6, 4, 3, 3), torch.empty(6, 4, 3, 3)  # fan_in 36, fan_out 54
        ours(mine, negative_slope=slope, mode=mode, generator=torch.Generator().manual_seed(9))
        theirs(ref, a=slope, mode=mode, nonlinearity="leaky_relu", generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(mine, ref, rtol=1e-6, atol=0)
    with pytest.raises(InvalidInputError, match="mode must be 'fan_in', 'fan_out' or 'fan_avg'"):
        he_normal_(torch.empty(3, 3), mode="fan_sum")


def test_he_matches_torch_kaiming_variance():
    ours, ref = torch.empty(400, 300), torch.empty(400, 300)
    he_normal_(ours)
    nn.init.kaiming_normal_(ref, nonlinearity="relu")
    assert ours.var().item() == pytest.approx(ref.var().item(), rel=0.03)


def _deep_relu_variances(fill, depth: int = 50, width: int = 1024) -> list[float]:
    """Pre-activation variance after each of ``depth`` linear + ReLU layers initialised by ``fill``."""
    a = torch.relu(torch.randn(128, width))  # the output of a ReLU layer whose pre-activations are N(0, 1)
    variances = []
    for _ in range(depth):
        z = a @ fill(torch.empty(width, width)).T
        variances.append(z.var().item())
        a = torch.relu(z)
    return variances


def test_he_keeps_variance_through_50_relu_layers_and_small_fixed_init_vanishes():
    he = _deep_relu_variances(he_normal_)
    # At finite width log-variance takes a random walk (sd ~ sqrt(5 * depth / width) ~ 0.5 here):
    # within a factor 4 of 1 after 50 layers, against a factor 1e-80 for the fixed init below.
    assert all(0.25 < v < 4.0 for v in he), he
    fixed = _deep_relu_variances(lambda w: fixed_normal_(w, 0.01))
    # Each layer multiplies the variance by 1024 * 1e-4 / 2 = 0.0512.
    assert fixed[0] == pytest.approx(1024 * 1e-4 / 2, rel=0.1)
    assert fixed[-1] < 1e-30


def test_init_weights_zeroes_biases_and_rejects_unknown():
    model = init_weights(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2)), "xavier")
    assert all(torch.all(m.bias == 0) for m in model)
    with pytest.raises(InvalidInputError, match="he"):
        init_weights(model, "glorot")


def test_init_weights_reaches_transposed_convolutions():
    torch.manual_seed(0)
    up = nn.ConvTranspose2d(64, 32, 4, stride=2)
    init_weights(nn.Sequential(up), "he")
    fan_in = up.weight.shape[1] * 16  # torch.nn.init's fan for this weight layout
    assert up.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    assert torch.all(up.bias == 0)


@pytest.mark.parametrize("fill", [xavier_normal_, xavier_uniform_, he_normal_, he_uniform_])
def test_a_weight_without_elements_is_left_as_it_is(fill):
    """torch's initialisers skip a zero-element tensor (a layer of width 0); the fan of 0 divided by zero."""
    weight = torch.empty(3, 0)
    assert fill(weight) is weight and weight.shape == (3, 0)
