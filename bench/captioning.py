"""Show, Attend and Tell on the built-in sets: accuracy, BLEU / CIDEr-D, attention correctness, ablations.

``python -m bench.captioning`` trains, one run at a time, each on the CPU with ``--threads``
threads (default 2: the goals are for a 2-core CPU):

- ``digits`` with ``nlp182 train caption``'s defaults and a 600 s training budget (the recipe
  these runs found, now the defaults: soft additive attention, no regulariser, sine/cosine location
  embeddings; bag-of-words pre-training of the encoder, the word curriculum, batch-norm
  recalibration before each validation, an exponential moving average of the weights (decay
  0.998 at 188 steps an epoch) for validation, the kept epoch and the test, and the kept epoch by
  validation exact match, chosen because digits captions are short):
  held-out exact caption accuracy (goal >= 0.95) and attention correctness on the digit words
  (goal >= 0.6), beside the uniform-attention baseline (the boxes' share of the image);
- ablations on ``digits`` at the same recipe and budget: with the doubly stochastic regulariser
  (0.01) and with hard attention (REINFORCE);
- ``shapes``: exact match with any reference, BLEU-1..4 (0-100) and CIDEr-D on held-out scenes,
  attention correctness on the shape nouns;
- ablations on ``shapes`` at a smaller budget (600 scenes, 2 epochs, 200 test scenes): with and
  without the regulariser, and hard attention (REINFORCE) instead of soft;
- every run scored with greedy and beam-5 decoding.

The reference column is the goal (or the uniform baseline), the ratio is measured / reference.
Training time is reported as process CPU seconds and as wall seconds; the digits budget is wall
seconds of training steps, so a busy machine gives a run fewer steps. Writes
``captioning-<device>.json`` and three overlay figures per set into ``--out`` (default
``bench/results``; ``bench/gpu.sh`` passes its own folder); ``--quick`` runs tiny sizes (a smoke
test for CI and ``bench/gpu.sh --dry``) and writes ``captioning-quick-<device>.json`` only.
The summary's top-level ``*_images_per_s``, ``*_s`` and ``*_accuracy`` numbers are the headline
figures ``bench/gpu.sh`` picks up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from nlp182.captioning import CaptionConfig, CaptionModelConfig, train_captioner
from nlp182.device import select_device
from nlp182.io import atomic_write_bytes, atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_DIGITS_EXACT = 0.95
GOAL_CORRECTNESS = 0.6
DIGITS_BUDGET_S = 600.0


def run_configs(
    quick: bool, device: str, seed: int = 0, budget_s: float = DIGITS_BUDGET_S
) -> dict[str, CaptionConfig]:
    """The bench's training runs (``quick``: tiny sizes that only prove the pipeline runs).

    ``seed`` seeds each run's data (the generated images) and training alike; ``budget_s`` is the
    digits runs' training budget (the goals are for 600 s on a CPU; ``bench/gpu.sh`` gives a GPU less).
    """
    common = {"device": device, "progress": False, "threads": None, "seed": seed}
    if quick:
        tiny = CaptionModelConfig(
            encoder="small_cnn", encoder_width=0.5, grid=4, feature_dim=16, embed_dim=8, hidden_size=16
        )
        sizes = {"train_images": 32, "valid_images": 8, "test_images": 8, "epochs": 1, "image_size": 48}
        sizes.update(batch_size=64, bn_recalibration_batches=1, beam_width=2)  # a smoke test in seconds
        recipe = {"pretrain_steps": 2, "curriculum_steps": 1, "time_budget_s": 600.0}
        digits = CaptionConfig(data="digits", model=tiny, **recipe, **sizes, **common)
        shapes = CaptionConfig(data="shapes", model=tiny, **sizes, **common)
    else:
        model = CaptionModelConfig(encoder="small_cnn", encoder_width=1.0, grid=12)
        sizes = {
            "image_size": 48,
            "valid_images": 200,
            "test_images": 500,
            "batch_size": 32,
            "regularizer": 0.01,
        }
        # digits: the defaults (sizes, model, recipe, the settings chosen from the data) and the budget.
        digits = CaptionConfig(data="digits", time_budget_s=budget_s, **common)
        shapes = CaptionConfig(data="shapes", train_images=2000, epochs=4, model=model, **sizes, **common)
    ablation = {"train_images": 600, "epochs": 2, "test_images": 200} if not quick else {}
    return {
        "digits": digits,
        # digits ablations, each at the digits recipe and budget (another 2 x 600 s of training)
        "digits_regularizer": dataclasses.replace(digits, regularizer=0.01),
        "digits_hard": dataclasses.replace(
            digits, model=dataclasses.replace(digits.model, attention="hard")
        ),
        "shapes": shapes,
        "shapes_regularizer_same_budget": dataclasses.replace(shapes, **ablation),
        "shapes_no_regularizer": dataclasses.replace(shapes, regularizer=0.0, **ablation),
        "shapes_hard": dataclasses.replace(
            shapes, model=dataclasses.replace(shapes.model, attention="hard"), **ablation
        ),
    }


def train_one(name: str, config: CaptionConfig, overlays_to: Path | None) -> dict[str, Any]:
    """Train ``config`` in a temporary folder; return its metrics with CPU and wall seconds.

    With ``overlays_to``, the run's overlay PNGs and validation curve are copied there.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / name
        cpu, wall = time.process_time(), time.perf_counter()
        metrics = train_captioner(config, run)
        metrics["cpu_s"], metrics["wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
        if overlays_to is not None:
            for png in sorted((run / "overlays").glob("*.png")):
                overlay = overlays_to / f"captioning-{name}-overlay-{png.stem.split('-')[-1]}.png"
                atomic_write_bytes(overlay, png.read_bytes())
            atomic_write_bytes(overlays_to / f"captioning-{name}-valid-bleu.png",
                               (run / "valid_bleu.png").read_bytes())
    return metrics


def _rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, float | None, float | None]]:
    rows: list[tuple[str, float | None, float | None]] = []
    for name, metrics in results.items():
        for decoding, scores in metrics["test"].items():
            label = f"{name} {decoding}"
            if name.startswith("digits"):
                rows.append((f"{label} exact accuracy", GOAL_DIGITS_EXACT, scores["exact_match"]))
            else:
                rows.append((f"{label} exact accuracy (any reference)", None, scores["exact_match"]))
                rows.append((f"{label} BLEU-4 (0-100)", None, scores["bleu4"]))
                rows.append((f"{label} CIDEr-D", None, scores["cider_d"]))
            rows.append(
                (f"{label} attention correctness vs goal", GOAL_CORRECTNESS, scores["attention_correctness"])
            )
            rows.append(
                (
                    f"{label} attention correctness vs uniform",
                    scores["uniform_baseline"],
                    scores["attention_correctness"],
                )
            )
    return rows


def _print_table(rows: list[tuple[str, float | None, float | None]]) -> None:
    print(f"{'ratio':>7}  {'metric':<66} {'reference':>9} {'nlp182':>9}")
    for name, reference, value in rows:
        ratio = f"{value / reference:7.3f}" if reference and value is not None else f"{'-':>7}"
        ref = f"{reference:9.4f}" if reference is not None else f"{'-':>9}"
        measured = f"{value:9.4f}" if value is not None else f"{'-':>9}"
        print(f"{ratio}  {name:<66} {ref} {measured}")


def headline(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Top-level figures for ``bench/gpu.sh``'s summary: training images/s and seconds, test accuracy."""
    figures: dict[str, float] = {}
    for name in ("digits", "shapes"):
        metrics = results.get(name)
        if metrics is None:
            continue
        history = metrics["history"]
        images = sum(row.get("samples_per_s", 0.0) * row.get("time_s", 0.0) for row in history)
        seconds = sum(row.get("time_s", 0.0) for row in history)
        figures[f"{name}_train_images_per_s"] = images / seconds if seconds else 0.0
        figures[f"{name}_train_wall_s"] = float(metrics["train_time_s"])
        greedy = metrics["test"].get("greedy")
        if greedy is not None:
            figures[f"{name}_greedy_exact_accuracy"] = float(greedy["exact_match"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline, not the goals")
    parser.add_argument("--device", default="cpu", help="cpu (the goals are for a CPU), cuda, mps or auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the goals: a 2-core CPU)")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="train only these runs (e.g. in two processes); the table then merges every run's saved JSON",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for the JSON and PNGs (default: bench/results)"
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of every run's data and training; runs of seed N > 0 are saved as <name>-seedN",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DIGITS_BUDGET_S,
        help="training seconds of the digits runs (the goals are for 600 on a CPU)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = select_device(args.device)
    configs = run_configs(args.quick, str(device), args.seed, args.budget_s)
    stem = "captioning-quick" if args.quick else "captioning"
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    suffix = f"-seed{args.seed}" if args.seed else ""
    for name in configs if args.only is None else args.only:
        logging.info("training %s", name)
        load = [round(x, 2) for x in os.getloadavg()]
        keep = not args.quick and not args.seed and name in ("digits", "shapes")  # seed 0 draws them
        metrics = train_one(name, configs[name], out if keep else None)
        metrics.update(
            config=configs[name].to_dict(),
            loadavg_before=load,
            loadavg_after=[round(x, 2) for x in os.getloadavg()],
            threads=torch.get_num_threads(),
        )
        metrics["seed"] = args.seed
        atomic_write_json(out / f"{stem}-run-{name}{suffix}-{device.type}.json", metrics)
    results = {}
    for name in configs:  # every seed's run of each name, seed 0 first
        paths = [out / f"{stem}-run-{name}-{device.type}.json"]
        paths += sorted(out.glob(f"{stem}-run-{name}-seed*-{device.type}.json"))
        for path in paths:
            if path.is_file():
                run = path.name.removeprefix(f"{stem}-run-").removesuffix(f"-{device.type}.json")
                results[run] = json.loads(path.read_text())
    rows = _rows(results)
    print(f"captioning on {device} ({torch.get_num_threads()} thread(s) per run)")
    _print_table(rows)
    for name, metrics in results.items():
        print(
            f"{name}: {metrics['cpu_s']:.0f} CPU s, {metrics['wall_s']:.0f} wall s, best epoch "
            f"{metrics['best_epoch']}/{len(metrics['history'])}, {metrics['training_pairs']} training pairs"
        )
    summary = {
        "device": str(device),
        "quick": args.quick,
        "note": "BLEU on 0-100; CIDEr-D as the COCO evaluation (x10); attention correctness in [0, 1] with "
        "the uniform baseline = box area share; the digits budget is wall seconds of training steps, "
        "process CPU seconds, wall seconds, threads and load averages are in each run's file: "
        f"{stem}-run-<name>[-seedN]-{device.type}.json",
        "goals": {"digits_exact": GOAL_DIGITS_EXACT, "attention_correctness": GOAL_CORRECTNESS},
        "rows": [{"metric": n, "reference": r, "nlp182": v} for n, r, v in rows],
        "runs": {
            name: {
                k: m.get(k)
                for k in (
                    "cpu_s",
                    "wall_s",
                    "train_time_s",
                    "pretrain_time_s",
                    "best_epoch",
                    "training_pairs",
                    "images",
                    "loadavg_before",
                )
            }
            for name, m in results.items()
        },
    }
    summary.update(headline(results))
    atomic_write_json(out / f"{stem}-{device.type}.json", summary)


if __name__ == "__main__":
    main()
