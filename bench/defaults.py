"""A user's first runs: every model trained through the CLI with its defaults and no tuning flag.

``python -m bench.defaults`` runs, one at a time, each command of :func:`commands` as a user would
type it (``python -m nlp182.cli ...``, its output sent to ``bench/results/logs/defaults-<name>.log``,
the run folder in ``--runs``), then reads each run's ``metrics.json`` and writes
``bench/results/defaults-<device>.json`` with every goal beside what was measured:

- ``digits-seed0`` .. ``digits-seed4``: ``--data digits --time-budget-s 600`` on 2 threads: test exact
  >= 0.95 and attention correctness >= 0.6 on every seed;
- ``shapes``: ``--data shapes --time-budget-s 600``: exact >= 0.5, attention correctness >= 2 x uniform;
- ``cmudict``: ``--data cmudict --time-budget-s 2700 --threads 2``: test WER <= 28%, PER <= 7% (beam 5);
- ``user300-seed0`` .. ``seed2``: a generated Karpathy JSON of 300 training images of squares
  captioned by size and colour (:func:`nlp182.captioning.synthetic.write_user_set`), ``--epochs 40``:
  test exact >= 0.9;
- ``user60``: the 60-image first try (48 training images), ``--epochs 150``: either it learns
  (exact >= 0.9) or the run ends with a warning, never silently.

Nothing is tuned per seed: the commands differ only in ``--seed``. ``--only NAME ...`` runs some of
them (the summary still reads every run folder present); ``--print`` prints the commands and
exits; ``--summarise`` only reads the run folders. Timings need the machine to itself: the
captioning budgets are wall seconds of training steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nlp182.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {
    "digits_exact": 0.95,
    "digits_attention_correctness": 0.6,
    "shapes_exact": 0.5,
    "shapes_correctness_over_uniform": 2.0,
    "cmudict_wer": 0.28,
    "cmudict_per": 0.07,
    "user_exact": 0.9,
}
DIGITS_SEEDS = (0, 1, 2, 3, 4)
USER_SEEDS = (0, 1, 2)
#: Generated user sets: (training, validation, test) images.
USER_SETS = {"user300": (300, 50, 50), "user60": (48, 6, 6)}


def commands(runs: Path, data: Path) -> dict[str, list[str]]:
    """Each run's CLI arguments (after ``nlp182``), as a user would type them; ``runs`` holds the
    run folders, ``data`` the generated user sets."""
    found: dict[str, list[str]] = {}
    for seed in DIGITS_SEEDS:
        found[f"digits-seed{seed}"] = ["train", "caption", "--data", "digits", "--time-budget-s", "600",
                                       "--seed", str(seed), "--threads", "2"]  # fmt: skip
    found["shapes"] = ["train", "caption", "--data", "shapes", "--time-budget-s", "600", "--threads", "2"]
    found["cmudict"] = ["train", "seq2seq", "--data", "cmudict", "--time-budget-s", "2700", "--threads", "2"]
    for seed in USER_SEEDS:
        dataset = data / f"user300-seed{seed}" / "dataset.json"
        found[f"user300-seed{seed}"] = ["train", "caption", "--data", str(dataset), "--epochs", "40",
                                        "--threads", "2"]  # fmt: skip
    found["user60"] = ["train", "caption", "--data", str(data / "user60" / "dataset.json"), "--epochs", "150",
                       "--threads", "2"]  # fmt: skip
    return {name: [*argv, "--out", str(runs / name), "--overwrite"] for name, argv in found.items()}


def write_user_data(data: Path, sizes: dict[str, tuple[int, int, int]] = USER_SETS) -> None:
    """The generated Karpathy sets the ``user*`` runs read (written once, from fixed seeds), of
    ``sizes`` (training, validation, test) images."""
    from nlp182.captioning.synthetic import write_user_set

    for seed in USER_SEEDS:
        if not (data / f"user300-seed{seed}" / "dataset.json").is_file():
            write_user_set(data / f"user300-seed{seed}", *sizes["user300"], seed=seed)
    if not (data / "user60" / "dataset.json").is_file():
        write_user_set(data / "user60", *sizes["user60"], seed=0)


def judge(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """What one run measured beside its goals, and whether it met them."""
    warnings = metrics.get("warnings", [])
    row: dict[str, Any] = {"name": name, "warnings": warnings, "chosen": metrics.get("chosen", {})}
    if name == "cmudict":
        test = metrics["test"]
        row.update(wer=test["wer"], per=test["per"], greedy=test["greedy"], epochs=len(metrics["history"]))
        row["met"] = test["wer"] <= GOALS["cmudict_wer"] and test["per"] <= GOALS["cmudict_per"]
        return row
    greedy = metrics["test"]["greedy"]
    exact, correctness, uniform = (
        greedy["exact_match"],
        greedy["attention_correctness"],
        greedy["uniform_baseline"],
    )
    row.update(exact=exact, attention_correctness=correctness, uniform_baseline=uniform,
               beam={k: v["exact_match"] for k, v in metrics["test"].items() if k != "greedy"},
               epochs=len(metrics["history"]), best_epoch=metrics["best_epoch"])  # fmt: skip
    if name.startswith("digits"):
        row["met"] = (
            exact >= GOALS["digits_exact"] and (correctness or 0) >= GOALS["digits_attention_correctness"]
        )
    elif name == "shapes":
        ratio = (correctness or 0) / uniform if uniform else 0.0
        row["met"] = exact >= GOALS["shapes_exact"] and ratio >= GOALS["shapes_correctness_over_uniform"]
    elif name == "user60":
        row["met"] = exact >= GOALS["user_exact"] or bool(warnings)  # learns, or says it did not
    else:
        row["met"] = exact >= GOALS["user_exact"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/defaults"), help="folder of the run folders")
    parser.add_argument("--only", nargs="*", default=None, help="run only these (names as in --print)")
    parser.add_argument("--print", action="store_true", help="print the commands and exit")
    parser.add_argument("--summarise", action="store_true", help="only read the run folders, train nothing")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON and logs")
    args = parser.parse_args()
    data = args.runs / "data"
    runs = commands(args.runs, data)
    if args.print:
        for name, argv in runs.items():
            log = os.path.relpath(args.out / "logs" / f"defaults-{name}.log")
            print(f"nlp182 {shlex.join(argv)} > {log} 2>&1")
        return
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    write_user_data(data)
    loads: dict[str, list[float]] = {}
    for name in [] if args.summarise else (args.only or list(runs)):
        loads[name] = [round(x, 2) for x in os.getloadavg()]
        start = time.perf_counter()
        with open(args.out / "logs" / f"defaults-{name}.log", "w", encoding="utf-8") as log:
            code = subprocess.run([sys.executable, "-m", "nlp182.cli", *runs[name]], stdout=log,
                                  stderr=subprocess.STDOUT, check=False).returncode  # fmt: skip
        print(f"{name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for name, argv in runs.items():
        path = args.runs / name / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text(encoding="utf-8"))
            rows.append({**judge(name, metrics), "command": f"nlp182 {shlex.join(argv)}",
                         "device": metrics.get("device"), "loadavg_before": loads.get(name)})  # fmt: skip
    for row in rows:
        shown = {
            k: row[k]
            for k in ("exact", "attention_correctness", "uniform_baseline", "wer", "per")
            if k in row
        }
        print(
            f"{'met ' if row['met'] else 'MISS'} {row['name']:<16} {shown} warnings: {len(row['warnings'])}"
        )
    device = rows[0]["device"].split(":")[0] if rows and rows[0].get("device") else "cpu"
    atomic_write_json(args.out / f"defaults-{device}.json", {
        "note": "each run through the CLI with its defaults, no tuning flag; logs: logs/defaults-<name>.log",
        "goals": GOALS, "commit": _commit(), "runs": rows,
        "machine": _machine(),
    })  # fmt: skip


def _machine() -> dict[str, Any]:
    import torch

    return {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def _commit() -> str | None:
    """The checked-out commit the runs trained with (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           check=False, cwd=here)  # fmt: skip
    return found.stdout.strip() or None


if __name__ == "__main__":
    main()
