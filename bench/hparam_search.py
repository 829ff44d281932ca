"""Random search (log-uniform, coarse then fine) against grid search on the same budget, digits MLP.

``python -m bench.hparam_search [--budget 16] [--epochs 6] [--seeds 3]`` tunes the learning rate
and weight decay of SGD with momentum for a 64-64-10 MLP on scikit-learn's digits, every trial a
full Trainer run scored by validation accuracy. Grid search spends the budget on a sqrt(B) x sqrt(B)
grid; random search on B/2 coarse trials plus B/2 inside the region of the best three. Prints the
best validation accuracy of each, ratio first, and writes ``bench/results/hparam_search-<device>.json``.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from nlp182.course.digits import classification_loss, digits_datasets
from nlp182.device import select_device
from nlp182.errors import NonFiniteError
from nlp182.io import atomic_write_json
from nlp182.optim import SGD
from nlp182.train import Trainer, TrainerConfig
from nlp182.train.hparam import LogUniform, best_trial, coarse_to_fine, grid_search

RESULTS = Path(__file__).resolve().parent / "results"
SPACE = {"lr": LogUniform(1e-4, 3.0), "weight_decay": LogUniform(1e-6, 1e-1)}


def make_objective(epochs: int, device: str):
    """params -> (validation accuracy, metrics) by training a fresh MLP with the Trainer."""
    train, valid = digits_datasets(seed=0)

    def objective(params: dict) -> tuple[float, dict[str, float]]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"])
        loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        config = TrainerConfig(epochs=epochs, device=device, progress=False, seed=0)
        try:
            history = Trainer(model, opt, classification_loss, config).fit(
                loader, DataLoader(valid, batch_size=512)
            )
        except NonFiniteError:  # the Trainer stops a run whose loss became inf/NaN
            return 0.0, {"diverged": 1.0}
        return history[-1]["valid_accuracy"], {"valid_loss": history[-1]["valid_loss"]}

    return objective


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=16, help="trials per method (a square for the grid)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3, help="independent random-search repeats")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    side = math.isqrt(args.budget)
    objective = make_objective(args.epochs, args.device)
    start = time.perf_counter()
    grid = grid_search(objective, SPACE, side)
    grid_best = best_trial(grid)
    randoms = []
    for seed in range(args.seeds):
        trials = coarse_to_fine(objective, SPACE, args.budget // 2, args.budget - args.budget // 2, seed=seed)
        best = best_trial(trials)
        randoms.append(
            {
                "seed": seed,
                "best_valid_accuracy": best.score,
                "best_params": best.params,
                "coarse_best": best_trial([t for t in trials if t.stage == "coarse"]).score,
            }
        )
    random_mean = statistics.mean(r["best_valid_accuracy"] for r in randoms)
    elapsed = time.perf_counter() - start
    device = select_device(args.device).type
    print(
        f"\nbest validation accuracy, {args.budget} trials each, digits MLP, {args.epochs} epochs, {device}"
    )
    print(f"{'method':<34} {'ratio':>6} {'best acc':>9}  best params")
    print(
        f"{'random coarse->fine (mean of seeds)':<34} {random_mean / grid_best.score:6.3f} {random_mean:9.4f}"
    )
    for r in randoms:
        params = ", ".join(f"{k}={v:.3g}" for k, v in r["best_params"].items())
        print(
            f"{'  seed ' + str(r['seed']):<34} {r['best_valid_accuracy'] / grid_best.score:6.3f} "
            f"{r['best_valid_accuracy']:9.4f}  {params} (coarse round alone {r['coarse_best']:.4f})"
        )
    grid_params = ", ".join(f"{k}={v:.3g}" for k, v in grid_best.params.items())
    print(f"{f'grid {side}x{side} (reference)':<34} {1.0:6.3f} {grid_best.score:9.4f}  {grid_params}")
    print(f"({elapsed:.0f} s)")
    atomic_write_json(
        RESULTS / f"hparam_search-{device}.json",
        {
            "benchmark": "hparam_search",
            "device": device,
            "budget": args.budget,
            "epochs": args.epochs,
            "space": {k: [v.low, v.high] for k, v in SPACE.items()},
            "grid": {
                "best_valid_accuracy": grid_best.score,
                "best_params": grid_best.params,
                "all": [{"params": t.params, "valid_accuracy": t.score} for t in grid],
            },
            "random_coarse_to_fine": {"mean_best_valid_accuracy": random_mean, "runs": randoms},
            "ratio_random_over_grid": random_mean / grid_best.score,
            "seconds": elapsed,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
