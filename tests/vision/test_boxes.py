import numpy as np
import pytest
import torch

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision import boxes as boxes_module
from nlp182.vision.boxes import (
    COCO_THRESHOLDS,
    Detections,
    GroundTruth,
    average_precision,
    batched_nms,
    box_iou,
    mean_average_precision,
    nms,
)


def test_box_iou_hand_cases_and_shape():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    expected = torch.tensor([[1 / 7, 0.0, 1.0], [0.0, 0.0, 0.25]])
    torch.testing.assert_close(box_iou(a, b), expected)
    with pytest.raises(ShapeError):
        box_iou(torch.zeros(3), b)


def test_box_iou_equals_pairwise_loop():
    gen = torch.Generator().manual_seed(3)
    a, b = _random_boxes(30, gen), _random_boxes(20, gen)
    iou = box_iou(a.double(), b.double()).numpy()
    for i in range(30):
        for j in range(20):
            assert iou[i, j] == pytest.approx(_iou64(a[i].double().numpy(), b[j].double().numpy()), abs=1e-12)


def _random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    centres = torch.rand(n, 2, generator=gen) * 50
    sizes = torch.rand(n, 2, generator=gen) * 20 + 1
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def _iou64(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def nms_reference(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Textbook greedy NMS in float64."""
    boxes = boxes.astype(np.float64)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable for ties
    keep: list[int] = []
    for i in order:
        if all(_iou64(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block", [256, 7])
def test_nms_equals_float64_reference(threshold, dtype, block, monkeypatch):
    """Blocks of rows (the default's, and 7: many block edges) give the textbook result, per class
    too, and NMS never holds more than a block of rows of IoUs (N x N was 1.6 GB for 20k boxes)."""
    monkeypatch.setattr(boxes_module, "NMS_BLOCK", block)
    rows = []
    monkeypatch.setattr(boxes_module, "box_iou", lambda a, b: rows.append(len(a)) or box_iou(a, b))
    gen = torch.Generator().manual_seed(int(threshold * 10))
    boxes = _random_boxes(300, gen).to(dtype)
    scores = torch.rand(300, generator=gen).to(dtype)
    kept = nms(boxes, scores, threshold).tolist()
    assert kept == nms_reference(boxes.double().numpy(), scores.double().numpy(), threshold)
    assert 0 < len(kept) < 300 and max(rows) == block
    classes = torch.randint(0, 3, (300,), generator=gen)
    per_class = [[int(i) for i in (classes == c).nonzero().flatten()] for c in range(3)]
    expected = sorted((i for members in per_class for i in [members[k] for k in nms_reference(
        boxes[members].double().numpy(), scores[members].double().numpy(), threshold)]),
        key=lambda i: (-float(scores[i]), i))  # fmt: skip
    assert batched_nms(boxes, scores, classes, threshold).tolist() == expected


def test_nms_hand_case_and_ties():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.9])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # box 3 ties with 0 but comes later
    touching = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]])  # IoU exactly 1/2
    assert nms(touching, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]  # dropped only above it
    assert nms(touching, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    with pytest.raises(ShapeError):
        nms(boxes, scores[:2])


def test_batched_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5).tolist()
    assert kept == [0, 2]


def _det(boxes, scores, labels) -> Detections:
    return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores), torch.tensor(labels))


def _gt(boxes, labels) -> GroundTruth:
    return GroundTruth(torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels))


# Three class-0 objects; detections in score order: TP, duplicate (FP), TP, miss (FP), IoU-0.6 hit.
GT0 = _gt([[0, 0, 10, 10], [40, 0, 50, 10], [20, 0, 30, 10], [0, 40, 10, 50]], [0, 0, 0, 1])
DET0 = _det(
    [[0, 0, 10, 10], [0, 0, 10, 10], [40, 0, 50, 10], [60, 60, 70, 70], [20, 0, 26, 10], [0, 40, 10, 50]],
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.95],
    [0, 0, 0, 0, 0, 1],
)
# precision [1, 1/2, 2/3, 1/2, 3/5], recall [1/3, 1/3, 2/3, 2/3, 1]; envelope [1, 2/3, 2/3, 3/5, 3/5]
AP_050 = (1 + 2 / 3 + 3 / 5) / 3
AP_075 = (1 + 2 / 3) / 3  # the IoU-0.6 hit becomes a false positive


def test_average_precision_hand_computed():
    assert average_precision([DET0], [GT0], 0, 0.5) == pytest.approx(AP_050)
    assert average_precision([DET0], [GT0], 0, 0.75) == pytest.approx(AP_075)
    assert average_precision([DET0], [GT0], 1, 0.5) == pytest.approx(1.0)
    # COCO 101-point: 34 points at precision 1, 33 at 2/3, 34 at 3/5
    coco = (34 * 1 + 33 * 2 / 3 + 34 * 3 / 5) / 101
    assert average_precision([DET0], [GT0], 0, 0.5, interpolation="coco101") == pytest.approx(coco)
    # VOC2007 11-point: recall 0-0.3 at precision 1, 0.4-0.6 at 2/3, 0.7-1 at 3/5
    voc07 = (4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11
    assert average_precision([DET0], [GT0], 0, 0.5, interpolation="11point") == pytest.approx(voc07)
    assert np.isnan(average_precision([DET0], [GT0], 7, 0.5))


def test_detections_of_equal_score_rank_in_image_order_as_pycocotools_does():
    """pycocotools sorts every image's detections by score with a stable sort, images in order:
    the hit in image 0 ranks before the miss in image 1 (AP 1, not 0.5)."""
    truths = [_gt([[0, 0, 10, 10]], [0]), GroundTruth(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    found = [_det([[0, 0, 10, 10]], [0.9], [0]), _det([[0, 0, 10, 10]], [0.9], [0])]
    assert average_precision(found, truths, 0, 0.5) == pytest.approx(1.0)
    assert average_precision(found[::-1], truths[::-1], 0, 0.5) == pytest.approx(0.5)


def test_thresholds_come_as_any_iterable_and_a_bad_interpolation_is_refused_up_front():
    """A generator or an array (pycocotools' iouThrs is ``np.linspace``) gave NaN or numpy's "truth
    value is ambiguous"; a misspelt interpolation passed silently for a class without detections."""
    expected = mean_average_precision([DET0], [GT0], COCO_THRESHOLDS)
    generator = (threshold for threshold in COCO_THRESHOLDS)
    as_tensor = torch.tensor(COCO_THRESHOLDS, dtype=torch.float64)
    for thresholds in (generator, map(float, COCO_THRESHOLDS), np.array(COCO_THRESHOLDS), as_tensor):
        assert mean_average_precision([DET0], [GT0], thresholds)["map"] == pytest.approx(expected["map"])
    nothing = _det(np.zeros((0, 4)), [], [])
    with pytest.raises(InvalidInputError, match="interpolation must be one of all, coco101, 11point"):
        mean_average_precision([nothing], [GT0], interpolation="voc07")


def test_detections_only_match_objects_in_their_own_image():
    empty = _det(np.zeros((0, 4)), [], [])
    other = _det([[0, 0, 10, 10]], [0.9], [0])
    truths = [_gt([[0, 0, 10, 10]], [0]), _gt(np.zeros((0, 4)), [])]
    assert average_precision([empty, other], truths, 0) == 0.0
    assert average_precision([other, empty], truths, 0) == pytest.approx(1.0)


def test_map_at_050_and_050_095():
    result = mean_average_precision([DET0], [GT0], (0.5,))
    assert result["map"] == pytest.approx((AP_050 + 1.0) / 2)
    coco = mean_average_precision([DET0], [GT0], COCO_THRESHOLDS)
    # IoU 0.6 counts at thresholds 0.5, 0.55, 0.6 only
    class0 = (3 * AP_050 + 7 * AP_075) / 10
    assert coco["per_class"][0] == pytest.approx(class0)
    assert coco["map"] == pytest.approx((class0 + 1.0) / 2)
    with pytest.raises(InvalidInputError):
        mean_average_precision([DET0], [], (0.5,))


def test_box_iou_is_differentiable():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.5, 0.2, 3.0, 2.5]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: box_iou(z, b), (a,))


def test_integer_boxes_batched_nms_exactness_and_bad_classes():
    integer_iou = box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 1, 3, 3]]))
    torch.testing.assert_close(integer_iou, torch.tensor([[1 / 7]], dtype=torch.float64))
    assert nms(torch.tensor([[0, 0, 2, 2], [0, 0, 2, 3]]), torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
    # IoU 0.52632 just above the threshold: shifted copies of the boxes would round it to 0.52675.
    boxes = torch.tensor([[0.0, 0, 1, 1], [0.0, 0, 1, 1.9], [600.0, 600, 601, 601]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    same_class = batched_nms(boxes, scores, torch.tensor([79, 79, 79]), 0.5264)
    assert same_class.tolist() == nms(boxes, scores, 0.5264).tolist() == [0, 1, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.1).tolist() == [0, 1, 2]
    with pytest.raises(ShapeError, match="classes must have shape"):
        batched_nms(boxes[:1], scores[:1], torch.tensor([0, 1]))


def test_average_precision_takes_boxes_that_require_grad():
    predicted = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    detections = [Detections(predicted, torch.tensor([0.9]), torch.tensor([1]))]
    truths = [GroundTruth(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([1]))]
    assert average_precision(detections, truths, 1) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_boxes_are_measured_in_float32(dtype):
    """A float16 area overflows past 65504 (a 256-pixel square): every IoU was 0, a box against
    itself too, and NMS suppressed nothing. As torchvision, half boxes are measured in float32."""
    boxes = torch.tensor([[0.0, 0.0, 300.0, 300.0], [10.0, 10.0, 310.0, 310.0]])
    expected = box_iou(boxes.double(), boxes.double()).float()
    torch.testing.assert_close(box_iou(boxes.to(dtype), boxes.to(dtype)), expected)
    assert nms(boxes.to(dtype), torch.tensor([0.9, 0.8], dtype=dtype)).tolist() == [0]


def test_a_nan_coordinate_shows_as_nan_and_empty_unions_stay_zero():
    a = torch.tensor([[0.0, 0.0, float("nan"), 2.0], [1.0, 1.0, 1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]])
    iou = box_iou(a, b)
    assert iou[0].isnan().all() and iou[1].tolist() == [0.0, 0.0]


def test_an_image_without_boxes_may_give_them_as_an_empty_tensor():
    nothing = Detections(torch.tensor([]), torch.tensor([]), torch.tensor([]))
    assert nothing.boxes.shape == (0, 4)
    truths = [_gt([[0, 0, 10, 10]], [0]), GroundTruth(torch.tensor([]), torch.tensor([]))]
    assert average_precision([_det([[0, 0, 10, 10]], [0.9], [0]), nothing], truths, 0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Detections(torch.zeros(2, 4), torch.ones(2), torch.zeros(1)), r"labels must .* \(2,\)"),
        (lambda: Detections(torch.zeros(2, 4), torch.ones(2), torch.zeros(2, 1)), r"labels .*got \(2, 1\)"),
        (lambda: Detections(torch.zeros(2, 4), torch.ones(3), torch.zeros(2)), r"scores must .* \(2,\)"),
        (lambda: GroundTruth(torch.zeros(2, 4), torch.zeros(3)), r"labels must have shape \(2,\)"),
        (lambda: GroundTruth(torch.zeros(2, 5), torch.zeros(2)), r"boxes must have shape \(N, 4\)"),
    ],
)
def test_detections_and_truths_refuse_fields_that_do_not_match_their_boxes(make, message):
    """A label short dropped a detection (AP 0.5 for a perfect one) and a column of labels counted
    each detection twice, both without a word."""
    with pytest.raises(ShapeError, match=message):
        make()


@pytest.mark.parametrize("thresholds", [(), (0.0,), (0.5, 1.5)])
def test_map_refuses_thresholds_outside_0_1(thresholds):
    with pytest.raises(InvalidInputError, match="iou_thresholds"):
        mean_average_precision([DET0], [GT0], thresholds)


def test_a_ground_truth_box_that_ends_before_it_starts_is_refused() -> None:
    """Boxes given as (x, y, w, h) have x1 < x0 whenever w < x: they matched nothing and AP fell."""
    with pytest.raises(InvalidInputError, match=r"box 1 \[5.0, 5.0, 3.0, 4.0\] ends before it starts"):
        GroundTruth(torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 3.0, 4.0]]), torch.tensor([1, 1]))
    GroundTruth(torch.tensor([[1.0, 1.0, 1.0, 3.0]]), torch.tensor([0]))  # a degenerate box is a box


def test_a_nan_detection_score_is_refused_and_infinite_ones_rank() -> None:
    """A NaN among the scores scrambled the ranking without a word (mAP 1.0 became 0.33: the 0.9
    true positive sorted below a 0.1 false positive); a score of +-inf still has its place."""
    boxes = torch.tensor([[50.0, 50, 60, 60], [70.0, 70, 80, 80], [0.0, 0, 10, 10]])
    with pytest.raises(InvalidInputError, match=r"1 of 3 detection scores are NaN \(the first at row 1\)"):
        Detections(boxes, torch.tensor([0.1, float("nan"), 0.9]), torch.zeros(3, dtype=torch.long))
    truth = [GroundTruth(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))]
    infinite = torch.tensor([0.1, -float("inf"), float("inf")])
    ranked = Detections(boxes, infinite, torch.zeros(3, dtype=torch.long))
    assert mean_average_precision([ranked], truth)["map"] == pytest.approx(1.0)


@pytest.mark.parametrize("corner", [float("nan"), float("inf")])
def test_a_box_with_a_nan_or_infinite_corner_is_refused(corner: float) -> None:
    """A NaN ground-truth corner made its IoU with every detection NaN, which took the place of the
    real match: the exact hit beside it became a false positive and AP read 0.0 without a word."""
    with pytest.raises(InvalidInputError, match=r"ground-truth box 0 .* NaN or infinite corner \(1 of 2"):
        _gt([[0, 0, 10, corner], [0, 0, 10, 10]], [0, 0])
    with pytest.raises(InvalidInputError, match=r"detection box 1 .* has a NaN or infinite corner"):
        _det([[0, 0, 10, 10], [corner, 0, 10, 10]], [0.9, 0.8], [0, 0])
    with pytest.raises(InvalidInputError, match=r"1 of 2 scores are NaN \(the first at row 0\)"):
        nms(torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10]]), torch.tensor([float("nan"), 0.9]))


def test_of_two_objects_overlapped_equally_the_last_is_matched_as_pycocotools_does() -> None:
    """The first detection overlaps both objects by 0.818; COCOeval matches the later object, so
    the second detection (IoU 1.0 with that one, 0.667 with the other) misses at IoU 0.7. Taking the
    first object instead gave AP 1.0 there, and COCO mAP 0.776 where COCOeval reports 0.627."""
    truth = _gt([[0, 0, 10, 10], [2, 0, 12, 10]], [0, 0])
    found = _det([[1, 0, 11, 10], [2, 0, 12, 10]], [0.9, 0.8], [0, 0])
    assert average_precision([found], [truth], 0, 0.7) == pytest.approx(0.5)
    assert average_precision([found], [truth], 0, 0.65) == pytest.approx(1.0)
    # COCO's 101 recall points: IoU 0.5-0.65 both hit (AP 1); 0.7-0.8 the first hits, the second
    # misses (precision 1 up to recall 0.5); 0.85-0.95 the first misses (precision 0.5 to recall 0.5)
    up_to_half = 51 / 101
    expected = (4 * 1.0 + 3 * up_to_half + 3 * 0.5 * up_to_half) / 10
    coco = mean_average_precision([found], [truth], COCO_THRESHOLDS, "coco101")["map"]
    assert coco == pytest.approx(expected, abs=1e-12) and round(coco, 4) == 0.6272


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5])
def test_average_precision_refuses_an_iou_threshold_outside_0_1(threshold: float) -> None:
    """At 0 a detection that overlaps no object counted as a true positive."""
    with pytest.raises(InvalidInputError, match=r"iou_threshold must be in \(0, 1\]"):
        average_precision([DET0], [GT0], 0, threshold)
