import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.layers import channel_mean, conv_output_size, subtract_channel_mean, zero_pad


@pytest.mark.parametrize(
    ("n", "f", "p", "s"),
    [(32, 3, 1, 1), (31, 5, 2, 2), (227, 11, 0, 4), (7, 3, 0, 2), (8, 2, 0, 2), (5, 5, 0, 1),
     (224, 7, 3, 2), (224, 3, 1, 2), (56, 1, 0, 2), (32, 3, 0, 2)],  # ResNet's stride-2 layers floor
)
def test_conv_output_size_matches_a_real_convolution(n, f, p, s):
    out = nn.Conv2d(1, 1, f, s, p)(torch.zeros(1, 1, n, n))
    assert conv_output_size(n, f, p, s) == out.shape[-1]


def test_conv_output_size_hand_cases():
    assert conv_output_size(227, 11, 0, 4) == 55  # AlexNet conv1
    assert conv_output_size(7, 3, 0, 1) == 5


def test_conv_output_size_rejects_non_integer_if_asked_and_oversized():
    with pytest.raises(InvalidInputError, match="not an integer"):
        conv_output_size(32, 3, 0, 2, exact=True)  # (32 - 3) / 2 = 14.5
    with pytest.raises(InvalidInputError, match="larger than"):
        conv_output_size(3, 7, 1, 1)
    with pytest.raises(InvalidInputError, match="stride"):
        conv_output_size(8, 3, 1, 0)


def test_zero_pad_equals_numpy_pad():
    x = torch.randn(2, 3, 5, 4)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(zero_pad(x, 2).numpy(), expected)
    torch.testing.assert_close(zero_pad(x, 1), F.pad(x, (1, 1, 1, 1)))
    with pytest.raises(ShapeError):
        zero_pad(torch.zeros(3, 4, 4), 1)


def test_channel_mean_subtraction_zeroes_each_channel_mean():
    x = torch.rand(10, 3, 6, 6) + torch.tensor([1.0, 5.0, -2.0]).view(1, 3, 1, 1)
    mean = channel_mean(x)
    np.testing.assert_allclose(mean.numpy(), x.double().numpy().mean(axis=(0, 2, 3)), rtol=1e-6)
    centred = subtract_channel_mean(x, mean)
    assert centred.double().mean(dim=(0, 2, 3)).abs().max() < 1e-5
    with pytest.raises(ShapeError, match="channels"):
        subtract_channel_mean(x, mean[:2])


def test_dilation_and_uint8_images():
    for n, f, p, s, d in [(32, 3, 2, 1, 2), (29, 5, 4, 2, 2), (17, 3, 0, 1, 3)]:  # exact tilings
        conv = nn.Conv2d(1, 1, f, stride=s, padding=p, dilation=d)
        assert conv_output_size(n, f, p, s, d) == conv(torch.zeros(1, 1, n, n)).shape[-1]
    pixels = torch.tensor([[[[10, 255]]]], dtype=torch.uint8)
    mean = channel_mean(pixels)
    assert mean.tolist() == [132.5]
    assert subtract_channel_mean(pixels, mean).tolist() == [[[[-122.5, 122.5]]]]
