"""Grapheme-to-phoneme on CMUdict: train the recurrent and Transformer translators, report WER / PER.

``python -m bench.seq2seq_cmudict`` trains each preset (``--configs rnn,transformer``) with
``train_seq2seq`` (the code behind ``nlp182 train seq2seq --data cmudict``) for at most
``--time-budget-s`` seconds of training steps, scores the held-out test words with beam search
(width 5) and greedy search, prints a table (ratio to the goal first, then the goal, then
nlp182) with the published systems beside, and writes
``bench/results/seq2seq-cmudict-<device>[-<tag>].json``. ``--runs RUN ...`` adds run folders
trained through the CLI instead of training here. ``--dry`` trains tiny models for a few
seconds on a slice of the data (a smoke test for CI; results go to a temporary folder).

The split is this package's (a hash of the word, ~90/5/5, all pronunciations kept as
references), not the fixed split of the papers: the published figures are a guide, not a
like-for-like comparison. The machine's cores are shared, so times here are inflated by
whatever else ran; the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from nlp182.device import select_device
from nlp182.io import atomic_write_json, read_json
from nlp182.seq2seq import ModelConfig, Seq2SeqConfig, train_seq2seq
from nlp182.seq2seq.cmudict import cmudict_splits
from nlp182.seq2seq.defaults import CMUDICT_RECIPE, MODEL_FIELDS

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = {"wer": 0.28, "per": 0.07}
PUBLISHED = [
    {"system": "Yao & Zweig 2015, bi-LSTM", "wer": 0.2355, "per": 0.0545, "split": "fixed CMUdict split"},
    {"system": "Toshniwal & Livescu 2016, attention", "wer": 0.2024, "per": 0.0469, "split": "fixed split"},
    {"system": "CMU Sphinx g2p-seq2seq Transformer", "wer": 0.202, "per": None, "split": "fixed split"},
    {"system": "CMU Sphinx g2p-seq2seq Transformer", "wer": 0.31, "per": None, "split": "latest CMUdict"},
    {"system": "Phonetisaurus", "wer": 0.244, "per": None, "split": "fixed split"},
    {"system": "Phonetisaurus", "wer": 0.339, "per": None, "split": "latest CMUdict"},
]
#: The configurations compared (the CLI flags of each are in the G2P guide, docs/howto/seq2seq.md):
#: ``rnn`` is what ``--data cmudict`` trains by default
#: (:data:`nlp182.seq2seq.defaults.CMUDICT_RECIPE`; ``--epochs`` here replaces its 40).
PRESETS: dict[str, dict[str, Any]] = {
    "rnn": {
        "model": ModelConfig(**{k: v for k, v in CMUDICT_RECIPE.items() if k in MODEL_FIELDS}),
        **{k: v for k, v in CMUDICT_RECIPE.items() if k not in MODEL_FIELDS and k != "epochs"},
    },
    "transformer": {
        "model": ModelConfig(
            architecture="transformer", hidden_size=256, num_layers=3, num_heads=4, ffn_size=1024, dropout=0.1
        ),
        "batch_size": 128, "lr": 1e-3, "lr_schedule": "warmup-invsqrt", "warmup_steps": 1000,
        "label_smoothing": 0.1, "max_len": 40,
    },
}  # fmt: skip


def _dry_data(folder: Path) -> dict[str, str]:
    """Write a slice of the CMUdict splits as TSV files (600 / 100 / 100 pairs) for a quick run."""
    paths = {}
    names, sizes = ("data", "valid_data", "test_data"), (600, 100, 100)
    for name, pairs, size in zip(names, cmudict_splits(), sizes, strict=True):
        path = folder / f"{name}.tsv"
        path.write_text("".join(f"{w}\t{p}\n" for w, p in pairs[:size]), encoding="utf-8")
        paths[name] = str(path)
    return {**paths, "source_tokenizer": "char", "target_tokenizer": "word", "metrics": "wer,per"}


def _summary(name: str, metrics: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    test = metrics["test"]
    return {
        "name": name,
        "architecture": config["model"].get("architecture", "rnn"),
        "device": metrics["device"],
        "threads": metrics.get("threads"),
        "parameters": metrics["parameters"],
        "epochs": len(metrics["history"]),
        "best_epoch": metrics["best_epoch"],
        "train_time_s": metrics["train_time_s"],
        "train_target_tokens_per_s": metrics["train_target_tokens_per_s"],
        "test_wer_beam": test["wer"],
        "test_per_beam": test["per"],
        "test_wer_greedy": test["greedy"]["wer"],
        "test_per_greedy": test["greedy"]["per"],
        "beam_width": test["beam_width"],
        "test_words": test["items"],
        "pairs": metrics["pairs"],
        "config": config,
        "history": metrics["history"],
    }


def train_preset(name: str, args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    """Train one preset (or its tiny dry version) and summarise its run."""
    settings = dict(PRESETS[name])
    extra: dict[str, Any] = {"data": "cmudict"}
    if args.dry:
        extra = _dry_data(tmp)
        small = {"hidden_size": 32, "embed_dim": 16, "num_layers": 1, "ffn_size": 64}
        model = settings["model"]
        settings["model"] = ModelConfig(**{**model.__dict__, **small})
        settings["warmup_steps"] = min(settings.get("warmup_steps", 0), 5)
    config = Seq2SeqConfig(
        **settings, **extra, epochs=1 if args.dry else args.epochs, time_budget_s=args.time_budget_s,
        threads=args.threads or None, device=str(device), progress=False, num_heatmaps=0,
    )  # fmt: skip
    metrics = train_seq2seq(config, tmp / name)
    return _summary(name, metrics, config.to_dict())


def _table(runs: list[dict[str, Any]]) -> None:
    print(f"{'WER/goal':>8} {'PER/goal':>8}  {'system':<34} {'goal WER':>8} {'WER':>7} {'PER':>7} "
          f"{'greedy WER':>10} {'greedy PER':>10} {'train s':>8} {'tok/s':>7}")  # fmt: skip
    for run in runs:
        wer, per = run["test_wer_beam"], run["test_per_beam"]
        label = f"nlp182 {run['name']} ({run['device']}, {run['threads']} thr)"
        print(
            f"{wer / GOAL['wer']:8.3f} {per / GOAL['per']:8.3f}  {label:<34} {GOAL['wer']:8.3f} {wer:7.4f} "
            f"{per:7.4f} {run['test_wer_greedy']:10.4f} {run['test_per_greedy']:10.4f} "
            f"{run['train_time_s']:8.0f} {run['train_target_tokens_per_s']:7.0f}"
        )
    for ref in PUBLISHED:
        per = f"{ref['per']:7.4f}" if ref["per"] is not None else f"{'-':>7}"
        print(f"{'':8} {'':8}  {ref['system'][:34]:<34} {'':8} {ref['wer']:7.4f} {per}  ({ref['split']})")


def _write(
    path: Path, device: torch.device, load_before: tuple[float, ...], runs: list[dict[str, Any]]
) -> None:
    """Write the result JSON: task, goal, published figures, machine and the runs so far."""
    result = {
        "task": "grapheme-to-phoneme, CMUdict (cmudict package), stress removed, hash split ~90/5/5, "
        "WER: word wrong unless it matches any listed pronunciation; PER: edits to the closest one",
        "goal": GOAL,
        "published": PUBLISHED,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "note": "the development machine's 2 cores are shared: times there are inflated by other work",
        },
        "runs": runs,
    }
    atomic_write_json(path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="rnn,transformer", help=f"presets among {', '.join(PRESETS)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (0: PyTorch's default)")
    parser.add_argument("--time-budget-s", type=float, default=2700.0, help="seconds of training per preset")
    parser.add_argument("--epochs", type=int, default=40, help="most epochs per preset")
    parser.add_argument("--runs", nargs="*", default=[], help="summarise these CLI run folders instead")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--results", help="folder of the JSON (default: bench/results; --dry: a temp dir)")
    parser.add_argument("--dry", action="store_true", help="tiny models, 1 epoch, a slice of the data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = select_device(args.device)
    load_before = os.getloadavg()
    results = Path(args.results or (tempfile.mkdtemp(prefix="cmudict-dry-") if args.dry else RESULTS))
    tag = f"-{args.tag}" if args.tag else ""
    path = results / f"seq2seq-cmudict-{device.type}{tag}.json"
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.runs:
            for folder in args.runs:
                run = Path(folder)
                metrics, config = read_json(run / "metrics.json"), read_json(run / "config.json")
                runs.append(_summary(run.name, metrics, config))
        for name in [] if args.runs else [c.strip() for c in args.configs.split(",") if c.strip()]:
            start = time.perf_counter()
            summary = train_preset(name, args, device, Path(tmp))
            runs.append({**summary, "wall_s": time.perf_counter() - start})
            _write(path, device, load_before, runs)  # each finished run is kept even if a later one fails
    _table(runs)
    _write(path, device, load_before, runs)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
