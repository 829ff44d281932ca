"""``nlp182 corpus prepare``, ``eval`` and ``neighbors``: the embedding commands that need no
trainer, so they start without importing torch (``train lsa``/``w2v`` are in
:mod:`nlp182.commands.embedding_training`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from nlp182.bounded import mib
from nlp182.commands.flags import POSITIVE, add_overwrite_flag, checked, train_group
from nlp182.commands.limits import add_limit_flags, limits_from
from nlp182.corpora.wiki import MAX_ARTICLE_BYTES
from nlp182.embeddings.vectors import RESTRICT_VOCAB
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError, Nlp182Error

log = logging.getLogger(__name__)

DEFAULT_EVAL_DIR = "corpora/eval"
TABLE_COLUMNS = (
    ("wordsim353_spearman", "WS353 rho"),
    ("simlex999_spearman", "SL999 rho"),
    ("analogy_3cosadd", "analogy add"),
    ("analogy_3cosmul", "analogy mul"),
)


def scores_with_settings(scores: dict, eval_dir: str, restrict_vocab: int) -> dict:
    """``scores`` as ``metrics.json`` keeps them: with the folder of the evaluation files and the
    ``restrict_vocab`` they were made with, so a later ``nlp182 eval`` with other settings says so."""
    return {**scores, "eval_dir": str(Path(eval_dir).resolve()), "restrict_vocab": restrict_vocab}


def _check_corpus_out(args: argparse.Namespace) -> None:
    """Before any work: ``--out`` of ``--wiki``/``--text`` is a new file (an existing one only with
    ``--overwrite``), and never one of the inputs or a file inside an input folder."""
    from nlp182.io import check_output_file

    check_output_file(args.out, args.overwrite)
    out = Path(args.out).resolve()
    for given in args.text or [args.wiki]:
        source = Path(given).resolve()
        if out == source or source in out.parents:
            raise InvalidInputError(f"--out {args.out} is the input {given} or inside it; name a new file")


def _run_prepare(args: argparse.Namespace) -> int:
    if args.wiki or args.text:
        if args.wiki and args.text:
            raise InvalidInputError("give --wiki or --text, not both")
        if args.out is None:
            raise InvalidInputError("--wiki and --text need --out FILE (the corpus file to write)")
        _check_corpus_out(args)
        if args.wiki:
            from nlp182.corpora.wiki import prepare_wiki

            limits = dataclasses.replace(limits_from(args), max_line=args.max_article_bytes)
            written = prepare_wiki(args.wiki, args.out, args.processes, limits=limits)
        else:
            from nlp182.corpora.text import prepare_text

            written = prepare_text(args.text, args.out, limits_from(args))
        print(f"corpus: {written.path} ({written.lines:,} lines, {written.tokens:,} tokens)")
        print(f"sha256: {written.sha256}")
        return 0
    from nlp182.corpora.prepare import prepare

    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise InvalidInputError(f"--out {args.out} is a file; the default corpus is written into a folder")
    result = prepare(args.out or "corpora")
    print(f"corpus: {result.corpus} ({result.lines} lines)")
    print(f"sha256: {result.sha256}")
    print(f"eval:   {result.wordsim353.parent}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all
    from nlp182.embeddings.runs import load_run
    from nlp182.io import check_input_file

    for run in args.runs:  # every run is there before the table starts
        if not Path(run).exists():
            raise MissingFileError(f"{run} does not exist")
        if not Path(run, "config.json").is_file():
            raise MissingFileError(f"{run} is not a run folder (no config.json)")
    if args.pairs or args.analogies:
        for path in [*args.pairs, *args.analogies]:  # and so is every file
            check_input_file(path, "evaluation file")
        return _exit_code(_evaluate_files(args), len(args.runs))
    files = EvaluationFiles.in_folder(args.eval_dir)
    for path in (files.wordsim353, files.simlex999, files.analogies):
        if not path.is_file():
            raise MissingFileError(f"evaluation file {path} does not exist; run `nlp182 corpus prepare` "
                                   "(it writes corpora/eval), pass --eval-dir, or score your own word "
                                   "pairs and analogies with --pairs FILE / --analogies FILE")
    header = (
        f"{'run':<28}" + "".join(f"{title:>13}" for _, title in TABLE_COLUMNS) + f"{'pairs/quest. (oov)':>24}"
    )
    print(header)
    failed = 0
    for run in args.runs:
        try:
            vectors, _ = load_run(run)
            scores = evaluate_all(vectors, files, args.restrict_vocab)
        except Nlp182Error as exc:  # one run's error line, and the other runs are scored
            _run_failed(run, exc)
            failed += 1
            continue
        coverage = (
            f"{scores['wordsim353_pairs']}({scores['wordsim353_oov']})/"
            f"{scores['analogy_questions']}({scores['analogy_oov']})"
        )
        print(
            f"{Path(run).name:<28}"
            + "".join(f"{scores[key]:>13.4f}" for key, _ in TABLE_COLUMNS)
            + f"{coverage:>24}"
        )
        _keep_scores(run, "eval", scores_with_settings(scores, args.eval_dir, args.restrict_vocab))
    return _exit_code(failed, len(args.runs))


def _exit_code(failed: int, runs: int) -> int:
    """0 when every run was scored, 1 when some were (as ``nlp182 caption`` for some bad images),
    2, the CLI's error, when none was."""
    return 0 if not failed else 2 if failed == runs else 1


def _run_failed(run: str, exc: Exception) -> None:
    """Print the CLI's error line for one run of several, whose others are scored on (see
    :func:`_exit_code`); a small run whose vocabulary misses every pair of a set is such a run."""
    print(f"nlp182: error: {run}: {exc}", file=sys.stderr)


def _keep_scores(run: str, key: str, values: dict[str, Any], merge: bool = False) -> None:
    """Record scores in the run's ``metrics.json``, or say why not: the scores are printed, and a
    run the user may read but not write (a read-only mount, a colleague's run) is still evaluated."""
    from nlp182.embeddings.runs import update_metrics
    from nlp182.io import failed_write_target

    try:
        update_metrics(run, key, values, merge=merge)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        log.warning("the scores are not kept in the run: %s cannot be written (%s)",
                    failed_write_target(exc) or Path(run, "metrics.json"), reason)


def _evaluate_files(args: argparse.Namespace) -> int:
    """Score the runs on the word-pair and analogy files the user names, print a table of each kind
    once every file has been read, and keep the scores in ``metrics.json`` under ``eval_files``, by
    the file's absolute path. A run that fails gets its error line and the others are scored;
    returns how many failed."""
    from nlp182.embeddings.evaluate import evaluate_analogies, evaluate_word_pairs
    from nlp182.embeddings.runs import load_run

    pairs_rows, analogy_rows, failed = [], [], 0
    for run in args.runs:
        run_pairs, run_analogies, kept = [], [], {}
        try:
            vectors, _ = load_run(run)
            for path in args.pairs:
                score = evaluate_word_pairs(vectors, path, args.restrict_vocab, delimiter=None)
                run_pairs.append((run, path, score.spearman, score.pearson, score.pairs, score.oov_pairs))
                kept[str(Path(path).resolve())] = {
                    "spearman": score.spearman, "pearson": score.pearson, "pairs": score.pairs,
                    "oov": score.oov_pairs, "restrict_vocab": args.restrict_vocab,
                }
            for path in args.analogies:
                add = evaluate_analogies(vectors, path, args.restrict_vocab, "3cosadd")
                if not add.total:  # else 0% accuracy was printed and kept for no question asked
                    raise FileFormatError(
                        f"{path}: no question of its {add.oov} has its four words in the vocabulary "
                        f"(the first {args.restrict_vocab:,} words: --restrict-vocab)"
                    )
                mul = evaluate_analogies(vectors, path, args.restrict_vocab, "3cosmul")
                run_analogies.append((run, path, add.accuracy, mul.accuracy, add.total, add.oov))
                kept[str(Path(path).resolve())] = {
                    "3cosadd": add.accuracy, "3cosmul": mul.accuracy, "questions": add.total,
                    "oov": add.oov, "restrict_vocab": args.restrict_vocab,
                }
        except Nlp182Error as exc:
            _run_failed(run, exc)
            failed += 1
            continue
        pairs_rows += run_pairs
        analogy_rows += run_analogies
        _keep_scores(run, "eval_files", kept, merge=True)
    tables = (
        (pairs_rows, ("pairs file", "Spearman", "Pearson", "pairs (oov)")),
        (analogy_rows, ("analogy file", "3CosAdd", "3CosMul", "questions (oov)")),
    )
    for rows, (kind, first, second, coverage) in tables:
        if rows:
            print(f"{'run':<28}{kind:<32}{first:>10}{second:>10}{coverage:>18}")
        for run, path, one, two, items, oov in rows:
            coverage = f"{items} ({oov})"
            print(f"{Path(run).name:<28}{Path(path).name:<32}{one:>10.4f}{two:>10.4f}{coverage:>18}")
    return failed


def _run_neighbors(args: argparse.Namespace) -> int:
    from nlp182.embeddings.runs import load_run

    if not args.words and not args.negative:
        raise InvalidInputError("give a word whose neighbours to list, or --negative WORD")
    vectors, _ = load_run(args.run)
    terms = [*args.words, *args.negative]
    weights = [1.0] * len(args.words) + [-1.0] * len(args.negative)
    if args.negative and not vectors.get_mean_vector(terms, weights, ignore_missing=False).any():
        from nlp182.embeddings.query import CANCELLED  # "the --negative the" printed every score 0

        raise InvalidInputError(CANCELLED)
    found = vectors.most_similar(positive=args.words, negative=args.negative, topn=args.k)
    if not found:  # every word of the run is a query word: an empty answer, said as such
        log.warning("%s has no word besides the query's (%d words in all): no neighbours to show",
                    args.run, len(vectors))
    for word, score in found:
        print(f"{word:<23} {score:.4f}")  # a space even after a long word (German compounds)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the corpus, training, evaluation and neighbour commands."""
    corpus = subparsers.add_parser("corpus", help="prepare corpora and evaluation files")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    prepare = corpus_commands.add_parser(
        "prepare",
        help="build corpora/wiki.txt and corpora/eval/ from gensim's data, or a corpus file from a "
        "Wikipedia dump (--wiki) or plain-text files (--text)",
    )
    prepare.add_argument(
        "--out",
        default=None,
        help="output folder of the default corpus (default: corpora), or the corpus file to write "
        "with --wiki/--text",
    )
    add_overwrite_flag(prepare, "with --wiki/--text: replace an existing --out corpus file (never an input)")
    prepare.add_argument("--wiki", metavar="DUMP", help="a Wikipedia pages-articles .xml.bz2 dump")
    prepare.add_argument("--text", metavar="PATH", nargs="+", help="plain-text files or folders of them")
    prepare.add_argument(
        "--processes", type=checked(int, POSITIVE), default=None,
        help="markup-stripping processes for --wiki (default: one per CPU core but one)"
    )
    add_limit_flags(prepare, "--text line read whole", action="read in pieces cut at spaces")
    prepare.add_argument("--max-article-bytes", type=checked(int, POSITIVE), default=MAX_ARTICLE_BYTES,
                         help=f"longest --wiki page in bytes ({mib(MAX_ARTICLE_BYTES)}); longer ones are "
                         f"skipped and counted (default: {MAX_ARTICLE_BYTES})")
    prepare.set_defaults(func=_run_prepare, out_contract="files")  # adds files beside the recipe

    train_group(subparsers)  # `train` lists second; nlp182.commands.embedding_training adds lsa and w2v

    evaluate = subparsers.add_parser("eval", help="WordSim-353, SimLex-999 and analogy scores of runs")
    evaluate.add_argument("runs", nargs="+", help="run folders")
    evaluate.add_argument(
        "--eval-dir", default=DEFAULT_EVAL_DIR,
        help=f"the WordSim-353, SimLex-999 and Google analogy files (default: {DEFAULT_EVAL_DIR})",
    )
    evaluate.add_argument(
        "--pairs", action="append", default=[], metavar="FILE",
        help="score this word-similarity file instead of the --eval-dir sets (repeatable): word1, word2, "
        "score by tab, comma or space, or a published layout with more columns (SimLex-999, MEN, "
        "Rare Words, SimVerb); scores go to metrics.json under eval_files",
    )
    evaluate.add_argument(
        "--analogies", action="append", default=[], metavar="FILE",
        help="score this analogy file (': section' lines, then 'a b c d' questions) instead of the "
        "--eval-dir sets (repeatable)",
    )
    evaluate.add_argument(
        "--restrict-vocab", type=checked(int, POSITIVE), default=RESTRICT_VOCAB,
        help="score only the N most frequent words: analogies are answered among them, and pairs "
        "and questions with other words count as out of vocabulary (gensim's restrict_vocab; the "
        f"scores kept in metrics.json record it; default: {RESTRICT_VOCAB})"
    )
    evaluate.set_defaults(func=_run_eval)

    neighbors = subparsers.add_parser(
        "neighbors", help="nearest words of WORD in a run",
        description="Nearest words of WORD, or of the mean of several words minus the --negative ones "
        "(gensim's most_similar(positive, negative)): `nlp182 neighbors RUN king woman --negative man`.",
    )
    neighbors.add_argument("run", help="run folder")
    neighbors.add_argument(
        "words", nargs="*", metavar="word",
        help="the word (or words) whose neighbours to list; none with --negative lists the words "
        "farthest from those, as gensim's most_similar(negative=...)",
    )
    neighbors.add_argument(
        "--negative", action="append", default=[], metavar="WORD",
        help="a word to subtract, as in an analogy (repeatable)",
    )
    neighbors.add_argument(
        "-k", "--k", type=checked(int, POSITIVE), default=10, help="how many neighbours (default: 10)"
    )
    neighbors.set_defaults(func=_run_neighbors)
