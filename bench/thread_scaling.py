"""How the C word2vec kernel scales with CPU threads, beside gensim ``corpus_file``, plotted.

``python -m bench.thread_scaling --corpus corpora/debian.txt --threads 1 2 4 8 16`` trains skip-gram
(gensim's defaults; ``--epochs``) text file to saved vectors at each thread count, each job in a
fresh process (``bench.embeddings_scale``'s workers: ours encodes into an empty cache, gensim
scans the file for its vocabulary), with the C kernel and with gensim where it is installed. It
writes ``thread-scaling-<label>.json`` (training words/s, wall seconds, speed-up over one thread)
and ``thread-scaling-<label>.png`` (words/s against threads, both engines and the linear ideal).
``--label`` names the machine (``cuda`` when ``bench/gpu.sh`` runs it on the GPU host's cores).
``--tokens N`` trains on the corpus's first lines of ``N`` tokens (a speed-up needs seconds of
training per job, not the whole corpus); the JSON and plot are rewritten after every thread count.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.embeddings_scale import gensim_available, write_result
from bench.gpu_embeddings import _job

RESULTS = Path(__file__).resolve().parent / "results"
#: The goal: 16 threads of the C kernel train at least this many times faster than one.
SPEEDUP_GOAL = 12.0


def plot(curves: dict[str, dict[int, float]], path: Path) -> None:
    """Training words/s against threads (log-log), one line per engine and the linear ideal from
    the C kernel's one-thread rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlp182.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for engine, rates in curves.items():
        threads = sorted(rates)
        ax.plot(threads, [rates[t] for t in threads], marker="o", label=engine)
    ours = curves["nlp182 C kernel"]
    threads = sorted(ours)
    ax.plot(threads, [ours[threads[0]] * t / threads[0] for t in threads], "k:", label="linear")
    ax.set(xscale="log", yscale="log", xlabel="threads", ylabel="training words/s",
           title="word2vec skip-gram, text file to vectors")  # fmt: skip
    ax.set_xticks(threads, [str(t) for t in threads])
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)


def head_of(corpus: Path, tokens: int, folder: Path) -> Path:
    """The first whole lines of ``corpus`` holding at least ``tokens`` whitespace tokens, as a file
    in ``folder`` (the speed-up needs seconds of training per job, not the whole corpus)."""
    path = folder / f"head-{tokens}.txt"
    seen = 0
    with open(corpus, "rb") as source, open(path, "wb") as out:
        for line in source:
            out.write(line)
            seen += len(line.split())
            if seen >= tokens:
                break
    return path


def result_of(args: argparse.Namespace, corpus: str, rows: dict[str, dict[int, dict]], figure: Path) -> dict:
    """The record of the thread counts measured so far (each engine's speed-up: most over fewest)."""
    curves = {engine: {t: row["words_per_second"] for t, row in by.items()} for engine, by in rows.items()}
    measured = sorted(curves["nlp182 C kernel"])
    first, last = measured[0], measured[-1]
    speedups = {engine: rates[last] / rates[first] for engine, rates in curves.items()
                if first in rates and last in rates}  # fmt: skip
    return {"corpus": corpus, "epochs": args.epochs, "threads": measured,
            "complete": measured == args.threads,
            "rows": {engine: {str(t): row for t, row in by.items()} for engine, by in rows.items()},
            "speedup": speedups, "c_kernel_speedup_ratio": speedups["nlp182 C kernel"],
            "goal": f"C kernel {last} threads >= {SPEEDUP_GOAL}x {first}",
            "goal_met": speedups["nlp182 C kernel"] >= SPEEDUP_GOAL, "figure": figure.name}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="corpora/debian.txt", help="text file")
    parser.add_argument("--eval-dir", default="corpora/eval", help="evaluation files")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2, 4, 8, 16], help="thread counts")
    parser.add_argument("--epochs", type=int, default=1, help="word2vec epochs")
    parser.add_argument("--tokens", type=int,
                        help="train on the corpus's first lines holding this many tokens (default: all)")
    parser.add_argument("--no-gensim", action="store_true", help="the C kernel alone")
    parser.add_argument("--label", default="cpu", help="names the result files (the machine)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and the plot")
    args = parser.parse_args()
    args.threads = sorted(set(args.threads))
    args.out.mkdir(parents=True, exist_ok=True)
    engines = {"nlp182 C kernel": "ours-w2v"}
    if gensim_available() and not args.no_gensim:
        engines["gensim corpus_file"] = "gensim-w2v"
    rows: dict[str, dict[int, dict]] = {engine: {} for engine in engines}
    figure = args.out / f"thread-scaling-{args.label}.png"
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(args.corpus).resolve()
        if args.tokens:
            corpus = head_of(corpus, args.tokens, Path(scratch))
        jobs = str(args.out.resolve() / "thread-scaling-jobs.jsonl")
        base = {"corpus": str(corpus), "eval_dir": args.eval_dir, "epochs": args.epochs, "model": "sg",
                "device": "cpu", "job_log": jobs}  # fmt: skip
        for threads in args.threads:  # interleaved, so machine load hits both alike
            for engine, job in engines.items():
                row = _job(Path(scratch), base, job, threads=threads)
                rows[engine][threads] = row
                print(f"  {threads:>3} threads {engine:<20}: {row['words_per_second']:>12,.0f} words/s, "
                      f"{row['wall_seconds']:6.1f} s text to vectors", flush=True)  # fmt: skip
            # rewritten after every thread count: a run stopped by its time limit keeps the curve so far
            result = result_of(args, str(Path(args.corpus).resolve()), rows, figure)
            result["tokens"] = rows["nlp182 C kernel"][threads]["tokens"]
            write_result(result, f"thread-scaling-{args.label}", args.out)
            plot({e: {t: r["words_per_second"] for t, r in by.items()} for e, by in rows.items()}, figure)
    for engine, speedup in result["speedup"].items():
        print(f"  {engine}: {max(args.threads)} threads {speedup:.1f}x {min(args.threads)}")
    print(f"wrote {args.out / f'thread-scaling-{args.label}.json'} and {figure}")


if __name__ == "__main__":
    main()
