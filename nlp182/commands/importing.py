"""``nlp182 import PATH --out RUN``: a run folder from vectors a user already has; ``nlp182 export
RUN --out FILE``: a run's vectors in the word2vec format other tools read."""

from __future__ import annotations

import argparse
from pathlib import Path

from nlp182.commands.flags import POSITIVE, add_overwrite_flag, checked
from nlp182.commands.limits import add_limit_flags, limits_from
from nlp182.errors import InvalidInputError


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


def _run_export(args: argparse.Namespace) -> int:
    from nlp182.embeddings.runs import load_run
    from nlp182.io import check_output_file

    given = {"--out": args.out, "--fvocab": args.fvocab}
    targets = {
        flag: check_output_file(path, args.overwrite, flag).resolve()
        for flag, path in given.items() if path is not None
    }
    run = Path(args.run).resolve()
    for flag, target in targets.items():
        if target.exists() and run in target.parents:  # the run's own files are never replaced
            raise InvalidInputError(f"{flag} {given[flag]} is a file of the run {args.run}; name a new file")
    if targets.get("--fvocab") == targets["--out"]:
        raise InvalidInputError("--fvocab names the --out file; name another file")
    vectors, _ = load_run(args.run)
    vectors.save_word2vec_format(
        args.out, fvocab=args.fvocab, binary=args.binary, write_header=not args.no_header, limit=args.limit
    )
    words = len(vectors) if args.limit is None else min(args.limit, len(vectors))
    kind = ("word2vec binary" if args.binary
            else "GloVe's layout: text, no header" if args.no_header else "word2vec text")
    print(f"exported {words} words x {vectors.dim} dims ({kind}) -> {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` and ``export`` sub-commands."""
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

    export = subparsers.add_parser(
        "export",
        help="write a run's vectors as a word2vec text or binary file (gensim, fastText, GloVe tools)",
        description="Write a run's vectors in the word2vec C format, most frequent words first, for "
        "gensim's KeyedVectors.load_word2vec_format and the tools that read it. The file is written "
        "atomically.",
    )
    export.add_argument("run", help="run folder (from nlp182 train or nlp182 import)")
    export.add_argument("--out", required=True, help="the vector file to write")
    export.add_argument("--binary", action="store_true", help="the binary format (default: text)")
    export.add_argument("--no-header", action="store_true",
                        help="no 'words dims' first line: GloVe's text layout")
    export.add_argument("--limit", type=checked(int, POSITIVE), default=None,
                        help="only the N most frequent words (default: all)")
    export.add_argument("--fvocab", default=None,
                        help="also write the 'word count' file that word2vec's -save-vocab writes")
    add_overwrite_flag(export, "replace an existing --out (and --fvocab) file")
    export.set_defaults(func=_run_export, out_contract="files")
