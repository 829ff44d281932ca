"""Why gensim's ``corpus_file`` mode scores higher than its ``LineSentence`` mode on a short run.

``python -m bench.gensim_schedule [--corpus FILE] [--seeds 3] [--epochs 1] [--model sg|cbow]
[--threads 2]`` trains with gensim (``corpus_file`` with 1 and with ``threads`` workers,
``LineSentence`` with ``threads``) and with nlp182 (``threads`` threads; and once more with
``min_alpha`` set to where gensim's multi-worker ``corpus_file`` run ends), same settings
otherwise, and prints the mean WordSim-353 / SimLex-999 / analogy scores. ``--same-schedule``
runs only the like-for-like pair, ``LineSentence`` and nlp182 (with ``--threads 1`` there is no
Hogwild either, so the two differ only in their random draws).

In ``corpus_file`` mode each of ``w`` workers reads ``1/w`` of the file but computes its
learning rate from the whole corpus's word count, so within an epoch the rate falls only ``1/w``
of the way it should: the last rate is ``alpha (1 - 1/w) / epochs`` instead of ``min_alpha``.
On a corpus that one epoch leaves undertrained, that larger rate, not a different algorithm,
gives the higher scores: the 1-worker ``corpus_file`` run (full decay) scores like
``LineSentence`` and nlp182, and nlp182 given the same final rate moves toward the 2-worker run.
Writes ``bench/results/gensim-schedule-cpu.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np

from bench.embeddings_scale import train_gensim
from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all
from nlp182.embeddings.vectors import Vectors
from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
from nlp182.io import atomic_write_json
from nlp182.text.corpus import CorpusSource

RESULTS = Path(__file__).resolve().parent / "results"
QUALITY = ("wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd")
ALPHA = 0.025


def _gensim(args: argparse.Namespace, reader: str, workers: int, seed: int) -> Vectors:
    model, _ = train_gensim(
        args.corpus, sg=args.model == "sg", workers=workers, epochs=args.epochs, seed=seed, reader=reader
    )
    return Vectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32))


def _ours(args: argparse.Namespace, seed: int, min_alpha: float) -> Vectors:
    config = Word2VecConfig(
        model=args.model, epochs=args.epochs, threads=args.threads, device="cpu", seed=seed, alpha=ALPHA,
        min_alpha=min_alpha,
    )  # fmt: skip
    return train_word2vec(CorpusSource(args.corpus), config)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="corpora/wiki.txt")
    parser.add_argument("--eval-dir", default="corpora/eval")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", choices=("sg", "cbow"), default="sg")
    parser.add_argument("--threads", type=int, default=2, help="nlp182's threads and gensim's workers")
    parser.add_argument("--same-schedule", action="store_true", help="only LineSentence and nlp182")
    parser.add_argument("--name", default="gensim-schedule", help="the JSON's name (before -cpu.json)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = EvaluationFiles.in_folder(args.eval_dir)
    workers = args.threads
    final_alpha = ALPHA * (1 - 1 / workers) / args.epochs
    runs = {
        "gensim corpus_file, 1 worker": lambda seed: _gensim(args, "corpus_file", 1, seed),
        f"gensim corpus_file, {workers} workers": lambda seed: _gensim(args, "corpus_file", workers, seed),
        f"gensim LineSentence, {workers} workers": lambda seed: _gensim(args, "lines", workers, seed),
        f"nlp182, {workers} threads": lambda seed: _ours(args, seed, 0.0001),
        f"nlp182, min_alpha {final_alpha:g}": lambda seed: _ours(args, seed, final_alpha),
    }
    if args.same_schedule:
        runs = {name: run for name, run in runs.items() if "LineSentence" in name or "threads" in name}
    results: dict[str, dict] = {}
    for name, train in runs.items():
        rows = [evaluate_all(train(seed), files) for seed in range(1, args.seeds + 1)]
        results[name] = {key: statistics.fmean(row[key] for row in rows) for key in QUALITY}
        results[name]["runs"] = [{key: row[key] for key in QUALITY} for row in rows]
        print(f"{name:<34}" + "".join(f"{results[name][key]:>9.3f}" for key in QUALITY), flush=True)
    path = args.out / f"{args.name}-cpu.json"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        path,
        {
            "corpus": os.path.abspath(args.corpus),
            "epochs": args.epochs,
            "model": args.model,
            "threads": args.threads,
            "seeds": args.seeds,
            "columns": list(QUALITY),
            "multi_worker_corpus_file_final_alpha": final_alpha,
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
