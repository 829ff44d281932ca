"""word2vec over several processes: quality and speed against one process, per kernel.

``python -m bench.distributed`` trains skip-gram on ``--corpus`` (the demo corpus by default) with
its defaults through the CLI under ``torchrun --standalone --nproc-per-node N`` for each kernel
(``native``, ``batched``) and each N of ``--procs`` (1 is the reference: the same command as one
process), each run's output sent to ``bench/results/logs/distributed-<kernel>-<N>.log``. It reads
each run's ``metrics.json`` and writes ``bench/results/distributed-cpu.json`` with WordSim-353,
SimLex-999 and analogy accuracy, and their ratio to one process of the same kernel. Every
process gets ``--threads`` threads: on a machine with fewer cores than processes x threads the
words/s say nothing of the speed-up at scale, only the quality does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_machine
from nlp182.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
#: The scores compared, by their names in a run's ``metrics.json`` ("eval").
SCORES = {
    "wordsim353": "wordsim353_spearman",
    "simlex999": "simlex999_spearman",
    "analogy": "analogy_3cosadd",
}


def command(kernel: str, procs: int, corpus: str, out: Path, threads: int) -> list[str]:
    """The CLI a user types: ``torchrun ... -m nlp182.cli train w2v`` with no tuning flag."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
            "-m", "nlp182.cli", "train", "w2v", "--corpus", corpus, "--out", str(out),
            "--kernel", kernel, "--threads", str(threads)]  # fmt: skip


def scores_of(metrics: dict) -> dict[str, float]:
    """WordSim-353 and SimLex-999 Spearman and analogy accuracy from a run's ``metrics.json``."""
    measured = metrics.get("eval", {})
    return {name: round(float(measured[key]), 4) for name, key in SCORES.items() if key in measured}


def run_one(kernel: str, procs: int, corpus: str, threads: int, scratch: Path, logs: Path) -> dict:
    """Train once; the scores, the training words/s and the wall seconds of the command."""
    out = scratch / f"{kernel}-{procs}"
    log_path = logs / f"distributed-{kernel}-{procs}.log"
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        done = subprocess.run(command(kernel, procs, corpus, out, threads), stdout=log_file,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kernel} with {procs} processes failed (rc {done.returncode}): see {log_path}")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    train = metrics["train"]
    return {"scores": scores_of(metrics), "words_per_second": round(train["words_per_second"]),
            "epochs": train["epochs"], "wall_seconds": round(wall, 1),
            "log": log_path.name}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="corpora/wiki.txt", help="text file")
    parser.add_argument("--kernels", nargs="+", default=["native", "batched"], help="kernels to compare")
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2, 4], help="process counts (1 first)")
    parser.add_argument("--threads", type=int, default=1, help="threads of each process")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and the logs")
    args = parser.parse_args()
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rows: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kernel in args.kernels:
            rows[kernel] = {}
            for procs in args.procs:
                row = run_one(kernel, procs, args.corpus, args.threads, Path(scratch), logs)
                reference = rows[kernel].get(str(min(args.procs)), row)["scores"]
                row["ratio_to_one_process"] = {
                    name: round(value / reference[name], 3)
                    for name, value in row["scores"].items()
                    if reference.get(name)
                }
                rows[kernel][str(procs)] = row
                scores = "  ".join(f"{name} {value:.3f} ({row['ratio_to_one_process'][name]:.2f}x)"
                                   for name, value in row["scores"].items())  # fmt: skip
                print(f"{kernel:<8} {procs} processes: {scores}  {row['words_per_second']:>10,} words/s",
                      flush=True)  # fmt: skip
    result = {"corpus": args.corpus, "threads_per_process": args.threads, "rows": rows,
              "machine": cpu_machine(load_before)}  # fmt: skip
    atomic_write_json(args.out / "distributed-cpu.json", result)


if __name__ == "__main__":
    main()
