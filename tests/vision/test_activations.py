import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.activations import Maxout, elu, leaky_relu, make_activation, relu, sigmoid, tanh

X = torch.cat(
    [torch.linspace(-60, 60, 241, dtype=torch.float64), torch.tensor([-1e3, 1e3, 0.0], dtype=torch.float64)]
)


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (sigmoid, torch.sigmoid),
        (tanh, torch.tanh),
        (relu, torch.relu),
        (lambda x: leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
        (lambda x: elu(x, 1.5), lambda x: F.elu(x, 1.5)),
    ],
)
def test_activation_values_and_gradients_match_torch(ours, reference):
    x1 = X.clone().requires_grad_(True)
    x2 = X.clone().requires_grad_(True)
    y1, y2 = ours(x1), reference(x2)
    assert torch.isfinite(y1).all()
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    y1.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


def test_tanh_keeps_its_relative_precision_near_zero_in_float32():
    """``1 - exp(-2x)`` cancelled: tanh(1e-9) was 0 and tanh(1e-6) 1.3% off in float32."""
    x = torch.tensor([1e-9, -1e-9, 1e-6, -1e-6, 1e-4, 3e-3], dtype=torch.float32)
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=1e-6, atol=0)


def test_maxout_is_max_of_affine_pieces():
    layer = Maxout(5, 3, pieces=4)
    x = torch.randn(7, 5)
    w = layer.linear.weight.view(4, 3, 5)
    b = layer.linear.bias.view(4, 3)
    pieces = torch.stack([x @ w[i].T + b[i] for i in range(4)])
    torch.testing.assert_close(layer(x), pieces.amax(dim=0))


def test_maxout_with_a_zero_piece_is_relu():
    layer = Maxout(4, 2, pieces=2)
    with torch.no_grad():
        layer.linear.weight[2:].zero_()  # second piece: rows 2..3
        layer.linear.bias[2:].zero_()
    x = torch.randn(6, 4)
    torch.testing.assert_close(layer(x), torch.relu(x @ layer.linear.weight[:2].T + layer.linear.bias[:2]))
    with pytest.raises(ShapeError):
        layer(torch.randn(6, 5))


def test_make_activation():
    assert isinstance(make_activation("elu"), nn.Module)
    torch.testing.assert_close(make_activation("relu")(X), torch.relu(X))
    with pytest.raises(InvalidInputError, match="leaky_relu"):
        make_activation("swish")


def test_relu_keeps_nan_as_torch_does():
    x = torch.tensor([float("nan"), -1.0, 0.0, 2.0], requires_grad=True)
    torch.testing.assert_close(relu(x), torch.relu(x), equal_nan=True)
    relu(x)[1:].sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0]
