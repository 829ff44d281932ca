"""Step time of nlp182.optim beside torch.optim (foreach) on a ~25M-parameter model.

``python -m bench.optim [--steps 15] [--device auto]`` prints one table, ratios first
(ours / torch; the goal is <= 1.10), and writes ``bench/results/optim-<device>.json``.
Gradients are fixed random tensors so only ``optimizer.step()`` is timed. Steps alternate between
the two implementations and the median per-step time is reported, which keeps a shared, noisy
machine from favouring whichever ran during a quiet moment.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from nlp182 import optim as ours
from nlp182.device import select_device
from nlp182.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 1.10

CASES: list[tuple[str, str, dict]] = [
    ("SGD", "SGD", {"lr": 0.01}),
    ("SGD momentum+wd", "SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}),
    ("SGD nesterov", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("RMSprop", "RMSprop", {"lr": 1e-3}),
    ("RMSprop centered+mom", "RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.9}),
    ("Adagrad", "Adagrad", {"lr": 1e-2}),
    ("Adam", "Adam", {"lr": 1e-3}),
    ("Adam wd", "Adam", {"lr": 1e-3, "weight_decay": 1e-4}),
    ("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
]


def build_model(device: torch.device, width: int = 2048, depth: int = 6) -> nn.Module:
    """An MLP of ``depth`` square layers: 6 x 2048² ≈ 25.2M parameters."""
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)]).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(
    make_a: Callable, make_b: Callable, device: torch.device, steps: int, width: int = 2048
) -> tuple[float, float]:
    """Median seconds per step of two optimizers built on two identical models, steps interleaved."""
    models = [build_model(device, width), build_model(device, width)]
    for model in models:
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-3
    opts = [make_a(models[0].parameters()), make_b(models[1].parameters())]
    for opt in opts:  # warm-up: state allocation, kernel caches
        opt.step()
        opt.step()
    times: list[list[float]] = [[], []]
    for i in range(2 * steps):
        which = i % 2 if (i // 2) % 2 == 0 else 1 - i % 2  # ABBA order cancels drift
        _sync(device)
        start = time.perf_counter()
        opts[which].step()
        _sync(device)
        times[which].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per optimizer and implementation")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=int, default=2048, help="width of the 6 layers (2048: ~25M params)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    params = sum(p.numel() for p in build_model(torch.device("cpu"), args.width).parameters())
    rows = []
    for label, name, kwargs in CASES:
        mine, ref = time_pair(
            lambda p, n=name, k=kwargs: getattr(ours, n)(p, **k),
            lambda p, n=name, k=kwargs: getattr(torch.optim, n)(p, foreach=True, **k),
            device,
            args.steps,
            args.width,
        )
        rows.append({"optimizer": label, "ratio": mine / ref, "nlp182_ms": 1e3 * mine, "torch_ms": 1e3 * ref})
        print(
            f"  {label:<22} ratio {mine / ref:5.3f}  nlp182 {1e3 * mine:8.2f} ms  torch {1e3 * ref:8.2f} ms",
            flush=True,
        )
    print(
        f"\noptimizer step time, {params / 1e6:.1f}M parameters, {device.type}, median of {args.steps} steps"
    )
    print(f"{'optimizer':<22} {'ratio':>6} {'nlp182 ms':>10} {'torch ms':>10}")
    for row in rows:
        mark = "" if row["ratio"] <= GOAL else "  (over goal)"
        timings = f"{row['nlp182_ms']:10.2f} {row['torch_ms']:10.2f}"
        print(f"{row['optimizer']:<22} {row['ratio']:6.3f} {timings}{mark}")
    worst = max(row["ratio"] for row in rows)
    print(f"worst ratio {worst:.3f} (goal <= {GOAL})")
    result = {
        "benchmark": "optim",
        "device": device.type,
        "parameters": params,
        "steps": args.steps,
        "goal_ratio": GOAL,
        "worst_ratio": worst,
        "rows": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"optim-{device.type}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
