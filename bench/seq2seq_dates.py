"""Date normalisation end to end: train on the CPU (or GPU), report held-out exact match and time.

``python -m bench.seq2seq_dates`` trains the default :class:`Seq2SeqConfig` (bi-GRU encoder,
additive attention, input feeding) on 20k generated dates, scores 1000 held-out dates (disjoint
from training dates) with greedy and beam search, prints the table (goal beside measured, ratio
first), writes ``bench/results/seq2seq-dates-<device>.json`` and copies the attention heatmaps
of a few test dates next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import torch

from nlp182.device import select_device
from nlp182.io import atomic_write_bytes, atomic_write_json
from nlp182.seq2seq import Seq2SeqConfig, Translator, train_seq2seq
from nlp182.seq2seq.data import date_splits
from nlp182.seq2seq.train import evaluate_test

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_EXACT_MATCH = 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs (valid exact match is ~1.0 after 2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (0: torch's default); small RNN steps run best on 1",
    )
    parser.add_argument("--quick", action="store_true", help="200 training dates, 1 epoch: checks it runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and figures")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = select_device(args.device)
    config = Seq2SeqConfig(epochs=args.epochs, device=str(device), progress=False)
    if args.quick:
        config = dataclasses.replace(config, epochs=1, date_train=200, date_valid=20, date_test=20)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        metrics = train_seq2seq(config, run)
        wall = time.perf_counter() - start
        translator = Translator.load(run, device=str(device))
        _, _, test_pairs = date_splits(
            config.date_train, config.date_valid, config.date_test, seed=config.seed
        )
        names = ["exact_match", "bleu"]
        beam, _ = evaluate_test(translator, test_pairs, names=names)
        greedy, _ = evaluate_test(translator, test_pairs, beam_width=1, names=names)
        for index, png in enumerate(sorted((run / "heatmaps").glob("*.png"))):
            atomic_write_bytes(args.out / f"seq2seq-dates-heatmap-{index}.png", png.read_bytes())
        atomic_write_bytes(args.out / "seq2seq-dates-loss.png", (run / "train" / "loss.png").read_bytes())
    rows = [
        ("test exact match (beam 5)", GOAL_EXACT_MATCH, beam["exact_match"]),
        ("test exact match (greedy)", GOAL_EXACT_MATCH, greedy["exact_match"]),
    ]
    print(
        f"date normalisation on {device} ({torch.get_num_threads()} threads), "
        f"{metrics['parameters']} parameters"
    )
    print(f"{'ratio':>7}  {'metric':<28} {'goal':>8} {'nlp182':>8}")
    for name, goal, value in rows:
        print(f"{value / goal:7.4f}  {name:<28} {goal:8.4f} {value:8.4f}")
    print(
        f"test BLEU (beam): {beam['bleu']:.2f}; training {metrics['train_time_s']:.1f} s "
        f"({config.epochs} epochs, {metrics['train_target_tokens_per_s']:.0f} target tokens/s); "
        f"whole run {wall:.1f} s"
    )
    result = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "config": config.to_dict(),
        "goal_exact_match": GOAL_EXACT_MATCH,
        "test_exact_match_beam": beam["exact_match"],
        "test_exact_match_greedy": greedy["exact_match"],
        "test_bleu_beam": beam["bleu"],
        "test_bleu_greedy": greedy["bleu"],
        "train_time_s": metrics["train_time_s"],
        "wall_time_s": wall,
        "train_target_tokens_per_s": metrics["train_target_tokens_per_s"],
        "parameters": metrics["parameters"],
        "pairs": metrics["pairs"],
        "history": metrics["history"],
        "examples": beam["examples"],
    }
    atomic_write_json(args.out / f"seq2seq-dates-{device.type}.json", result)


if __name__ == "__main__":
    main()
