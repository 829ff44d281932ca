"""Detection boxes and metrics: pairwise IoU, non-maximum suppression, average precision and mAP.

Boxes are ``(x0, y0, x1, y1)`` with ``x1 > x0`` and ``y1 > y0`` (continuous coordinates, area
``(x1 - x0) * (y1 - y0)``). AP follows the COCO matching rule: detections of a class are visited in
order of falling score, each matched to the unmatched ground truth of the same image it overlaps
most, if that IoU reaches the threshold; AP is the area under the precision envelope (all-point
interpolation, as in PASCAL VOC 2010+), or COCO's 101-point sampling of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nlp182.errors import InvalidInputError, ShapeError

COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Boxes whose IoU with every later box NMS holds at once (memory ``NMS_BLOCK x N``, not ``N x N``).
NMS_BLOCK = 256


def _check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ShapeError(f"{name} must have shape (N, 4) as (x0, y0, x1, y1); got {tuple(boxes.shape)}")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``boxes`` ``(N, 4)`` -> ``(N,)`` (zero for degenerate boxes)."""
    _check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: ``a (N, 4)``, ``b (M, 4)`` -> ``(N, M)``.

    A pair whose union is empty (two degenerate boxes) gets IoU 0; a box with a NaN coordinate gets
    NaN, so a diverged regressor shows. Integer boxes are measured in float64, float16 and bfloat16
    ones in float32 (as torchvision: a float16 area overflows past 65504, a 256-pixel square).
    """
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    a, b = _measurable(a), _measurable(b)
    inter = (
        torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])
    ).clamp_min_(0)
    inter.mul_(
        (
            torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])
        ).clamp_min_(0)
    )
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter.div_(union).masked_fill_(union == 0, 0.0)  # 0 / 0 (two empty boxes) -> 0


def _measurable(boxes: torch.Tensor) -> torch.Tensor:
    """``boxes`` in a dtype that holds their areas: float64 for integers, float32 for half types."""
    if not boxes.is_floating_point():  # integer pixel boxes: IoU is a fraction all the same
        return boxes.double()
    return boxes.float() if boxes.dtype in (torch.float16, torch.bfloat16) else boxes


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy non-maximum suppression: keep the best box, drop those overlapping it by more than
    ``iou_threshold``, repeat. boxes ``(N, 4)``, scores ``(N,)``; returns kept indices ``(K,)`` by falling
    score (equal scores keep their input order).
    """
    return _greedy(boxes, scores, iou_threshold, None)


def _greedy(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, classes: torch.Tensor | None
) -> torch.Tensor:
    """Greedy suppression; with ``classes`` ``(N,)`` only boxes of one class suppress each other."""
    _check_boxes(boxes)
    if scores.shape != (len(boxes),):
        raise ShapeError(f"scores must have shape ({len(boxes)},); got {tuple(scores.shape)}")
    _refuse_nan_scores(scores, "scores", "boxes are kept by falling score")
    if classes is not None and classes.shape != (len(boxes),):
        raise ShapeError(f"classes must have shape ({len(boxes)},); got {tuple(classes.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    ranked_classes = classes[order] if classes is not None else None
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for start in range(0, len(order), NMS_BLOCK):  # IoU of a block of rows at a time: O(N) memory
        end = min(len(order), start + NMS_BLOCK)
        over = box_iou(ranked[start:end], ranked[start:]) > iou_threshold
        if ranked_classes is not None:  # zero across classes (no shifted copies)
            over &= ranked_classes[start:end, None] == ranked_classes[None, start:]
        for i in range(start, end):
            if suppressed[i]:
                continue
            keep.append(i)
            suppressed[start:] |= over[i - start]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float = 0.5
) -> torch.Tensor:
    """NMS within each class only: boxes of different classes never suppress each other.

    boxes ``(N, 4)``, scores ``(N,)``, classes ``(N,)``; returns kept indices ``(K,)`` by falling score.
    """
    return _greedy(boxes, scores, iou_threshold, classes)


def _per_box(boxes: torch.Tensor, **fields: torch.Tensor) -> torch.Tensor:
    """``boxes`` as ``(N, 4)`` (an empty ``tensor([])`` as ``(0, 4)``: an image without boxes),
    after checking every field is ``(N,)``: a label short or a column of labels would otherwise
    drop or double-count detections without a word."""
    if boxes.dim() == 1 and boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    _check_boxes(boxes)
    for name, values in fields.items():
        if values.shape != (len(boxes),):
            raise ShapeError(
                f"{name} must have shape ({len(boxes)},), one per box; got {tuple(values.shape)}"
            )
    return boxes


def _refuse_nan_scores(scores: torch.Tensor, noun: str, why: str) -> None:
    """Refuse NaN among ``scores (N,)``: NaN has no rank (a sort put a NaN box first, where it
    suppressed or outranked the boxes around it), and it marks a diverged model."""
    nan = torch.isnan(scores)
    if bool(nan.any()):
        raise InvalidInputError(
            f"{int(nan.sum())} of {len(nan)} {noun} are NaN (the first at row {int(nan.nonzero()[0, 0])}); "
            f"{why}, and NaN has no rank"
        )


def _refuse_nonfinite_boxes(boxes: torch.Tensor, kind: str) -> None:
    """Refuse a ``(N, 4)`` box with a NaN or infinite corner: its IoU with every box is NaN, which
    took the place of a real match (one NaN ground truth made every detection beside it a false
    positive) without a word."""
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise InvalidInputError(
            f"{kind} box {row} {boxes[row].tolist()} has a NaN or infinite corner ({int(bad.sum())} of "
            f"{len(boxes)} boxes do); boxes are finite (x0, y0, x1, y1)"
        )


@dataclass
class Detections:
    """One image's detections: ``boxes (N, 4)``, ``scores (N,)``, ``labels (N,)``.

    Raises:
        ShapeError: the shapes do not agree.
        InvalidInputError: a score is NaN. NaN has no place in a ranking (a sort by score put a
            0.9 true positive below a 0.1 false positive around it), and it marks a diverged model.
            Or a box has a NaN or infinite corner.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        self.boxes = _per_box(self.boxes, scores=self.scores, labels=self.labels)
        _refuse_nan_scores(self.scores, "detection scores", "detections are ranked by score")
        _refuse_nonfinite_boxes(self.boxes, "detection")


@dataclass
class GroundTruth:
    """One image's annotated objects: ``boxes (M, 4)`` as ``(x0, y0, x1, y1)``, ``labels (M,)``.

    Raises:
        ShapeError: the shapes do not agree.
        InvalidInputError: a box ends before it starts (``x1 < x0`` or ``y1 < y0``): boxes given as
            ``(x, y, width, height)`` mostly are such, and would match nothing, so that AP fell
            without a word. Or a box has a NaN or infinite corner.
    """

    boxes: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        self.boxes = _per_box(self.boxes, labels=self.labels)
        _refuse_nonfinite_boxes(self.boxes, "ground-truth")
        inverted = (self.boxes[:, 2] < self.boxes[:, 0]) | (self.boxes[:, 3] < self.boxes[:, 1])
        if bool(inverted.any()):
            row = int(inverted.nonzero()[0, 0])
            raise InvalidInputError(
                f"ground-truth box {row} {self.boxes[row].tolist()} ends before it starts; boxes are "
                "(x0, y0, x1, y1) with x1 >= x0 and y1 >= y0 (convert (x, y, w, h) as x1 = x + w, y1 = y + h)"
            )


def _match(
    detections: Sequence[Detections], truths: Sequence[GroundTruth], label: int, threshold: float
) -> tuple[np.ndarray, int]:
    """True-positive flags of the class's detections in falling score order, and its ground-truth count."""
    found = []  # (score, image, row)
    for image, det in enumerate(detections):
        rows = torch.nonzero(det.labels == label).flatten().tolist()
        found.extend((float(det.scores[r]), image, r) for r in rows)
    found.sort(key=lambda item: -item[0])
    gt_boxes = [truth.boxes[truth.labels == label].detach().double() for truth in truths]
    matched = [np.zeros(len(g), dtype=bool) for g in gt_boxes]
    tp = np.zeros(len(found), dtype=bool)
    for k, (_, image, row) in enumerate(found):
        if len(gt_boxes[image]) == 0:
            continue
        ious = box_iou(detections[image].boxes[row : row + 1].detach().double(), gt_boxes[image])[0].numpy()
        ious[matched[image]] = -1.0
        best = len(ious) - 1 - int(ious[::-1].argmax())  # of equal overlaps the last, as pycocotools
        if ious[best] >= threshold:
            tp[k] = True
            matched[image][best] = True
    return tp, sum(len(g) for g in gt_boxes)


def precision_recall(tp: np.ndarray, num_truths: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each detection, given TP flags in falling score order."""
    hits = np.cumsum(tp)
    precision = hits / np.arange(1, len(tp) + 1)
    recall = hits / max(num_truths, 1)
    return precision, recall


def ap_from_pr(precision: np.ndarray, recall: np.ndarray, interpolation: str = "all") -> float:
    """Area under the precision envelope (precision made non-increasing in recall).

    ``interpolation="all"`` integrates it exactly (VOC2010 on); ``"coco101"`` averages it at recall
    0, 0.01, ..., 1; ``"11point"`` at recall 0, 0.1, ..., 1 (VOC2007's devkit).
    """
    _check_interpolation(interpolation)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    if interpolation == "all":
        steps = np.nonzero(r[1:] != r[:-1])[0]
        return float(np.sum((r[steps + 1] - r[steps]) * envelope[steps + 1]))
    points = np.linspace(0.0, 1.0, 101 if interpolation == "coco101" else 11)
    at = np.searchsorted(r[1:-1], points, side="left")
    values = np.where(at < len(recall), envelope[1:-1][np.minimum(at, len(recall) - 1)], 0.0)
    return float(values.mean())


INTERPOLATIONS = ("all", "coco101", "11point")


def _check_interpolation(interpolation: str) -> None:
    """Refuse an unknown interpolation before any work (a class without detections never reaches
    the area computation)."""
    if interpolation not in INTERPOLATIONS:
        choices = ", ".join(INTERPOLATIONS)
        raise InvalidInputError(f"interpolation must be one of {choices}; got {interpolation!r}")


def average_precision(
    detections: Sequence[Detections],
    truths: Sequence[GroundTruth],
    label: int,
    iou_threshold: float = 0.5,
    interpolation: str = "all",
) -> float:
    """AP of class ``label`` over a set of images (``detections[i]`` and ``truths[i]`` are image ``i``).

    NaN when the class has no ground truth (it is then left out of the mean).
    """
    if len(detections) != len(truths):
        raise InvalidInputError(
            f"{len(detections)} detection sets for {len(truths)} images; pass one per image"
        )
    _check_interpolation(interpolation)
    if not 0 < iou_threshold <= 1:  # 0 counted a detection overlapping nothing as a true positive
        raise InvalidInputError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
    tp, num_truths = _match(detections, truths, label, iou_threshold)
    if num_truths == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    precision, recall = precision_recall(tp, num_truths)
    return ap_from_pr(precision, recall, interpolation)


def mean_average_precision(
    detections: Sequence[Detections],
    truths: Sequence[GroundTruth],
    iou_thresholds: Iterable[float] = (0.5,),
    interpolation: str = "all",
) -> dict[str, float | dict[int, float]]:
    """mAP: AP per class (over classes with ground truth) averaged, then averaged over ``iou_thresholds``
    (any iterable of numbers: a tuple, a generator, ``np.linspace``, a 1-D tensor).

    Use ``(0.5,)`` for mAP@0.5 and :data:`COCO_THRESHOLDS` for mAP@[0.5:0.95]. Returns ``{"map": float,
    "per_class": {label: AP averaged over the thresholds}}``.
    """
    thresholds = [float(t) for t in np.asarray(list(iou_thresholds), dtype=np.float64).ravel()]
    if not thresholds or not all(0 < threshold <= 1 for threshold in thresholds):
        raise InvalidInputError(
            f"iou_thresholds must be one or more values in (0, 1]; got {tuple(thresholds)}"
        )
    _check_interpolation(interpolation)
    labels = sorted({int(v) for t in truths for v in t.labels.tolist()})
    if not labels:
        raise InvalidInputError("no ground-truth objects: mAP is undefined")
    per_class = {
        label: float(
            np.mean(
                [average_precision(detections, truths, label, thr, interpolation) for thr in thresholds]
            )
        )
        for label in labels
    }
    return {"map": float(np.mean(list(per_class.values()))), "per_class": per_class}
