"""``nlp182 train seq2seq`` and ``nlp182 translate``.

Every field of :class:`Seq2SeqConfig` and its :class:`ModelConfig` is a flag of the same name
(``embed_dim`` -> ``--embed-dim``; booleans also have ``--no-...``), so the CLI and the Python
API configure exactly the same things.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nlp182.attention import ATTENTION_KINDS
from nlp182.commands.flags import (
    POSITIVE,
    add_config_flags,
    add_out_flag,
    add_overwrite_flag,
    checked,
    config_from_args,
    device_name,
    train_group,
)
from nlp182.errors import InvalidInputError
from nlp182.seq2seq.config import Seq2SeqConfig
from nlp182.seq2seq.model import RNN_CELLS
from nlp182.seq2seq.tokenize import TOKENIZER_KINDS

log = logging.getLogger(__name__)
CHOICES = {"cell": RNN_CELLS, "attention": ATTENTION_KINDS, "tokenizer": TOKENIZER_KINDS}
HELP = {
    "data": "'dates' (built-in generator), a TSV file, or the source side of two aligned files",
    "target_file": "target side (line-aligned with --data); omit when --data is a TSV",
    "source_column": "TSV source column: 0-based number or header name",
    "target_column": "TSV target column: 0-based number or header name",
    "valid_fraction": "share of your pairs held out to pick the best epoch",
    "test_fraction": "share of your pairs held out for the final scores",
    "date_train": "date task: training pairs",
    "date_valid": "date task: validation pairs",
    "date_test": "date task: test pairs",
    "max_length": "longest training pair, in tokens on either side; longer ones are skipped",
    "tokenizer": "how text is split into tokens",
    "vocab_size": "most tokens in each vocabulary",
    "min_frequency": "fewest occurrences for a token to get its own entry",
    "lowercase": "lowercase the text first",
    "split_digits": "one token per digit",
    "cell": "recurrent cell of encoder and decoder",
    "embed_dim": "size of the token embeddings",
    "hidden_size": "size of the decoder state; the two encoder directions get half each",
    "num_layers": "stacked recurrent layers",
    "attention": "how the decoder scores the input positions",
    "num_heads": "heads of multi-head attention",
    "input_feeding": "feed the previous attention output into the next decoder step",
    "clip_grad_norm": "gradients are scaled down to at most this norm before each step",
    "teacher_forcing": "probability of feeding the true previous token while training",
    "label_smoothing": "share of the target probability spread over all tokens",
    "early_stopping_patience": "stop after this many epochs without a better validation score "
    "(default: train every epoch)",
    "beam_width": "candidates kept while decoding the test set and by translate; 1 is greedy",
    "length_penalty": "favour longer outputs as it grows; 0 ranks by total probability",
    "max_output_len": "most output tokens",
    "num_heatmaps": "attention heatmaps of test sentences saved in the run",
}


def _run_train(args: argparse.Namespace) -> int:
    from nlp182.seq2seq.train import train_seq2seq

    config = config_from_args(Seq2SeqConfig, args)
    metrics = train_seq2seq(config, args.out)
    test = metrics["test"]
    summary = f"test exact match {test['exact_match']:.4f}, BLEU {test['bleu']:.2f}; " if test else ""
    print(f"{summary}trained in {metrics['train_time_s']:.1f} s; run saved to {args.out}")
    return 0


def _heatmap_paths(base: Path, count: int) -> list[Path]:
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix or '.png'}") for i in range(count)]


def _longest_training_input(run: Path, fallback: int) -> int:
    """Tokens of the longest training input, from ``metrics.json`` (older runs: ``max_length``)."""
    from nlp182.io import read_json

    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    return int(metrics.get("longest_source_tokens") or fallback)


def _run_translate(args: argparse.Namespace) -> int:
    from nlp182.io import check_output_file, run_kind
    from nlp182.plots import figure_format
    from nlp182.seq2seq.tokenize import encode
    from nlp182.seq2seq.translator import Translator

    if any(not text.strip() for text in args.text):
        raise InvalidInputError("a sentence to translate is empty")
    kind = run_kind(args.run)
    if kind not in (None, "seq2seq"):
        raise InvalidInputError(f"{args.run} is a {kind} run, not a seq2seq run")
    paths = [] if args.heatmap is None else _heatmap_paths(Path(args.heatmap), len(args.text))
    for path in paths:  # before translating: the figures can be written
        figure_format(path, "--heatmap")
        check_output_file(path, args.overwrite, "--heatmap")
    translator = Translator.load(args.run, device=args.device)
    longest = _longest_training_input(Path(args.run), translator.config.max_length)
    lengths = [len(ids) for ids in encode(translator.source_tokenizer, args.text)]
    translations = translator.translate(
        args.text, beam_width=args.beam_width, max_len=args.max_len, length_penalty=args.length_penalty
    )
    for number, (translation, length) in enumerate(zip(translations, lengths, strict=True), 1):
        if length > longest:
            log.warning(
                "sentence %d has %d tokens, more than the longest training input (%d): "
                "its translation is unreliable", number, length, longest,
            )
            print(f"{translation.text}\t[unreliable: input longer than any training input]")
        else:
            print(translation.text)
    for translation, path in zip(translations, paths, strict=False):
        translation.save_heatmap(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train seq2seq`` and ``translate``."""
    train = train_group(subparsers).add_parser(
        "seq2seq", help="train an attention seq2seq translator on parallel text or the date task"
    )
    add_out_flag(train)
    add_config_flags(train, Seq2SeqConfig, choices=CHOICES, helps=HELP)
    train.set_defaults(func=_run_train)

    translate = subparsers.add_parser("translate", help="translate sentences with a trained seq2seq run")
    translate.add_argument("run", help="run folder written by `nlp182 train seq2seq`")
    translate.add_argument("text", nargs="+", help="sentence(s) to translate")
    translate.add_argument(
        "--beam-width", type=checked(int, POSITIVE), default=None,
        help="candidates kept while decoding; 1 is greedy (default: the run's setting)",
    )
    translate.add_argument(
        "--max-len", type=checked(int, POSITIVE), default=None,
        help="most output tokens (default: the run's setting)",
    )
    translate.add_argument(
        "--length-penalty", type=checked(float, {"minimum": 0}), default=None,
        help="favour longer outputs as it grows; 0 ranks by total probability (default: the run's setting)",
    )
    translate.add_argument(
        "--heatmap", default=None,
        help="write each sentence's attention heatmap here (.png, .pdf or .svg); with several "
        "sentences NAME-0.png, NAME-1.png, ...",
    )
    add_overwrite_flag(translate, "replace existing --heatmap files")
    translate.add_argument(
        "--device", type=device_name, default="auto",
        help="where to compute: auto, cpu, cuda or mps (default: auto)",
    )
    translate.set_defaults(func=_run_translate)
