"""Two seeded runs of the digits captioning recipe with ``--deterministic``: identical metrics?

``python -m bench.deterministic --device cuda --epochs 2`` trains ``bench.captioning``'s digits
recipe (a fixed number of epochs instead of its time budget, which would make the step count depend
on the clock) three times with one seed: twice with ``deterministic=True`` and once without, and
writes ``deterministic-<device>.json``: whether the two deterministic runs' metrics (every validation
record and the test scores, clock readings left out) are identical, whether the run without the flag
matched them too, and the wall seconds of each (what the flag costs).

The deterministic runs come first: cuBLAS reads its workspace setting once, when the process makes
its first handle, so the run without the flag keeps the deterministic workspace, and its cost ratio
measures the deterministic kernels, not the workspace setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from bench.captioning import run_configs, train_one
from nlp182.device import select_device
from nlp182.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def untimed(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics two runs of one seed should share: validation history and test scores, without
    clock readings (rates, seconds)."""

    def strip(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.endswith(("_per_s", "_s", "seconds"))}

    return {"history": [strip(record) for record in metrics["history"]], "test": strip(metrics["test"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="where to train: auto, cpu, cuda or mps")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the pipeline)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every run")
    parser.add_argument("--no-default", action="store_true",
                        help="skip the run without the flag (its cost is then not measured)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = select_device(args.device)
    recipe = run_configs(args.quick, str(device), args.seed)["digits"]
    recipe = dataclasses.replace(recipe, epochs=args.epochs, time_budget_s=None, early_stopping_patience=None)
    if args.quick:  # smaller still than the captioning bench's quick sizes: three runs, not one
        recipe = dataclasses.replace(recipe, train_images=24, valid_images=8, test_images=8, pretrain_steps=0,
                                     num_overlays=0)
    runs = {}
    plan = [("deterministic-1", True), ("deterministic-2", True)]
    plan += [] if args.no_default else [("default", False)]
    for name, deterministic in plan:
        metrics = train_one(name, dataclasses.replace(recipe, deterministic=deterministic), None)
        runs[name] = {"metrics": untimed(metrics), "wall_s": metrics["wall_s"]}
        exact = {search: scores["exact_match"] for search, scores in metrics["test"].items()}
        print(f"  {name}: {metrics['wall_s']:.1f} s, test exact match {exact}", flush=True)
    identical = runs["deterministic-1"]["metrics"] == runs["deterministic-2"]["metrics"]
    result = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else device.type,
        "epochs": args.epochs,
        "seed": args.seed,
        "deterministic_runs_identical": identical,
        "default_run_matches": runs["default"]["metrics"] == runs["deterministic-1"]["metrics"]
        if "default" in runs else None,
        "deterministic_cost_ratio": runs["deterministic-1"]["wall_s"] / runs["default"]["wall_s"]
        if "default" in runs else None,
        "runs": runs,
    }
    cost = result["deterministic_cost_ratio"]
    print(f"  deterministic runs identical: {identical}" + (f"; {cost:.2f}x the seconds" if cost else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"deterministic-{device.type}.json"
    atomic_write_json(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
