import pytest
import torch
import torch.nn.functional as F

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.data import make_shapes_segmentation
from nlp182.vision.fit import FitConfig, fit, predict_logits
from nlp182.vision.segmentation import (
    FCN,
    UNet,
    confusion_matrix,
    iou_per_class,
    max_pool_with_indices,
    max_unpool,
    mean_iou,
    pixel_accuracy,
    upsample_bed_of_nails,
    upsample_nearest,
)


def test_nearest_upsampling_matches_interpolate():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(upsample_nearest(x, 2), F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(upsample_nearest(x, 3), F.interpolate(x, scale_factor=3, mode="nearest"))


def test_bed_of_nails_hand_case():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[[[1.0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]]])
    torch.testing.assert_close(upsample_bed_of_nails(x, 2), expected)


def test_max_pool_and_unpool_match_torch():
    x = torch.randn(2, 3, 8, 6)
    values, indices = max_pool_with_indices(x, 2)
    ref_values, ref_indices = F.max_pool2d(x, 2, return_indices=True)
    torch.testing.assert_close(values, ref_values)
    assert torch.equal(indices, ref_indices)
    torch.testing.assert_close(max_unpool(values, indices, (8, 6)), F.max_unpool2d(values, indices, 2))
    with pytest.raises(ShapeError):
        max_pool_with_indices(torch.randn(1, 1, 5, 4), 2)


def test_unpool_puts_maxima_back_in_place():
    x = torch.tensor([[[[1.0, 5.0], [2.0, 3.0]]]])
    values, indices = max_pool_with_indices(x, 2)
    torch.testing.assert_close(
        max_unpool(values, indices, (2, 2)), torch.tensor([[[[0.0, 5.0], [0.0, 0.0]]]])
    )


def test_pixel_metrics_hand_computed():
    target = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    assert pixel_accuracy(pred, target) == pytest.approx(4 / 6)
    matrix = confusion_matrix(pred, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # class 0: tp 1, union 1+1+1 = 3; class 1: tp 2, union 3; class 2: tp 1, union 2
    torch.testing.assert_close(
        iou_per_class(pred, target, 3), torch.tensor([1 / 3, 2 / 3, 1 / 2], dtype=torch.float64)
    )
    assert mean_iou(pred, target, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # an absent class is left out of the mean; an ignored pixel is left out of everything
    assert mean_iou(pred, target, 4) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(pred, target, ignore_index=2) == pytest.approx(3 / 4)
    with pytest.raises(InvalidInputError):
        confusion_matrix(pred, target, 2)


@pytest.mark.parametrize(
    ("down", "up"),
    [("strided", "transpose"), ("strided", "nearest"), ("strided", "bed_of_nails"), ("maxpool", "unpool")],
)
def test_fcn_variants_produce_full_resolution_logits(down, up):
    model = FCN(3, 4, 0.25, down, up)
    x = torch.randn(2, 3, 16, 12, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 4, 16, 12)
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def test_fcn_and_unet_reject_bad_configs():
    with pytest.raises(InvalidInputError, match="maxpool"):
        FCN(upsample="unpool")
    with pytest.raises(ShapeError, match="divisible by 4"):
        FCN()(torch.randn(1, 3, 10, 12))
    with pytest.raises(ShapeError, match="divisible by 8"):
        UNet(depth=3)(torch.randn(1, 3, 12, 16))


def test_unet_skip_connections_carry_full_resolution_detail():
    model = UNet(3, 2, 0.25, depth=2)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 2, 16, 16)
    assert model.decoders[-1][0][0].in_channels == 8  # 4 from the skip + 4 upsampled


def test_unet_learns_shapes_segmentation():
    x, y = make_shapes_segmentation(320, size=24, seed=0)
    x_test, y_test = make_shapes_segmentation(100, size=24, seed=1)
    model = UNet(3, 4, width=0.5, depth=2)
    fit(model, x, y, FitConfig(epochs=20, batch_size=16, lr=0.05, device="cpu"))
    pred = predict_logits(model, x_test).argmax(dim=1)
    assert mean_iou(torch.zeros_like(y_test), y_test, 4) < 0.25  # predicting background scores badly
    assert pixel_accuracy(pred, y_test) > 0.9  # measured 0.94 (about 7 s of one CPU core)
    assert mean_iou(pred, y_test, 4) > 0.65  # measured 0.76


def test_an_ignored_class_is_not_scored_and_nothing_left_is_an_error():
    target = torch.tensor([[[0, 1, 1, 2]]])  # pixel 0 is ignored (class 0)
    pred = torch.tensor([[[0, 0, 1, 2]]])  # pixel 1 predicts the ignored class: a miss for class 1 only
    ious = iou_per_class(pred, target, 3, ignore_index=0)
    assert ious[0].isnan() and ious[1:].tolist() == [0.5, 1.0]
    assert mean_iou(pred, target, 3, ignore_index=0) == pytest.approx(0.75)
    with pytest.raises(InvalidInputError, match="no class left to score"):
        mean_iou(pred, torch.full_like(target, 255), 3, ignore_index=255)


def test_scores_in_place_of_class_ids_are_refused() -> None:
    """Probabilities passed as the prediction were cut to class 0: accuracy 0.0 and IoU 0.25 for a
    prediction that was right everywhere."""
    target = torch.tensor([[0, 1], [1, 0]])
    probabilities = target.float() * 0.9
    for metric in (lambda p, t: pixel_accuracy(p, t), lambda p, t: mean_iou(p, t, 2),
                   lambda p, t: confusion_matrix(p, t, 2)):
        with pytest.raises(InvalidInputError, match=r"pred must hold class ids.*argmax"):
            metric(probabilities, target)
    assert pixel_accuracy(target.clone(), target) == 1.0 and mean_iou(target.clone(), target, 2) == 1.0
