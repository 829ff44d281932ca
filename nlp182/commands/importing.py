"""``nlp182 import PATH --out RUN``: a run folder from vectors a user already has."""

from __future__ import annotations

import argparse

from nlp182.commands.limits import add_limit_flags, limits_from


def _run_import(args: argparse.Namespace) -> int:
    from nlp182.embeddings.importing import import_vectors

    report = import_vectors(
        args.path, args.out, args.format, args.limit, args.encoding, args.unicode_errors, args.fvocab,
        nonfinite=args.nonfinite, limits=limits_from(args), overwrite=args.overwrite,
    )
    counts = "with counts" if report.has_counts else "no counts"
    print(f"imported {report.words} words x {report.dim} dims ({report.format}, {counts}) -> {report.run}")
    print(f"next: nlp182 index {report.run} && nlp182 serve {report.run}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` sub-command."""
    from nlp182.embeddings.formats import FORMATS, NONFINITE

    parser = subparsers.add_parser(
        "import",
        help="turn word2vec/GloVe/fastText .vec/gensim .kv vectors into a run folder (for index, serve)",
        description="Read vectors a user already has into a run folder. gensim .kv files are pickles: "
        "they are read by a restricted unpickler that runs no code from the file and refuses anything "
        "but numpy arrays and KeyedVectors fields; import them only from sources you trust.",
    )
    parser.add_argument("path", help="vector file (.bin, .txt, .vec, .kv; .gz and .bz2 are read compressed)")
    parser.add_argument("--out", required=True, help="run folder to write (replaced as a whole on success)")
    parser.add_argument("--format", default="auto", choices=FORMATS,
                        help="file format (default: auto, from the file's first bytes)")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep only the first N words (the most frequent in frequency-sorted files; "
                             "default: all)")
    parser.add_argument("--encoding", default="utf-8", help="encoding of the words (default: utf-8)")
    parser.add_argument("--unicode-errors", default="strict", choices=("strict", "replace", "ignore"),
                        help="what to do with words that do not decode (default: strict)")
    parser.add_argument("--fvocab", default=None, help="'word count' file with the counts of a word2vec file")
    parser.add_argument("--nonfinite", default="error", choices=NONFINITE,
                        help="a vector with nan, inf or a value beyond float32: refuse the file (error, the "
                        "default) or leave the word out and count it (drop)")
    add_limit_flags(parser, "text line or binary word", action="refused with the line number")
    parser.set_defaults(func=_run_import)
