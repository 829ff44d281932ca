"""word2vec and LSA on a GPU beside the CPU engines, text file to saved vectors, in one run.

``python -m bench.gpu_embeddings --corpus corpora/debian.txt --eval-dir corpora/eval --device cuda``
measures, each job in a fresh process (``bench.embeddings_scale``'s workers, each encoding into an
empty cache, so the one encoding pass is counted in the wall time):

- word2vec skip-gram and CBOW (vector size 100, window 5, 5 negatives, ``--epochs``) with the fused
  Triton kernel on the device (not with ``--device cpu``, the dry run), with the C kernel on
  ``--threads`` CPU threads, and with gensim (``corpus_file``, ``--threads`` workers) where it is
  installed: training words/s and quality
  (WordSim-353, SimLex-999, analogies), and the GPU's differences from the C kernel;
- LSA text to vectors with a ``--lsa-vocab`` word vocabulary, counted, weighted and factorised on
  the device.

LSA runs first, then each model's fused kernel and C kernel, then gensim (``--engines`` picks). It
prints a table and writes ``gpu-embeddings-<device>.json`` after every job (``"complete": false``
until the last) with the goals (GPU words/s, text to vectors 5x gensim's, quality within 0.01 /
0.01 / 1 point of the C kernel, LSA seconds) and whether each is met.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from bench.embeddings_scale import _run_worker, gensim_available, write_result

RESULTS = Path(__file__).resolve().parent / "results"
#: Goals on one H100 (20M-token corpus, 3 epochs): words/s of the fused kernel, and LSA seconds.
GOALS = {"sg": 10e6, "cbow": 25e6}
LSA_GOAL_S = 10.0
#: The fused kernel, text file to saved vectors, at least this many times faster than gensim.
WALL_GOAL = 5.0
QUALITY_TOLERANCE = {"wordsim353_spearman": 0.01, "simlex999_spearman": 0.01, "analogy_3cosadd": 0.01}


def _job(scratch: Path, base: dict, name: str, **extra) -> dict:
    cache = tempfile.mkdtemp(dir=scratch)  # empty: encoding is measured
    task = {"job": name, **base, "cache": cache, "out": str(scratch / "out"), **extra}
    try:
        return _run_worker(task)
    finally:
        subprocess.run(["rm", "-rf", cache, str(scratch / "out")], check=True)


ENGINES = ("fused", "c-kernel", "gensim")


def _jobs(args: argparse.Namespace) -> list[tuple[str, str, str, dict]]:
    """``(model, engine, worker, settings)`` in the order they run: LSA, then each model's fused
    kernel and C kernel, then gensim, so a run cut short has the GPU figures first."""
    engines = {"fused": ("ours-w2v", {"device": args.device, "threads": 1}),
               "c-kernel": ("ours-w2v", {"device": "cpu", "threads": args.threads}),
               "gensim": ("gensim-w2v", {"device": "cpu", "threads": args.threads})}  # fmt: skip
    wanted = [e for e in args.engines if e != "fused" or args.device != "cpu"]  # (interpreter: too slow)
    if "gensim" in wanted and not gensim_available():
        wanted.remove("gensim")
    jobs = [("lsa", "device", "ours-lsa", {"device": args.device, "threads": args.threads,
                                           "max_vocab": args.lsa_vocab})]  # fmt: skip
    for engine in ("fused", "c-kernel", "gensim"):
        if engine in wanted:
            jobs += [(model, engine, *engines[engine]) for model in args.models]
    return jobs


def record(args: argparse.Namespace, word2vec: dict, lsa: dict | None, complete: bool) -> dict:
    """The result of the jobs done so far: rows, the fused kernel's differences and the goals."""
    goals = {}
    for model, rows in word2vec.items():
        fused, reference, gensim = rows.get("fused"), rows.get("c-kernel"), rows.get("gensim")
        if fused is None:
            continue
        goals[f"{model} words/s >= {GOALS[model]:.0e}"] = fused["words_per_second"] >= GOALS[model]
        if gensim is not None:
            goals[f"{model} text to vectors >= {WALL_GOAL}x gensim ({args.threads} workers)"] = (
                gensim["wall_seconds"] >= WALL_GOAL * fused["wall_seconds"]
            )
        if reference is None:
            continue
        for key, tolerance in QUALITY_TOLERANCE.items():
            difference = fused[key] - reference[key]
            rows.setdefault("fused_minus_c_kernel", {})[key] = difference
            goals[f"{model} {key} within {tolerance} of the C kernel"] = difference >= -tolerance
    if lsa is not None:
        goals[f"LSA text to vectors <= {LSA_GOAL_S} s"] = lsa["wall_seconds"] <= LSA_GOAL_S
    return {"corpus": str(Path(args.corpus).resolve()), "device": args.device, "epochs": args.epochs,
            "threads": args.threads, "complete": complete, "word2vec": word2vec, "lsa": lsa, "goals": goals,
            "fused_sg_words_per_s": word2vec.get("sg", {}).get("fused", {}).get("words_per_second", 0.0),
            "lsa_wall_s": lsa["wall_seconds"] if lsa else None}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    """Every job of the bench, the JSON rewritten after each (``"complete": false`` until the last),
    so a run stopped by its time limit keeps what it measured; returns the final record."""
    args.out.mkdir(parents=True, exist_ok=True)
    base = {"corpus": str(Path(args.corpus).resolve()), "eval_dir": args.eval_dir, "epochs": args.epochs,
            "job_log": str(args.out.resolve() / "gpu-embeddings-jobs.jsonl")}  # fmt: skip
    word2vec: dict = {model: {} for model in args.models}
    lsa = None
    with tempfile.TemporaryDirectory() as scratch:
        for model, engine, job, settings in _jobs(args):
            row = _job(Path(scratch), base, job, **({} if model == "lsa" else {"model": model}), **settings)
            if model == "lsa":
                lsa = row
                print(f"  lsa: {lsa['wall_seconds']:.1f} s text to vectors ({lsa['vocab']} words; "
                      f"count {lsa['count_seconds']:.1f} s, svd {lsa['svd_seconds']:.1f} s)",
                      flush=True)  # fmt: skip
            else:
                word2vec[model][engine] = row
                print(f"  {model:<4} {engine:<8}: {row['words_per_second']:>12,.0f} words/s, "
                      f"{row['wall_seconds']:6.1f} s text to vectors, "
                      f"WS353 {row['wordsim353_spearman']:.3f}, analogy {row['analogy_3cosadd']:.3f}",
                      flush=True)  # fmt: skip
            partial = record(args, word2vec, lsa, complete=False)
            write_result(partial, f"gpu-embeddings-{args.device}", args.out)
    return record(args, word2vec, lsa, complete=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="corpora/debian.txt", help="text file (the 20M-token corpus)")
    parser.add_argument("--eval-dir", default="corpora/eval", help="evaluation files")
    parser.add_argument("--device", default="cuda", help="the device of the fused kernel and of LSA")
    parser.add_argument("--threads", type=int, default=16, help="C kernel threads and gensim workers")
    parser.add_argument("--epochs", type=int, default=3, help="word2vec epochs")
    parser.add_argument("--models", nargs="+", default=["sg", "cbow"], choices=["sg", "cbow"])
    parser.add_argument("--lsa-vocab", type=int, default=100_000, help="LSA vocabulary size")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES,
                        help="word2vec engines (gensim where it imports; fused not with --device cpu)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args()
    result = run(args)
    for goal, met in result["goals"].items():
        print(f"  {'met' if met else 'MISSED':<6} {goal}")
    print(f"wrote {write_result(result, f'gpu-embeddings-{args.device}', args.out)}")


if __name__ == "__main__":
    main()
