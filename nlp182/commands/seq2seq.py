"""``nlp182 train seq2seq`` and ``nlp182 translate``.

Every field of :class:`Seq2SeqConfig` and its :class:`ModelConfig` is a flag of the same name
(``embed_dim`` -> ``--embed-dim``; booleans also have ``--no-...``), so the CLI and the Python
API configure exactly the same things.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nlp182.attention import ATTENTION_KINDS
from nlp182.commands.flags import add_config_flags, config_from_args, train_group
from nlp182.errors import InvalidInputError
from nlp182.seq2seq.config import Seq2SeqConfig
from nlp182.seq2seq.model import RNN_CELLS
from nlp182.seq2seq.tokenize import TOKENIZER_KINDS

CHOICES = {"cell": RNN_CELLS, "attention": ATTENTION_KINDS, "tokenizer": TOKENIZER_KINDS}
HELP = {
    "data": "'dates' (built-in generator), a TSV file, or the source side of two aligned files",
    "target_file": "target side (line-aligned with --data); omit when --data is a TSV",
    "source_column": "TSV source column: 0-based number or header name",
    "target_column": "TSV target column: 0-based number or header name",
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


def _run_translate(args: argparse.Namespace) -> int:
    from nlp182.seq2seq.translator import Translator

    if any(not text.strip() for text in args.text):
        raise InvalidInputError("a sentence to translate is empty")
    translator = Translator.load(args.run, device=args.device)
    translations = translator.translate(
        args.text, beam_width=args.beam_width, max_len=args.max_len, length_penalty=args.length_penalty
    )
    for translation in translations:
        print(translation.text)
    if args.heatmap is not None:
        for translation, path in zip(
            translations, _heatmap_paths(Path(args.heatmap), len(translations)), strict=True
        ):
            translation.save_heatmap(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train seq2seq`` and ``translate``."""
    train = train_group(subparsers).add_parser(
        "seq2seq", help="train an attention seq2seq translator on parallel text or the date task"
    )
    train.add_argument("--out", required=True, help="run folder to write (replaced as a whole on success)")
    add_config_flags(train, Seq2SeqConfig, choices=CHOICES, helps=HELP)
    train.set_defaults(func=_run_train)

    translate = subparsers.add_parser("translate", help="translate sentences with a trained seq2seq run")
    translate.add_argument("run", help="run folder written by `nlp182 train seq2seq`")
    translate.add_argument("text", nargs="+", help="sentence(s) to translate")
    translate.add_argument(
        "--beam-width", type=int, default=None, help="beam width (1 = greedy; default: run's)"
    )
    translate.add_argument("--max-len", type=int, default=None, help="most output tokens (default: run's)")
    translate.add_argument("--length-penalty", type=float, default=None, help="length normalisation exponent")
    translate.add_argument(
        "--heatmap", default=None, help="save the attention heatmap PNG here (-i per sentence)"
    )
    translate.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    translate.set_defaults(func=_run_translate)
