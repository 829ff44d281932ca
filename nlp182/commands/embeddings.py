"""``nlp182 corpus prepare``, ``train lsa``, ``train w2v``, ``eval`` and ``neighbors``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nlp182.commands.flags import (
    POSITIVE,
    add_config_flags,
    add_out_flag,
    checked,
    config_from_args,
    train_group,
)
from nlp182.embeddings.lsa import SVD_SOLVERS, LSAConfig
from nlp182.embeddings.word2vec import BACKENDS, KERNELS, MODELS, Word2VecConfig
from nlp182.errors import MissingFileError
from nlp182.text.corpus import SOURCE_FORMATS, CorpusSource

DEFAULT_CORPUS = "corpora/wiki.txt"
DEFAULT_EVAL_DIR = "corpora/eval"
LSA_HELP = {
    "dim": "dimensions of each word vector",
    "window": "words on each side that count as context",
    "distance_weighting": "a context word d places away counts 1/d",
    "cds_alpha": "smoothing exponent of the context counts in PPMI",
    "shift": "divide the co-occurrence ratio by this before the log (1: plain PPMI)",
    "eig_power": "power of the singular values in the vectors (0.5: symmetric split)",
    "min_count": "fewest occurrences for a word to get a vector",
    "max_vocab": "keep at most this many of the most frequent words (default: all)",
    "svd": "which truncated SVD computes the vectors",
    "svd_oversample": "extra random directions of the randomized SVD",
    "svd_iterations": "power iterations of the randomized SVD",
}
W2V_HELP = {
    "model": "sg (skip-gram: predict the context from a word) or cbow (the word from its context)",
    "vector_size": "dimensions of each word vector",
    "window": "largest number of words on each side that count as context",
    "negative": "noise words drawn per true context word",
    "min_count": "fewest occurrences for a word to get a vector",
    "max_vocab": "keep at most this many of the most frequent words (default: all)",
    "sample": "frequent words are skipped at random above this share of the corpus (0: never)",
    "alpha": "learning rate at the start; it falls linearly to --min-alpha",
    "min_alpha": "learning rate at the end",
    "ns_exponent": "noise words are drawn by count to this power",
    "batch_size": "training examples per step of the batched kernel",
    "backend": "torch (this package) or gensim (the reference); auto picks torch",
    "kernel": "native (C, CPU threads) or batched (PyTorch, any device); auto picks native on a CPU",
    "threads": "CPU threads (default: as many as PyTorch uses)",
    "compile": "compile the batched step for speed (slower start)",
    "shuffle": "train on each chunk's examples in random order (default: for sg, not for cbow)",
}
TABLE_COLUMNS = (
    ("wordsim353_spearman", "WS353 rho"),
    ("simlex999_spearman", "SL999 rho"),
    ("analogy_3cosadd", "analogy add"),
    ("analogy_3cosmul", "analogy mul"),
)


def _add_corpus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus", default=DEFAULT_CORPUS, help=f"text file or local data files (default: {DEFAULT_CORPUS})"
    )
    parser.add_argument(
        "--format",
        dest="corpus_format",
        default="auto",
        choices=SOURCE_FORMATS,
        help="plain lines, or `datasets` text/json/parquet (default: by extension)",
    )
    parser.add_argument(
        "--column", default="text", help="text column of json/parquet records (default: text)"
    )
    add_out_flag(parser)


def _source(args: argparse.Namespace) -> CorpusSource:
    return CorpusSource(args.corpus, args.corpus_format, args.column)


def _run_prepare(args: argparse.Namespace) -> int:
    from corpora.prepare import prepare

    result = prepare(args.out)
    print(f"corpus: {result.corpus} ({result.lines} lines)")
    print(f"sha256: {result.sha256}")
    print(f"eval:   {result.wordsim353.parent}")
    return 0


def _run_train_lsa(args: argparse.Namespace) -> int:
    from nlp182.embeddings.lsa import train_lsa
    from nlp182.embeddings.runs import save_run

    config = config_from_args(LSAConfig, args)
    vectors, vocab, report = train_lsa(_source(args), config)
    metrics = {"train": dataclasses.asdict(report) | {"seconds": report.seconds}}
    save_run(
        args.out,
        vectors,
        vocab,
        {"method": "lsa", "corpus": args.corpus, **dataclasses.asdict(config)},
        metrics,
    )
    print(f"LSA: {len(vectors)} words x {vectors.dim} dims in {report.seconds:.1f} s -> {args.out}")
    return 0


def _run_train_w2v(args: argparse.Namespace) -> int:
    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.word2vec import resolve_backend, train_word2vec

    config = config_from_args(Word2VecConfig, args)
    vectors, vocab, report = train_word2vec(_source(args), config)
    run_config = {
        "method": f"word2vec-{config.model}",
        "corpus": args.corpus,
        **dataclasses.asdict(config),
        "backend_used": resolve_backend(config),
    }
    save_run(args.out, vectors, vocab, run_config, {"train": dataclasses.asdict(report)})
    print(
        f"word2vec {config.model} ({report.backend}, {report.device}): {len(vectors)} words in "
        f"{report.seconds:.1f} s, {report.words_per_second:,.0f} words/s -> {args.out}"
    )
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all
    from nlp182.embeddings.runs import load_run, update_metrics

    files = EvaluationFiles.in_folder(args.eval_dir)
    for run in args.runs:  # every run is there before the table starts
        if not Path(run).exists():
            raise MissingFileError(f"{run} does not exist")
        if not Path(run, "config.json").is_file():
            raise MissingFileError(f"{run} is not a run folder (no config.json)")
    header = (
        f"{'run':<28}" + "".join(f"{title:>13}" for _, title in TABLE_COLUMNS) + f"{'pairs/quest. (oov)':>24}"
    )
    print(header)
    for run in args.runs:
        vectors, _ = load_run(run)
        scores = evaluate_all(vectors, files, args.restrict_vocab)
        update_metrics(run, "eval", scores)
        coverage = (
            f"{scores['wordsim353_pairs']}({scores['wordsim353_oov']})/"
            f"{scores['analogy_questions']}({scores['analogy_oov']})"
        )
        print(
            f"{Path(run).name:<28}"
            + "".join(f"{scores[key]:>13.4f}" for key, _ in TABLE_COLUMNS)
            + f"{coverage:>24}"
        )
    return 0


def _run_neighbors(args: argparse.Namespace) -> int:
    from nlp182.embeddings.runs import load_run

    vectors, _ = load_run(args.run)
    for word, score in vectors.most_similar(args.word, topn=args.k):
        print(f"{word:<24}{score:.4f}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the corpus, training, evaluation and neighbour commands."""
    corpus = subparsers.add_parser("corpus", help="prepare the default corpus and evaluation files")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    prepare = corpus_commands.add_parser(
        "prepare", help="build corpora/wiki.txt and corpora/eval/ from gensim's data"
    )
    prepare.add_argument("--out", default="corpora", help="output folder (default: corpora)")
    prepare.set_defaults(func=_run_prepare, out_contract="files")  # adds files beside the recipe

    trainers = train_group(subparsers)
    lsa = trainers.add_parser("lsa", help="PPMI + truncated SVD word vectors")
    _add_corpus_flags(lsa)
    add_config_flags(lsa, LSAConfig, choices={"svd": SVD_SOLVERS}, helps=LSA_HELP)
    lsa.set_defaults(func=_run_train_lsa)
    w2v = trainers.add_parser("w2v", help="word2vec skip-gram / CBOW with negative sampling")
    _add_corpus_flags(w2v)
    add_config_flags(
        w2v,
        Word2VecConfig,
        choices={"model": MODELS, "backend": BACKENDS, "kernel": KERNELS},
        helps=W2V_HELP,
        limits={"threads": POSITIVE},
    )
    w2v.set_defaults(func=_run_train_w2v)

    evaluate = subparsers.add_parser("eval", help="WordSim-353, SimLex-999 and analogy scores of runs")
    evaluate.add_argument("runs", nargs="+", help="run folders")
    evaluate.add_argument(
        "--eval-dir", default=DEFAULT_EVAL_DIR, help=f"evaluation files (default: {DEFAULT_EVAL_DIR})"
    )
    evaluate.add_argument(
        "--restrict-vocab", type=checked(int, POSITIVE), default=300_000, help="answer among the top N words"
    )
    evaluate.set_defaults(func=_run_eval)

    neighbors = subparsers.add_parser("neighbors", help="nearest words of WORD in a run")
    neighbors.add_argument("run", help="run folder")
    neighbors.add_argument("word", help="the word whose neighbours to list")
    neighbors.add_argument(
        "-k", "--k", type=checked(int, POSITIVE), default=10, help="how many neighbours (default: 10)"
    )
    neighbors.set_defaults(func=_run_neighbors)
