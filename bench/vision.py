"""The vision core on real and generated data: digits ensembles and distillation, shapes segmentation, NMS.

``python -m bench.vision`` runs, in one go:

* scikit-learn's digits (8x8, 1,347 train / 450 test): our small CNN beside the same network built
  with ``torch.nn.BatchNorm2d`` (accuracy and train time) and beside logistic regression; its
  5-model ensemble (probability averaging and voting), bagging, a snapshot ensemble from one run
  with a cyclic LR (prediction and parameter averaging), EMA weights, and a small student trained
  alone versus distilled from the ensemble;
* the generated shapes segmentation set: a UNet and an FCN, pixel accuracy and mean IoU;
* boxes: NMS and pairwise IoU timed beside float64 NumPy references (and checked equal).

It prints a table (ratio first, then ours, then the reference), writes
``bench/results/vision-<device>.json`` and the figures ``bench/results/vision-*.png`` (first-layer
filters, occlusion and saliency maps, activation maximisation, loss curves, segmentations).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlp182.commands.flags import FRACTION, NON_NEGATIVE, POSITIVE, Parser, checked, device_name
from nlp182.device import select_device
from nlp182.errors import OutputError
from nlp182.io import atomic_write_json, check_output_path
from nlp182.plots import loss_curves
from nlp182.progress import progress
from nlp182.train.averaging import ExponentialMovingAverage
from nlp182.vision.boxes import box_iou, nms
from nlp182.vision.data import load_digits_split, make_shapes_segmentation
from nlp182.vision.distillation import DistillationLoss
from nlp182.vision.ensembles import (
    Ensemble,
    average_parameters,
    average_probabilities,
    majority_vote,
    recompute_batchnorm,
    snapshot_ensemble,
    train_ensemble,
)
from nlp182.vision.fit import FitConfig, accuracy, fit, predict_logits
from nlp182.vision.registry import create_model
from nlp182.vision.segmentation import mean_iou, pixel_accuracy
from nlp182.vision.visualize import (
    activation_maximization,
    actmax_start,
    save_actmax_grid,
    save_filter_grid,
    save_occlusion_maps,
    save_saliency_maps,
    save_segmentation_grid,
)

RESULTS = Path(__file__).resolve().parent / "results"
SEGMENTATION_GOAL = 0.8  # stated mean IoU on the held-out shapes
QUICK = {"epochs": 2, "width": 0.25, "members": 2, "students": 1, "student_width": 0.125, "seg_train": 16,
         "seg_epochs": 1, "boxes": 50, "repeats": 1}  # --quick: every section runs, in seconds


class Timer:
    """Wall and process-CPU seconds of a block (CPU time is steadier on a shared machine)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def digits_section(args: argparse.Namespace, figures: Path) -> tuple[dict[str, Any], list[tuple]]:
    from sklearn.linear_model import LogisticRegression

    x_tr, y_tr, x_te, y_te = load_digits_split(seed=0)
    config = FitConfig(epochs=args.epochs, batch_size=64, lr=0.05, device=args.device)
    out: dict[str, Any] = {"train_size": len(x_tr), "test_size": len(x_te), "epochs": args.epochs}

    def cnn(norm: Callable[[int], nn.Module] | None = None) -> nn.Module:
        options = {} if norm is None else {"norm": norm}
        return create_model("small_cnn", in_channels=1, num_classes=10, width=args.width, **options)

    fit(seeded(99, cnn), x_tr[:256], y_tr[:256], replace(config, epochs=1))  # warm-up, untimed

    logistic = LogisticRegression(max_iter=2000).fit(x_tr.flatten(1).numpy(), y_tr.numpy())
    out["logistic_regression_accuracy"] = float(logistic.score(x_te.flatten(1).numpy(), y_te.numpy()))
    step(args, "logistic regression")

    with Timer() as t_ref:
        reference = seeded(0, lambda: cnn(nn.BatchNorm2d))
        fit(reference, x_tr, y_tr, config)
    out["torch_bn_cnn"] = {
        "accuracy": accuracy(predict_logits(reference, x_te), y_te),
        "wall_s": t_ref.wall,
        "cpu_s": t_ref.cpu,
    }
    step(args, "torch.nn BatchNorm CNN")

    members, histories, emas, member_stats = [], [], [], []
    for i in range(args.members):
        model = seeded(i, cnn)
        ema = ExponentialMovingAverage(model, decay=args.ema_decay)
        with Timer() as t:
            histories.append(fit(model, x_tr, y_tr, replace(config, seed=i), on_step=ema.update))
        members.append(model)
        emas.append(ema.averaged_model(model))
        member_stats.append(
            {
                "accuracy": accuracy(predict_logits(model, x_te), y_te),
                "ema_accuracy": accuracy(predict_logits(emas[-1], x_te), y_te),
                "wall_s": t.wall,
                "cpu_s": t.cpu,
            }
        )
        step(args, f"ensemble member {i + 1}")
    out["members"] = member_stats
    single = float(np.mean([m["accuracy"] for m in member_stats]))
    out["single_mean_accuracy"] = single
    out["ema_mean_accuracy"] = float(np.mean([m["ema_accuracy"] for m in member_stats]))
    logits = [predict_logits(m, x_te) for m in members]
    out["ensemble_average_accuracy"] = accuracy(average_probabilities(logits).log(), y_te)
    out["ensemble_vote_accuracy"] = float((majority_vote(logits) == y_te).double().mean())

    with Timer() as t_bag:
        bagged = train_ensemble(
            lambda i: cnn(), x_tr, y_tr, args.members, replace(config, seed=100), bootstrap=True
        )
    out["bagging_accuracy"] = accuracy(predict_logits(Ensemble(bagged), x_te), y_te)
    out["bagging_wall_s"] = t_bag.wall
    step(args, "bagging")

    with Timer() as t_snap:
        snap_model = seeded(0, cnn)
        snapshots, snap_history = snapshot_ensemble(
            snap_model, x_tr, y_tr, cycles=args.members, config=replace(config, lr=0.1)
        )
    out["snapshot"] = {
        "epochs": args.epochs,
        "cycles": args.members,
        "wall_s": t_snap.wall,
        "snapshot_accuracies": [accuracy(predict_logits(s, x_te), y_te) for s in snapshots],
        "prediction_average_accuracy": accuracy(predict_logits(Ensemble(snapshots), x_te), y_te),
        "parameter_average_accuracy": accuracy(
            predict_logits(recompute_batchnorm(average_parameters(snapshots), x_tr), x_te), y_te
        ),
    }
    step(args, "snapshot ensemble")
    loss_curves(
        {"single (cosine LR)": histories[0], f"snapshot run ({args.members} cyclic cycles)": snap_history},
        figures / "vision-digits-loss.png",
        title="Digits CNN: training loss per epoch (one cosine-LR run, one snapshot run with cyclic LR)",
        xlabel="epoch",
        ylabel="training loss (cross-entropy, log scale)",
        log_y=True,
    )

    teacher = Ensemble(members)
    teacher_logits = predict_logits(teacher, x_tr)
    alone, distilled = [], []
    student_config = replace(config, epochs=args.epochs)

    def student() -> nn.Module:
        return create_model("small_cnn", in_channels=1, num_classes=10, width=args.student_width)

    for seed in range(args.students):
        plain = seeded(1000 + seed, student)
        fit(plain, x_tr, y_tr, replace(student_config, seed=seed))
        alone.append(accuracy(predict_logits(plain, x_te), y_te))
        pupil = seeded(1000 + seed, student)
        fit(
            pupil,
            x_tr,
            (y_tr, teacher_logits),
            replace(student_config, seed=seed),
            loss_fn=DistillationLoss(args.temperature, args.alpha),
        )
        distilled.append(accuracy(predict_logits(pupil, x_te), y_te))
        step(args, f"student {seed + 1}")
    out["student"] = {
        "width": args.student_width,
        "temperature": args.temperature,
        "alpha": args.alpha,
        "alone_accuracies": alone,
        "distilled_accuracies": distilled,
        "alone_mean": float(np.mean(alone)),
        "distilled_mean": float(np.mean(distilled)),
        "parameters": sum(p.numel() for p in pupil.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
    }

    out["activation_maximization"] = _digit_figures(
        members[0], x_te, y_te, figures, actmax_steps=20 if args.quick else 200
    )
    step(args, "digits figures")
    ours = member_stats[0]
    rows = [
        (
            "digits: small CNN acc, our BN / torch.nn BN",
            ours["accuracy"] / out["torch_bn_cnn"]["accuracy"],
            ours["accuracy"],
            out["torch_bn_cnn"]["accuracy"],
        ),
        (
            "digits: small CNN train s, our BN / torch.nn BN",
            ours["wall_s"] / out["torch_bn_cnn"]["wall_s"],
            ours["wall_s"],
            out["torch_bn_cnn"]["wall_s"],
        ),
        (
            "digits: mean single CNN / logistic regression",
            single / out["logistic_regression_accuracy"],
            single,
            out["logistic_regression_accuracy"],
        ),
    ]
    for name, value in (
        (f"{args.members}-model ensemble, averaged probabilities", out["ensemble_average_accuracy"]),
        (f"{args.members}-model ensemble, majority vote", out["ensemble_vote_accuracy"]),
        (f"bagging, {args.members} bootstrap members", out["bagging_accuracy"]),
        (
            f"snapshot ensemble, {args.members} snapshots of 1 run",
            out["snapshot"]["prediction_average_accuracy"],
        ),
        ("snapshot parameter average (BN recomputed)", out["snapshot"]["parameter_average_accuracy"]),
        ("EMA weights (mean over runs)", out["ema_mean_accuracy"]),
    ):
        rows.append((f"digits: {name} / mean single", value / single, value, single))
    rows.append(
        (
            f"digits: student width {args.student_width}, distilled / alone",
            out["student"]["distilled_mean"] / out["student"]["alone_mean"],
            out["student"]["distilled_mean"],
            out["student"]["alone_mean"],
        )
    )
    return out, rows


def _digit_figures(
    model: nn.Module, x_te: torch.Tensor, y_te: torch.Tensor, figures: Path, actmax_steps: int = 200
) -> dict[str, Any]:
    """Filters, occlusion, saliency and activation maximisation of ``model``; returns the actmax
    scores (each class's logit at the start and the end: a real pattern raises it far above the start)."""
    model = model.cpu()
    save_filter_grid(model, figures / "vision-filters.png", title="digits CNN: first-layer 3x3 filters")
    picks = [int(torch.nonzero(y_te == d)[0]) for d in range(0, 10, 2)]
    images, labels = [x_te[i] for i in picks], [int(y_te[i]) for i in picks]
    save_occlusion_maps(model, images, labels, figures / "vision-occlusion.png")
    save_saliency_maps(model, images, labels, figures / "vision-saliency.png")
    dreams = [
        activation_maximization(model, d, (1, 8, 8), steps=actmax_steps, lr=0.05, l2=0.05, jitter=1)
        for d in range(10)
    ]
    with torch.no_grad():
        start = model(actmax_start((1, 8, 8)))[0]
        final = [model(dream.unsqueeze(0))[0] for dream in dreams]
    start_scores = [float(start[d]) for d in range(10)]
    final_scores = [float(final[d][d]) for d in range(10)]
    top_class = [int(final[d].argmax()) for d in range(10)]
    save_actmax_grid(
        dreams, [f"digit {d}" for d in range(10)], start_scores, final_scores, figures / "vision-actmax.png"
    )
    return {
        "start_scores": start_scores,
        "final_scores": final_scores,
        "top_class_of_each_image": top_class,
        # not noise: every image raises its class's logit well above where the faint noise began
        "not_noise": all(f > s + 1.0 for f, s in zip(final_scores, start_scores, strict=True)),
        "images_whose_top_class_is_their_own": sum(t == d for d, t in enumerate(top_class)),
    }


def segmentation_section(args: argparse.Namespace, figures: Path) -> tuple[dict[str, Any], list[tuple]]:
    x, y = make_shapes_segmentation(args.seg_train, size=32, seed=0)
    x_te, y_te = make_shapes_segmentation(16 if args.quick else 200, size=32, seed=1)
    config = FitConfig(epochs=args.seg_epochs, batch_size=16, lr=0.05, device=args.device)
    out: dict[str, Any] = {
        "train_size": len(x),
        "test_size": len(x_te),
        "size": 32,
        "epochs": args.seg_epochs,
        "goal_mean_iou": SEGMENTATION_GOAL,
        "background_only_mean_iou": mean_iou(torch.zeros_like(y_te), y_te, 4),
    }
    rows = []
    predictions = {}
    for name, build in (
        ("unet", lambda: create_model("unet", in_channels=3, num_classes=4, depth=2)),
        ("fcn", lambda: create_model("fcn", in_channels=3, num_classes=4, downsample="strided")),
    ):
        model = seeded(0, build)
        with Timer() as t:
            fit(model, x, y, config)
        pred = predict_logits(model, x_te).argmax(dim=1)
        predictions[name] = pred
        miou = mean_iou(pred, y_te, 4)
        out[name] = {
            "mean_iou": miou,
            "pixel_accuracy": pixel_accuracy(pred, y_te),
            "wall_s": t.wall,
            "cpu_s": t.cpu,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        rows.append(
            (f"shapes: {name.upper()} mean IoU / goal", miou / SEGMENTATION_GOAL, miou, SEGMENTATION_GOAL)
        )
        step(args, f"{name} segmentation")
    show = range(4)
    save_segmentation_grid(
        [x_te[i] for i in show],
        [y_te[i] for i in show],
        {f"{name.upper()} (IoU {out[name]['mean_iou']:.2f})": [pred[i] for i in show]
         for name, pred in predictions.items()},
        figures / "vision-segmentation.png",
        title="Segmentation of held-out shapes: truth and each network's prediction",
    )
    return out, rows


def _iou_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _nms_reference(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS in float64 NumPy, one candidate at a time."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[_iou_reference(boxes[best : best + 1], boxes[rest])[0] <= threshold]
    return keep


def boxes_section(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple]]:
    gen = torch.Generator().manual_seed(0)
    n = args.boxes
    centres = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 400
    sizes = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 60 + 5
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)
    scores = torch.rand(n, generator=gen, dtype=torch.float64)
    b_np, s_np = boxes.numpy(), scores.numpy()
    timings: dict[str, list[float]] = {"nms": [], "nms_ref": [], "iou": [], "iou_ref": []}
    for _ in range(args.repeats):
        for key, fn in (
            ("nms", lambda: nms(boxes, scores, 0.5)),
            ("nms_ref", lambda: _nms_reference(b_np, s_np, 0.5)),
            ("iou", lambda: box_iou(boxes, boxes)),
            ("iou_ref", lambda: _iou_reference(b_np, b_np)),
        ):
            start = time.perf_counter()
            fn()
            timings[key].append(time.perf_counter() - start)
    kept = nms(boxes, scores, 0.5).tolist()
    equal = kept == _nms_reference(b_np, s_np, 0.5)
    iou_err = float(np.abs(box_iou(boxes, boxes).numpy() - _iou_reference(b_np, b_np)).max())
    best = {k: min(v) for k, v in timings.items()}
    out = {
        "boxes": n,
        "kept": len(kept),
        "nms_equal_to_reference": equal,
        "iou_max_abs_error": iou_err,
        "seconds_min_over_repeats": best,
    }
    rows = [
        (
            f"boxes: NMS of {n} s, ours / float64 NumPy (equal: {equal})",
            best["nms"] / best["nms_ref"],
            best["nms"],
            best["nms_ref"],
        ),
        (
            f"boxes: IoU {n}x{n} s, ours / float64 NumPy",
            best["iou"] / best["iou_ref"],
            best["iou"],
            best["iou_ref"],
        ),
    ]
    return out, rows


def step(args: argparse.Namespace, done: str) -> None:
    """Advance the run's progress by one step (one log line per step when not on a terminal)."""
    args.bar.set_postfix(done=done)
    args.bar.update(1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, each checked where it is parsed (one-line errors naming the flag, exit 2)."""
    parser = Parser(
        prog="python -m bench.vision",
        description="Benchmark the vision core: digits CNN ensembles, EMA, snapshots and distillation, "
        "shapes segmentation, and box NMS/IoU beside float64 NumPy. Prints a table (ratio first) and "
        "writes vision-<device>.json and the vision-*.png figures into --out.",
    )
    number = checked(int, POSITIVE)
    parser.add_argument("--device", type=device_name, default="auto",
                        help="where to train: auto (a GPU when there is one), cpu, cuda or mps "
                        "(default: auto)")
    parser.add_argument("--threads", type=checked(int, NON_NEGATIVE), default=0,
                        help="CPU threads for training (default: 0, PyTorch's choice)")
    parser.add_argument("--epochs", type=number, default=15, help="epochs of each digits CNN (default: 15)")
    parser.add_argument("--width", type=checked(float, POSITIVE), default=1.0,
                        help="channel multiplier of the digits CNN (default: 1.0, 16 channels first)")
    parser.add_argument("--members", type=number, default=5,
                        help="models per ensemble, and snapshots of the snapshot ensemble (default: 5)")
    parser.add_argument("--ema-decay", type=checked(float, FRACTION), default=0.99,
                        help="decay of the exponential moving average of the weights (default: 0.99)")
    parser.add_argument("--students", type=number, default=3,
                        help="small students trained alone and distilled, each (default: 3)")
    parser.add_argument("--student-width", type=checked(float, POSITIVE), default=0.25,
                        help="channel multiplier of a student (default: 0.25, 4 channels first)")
    parser.add_argument("--temperature", type=checked(float, POSITIVE), default=4.0,
                        help="softmax temperature of distillation (default: 4.0)")
    parser.add_argument("--alpha", type=checked(float, {"minimum": 0, "maximum": 1}), default=0.9,
                        help="weight of the teacher's soft targets against the labels (default: 0.9)")
    parser.add_argument("--seg-train", type=number, default=600,
                        help="generated training images for segmentation (default: 600)")
    parser.add_argument("--seg-epochs", type=number, default=30,
                        help="epochs of each segmentation network (default: 30)")
    parser.add_argument("--boxes", type=number, default=2000,
                        help="random boxes for NMS and IoU (default: 2000)")
    parser.add_argument("--repeats", type=number, default=5,
                        help="timings of NMS and IoU; the fastest counts (default: 5)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for the JSON and the figures; files of the same names are replaced "
                        "(default: bench/results)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes everywhere, to check in seconds that every section runs")
    args = parser.parse_args(argv)
    return argparse.Namespace(**{**vars(args), **QUICK}) if args.quick else args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("nlp182.vision").setLevel(logging.WARNING)  # the progress line says enough
    try:
        check_output_path(args.out)
    except OutputError as exc:
        print(f"python -m bench.vision: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = 1 + 1 + args.members + 1 + 1 + args.students + 1 + 2
    args.bar = progress(total=steps, desc="bench.vision", unit="step", interval=0.0)
    started = time.perf_counter()
    digits, rows = digits_section(args, args.out)
    segmentation, seg_rows = segmentation_section(args, args.out)
    boxes, box_rows = boxes_section(args)
    rows += seg_rows + box_rows
    args.bar.close()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ratio':>7}  {'nlp182':>9}  {'reference':>9}")
    for name, ratio, ours, ref in rows:
        print(f"{name:<{width}}  {ratio:7.3f}  {ours:9.4f}  {ref:9.4f}")
    goals = {
        "ensemble_beats_single": digits["ensemble_average_accuracy"] > digits["single_mean_accuracy"],
        "distilled_student_beats_student_alone": digits["student"]["distilled_mean"]
        > digits["student"]["alone_mean"],
        "segmentation_unet_reaches_goal": segmentation["unet"]["mean_iou"] >= SEGMENTATION_GOAL,
        "nms_equal_to_float64_reference": boxes["nms_equal_to_reference"],
        "activation_maximization_not_noise": digits["activation_maximization"]["not_noise"],
    }
    print("goals:", ", ".join(f"{k}={v}" for k, v in goals.items()))
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items() if k != "bar"},
        "total_wall_s": time.perf_counter() - started,
        "goals": goals,
        "table": [{"measure": n, "ratio": r, "nlp182": o, "reference": f} for n, r, o, f in rows],
        "digits": digits,
        "segmentation": segmentation,
        "boxes": boxes,
    }
    path = args.out / f"vision-{device.type}.json"
    atomic_write_json(path, result)
    print(f"wrote {path} in {result['total_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
