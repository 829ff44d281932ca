"""Beam search against greedy search on a task with long outputs: numbers written out in words.

``python -m bench.beam_search`` writes pairs ``123 -> one hundred twenty three`` (every number
from 0 to 999, shuffled with ``--seed``), trains on them through the CLI with the defaults
and ``--tokenizer char``, and for ``--epochs`` 3 as well (a model early in training, unsure where
to stop; each run's output sent to ``bench/results/logs/beam-search-train-epochs-<E>.log``), then
translates the run's held-out test sources with beam widths ``--widths`` (1 is greedy search) and
writes ``bench/results/beam-search-cpu.json``: exact match per width, and its ratio to greedy's.
A beam that stops once it holds ``K`` finished hypotheses returns short outputs that unlikely
``<eos>`` tokens ended while a likelier one still ran.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.machine import cpu_machine
from nlp182.io import atomic_write_json
from nlp182.seq2seq.data import split_pairs

RESULTS = Path(__file__).resolve().parent / "results"
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def in_words(number: int) -> str:
    """``number`` (0-999) in English words, without "and": 305 -> "three hundred five"."""
    hundreds, rest = divmod(number, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest or not hundreds:
        tens, ones = divmod(rest, 10)
        words += [ONES[rest]] if rest < 20 else [TENS[tens]] + ([ONES[ones]] if ones else [])
    return " ".join(words)


def translate(run: Path, sources: list[str], width: int, scratch: Path) -> list[str]:
    """The run's outputs for ``sources`` with a beam of ``width``, through ``nlp182 translate``."""
    path = scratch / "sources.txt"
    path.write_text("\n".join(sources) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "nlp182.cli", "translate", str(run), "--input", str(path),
               "--beam-width", str(width)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def held_out_test(run: Path, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The run's test split, cut again as the run cut it (its fractions and seed)."""
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    return split_pairs(pairs, config["valid_fraction"], config["test_fraction"], seed=config["seed"])[2]


def measure(pairs: list[tuple[str, str]], epochs: str, args: argparse.Namespace, scratch: Path) -> dict:
    """Train with the defaults (``epochs`` "auto") or that many epochs; exact match per beam width."""
    data = scratch / "numbers.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    run = scratch / f"run-{epochs}"
    command = [sys.executable, "-m", "nlp182.cli", "train", "seq2seq", "--data", str(data), "--out", str(run),
               "--tokenizer", "char", "--seed", str(args.seed)]  # fmt: skip
    command += [] if epochs == "auto" else ["--epochs", epochs]
    log_path = args.out / "logs" / f"beam-search-train-epochs-{epochs}.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, check=True)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    test = held_out_test(run, pairs)
    targets = [t for _, t in test]
    widths = {}
    for width in args.widths:
        outputs = translate(run, [s for s, _ in test], width, scratch)
        exact = sum(o.strip() == t for o, t in zip(outputs, targets, strict=True)) / len(targets)
        widths[str(width)] = {"exact_match": round(exact, 4)}
        print(f"epochs {epochs:>4}, beam {width:>3}: exact match {exact:.3f} on {len(targets)} held-out "
              "numbers", flush=True)  # fmt: skip
    greedy = widths[str(min(args.widths))]["exact_match"]
    for row in widths.values():
        row["ratio_to_greedy"] = round(row["exact_match"] / greedy, 3) if greedy else None
    return {"widths": widths, "test_pairs": len(targets), "train_log": log_path.name,
            "epochs_trained": metrics.get("epochs_run", metrics.get("best_epoch"))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="shuffles the pairs")
    parser.add_argument("--widths", nargs="+", type=int, default=[1, 2, 5, 10], help="beam widths, 1: greedy")
    parser.add_argument("--epochs", nargs="+", default=["auto", "3"],
                        help="auto (the defaults) and epoch counts (3: a model unsure where to stop)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and the logs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    numbers = list(range(1000))
    random.Random(args.seed).shuffle(numbers)
    pairs = [(str(n), in_words(n)) for n in numbers]
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch_dir:
        rows = {epochs: measure(pairs, epochs, args, Path(scratch_dir)) for epochs in args.epochs}
    result = {"task": "numbers 0-999 to English words, char tokenizer, CLI defaults", "pairs": len(pairs),
              "rows": rows,
              "machine": cpu_machine(load_before)}  # fmt: skip
    atomic_write_json(args.out / "beam-search-cpu.json", result)


if __name__ == "__main__":
    main()
