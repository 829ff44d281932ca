"""``nlp182 train <method>`` for the embedding methods, built from each method registered with
:func:`nlp182.embeddings.registry.register_embedding` (``lsa``, ``w2v``, ...): the corpus flags, a
flag per config field, ``--out``, and one runner that trains, scores and saves the run folder.

A module of its own because the methods' configs live with their trainers, which import torch:
``nlp182 neighbors`` or ``eval`` builds its parser without them.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from pathlib import Path

from nlp182.bounded import mib
from nlp182.commands.embeddings import DEFAULT_EVAL_DIR, scores_with_settings
from nlp182.commands.flags import add_config_flags, add_out_flag, config_from_args, train_group
from nlp182.commands.limits import add_limit_flags, limits_from
from nlp182.embeddings.registry import EmbeddingMethod, embedding_method, embedding_methods
from nlp182.embeddings.vectors import RESTRICT_VOCAB, Vectors
from nlp182.errors import InvalidInputError
from nlp182.text.corpus import SOURCE_FORMATS, CorpusSource
from nlp182.text.tokenize import TOKEN_RULES

log = logging.getLogger(__name__)

DEFAULT_CORPUS = "corpora/wiki.txt"


def _add_corpus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus", default=DEFAULT_CORPUS, help=f"text file or local data files (default: {DEFAULT_CORPUS})"
    )
    parser.add_argument(
        "--format",
        dest="corpus_format",
        default="auto",
        choices=SOURCE_FORMATS,
        help="plain lines of one file, text lines of a glob of files, JSON Lines or Parquet records "
        "(default: by extension)",
    )
    parser.add_argument(
        "--column", default="text", help="text column of json/parquet records (default: text)"
    )
    parser.add_argument(
        "--tokens",
        default="words",
        choices=TOKEN_RULES,
        help="words: lowercased words, punctuation dropped; whitespace: each line split at whitespace, "
        "words kept as written (gensim's LineSentence, for text tokenized already) (default: words)",
    )
    add_out_flag(parser)

    parser.add_argument(
        "--eval-dir",
        default=DEFAULT_EVAL_DIR,
        help=f"evaluation files scored into metrics.json when present (default: {DEFAULT_EVAL_DIR})",
    )


def _source(args: argparse.Namespace) -> CorpusSource:
    return CorpusSource(args.corpus, args.corpus_format, args.column, limits_from(args), args.tokens)


def _corpus_record(args: argparse.Namespace) -> str:
    """The corpus as config.json records it: an absolute path (a run folder moves; the cwd is lost)."""
    return str(Path(args.corpus).expanduser().resolve())


def _evaluate_if_possible(vectors: Vectors, eval_dir: str) -> dict | None:
    """WordSim-353 / SimLex-999 / analogy scores when the evaluation files are in ``eval_dir``."""
    from nlp182.embeddings.evaluate import EvaluationFiles, evaluate_all

    files = EvaluationFiles.in_folder(eval_dir)
    if not all(Path(path).is_file() for path in (files.wordsim353, files.simlex999, files.analogies)):
        log.info("evaluation skipped: %s does not hold the English evaluation files (`nlp182 corpus "
                 "prepare` writes them; --eval-dir names another folder); `nlp182 eval RUN --pairs FILE "
                 "--analogies FILE` scores your own sets", eval_dir)
        return None
    try:
        scores = evaluate_all(vectors, files)
    except InvalidInputError as exc:  # a vocabulary the English sets barely touch: the run still counts
        log.warning("evaluation skipped, the run is saved without scores: %s", exc)
        return None
    print(
        f"eval ({eval_dir}): WS353 {scores['wordsim353_spearman']:.3f}, "
        f"SimLex {scores['simlex999_spearman']:.3f}, analogies {100 * scores['analogy_3cosadd']:.1f}%"
    )
    return scores


def _run_train(method: EmbeddingMethod, args: argparse.Namespace) -> int:
    """Train ``method`` on the corpus, score the vectors when the evaluation files are there, save the run."""
    from nlp182.embeddings import distributed
    from nlp182.embeddings.runs import save_run

    config = config_from_args(method.config, args)
    source = _source(args)
    files = source.files()
    if len(files) > 1 or str(files[0]) != args.corpus:  # a glob: say what it matched
        log.info("corpus %s: %d file%s, %s (%s)", args.corpus, len(files), "" if len(files) == 1 else "s",
                 mib(source.size_bytes()), source.resolved_format())
    vectors, vocab, report = method.train(source, config)
    if getattr(report, "epochs", None) is not None and hasattr(config, "epochs"):  # chosen from the data
        config = dataclasses.replace(config, epochs=report.epochs)
    asked = {}
    if getattr(config, "dim", vectors.dim) != vectors.dim:  # LSA on a small vocabulary gets fewer
        asked, config = {"dim_asked": config.dim}, dataclasses.replace(config, dim=vectors.dim)
    run_config = {
        "corpus": _corpus_record(args), "format": source.resolved_format(), "column": args.column,
        "tokens": args.tokens, "token_rules": source.tokenizer().signature, **method.record(config), **asked,
    }
    main = distributed.is_main_process()
    distributed.stop()
    if not main:
        return 0  # under torchrun every process ends with the same averaged vectors; rank 0 saves
    metrics = {"train": dataclasses.asdict(report) | {"seconds": report.seconds}}
    scores = _evaluate_if_possible(vectors, args.eval_dir)
    if scores is not None:
        metrics["eval"] = scores_with_settings(scores, args.eval_dir, RESTRICT_VOCAB)
    save_run(args.out, vectors, vocab, run_config, metrics, overwrite=args.overwrite)
    print(f"{method.summary(vectors, config, report)} -> {args.out}")
    return 0


def _add_train_command(trainers: argparse._SubParsersAction, method: EmbeddingMethod) -> None:
    """``nlp182 train <method>``: corpus and output flags, then one flag per field of its config."""
    parser = trainers.add_parser(method.name, help=method.help)
    _add_corpus_flags(parser)
    add_limit_flags(parser, "--corpus text line read whole",
                    action="read in pieces cut at spaces, each a sentence (a JSON/Parquet record is skipped)")
    add_config_flags(parser, method.config)
    parser.set_defaults(func=functools.partial(_run_train, method))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train <method>`` for every registered embedding method."""
    trainers = train_group(subparsers)
    for name in sorted(embedding_methods()):
        _add_train_command(trainers, embedding_method(name))
