"""The large-corpus mode of ``bench.embeddings``: text file to saved vectors beside gensim.

``python -m bench.embeddings --large corpora/debian.txt [--runs 3] [--epochs 1]`` measures, on one
machine and interleaved (gensim skip-gram, ours skip-gram, gensim CBOW, ours CBOW, then again):

- word2vec, text file to saved vectors (wall time), each in a fresh process: gensim reads the file
  with ``corpus_file`` (its fastest mode: C++ workers read the file; the issue measured
  ``LineSentence`` slower) and builds its vocabulary from it; ours encodes the text into an empty
  cache (so the one encoding pass is counted) and trains. Training words/s, peak RSS (before the
  evaluation) and quality (WS353, SimLex-999, analogies) of each;
- quality beside gensim ``LineSentence`` too (``--gensim-lines-runs``, untimed against us): in
  ``corpus_file`` mode each of gensim's ``w`` workers reads ``1/w`` of the corpus but is told the
  whole corpus's word count, so its learning rate decays only ``1/w`` of an epoch's share each
  epoch (a sawtooth ending at ``alpha (1 - 1/w) / epochs``, ``alpha / 6`` for 2 workers and 3
  epochs, not at ``min_alpha``). That schedule, not
  the algorithm, moves quality on a short run: ``bench.gensim_schedule`` shows it. LineSentence
  (like word2vec's C tool and nlp182) decays linearly to ``min_alpha``;
- peak RSS of ours on the first half of the corpus, so the growth per token can be explained;
- LSA text to vectors at about 50k and at all min_count-5 words (time per stage, peak RSS),
  today's counting (the code before the encoding cache, which tokenized twice and counted with
  numpy) on the same corpus, and the three SVDs on one PPMI matrix.

Every job runs in its own process (``--worker``), which reports its own peak RSS and the largest of
its encoding workers' (forked processes that each hold one 8 MB piece while tokenizing it). The machine is
shared: ratios measured side by side are what to read, and the load average is recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
OLD_COMMIT = "80fa1f7"  # the last commit before the encoding cache: "today" for LSA counting


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_peak_rss_mb() -> float:
    """The largest peak RSS of this job's finished child processes (our encoding workers)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _scores(vectors, eval_dir: str) -> dict:
    from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all

    scores = evaluate_all(vectors, EvaluationFiles.in_folder(eval_dir))
    return {key: scores[key] for key in ("wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd")}


def _ours_w2v(task: dict) -> dict:
    from nlp182.embeddings import native
    from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
    from nlp182.text.corpus import CorpusSource
    from nlp182.text.encoded import encode

    if task["device"] == "cpu":
        native.library()  # the one-off compile is not part of a user's every run
    os.environ["NLP182_CACHE"] = task["cache"]
    config = Word2VecConfig(
        model=task["model"], epochs=task["epochs"], threads=task["threads"], device=task["device"]
    )
    started = time.perf_counter()
    source = CorpusSource(task["corpus"])
    encode(source)
    encoded = time.perf_counter()
    vectors, vocab, report = train_word2vec(source, config)
    vectors.save(task["out"])
    wall = time.perf_counter() - started
    return {
        "wall_seconds": wall,
        "encode_seconds": encoded - started,
        "train_seconds": report.seconds,
        "words_per_second": report.words_per_second,
        "kernel": report.kernel,
        "vocab": len(vocab),
        "tokens": vocab.total_words,
        "peak_rss_mb": _peak_rss_mb(),
        "children_peak_rss_mb": _children_peak_rss_mb(),
        **_scores(vectors, task["eval_dir"]),
    }


def train_gensim(
    corpus: str, *, sg: bool, workers: int, epochs: int, seed: int = 1, reader: str = "corpus_file"
):
    """gensim's Word2Vec on a text file with the settings both benches compare (gensim's defaults,
    negative sampling): ``reader`` ``corpus_file`` (C++ workers read the file) or ``lines``
    (``LineSentence``: a Python producer thread, word2vec's learning-rate schedule). Returns the
    model and the seconds of its vocabulary scan."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    started = time.perf_counter()
    model = Word2Vec(
        vector_size=100, window=5, negative=5, hs=0, min_count=5, sample=1e-3, seed=seed, sg=int(sg),
        workers=workers,
    )  # fmt: skip
    if reader == "corpus_file":
        model.build_vocab(corpus_file=corpus)
        scanned = time.perf_counter()
        model.train(corpus_file=corpus, total_words=model.corpus_total_words, epochs=epochs)
    else:
        lines = LineSentence(corpus)
        model.build_vocab(lines)
        scanned = time.perf_counter()
        model.train(lines, total_examples=model.corpus_count, epochs=epochs)
    return model, scanned - started


def _gensim_w2v(task: dict) -> dict:
    import numpy as np

    from nlp182.embeddings.vectors import Vectors

    started = time.perf_counter()
    model, scan_seconds = train_gensim(
        task["corpus"], sg=task["model"] == "sg", workers=task["threads"], epochs=task["epochs"],
        reader=task.get("reader", "corpus_file"),
    )  # fmt: skip
    scanned = started + scan_seconds
    trained = time.perf_counter()
    Path(task["out"]).mkdir(parents=True, exist_ok=True)
    model.wv.save(str(Path(task["out"]) / "vectors.kv"))
    wall = time.perf_counter() - started
    vectors = Vectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32))
    return {
        "wall_seconds": wall,
        "vocab_seconds": scanned - started,
        "train_seconds": trained - scanned,
        "words_per_second": model.corpus_total_words * task["epochs"] / (trained - scanned),
        "vocab": len(vectors),
        "tokens": model.corpus_total_words,
        "peak_rss_mb": _peak_rss_mb(),
        **_scores(vectors, task["eval_dir"]),
    }


def _ours_lsa(task: dict) -> dict:
    import dataclasses

    from nlp182.embeddings import native
    from nlp182.embeddings.lsa import LSAConfig, train_lsa
    from nlp182.text.corpus import CorpusSource

    if task["device"] == "cpu":
        native.library()
    os.environ["NLP182_CACHE"] = task["cache"]
    started = time.perf_counter()
    vectors, vocab, report = train_lsa(
        CorpusSource(task["corpus"]), LSAConfig(max_vocab=task["max_vocab"], device=task["device"])
    )
    vectors.save(task["out"])
    return {
        "wall_seconds": time.perf_counter() - started,
        **dataclasses.asdict(report),
        "seconds": report.seconds,
        "vocab": len(vocab),
        "peak_rss_mb": _peak_rss_mb(),
        "children_peak_rss_mb": _children_peak_rss_mb(),
        **_scores(vectors, task["eval_dir"]),
    }


def _old_lsa_count(task: dict) -> dict:
    """Counting as the code before the encoding cache did it (tokenize for the vocabulary,
    tokenize again to encode, numpy per-offset counts): that code, extracted to
    ``task["old_code"]``, goes first on the import path."""
    sys.path.insert(0, task["old_code"])
    from nlp182.embeddings.lsa import cooccurrence
    from nlp182.text.corpus import CorpusSource, EncodedCorpus, iter_token_lines
    from nlp182.text.vocab import VocabConfig, Vocabulary

    source = CorpusSource(task["corpus"])
    started = time.perf_counter()
    vocab = Vocabulary.build(iter_token_lines(source), VocabConfig(5, task["max_vocab"], 0.0))
    counts = cooccurrence(EncodedCorpus(source, vocab), len(vocab), 5, True)
    return {
        "count_seconds": time.perf_counter() - started,
        "nonzeros": counts.nnz,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _ours_lsa_count(task: dict) -> dict:
    """Counting as ``train lsa`` does it now (one encoding pass into an empty cache, C counts),
    the same work ``_old_lsa_count`` times."""
    from nlp182.embeddings import native
    from nlp182.embeddings.lsa import COUNT_CHUNK_TOKENS, cooccurrence
    from nlp182.text.corpus import CorpusSource
    from nlp182.text.encoded import open_corpus
    from nlp182.text.vocab import VocabConfig

    native.library()
    os.environ["NLP182_CACHE"] = task["cache"]
    started = time.perf_counter()
    corpus, vocab = open_corpus(
        CorpusSource(task["corpus"]), VocabConfig(5, task["max_vocab"], 0.0), COUNT_CHUNK_TOKENS
    )
    encoded = time.perf_counter()
    counts = cooccurrence(corpus, len(vocab), 5, True)
    done = time.perf_counter()
    return {
        "count_seconds": done - started,
        "encode_seconds": encoded - started,
        "nonzeros": counts.nnz,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _svd_compare(task: dict) -> dict:
    """The three SVDs at one rank on the PPMI matrix of one vocabulary: time, singular values
    against ARPACK's, and WS353 of the vectors."""
    import numpy as np
    import torch

    from nlp182.embeddings.lsa import COUNT_CHUNK_TOKENS, cooccurrence, ppmi, truncated_svd
    from nlp182.embeddings.vectors import Vectors
    from nlp182.text.corpus import CorpusSource
    from nlp182.text.encoded import open_corpus
    from nlp182.text.vocab import VocabConfig

    os.environ["NLP182_CACHE"] = task["cache"]
    corpus, vocab = open_corpus(
        CorpusSource(task["corpus"]), VocabConfig(5, task["max_vocab"], 0.0), COUNT_CHUNK_TOKENS
    )
    matrix = ppmi(cooccurrence(corpus, len(vocab), 5, True))
    out: dict = {"rank": task["rank"], "vocab": len(vocab), "nonzeros": matrix.nnz}
    for solver in ("scipy", "sklearn", "torch"):
        started = time.perf_counter()
        u, s = truncated_svd(matrix, task["rank"], solver, torch.device(task["device"]))
        seconds = time.perf_counter() - started
        out[solver] = {"seconds": seconds, "singular_values": s.tolist()}
        out[solver] |= _scores(Vectors(vocab.words, u * np.sqrt(s)[None, :]), task["eval_dir"])
    exact = np.array(out["scipy"]["singular_values"])
    for solver in ("sklearn", "torch"):
        found = np.array(out[solver]["singular_values"])
        out[solver]["max_relative_error_vs_scipy"] = float(np.max(np.abs(found - exact) / exact))
    return out


WORKERS = {
    "ours-w2v": _ours_w2v,
    "gensim-w2v": _gensim_w2v,
    "ours-lsa": _ours_lsa,
    "old-lsa-count": _old_lsa_count,
    "ours-lsa-count": _ours_lsa_count,
    "svd-compare": _svd_compare,
}


def _run_worker(task: dict) -> dict:
    """Run one job in a fresh process and return what it measured."""
    pools = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {**os.environ, **{name: str(task["threads"]) for name in pools}}
    done = subprocess.run(
        [sys.executable, "-m", "bench.embeddings_scale", json.dumps(task)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"worker {task['job']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _half_corpus(corpus: str, folder: Path) -> str:
    """The first half of the corpus's lines (by bytes), as a file in ``folder``."""
    path = folder / "half.txt"
    size = Path(corpus).stat().st_size
    with open(corpus, "rb") as source, open(path, "wb") as out:
        out.write(source.read(size // 2))
        out.write(source.readline())
    return str(path)


@contextlib.contextmanager
def _old_code() -> object:
    """The package as it was at ``OLD_COMMIT``, extracted to a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "archive", OLD_COMMIT, "nlp182"], capture_output=True, check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield folder


def _mean(rows: list[dict], key: str) -> float:
    return sum(row[key] for row in rows) / len(rows)


def run_large(args) -> dict:
    """Every measurement of the large-corpus mode; prints the table and writes the JSON."""
    corpus = str(Path(args.large).resolve())
    load_before = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    base = {
        "corpus": corpus, "threads": args.threads, "device": args.device, "eval_dir": args.eval_dir,
        "job_log": str(Path(args.out).resolve() / JOB_LOG),  # beside the JSON (--out)
    }  # fmt: skip
    w2v: dict = {model: {"gensim": [], "ours": []} for model in args.models} if "w2v" in args.parts else {}
    half, lsa, svd, old_count = None, {}, None, None
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        scratch_path = Path(scratch)

        def job(name: str, **extra) -> dict:
            cache = tempfile.mkdtemp(dir=scratch_path)  # empty: encoding is measured
            task = {"job": name, **base, "cache": cache, "out": str(scratch_path / "out"), **extra}
            result = _run_worker(task)
            subprocess.run(["rm", "-rf", cache, str(scratch_path / "out")], check=True)
            return result

        for run in range(args.runs if w2v else 0):
            for model in args.models:
                for engine in ("gensim", "ours"):
                    row = job(f"{engine}-w2v", model=model, epochs=args.epochs)
                    w2v[model][engine].append(row)
                    print(
                        f"  run {run + 1} {model:<4} {engine:<6}: {row['wall_seconds']:7.1f} s text to "
                        f"vectors, {row['words_per_second']:>10,.0f} words/s, {row['peak_rss_mb']:6.0f} MB, "
                        f"WS353 {row['wordsim353_spearman']:.3f}",
                        flush=True,
                    )
        for model in w2v:
            for run in range(args.gensim_lines_runs):
                row = job("gensim-w2v", model=model, epochs=args.epochs, reader="lines")
                w2v[model].setdefault("gensim-lines", []).append(row)
                print(
                    f"  run {run + 1} {model:<4} gensim LineSentence: {row['wall_seconds']:7.1f} s, "
                    f"WS353 {row['wordsim353_spearman']:.3f}",
                    flush=True,
                )
        if w2v.get("sg"):
            half = job("ours-w2v", model="sg", epochs=args.epochs, corpus=_half_corpus(corpus, scratch_path))
        for label, max_vocab in (("50k", 50_000), ("all", None)) if "lsa" in args.parts else ():
            lsa[label] = job("ours-lsa", max_vocab=max_vocab)
            print(
                f"  lsa {label}: {lsa[label]['vocab']:,} words, {lsa[label]['seconds']:.1f} s, "
                f"{lsa[label]['peak_rss_mb']:.0f} MB"
            )
        if "lsa" in args.parts:
            svd = job("svd-compare", max_vocab=args.svd_vocab, rank=args.svd_rank)
            print(f"  svd: { {s: round(svd[s]['seconds'], 1) for s in ('scipy', 'sklearn', 'torch')} }")
        if "lsa" in args.parts and not args.skip_old:
            with _old_code() as old:
                old_count = job("old-lsa-count", max_vocab=None, old_code=old)
            print(f"  old counting: {old_count['count_seconds']:.1f} s")
    summary = _summarise(w2v, half, lsa, svd, old_count)
    result = {
        "mode": "large",
        "parts": args.parts,
        "corpus": corpus,
        "epochs": args.epochs,
        "runs": args.runs,
        "threads": args.threads,
        "device": args.device,
        "note": "shared 2-core machine, contended by other jobs: read the ratios (measured side by side, "
        "interleaved), not the absolute times",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "summary": summary,
        "word2vec": w2v,
        "half_corpus_sg": half,
        "lsa": lsa,
        "svd": svd,
        "old_lsa_count": old_count,
    }
    _print_summary(summary)
    return result


def _summarise(w2v: dict, half: dict | None, lsa: dict, svd: dict | None, old_count: dict | None) -> dict:
    summary: dict = {}
    for model, engines in w2v.items():
        ours, ref = engines["ours"], engines["gensim"]
        summary[model] = {
            "wall_ratio": _mean(ref, "wall_seconds") / _mean(ours, "wall_seconds"),
            "words_per_second_ratio": _mean(ours, "words_per_second") / _mean(ref, "words_per_second"),
            "ours_wall_seconds": _mean(ours, "wall_seconds"),
            "gensim_wall_seconds": _mean(ref, "wall_seconds"),
            "ours_peak_rss_mb": _mean(ours, "peak_rss_mb"),
            "gensim_peak_rss_mb": _mean(ref, "peak_rss_mb"),
        }
        lines = engines.get("gensim-lines", [])
        if lines:
            summary[model]["gensim_lines_wall_seconds"] = _mean(lines, "wall_seconds")
        for key in ("wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd"):
            summary[model][f"delta_{key}"] = _mean(ours, key) - _mean(ref, key)
            if lines:
                summary[model][f"delta_vs_lines_{key}"] = _mean(ours, key) - _mean(lines, key)
    if half is not None:
        full = w2v["sg"]["ours"][0]
        extra_mb = full["peak_rss_mb"] - half["peak_rss_mb"]
        extra_tokens = full["tokens"] - half["tokens"]
        extra_vocab = full["vocab"] - half["vocab"]
        summary["rss"] = {
            "full": {k: full[k] for k in ("tokens", "vocab", "peak_rss_mb")},
            "half": {k: half[k] for k in ("tokens", "vocab", "peak_rss_mb")},
            "bytes_per_extra_token": extra_mb * 2**20 / max(1, extra_tokens),
            "bytes_per_extra_word": extra_mb * 2**20 / max(1, extra_vocab),
        }
    if not lsa:
        return summary
    summary["lsa"] = {
        label: {
            k: row[k]
            for k in ("vocab", "seconds", "encode_seconds", "count_seconds", "svd_seconds", "peak_rss_mb")
        }
        for label, row in lsa.items()
    }
    if old_count is not None:
        ours_count = lsa["all"]["encode_seconds"] + lsa["all"]["count_seconds"]
        summary["lsa"]["counting_speedup_vs_before"] = old_count["count_seconds"] / ours_count
    summary["svd"] = {
        s: {k: v for k, v in svd[s].items() if k != "singular_values"} for s in ("scipy", "sklearn", "torch")
    }
    return summary


def _print_summary(summary: dict) -> None:
    print("\nnlp182 / gensim, text file to saved vectors (ratios first; >1 means nlp182 is faster)")
    print(f"{'model':<6}{'wall ratio':>11}{'words/s ratio':>15}{'dWS353':>9}{'dSL999':>9}{'danalogy':>10}"
          f"{'ours s':>9}{'gensim s':>10}{'ours MB':>9}{'gensim MB':>11}")  # fmt: skip
    for model in ("sg", "cbow"):
        if model not in summary:
            continue
        row = summary[model]
        print(
            f"{model:<6}{row['wall_ratio']:>11.2f}{row['words_per_second_ratio']:>15.2f}"
            f"{row['delta_wordsim353_spearman']:>+9.3f}{row['delta_simlex999_spearman']:>+9.3f}"
            f"{row['delta_analogy_3cosadd']:>+10.3f}{row['ours_wall_seconds']:>9.1f}"
            f"{row['gensim_wall_seconds']:>10.1f}{row['ours_peak_rss_mb']:>9.0f}{row['gensim_peak_rss_mb']:>11.0f}"
        )
    if any("gensim_lines_wall_seconds" in summary.get(model, {}) for model in ("sg", "cbow")):
        print("quality beside gensim LineSentence (the same learning-rate schedule as ours; see above)")
        for model in ("sg", "cbow"):
            row = summary.get(model, {})
            if "gensim_lines_wall_seconds" in row:
                print(
                    f"{model:<6}{row['delta_vs_lines_wordsim353_spearman']:>+9.3f}"
                    f"{row['delta_vs_lines_simlex999_spearman']:>+9.3f}"
                    f"{row['delta_vs_lines_analogy_3cosadd']:>+10.3f}   LineSentence "
                    f"{row['gensim_lines_wall_seconds']:.1f} s"
                )
    if "rss" in summary:
        rss = summary["rss"]
        print(
            f"peak RSS skip-gram: {rss['full']['peak_rss_mb']:.0f} MB at {rss['full']['tokens']:,} tokens "
            f"({rss['full']['vocab']:,} words), {rss['half']['peak_rss_mb']:.0f} MB at half; "
            f"{rss['bytes_per_extra_token']:.2f} bytes per extra token, "
            f"{rss['bytes_per_extra_word']:.0f} per extra word"
        )
    for label, row in summary.get("lsa", {}).items():
        if isinstance(row, dict):
            print(
                f"lsa {label:<4}: {row['vocab']:,} words, {row['seconds']:.1f} s "
                f"(encode {row['encode_seconds']:.1f}, count {row['count_seconds']:.1f}, "
                f"svd {row['svd_seconds']:.1f}), {row['peak_rss_mb']:.0f} MB"
            )
    if "counting_speedup_vs_before" in summary.get("lsa", {}):
        print(
            "lsa counting (encode + count) vs before: "
            f"{summary['lsa']['counting_speedup_vs_before']:.1f}x faster"
        )
    for solver, row in summary.get("svd", {}).items():
        error = row.get("max_relative_error_vs_scipy", 0.0)
        print(f"svd {solver:<8}: {row['seconds']:.1f} s, max rel. error of singular values {error:.1e}, "
              f"WS353 {row['wordsim353_spearman']:.3f}")  # fmt: skip


def gensim_available() -> bool:
    """Whether gensim imports here: its wheel carried without ``smart_open`` is found by
    ``importlib`` but fails to import."""
    try:
        import gensim  # noqa: F401
    except ImportError:
        return False
    return True


def write_result(result: dict, name: str, folder: Path = RESULTS) -> Path:
    """Write ``<folder>/<name>.json`` atomically."""
    from nlp182.io import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    atomic_write_json(path, result)
    return path


JOB_LOG = "embeddings-large-jobs.jsonl"

if __name__ == "__main__":
    worker_task = json.loads(sys.argv[1])
    measured = WORKERS[worker_task["job"]](worker_task)
    record = {
        "task": {k: v for k, v in worker_task.items() if k not in ("cache", "out", "job_log")},
        "result": measured,
    }
    with open(worker_task["job_log"], "a", encoding="utf-8") as log_file:  # every job, also of runs cut short
        log_file.write(json.dumps({"finished": time.time(), **record}) + "\n")
    print(json.dumps(measured))
