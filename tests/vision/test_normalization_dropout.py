import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.dropout import Dropout, dropout
from nlp182.vision.normalization import BatchNorm, recalibrate_batch_norm


@pytest.mark.parametrize(("reference", "shape"), [(nn.BatchNorm2d, (8, 4, 5, 5)), (nn.BatchNorm1d, (16, 4))])
def test_batch_norm_matches_torch_in_train_and_eval(reference, shape):
    ours, ref = BatchNorm(4), reference(4)
    with torch.no_grad():
        for layer in (ours, ref):
            layer.weight.copy_(torch.linspace(0.5, 2.0, 4))
            layer.bias.copy_(torch.linspace(-1.0, 1.0, 4))
    for step in range(5):
        x = torch.randn(*shape) * (1 + step) + step
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y1, y2 = ours(x1), ref(x2)
        torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
        g = torch.randn_like(y1)
        y1.backward(g)
        y2.backward(g)
        torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var, atol=1e-5, rtol=1e-5)
    ours.eval()
    ref.eval()
    x = torch.randn(*shape) * 3
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    # state dicts are interchangeable
    assert set(ours.state_dict()) == set(ref.state_dict())


@pytest.mark.parametrize(
    "options",
    [
        {"momentum": None},
        {"affine": False},
        {"track_running_stats": False},
        {"momentum": None, "affine": False},
    ],
)
def test_batch_norm_options_match_torch(options: dict) -> None:
    ours, ref = BatchNorm(3, **options).double(), nn.BatchNorm2d(3, **options).double()
    ref.load_state_dict(ours.state_dict())
    generator = torch.Generator().manual_seed(4)
    for step in range(6):
        x = torch.randn(5, 3, 2, 2, generator=generator, dtype=torch.float64) * (1 + step) + step
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for name, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value, rtol=0, atol=1e-12)
    ours.eval()
    ref.eval()
    x = torch.randn(4, 3, 2, 2, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)


def test_batch_norm_is_made_with_the_device_and_dtype_asked_for_as_torch_s() -> None:
    ours, ref = BatchNorm(3, 1e-5, 0.1, True, True, "cpu", torch.float64), nn.BatchNorm2d(3, device="cpu",
                                                                                        dtype=torch.float64)
    for name, value in ref.state_dict().items():
        assert ours.state_dict()[name].dtype == value.dtype and ours.state_dict()[name].device == value.device


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_is_normalised_in_float32_and_keeps_its_dtype(dtype: torch.dtype) -> None:
    """As torch's kernel: float32 statistics, output in the input's dtype. Statistics rounded to
    bfloat16 put every running mean at exactly 2.0 here, and the output 12x further from float64."""
    generator = torch.Generator().manual_seed(0)
    x = (20 + 0.5 * torch.randn(16, 4, 8, 8, generator=generator)).to(dtype)
    ours, ref = BatchNorm(4), nn.BatchNorm2d(4)
    y, expected = ours(x), ref(x)
    assert y.dtype == dtype
    exact = nn.BatchNorm2d(4).double()(x.double())
    assert (y.double() - exact).abs().max() <= 1.5 * (expected.double() - exact).abs().max()
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=0, atol=1e-5)
    ours.eval()
    ref.eval()
    assert ours(x).dtype == dtype
    torch.testing.assert_close(ours(x).float(), ref(x).float())


def test_batch_norm_frozen_uses_running_stats_and_rejects_bad_shapes():
    layer = BatchNorm(3)
    layer(torch.randn(10, 3, 4, 4) + 2)
    before = layer.running_mean.clone()
    layer.frozen = True
    x = torch.randn(10, 3, 4, 4)
    layer.train()
    frozen_out = layer(x)
    layer.eval()
    torch.testing.assert_close(frozen_out, layer(x))
    torch.testing.assert_close(layer.running_mean, before)
    with pytest.raises(ShapeError):
        layer(torch.randn(4, 5, 2, 2))
    layer.frozen = False
    layer.train()
    with pytest.raises(ShapeError, match="batch"):
        layer(torch.randn(1, 3))


def test_inverted_dropout_scales_and_preserves_expectation():
    x = torch.full((200_000,), 3.0)
    y = dropout(x, 0.3, training=True, generator=torch.Generator().manual_seed(1))
    kept = y != 0
    assert kept.double().mean().item() == pytest.approx(0.7, abs=0.005)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 3.0 / 0.7))
    assert y.double().mean().item() == pytest.approx(3.0, rel=0.01)
    assert torch.equal(dropout(x, 0.3, training=False), x)


def test_dropout_module_follows_train_and_eval():
    layer = Dropout(0.5)
    x = torch.ones(1000)
    assert (layer(x) == 0).any()
    layer.eval()
    assert torch.equal(layer(x), x)
    with pytest.raises(InvalidInputError):
        Dropout(1.5)
    everything = Dropout(1.0)  # as torch: every unit dropped in training, the identity in evaluation
    x = torch.tensor([1.0, -2.0, float("nan")], requires_grad=True)
    torch.testing.assert_close(everything(x), torch.nn.functional.dropout(x, 1.0), equal_nan=True)
    everything(x)[:2].sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(everything.eval()(x[:2]), x[:2])


@pytest.mark.parametrize("make", [lambda: BatchNorm(2), lambda: nn.BatchNorm1d(2)])
def test_recalibration_sets_the_plain_mean_of_the_batch_statistics(make) -> None:
    torch.manual_seed(0)
    norm = make()
    frozen = BatchNorm(2)
    frozen.frozen = True
    model = nn.Sequential(nn.Linear(2, 2), norm, frozen).eval()
    norm.running_mean.fill_(5.0)  # stale statistics that a lagging average would still carry
    batches = [torch.randn(4, 2) * (k + 1) + k for k in range(3)]
    assert recalibrate_batch_norm(model, iter(batches)) == 3
    hidden = [model[0](b).detach() for b in batches]
    torch.testing.assert_close(norm.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(norm.running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert norm.momentum == 0.1 and not model.training and not norm.training
    torch.testing.assert_close(frozen.running_mean, torch.zeros(2))  # frozen layers keep theirs


def test_torch_batch_norm_tools_treat_it_as_one() -> None:
    """SWA's ``update_bn`` recomputes its statistics as it does torch's (it looked for a torch
    batch norm and silently skipped this one); an empty batch passes through as in torch."""
    from torch.optim.swa_utils import update_bn

    torch.manual_seed(0)
    batches = [(torch.randn(6, 3, 4, 4) * 2 + 1,) for _ in range(3)]
    conv = nn.Conv2d(3, 3, 1)
    statistics = []
    for norm in (BatchNorm(3), nn.BatchNorm2d(3)):
        model = nn.Sequential(nn.Conv2d(3, 3, 1), norm)
        model[0].load_state_dict(conv.state_dict())
        update_bn(batches, model)
        tracked = norm.num_batches_tracked.item()
        statistics.append((norm.running_mean.clone(), norm.running_var.clone(), tracked))
    ours, theirs = statistics
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-6, atol=1e-6)
    assert ours[2] == theirs[2] == 3 and not torch.allclose(ours[0], torch.zeros(3))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(BatchNorm(3)))
    assert isinstance(converted[0], nn.SyncBatchNorm)
    norm = BatchNorm(3).train()
    assert norm(torch.randn(0, 3, 4, 4)).shape == (0, 3, 4, 4) and int(norm.num_batches_tracked) == 0


def test_a_frozen_layer_keeps_its_statistics_through_update_bn() -> None:
    """update_bn resets every torch batch norm's statistics, and a frozen one never fills them again."""
    from torch.optim.swa_utils import update_bn

    from nlp182.vision.transfer import freeze

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNorm(4))
    for _ in range(5):
        model(torch.randn(8, 3, 6, 6) * 3 + 2)
    before = model[1].running_mean.clone(), model[1].running_var.clone()
    freeze(model)
    update_bn([torch.randn(8, 3, 6, 6)], model)
    assert torch.equal(model[1].running_mean, before[0]) and torch.equal(model[1].running_var, before[1])


def test_a_lone_example_is_refused_with_a_remedy_that_applies() -> None:
    tracked = BatchNorm(4).train()
    with pytest.raises(ShapeError, match=r"call model\.eval\(\)"):
        tracked(torch.randn(1, 4))
    assert tracked.eval()(torch.randn(1, 4)).shape == (1, 4)
    untracked = BatchNorm(4, track_running_stats=False).eval()  # eval mode does not help it
    with pytest.raises(ShapeError, match="track_running_stats=False") as refused:
        untracked(torch.randn(1, 4))
    assert "model.eval()" not in str(refused.value)


def test_a_seeded_generator_gives_the_same_dropout_mask_and_another_seed_another() -> None:
    x = torch.ones(1000)
    first = dropout(x, 0.5, generator=torch.Generator().manual_seed(7))
    again = dropout(x, 0.5, generator=torch.Generator().manual_seed(7))
    other = dropout(x, 0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    torch.manual_seed(0)  # the global stream plays no part
    assert torch.equal(dropout(x, 0.5, generator=torch.Generator().manual_seed(7)), first)
