"""Embeddings side by side with gensim on the default corpus, in one run.

``--large CORPUS`` switches to the large-corpus mode (``bench.embeddings_scale``: text file to
saved vectors, peak RSS, LSA stages and SVD solvers on a 20M-token corpus), ``--quick`` runs that
mode on a slice of the default corpus in a minute or two (a dry run for CI), and ``--device cuda``
measures the batched PyTorch kernel on a GPU.

``python -m bench.embeddings [--seeds 3] [--corpus corpora/wiki.txt]`` trains, for each seed,
gensim's Word2Vec and nlp182's trainer (on a CPU both its C kernel and its batched PyTorch step;
on a GPU the batched step) with the same hyperparameters, the same tokens and the same number of
threads, for skip-gram and CBOW; then LSA
(PPMI + SVD) with the torch and the scikit-learn SVD. It prints one table, ratios first (nlp182 /
gensim words per second; quality differences as nlp182 - gensim), and writes
``bench/results/embeddings-<device>.json``. Quality figures are means over the seeds (a corpus
this small moves them by about +-0.02 from seed to seed). Training time excludes vocabulary
building for both libraries (and the one-off build of the C kernel).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nlp182.device import select_device
from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all
from nlp182.embeddings.lsa import LSAConfig, train_lsa
from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
from nlp182.io import atomic_write_json
from nlp182.text.corpus import CorpusSource

RESULTS = Path(__file__).resolve().parent / "results"
QUALITY = ("wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd")
ENGINES = ("gensim", "torch-native", "torch-batched")


def _mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(row[key] for row in rows)


def run_word2vec(
    source: CorpusSource,
    files: EvaluationFiles,
    model: str,
    seeds: int,
    threads: int,
    device: str,
    only: list[str] | None = None,
) -> dict:
    """Train every engine (of ``only``, if given) with every seed; return per-engine means and raw rows."""
    engines = {"gensim": {"backend": "gensim"}}
    # our C kernel runs on the CPU only: on a GPU run it is the host's CPU figure beside the GPU's
    engines["torch-native"] = {"backend": "torch", "device": "cpu", "kernel": "native"}
    engines["torch-batched"] = {"backend": "torch", "device": device, "kernel": "batched"}
    engines = {name: settings for name, settings in engines.items() if only is None or name in only}
    results: dict[str, list[dict]] = {name: [] for name in engines}
    for seed in range(1, seeds + 1):
        for name, settings in engines.items():  # interleaved so machine load hits all alike
            config = Word2VecConfig(model=model, seed=seed, threads=threads, **settings)
            started = time.perf_counter()
            vectors, _, report = train_word2vec(source, config)
            wall = time.perf_counter() - started
            row = {
                "seed": seed,
                "seconds": report.seconds,
                "wall_seconds": wall,
                "words_per_second": report.words_per_second,
                **evaluate_all(vectors, files),
            }
            results[name].append(row)
            print(
                f"  {model} {name:<14} seed {seed}: {report.words_per_second:>10,.0f} words/s, "
                f"WS353 {row['wordsim353_spearman']:.3f}, analogy {row['analogy_3cosadd']:.3f}",
                flush=True,
            )
    summary = {}
    for name, rows in results.items():
        summary[name] = {key: _mean(rows, key) for key in ("words_per_second", "seconds", *QUALITY)}
        summary[name]["runs"] = rows
    return summary


def run_lsa(source: CorpusSource, files: EvaluationFiles, device: str) -> dict:
    """LSA end to end with each SVD solver."""
    out = {}
    for solver in ("torch", "sklearn"):
        vectors, _, report = train_lsa(source, LSAConfig(svd=solver, device=device))
        out[solver] = {
            **dataclasses.asdict(report),
            "seconds": report.seconds,
            **evaluate_all(vectors, files),
        }
        print(
            f"  lsa svd={solver}: {report.seconds:.1f} s (svd {report.svd_seconds:.1f} s), "
            f"WS353 {out[solver]['wordsim353_spearman']:.3f}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="corpora/wiki.txt")
    parser.add_argument("--eval-dir", default="corpora/eval")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["sg", "cbow"])
    parser.add_argument("--large", metavar="CORPUS", help="large-corpus mode on this text file")
    parser.add_argument("--quick", action="store_true", help="large-corpus mode on a tiny slice (CI)")
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs of the large mode")
    parser.add_argument("--epochs", type=int, default=1, help="word2vec epochs in the large mode")
    parser.add_argument("--svd-vocab", type=int, default=50_000, help="vocabulary of the SVD comparison")
    parser.add_argument("--svd-rank", type=int, default=100, help="rank of the SVD comparison")
    parser.add_argument("--skip-old", action="store_true", help="skip the pre-cache LSA counting baseline")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["w2v", "lsa"],
        choices=["w2v", "lsa"],
        help="what the large mode measures",
    )
    parser.add_argument("--gensim-lines-runs", type=int, default=1,
                        help="large mode: gensim LineSentence runs per model (quality at our schedule)")
    parser.add_argument("--scratch", default=None, help="folder for caches and outputs (default: $TMPDIR)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES,
                        help="word2vec engines to run (default: all; without gensim there is no speed ratio)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args()
    if args.large or args.quick:
        _large_mode(args)
        return
    device = select_device(args.device)
    source, files = CorpusSource(args.corpus), EvaluationFiles.in_folder(args.eval_dir)
    word2vec = {
        m: run_word2vec(source, files, m, args.seeds, args.threads, device.type, args.engines)
        for m in args.models
    }
    lsa = run_lsa(source, files, device.type)

    print(
        f"\nnlp182 vs gensim on {args.corpus}, {args.threads} threads, {args.seeds} seeds, "
        f"device {device.type}"
    )
    header = f"{'model':<6}{'engine':<15}{'speed ratio':>12}{'words/s':>12}"
    header += f"{'dWS353':>9}{'dSL999':>9}{'danalogy':>10}"
    print(header + f"{'WS353':>8}{'SL999':>8}{'analogy':>9}")
    for model, engines in word2vec.items():
        reference = engines.get("gensim", {})
        for name, row in engines.items():
            ratio = row["words_per_second"] / reference.get("words_per_second", math.nan)
            deltas = [row[key] - reference.get(key, math.nan) for key in QUALITY]
            print(
                f"{model:<6}{name:<15}{ratio:>12.2f}{row['words_per_second']:>12,.0f}"
                + "".join(f"{d:>+9.3f}" for d in deltas[:2])
                + f"{deltas[2]:>+10.3f}"
                + "".join(f"{row[key]:>8.3f}" for key in QUALITY[:2])
                + f"{row[QUALITY[2]]:>9.3f}"
            )
    for solver, row in lsa.items():
        print(
            f"{'lsa':<6}{'svd=' + solver:<15}{'':>12}{'':>12}{'':>9}{'':>9}{'':>10}"
            + "".join(f"{row[key]:>8.3f}" for key in QUALITY[:2])
            + f"{row[QUALITY[2]]:>9.3f}"
            + f"   {row['seconds']:.1f} s (count {row['count_seconds']:.1f}, svd {row['svd_seconds']:.1f})"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"embeddings-{device.type}.json"
    atomic_write_json(
        path,
        {
            "corpus": args.corpus,
            "seeds": args.seeds,
            "threads": args.threads,
            "device": device.type,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "load_average_at_end": os.getloadavg(),
            },
            "word2vec": word2vec,
            "lsa": lsa,
        },
    )
    print(f"wrote {path}")


def _large_mode(args: argparse.Namespace) -> None:
    """``--large`` / ``--quick``: see ``bench.embeddings_scale``."""
    from bench.embeddings_scale import run_large, write_result

    args.device = select_device(args.device).type
    args.threads = min(args.threads, 2)
    name = "-".join(["embeddings-large", *(args.parts if len(args.parts) == 1 else []), args.device])
    if args.quick:
        quick = Path(tempfile.mkdtemp(prefix="nlp182-quick-")) / "quick.txt"
        lines = Path(args.corpus).read_text(encoding="utf-8").splitlines()[:300]
        quick.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args.large, args.runs, args.svd_vocab, args.svd_rank, args.skip_old = str(quick), 1, 2000, 10, True
        name = f"embeddings-quick-{args.device}"
    print(
        f"large-corpus mode on {args.large}: {args.runs} run(s), {args.epochs} epoch(s), "
        f"{args.threads} threads"
    )
    print(f"wrote {write_result(run_large(args), name, args.out)}")


if __name__ == "__main__":
    main()
