"""``nlp182 train seq2seq`` and ``nlp182 translate``.

Every field of :class:`Seq2SeqConfig` and its :class:`ModelConfig` is a flag of the same name
(``embed_dim`` -> ``--embed-dim``; booleans also have ``--no-...``), so the CLI and the Python
API configure exactly the same things.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from nlp182.bounded import BoundedLines, open_bounded
from nlp182.commands.flags import (
    POSITIVE,
    add_config_flags,
    add_out_flag,
    add_overwrite_flag,
    add_resume_flag,
    checked,
    config_from_args,
    device_name,
    figure_paths,
    given_fields,
    interrupted,
    kept_after_error,
    train_group,
)
from nlp182.commands.limits import add_limit_flags
from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import check_input_file, read_json
from nlp182.seq2seq.config import Seq2SeqConfig
from nlp182.seq2seq.data import MAX_SENTENCE_BYTES
from nlp182.settings import limits_of
from nlp182.train.diagnostics import closing_note

if TYPE_CHECKING:
    from nlp182.seq2seq.translator import Translator

log = logging.getLogger(__name__)


def _run_train(args: argparse.Namespace) -> int:
    from nlp182.seq2seq.train import train_seq2seq

    config = _with_absolute_paths(config_from_args(Seq2SeqConfig, args))
    try:  # with --resume, train_seq2seq reads the staged config
        metrics = train_seq2seq(config, args.out, resume=args.resume, given=given_fields(args),
                                overwrite=args.overwrite)
    except KeyboardInterrupt:
        interrupted("train seq2seq", args.out)
        raise
    except OSError:
        kept_after_error("train seq2seq", args.out)
        raise
    test = metrics["test"]
    names = metrics["metrics"]
    summary = ""
    if test:
        beam = ", ".join(f"{name} {test[name]:.4f}" for name in names)
        greedy = ", ".join(f"{name} {test['greedy'][name]:.4f}" for name in names)
        summary = f"test {beam} (beam {test['beam_width']}; greedy {greedy}); "
    print(f"{summary}best epoch {metrics['best_epoch']}, trained in {metrics['train_time_s']:.1f} s; "
          f"run saved to {args.out}{closing_note(metrics.get('warnings', []))}")
    return 0


#: Characters of input text translated in one batch at most: 256 lines of 65,000 characters,
#: each within the line bound, took 24 GB where one such line takes about 0.5 GB.
MAX_BATCH_CHARS = 1 << 16
#: The settings that name a user's data file.
DATA_FILE_FIELDS = ("data", "target_file", "valid_data", "valid_target_file", "test_data", "test_target_file")


def _with_absolute_paths(config: Seq2SeqConfig) -> Seq2SeqConfig:
    """``config`` with its data files named by absolute paths, as the run saves them: a run saved
    with ``rev.tsv`` could only be resumed from the folder it started in (elsewhere its data did
    not exist, and the same file named by its full path was refused as other data). The built-in
    data sets keep their names, and ``-`` (standard input) stays as it is."""
    from nlp182.seq2seq.cmudict import CMUDICT
    from nlp182.seq2seq.config import DATES

    built_in = (DATES, CMUDICT)
    if config.data in built_in and Path(config.data).exists():
        log.warning("--data %s names the built-in data set, not the file %s here; give ./%s to train on the "
                    "file", config.data, config.data, config.data)
    absolute = {
        name: str(Path(value).absolute())
        for name in DATA_FILE_FIELDS
        if (value := getattr(config, name)) not in (None, "-") and not (name == "data" and value in built_in)
    }
    return dataclasses.replace(config, **absolute)


def _longest_training_input(run: Path, fallback: int) -> int:
    """Tokens of the longest training input, from ``metrics.json`` (older runs: ``max_length``)."""
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    return int(metrics.get("longest_source_tokens") or fallback)


def _stdin_bytes() -> BinaryIO:
    """Standard input as bytes. A text stream put in its place (``io.StringIO``, already in memory)
    has no ``buffer``: its text is encoded as UTF-8."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer if buffer is not None else io.BytesIO(sys.stdin.read().encode("utf-8"))


def _input_lines(source: str, max_bytes: int) -> Iterator[str]:
    """Lines of a file, or of standard input for ``-``, without their line ends.

    A line longer than ``max_bytes`` comes back blank (so it is not translated, and the output
    keeps one line per input line) and is counted in one warning; a line that is not UTF-8 is a
    one-line error naming it.
    """
    if source != "-":
        check_input_file(source, missing_hint="; pass a text file (a sentence a line) or -, stdin")
    name = "standard input" if source == "-" else source
    with contextlib.ExitStack() as stack:
        handle = _stdin_bytes() if source == "-" else stack.enter_context(open_bounded(source))
        lines = BoundedLines(handle, max_bytes, name)
        done = 0
        for number, line in lines:
            for _ in range(number - 1 - done):  # skipped lines before this one
                yield ""
            done = number
            try:
                text = line.decode("utf-8").removesuffix("\r")
                yield text.removeprefix("\ufeff") if number == 1 else text  # a byte-order mark
            except UnicodeDecodeError as exc:
                raise FileFormatError(
                    f"{name}: line {number} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
        yield from [""] * (lines.number - done)
        lines.warn_skipped("left untranslated")


def _translate_stream(
    translator: Translator, lines: Iterable[str], args: argparse.Namespace, longest: int
) -> None:
    """Print one output line per input line, translating ``batch_size`` at a time (fewer when their
    text passes ``MAX_BATCH_CHARS``: a batch's memory grows with its tokens); a blank line
    stays blank, and so does one longer than the model reads. What the batches meet (unknown
    pieces, outputs cut at ``max_len``, lines too long, lines longer than any training input, whose
    translations are unreliable) is told once, at the end, so the output holds translations only."""
    chunk: list[str] = []
    too_long = cut = translated = 0
    unknown: dict[str, None] = {}
    beyond: list[int] = []  # line numbers longer than the longest training input
    seen = 0

    def flush() -> None:
        nonlocal too_long, cut, translated, seen
        encodings = translator.encode(chunk)  # once: translate takes them back
        taken = translator.translatable(chunk, encodings)
        beyond.extend(seen + i + 1 for i, (ok, encoding) in enumerate(zip(taken, encodings, strict=True))
                      if ok and len(encoding.ids) > longest)
        seen += len(chunk)
        too_long += sum(not ok and bool(line.strip()) for line, ok in zip(chunk, taken, strict=True))
        kept = [i for i, ok in enumerate(taken) if ok]
        texts, kept_encodings = [chunk[i] for i in kept], [encodings[i] for i in kept]
        unknown.update(dict.fromkeys(translator.unknown_pieces(texts, kept_encodings)))
        results = translator.translate(
            texts, beam_width=args.beam_width, max_len=args.max_len, warn=False,
            length_penalty=args.length_penalty, need_weights=False, encodings=kept_encodings,
        ) if kept else []  # fmt: skip
        cut += sum(not result.complete for result in results)
        translated += len(results)
        outputs = iter(results)
        for ok in taken:
            print(next(outputs).text if ok else "")
        sys.stdout.flush()
        chunk.clear()

    chars = 0
    for line in lines:
        chunk.append(line)
        chars += len(line)
        if len(chunk) == args.batch_size or chars >= MAX_BATCH_CHARS:
            flush()
            chars = 0
    flush()
    translator.log_unknown(list(unknown))
    translator.warn_cut(cut, translated, args.max_len)
    if too_long:
        limit = getattr(translator.model, "max_source_tokens", None)
        log.warning("%d input lines are longer than the model reads (%s tokens) and are left untranslated",
                    too_long, limit)
    if beyond:
        shown = ", ".join(map(str, beyond[:10])) + (", ..." if len(beyond) > 10 else "")
        log.warning("%d input lines have more tokens than the longest training input (%d): their "
                    "translations are unreliable (lines %s)", len(beyond), longest, shown)


def _run_translate(args: argparse.Namespace) -> int:
    from nlp182.io import run_kind
    from nlp182.seq2seq.translator import Translator

    if bool(args.text) == (args.input is not None):
        both = ", not both" if args.text else ""
        raise InvalidInputError(f"give sentences on the command line or --input FILE (- for stdin){both}")
    if args.input is not None and args.heatmap is not None:
        raise InvalidInputError("--heatmap draws sentences given on the command line, not --input")
    if any(not text.strip() for text in args.text):
        raise InvalidInputError("a sentence to translate is empty")
    kind = run_kind(args.run)
    if kind not in (None, "seq2seq"):
        raise InvalidInputError(f"{args.run} is a {kind} run, not a seq2seq run")
    paths = [] if args.heatmap is None else figure_paths(  # before translating: they can be written
        args.heatmap, len(args.text), "--heatmap", args.overwrite
    )
    translator = Translator.load(args.run, device=args.device)
    longest = _longest_training_input(Path(args.run), translator.config.max_length)
    if args.input is not None:
        _translate_stream(translator, _input_lines(args.input, args.max_line_bytes), args, longest)
        return 0
    lengths = [len(encoding.ids) for encoding in translator.encode(args.text)]
    translations = translator.translate(
        args.text, beam_width=args.beam_width, max_len=args.max_len, length_penalty=args.length_penalty
    )
    for number, (translation, length) in enumerate(zip(translations, lengths, strict=True), 1):
        if length > longest:  # said on stderr: standard output holds the translations alone
            log.warning(
                "sentence %d has %d tokens, more than the longest training input (%d): "
                "its translation is unreliable", number, length, longest,
            )
        print(translation.text)
    for translation, path in zip(translations, paths, strict=False):
        translation.save_heatmap(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train seq2seq`` and ``translate``."""
    train = train_group(subparsers).add_parser(
        "seq2seq", help="train an attention seq2seq translator on parallel text or the date task",
        description="Train an attention translator. On your own TSV or parallel files, the settings that\n"
        "depend on the data (tokenizers, batch size, --max-len, embedding width, metrics) are chosen\n"
        "from it unless you give them, so the defaults printed below may not be the ones used: the log\n"
        "and metrics.json say what was chosen and why.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out_flag(train, "run folder (staged in OUT.incomplete until training ends)")
    add_resume_flag(train)
    add_config_flags(train, Seq2SeqConfig)
    train.set_defaults(func=_run_train)

    translate = subparsers.add_parser("translate", help="translate sentences with a trained seq2seq run")
    translate.add_argument("run", help="run folder written by `nlp182 train seq2seq`")
    translate.add_argument("text", nargs="*", help="sentence(s) to translate")
    translate.set_defaults(trailing_words="text")  # before or after the options
    translate.add_argument(
        "--input", default=None, help="translate this file line by line (- reads standard input); "
        "prints one line per input line"
    )
    translate.add_argument(
        "--beam-width", "--beam", default=None,
        type=checked(int, limits_of(Seq2SeqConfig.__dataclass_fields__["beam_width"])),
        help="candidates kept while decoding; 1 is greedy (default: the run's setting)",
    )
    translate.add_argument(
        "--batch-size", type=checked(int, POSITIVE), default=256,
        help="lines decoded together with --input (default: 256)",
    )
    translate.add_argument(
        "--max-len", type=checked(int, POSITIVE), default=None,
        help="most output tokens (default: the run's setting)",
    )
    translate.add_argument(
        "--length-penalty", default=None,
        type=checked(float, limits_of(Seq2SeqConfig.__dataclass_fields__["length_penalty"])),
        help="favour longer outputs as it grows; 0 ranks by total probability (default: the run's setting)",
    )
    translate.add_argument(
        "--heatmap", default=None,
        help="write each sentence's attention heatmap here (.png, .pdf or .svg); with several "
        "sentences NAME-0.png, NAME-1.png, ...",
    )
    add_overwrite_flag(translate, "replace existing --heatmap files")
    add_limit_flags(translate, "--input line", MAX_SENTENCE_BYTES,
                    action="left untranslated (an empty output line) and counted", compressed=False)
    translate.add_argument(
        "--device", type=device_name, default="auto",
        help="where to compute: auto, cpu, cuda or mps (default: auto)",
    )
    translate.set_defaults(func=_run_translate)
