"""The seq2seq settings a user did not give, chosen for the data.

- ``cmudict``: the measured recipe (:data:`CMUDICT_RECIPE`; test WER 27.6% / PER 6.57% with beam 5
  after 2,700 s on one CPU core, the goal being 28% / 7%), so ``--data cmudict`` alone trains it.
- A user's file: sizes from its training pairs. Each side is read letter by letter (``char``) when
  at least :data:`SPELLING_SHARE` of its lines are one word (spelling, transliteration, G2P);
  the state size is 128 below :data:`LARGE_DATA` pairs, else 256; the token embeddings 64 wide up
  to :data:`LARGE_VOCABULARY` tokens in the larger vocabulary (counted by training that side's
  tokenizer, so split digits and punctuation count as the model sees them), else 128; the batch is
  the power of two nearest below 1/50 of the pairs, within 16-128 (a small set still gets ~50 steps
  an epoch); the epochs give about :data:`MIN_STEPS` optimizer steps (10 at least, at most
  :data:`MAX_AUTO_EPOCHS`), and when raised above 10 validation stops training once it has not
  improved for a fifth of them; the longest output is 1.5 x the longest training target plus 5
  tokens, among the pairs ``max_length`` keeps.
- ``dates``: its own defaults, unchanged.

A setting counts as given when its flag was on the command line (``given``) or, from Python, when
it was passed to the config's constructor (even at its default value) or differs from the class
default. :func:`summary_line` is the one log line that says what was
chosen and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from typing import Any

from tokenizers import Tokenizer

from nlp182.seq2seq.cmudict import CMUDICT
from nlp182.seq2seq.config import BUILTIN_DATA, Seq2SeqConfig
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import SPECIAL_TOKENS, encode, train_tokenizer
from nlp182.settings import given_settings

#: ``--data cmudict``'s settings (eleven flags of the measured run; the CLI form is in docs/howto/seq2seq.md).
CMUDICT_RECIPE: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 256,
    "embed_dim": 64,
    "input_feeding": False,
    "attention": "general",
    "batch_size": 128,
    "lr": 3e-3,
    "lr_schedule": "plateau",
    "label_smoothing": 0.1,
    "epochs": 40,
    "max_len": 40,
}
CMUDICT_REASON = "the CMUdict recipe: test WER 27.6%, PER 6.57% (beam 5) after 2,700 s on one CPU core"
SPELLING_SHARE = 0.9
#: Bytes a logit costs in training: the float32 value, its softmax and its gradient.
LOGIT_BYTES = 12
LOGITS_BUDGET = 512 << 20
LARGE_DATA = 5000
LARGE_VOCABULARY = 5000
MIN_BATCH, MAX_BATCH = 16, 128
#: Optimizer steps a user's set is trained for at least, epochs permitting: ten epochs of 300 pairs
#: in batches of 16 are 170 steps, after which a copy task was still learning (60% exact).
MIN_STEPS = 2000
MAX_AUTO_EPOCHS = 100
MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))


def changed_fields(config: Seq2SeqConfig) -> set[str]:
    """Names of the settings (model ones flattened) the caller chose: those passed to the configs'
    constructors, even at their default value, and those that differ from their class defaults
    (set afterwards)."""
    default, default_model = Seq2SeqConfig(), ModelConfig()
    changed = {f.name for f in dataclasses.fields(default) if f.name != "model"  # a subclass's own: not ours
               and getattr(config, f.name) != getattr(default, f.name)}  # fmt: skip
    changed |= {name for name in MODEL_FIELDS if getattr(config.model, name) != getattr(default_model, name)}
    return changed | (given_settings(config) - {"model"}) | given_settings(config.model)


def _one_word_share(texts: Sequence[str]) -> float:
    return sum(len(text.split()) == 1 for text in texts) / max(len(texts), 1)


def _tokenizer(texts: Sequence[str], kind: str, config: Seq2SeqConfig) -> Tokenizer:
    """The tokenizer the translator will train on ``texts``, so sizes are counted as the model sees
    them (digits split, punctuation a token of its own)."""
    return train_tokenizer(texts, kind, config.vocab_size, config.min_count, config.lowercase,
                           config.split_digits)  # fmt: skip


def _user_choices(config: Seq2SeqConfig, pairs: Sequence[tuple[str, str]], given: set[str]) -> dict[str, Any]:
    """``{setting: (value, reason)}`` sized from the training ``pairs`` of a user's file."""
    choices: dict[str, Any] = {}
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    kinds = {}
    for side, texts in (("source", sources), ("target", targets)):
        name = f"{side}_tokenizer"
        kinds[side] = getattr(config, name) or config.tokenizer
        if name in given or "tokenizer" in given or getattr(config, name) is not None:
            continue
        share = _one_word_share(texts)
        if share >= SPELLING_SHARE:
            kinds[side] = "char"
            choices[name] = ("char", f"{share:.0%} of the {side}s are one word: read letter by letter")
    count = len(pairs)
    tokenizers = {side: _tokenizer(texts, kinds[side], config)
                  for side, texts in (("source", sources), ("target", targets))}  # fmt: skip
    if "embed_dim" not in given:
        vocabulary = max(t.get_vocab_size() - len(SPECIAL_TOKENS) for t in tokenizers.values())
        relation = "<=" if vocabulary <= LARGE_VOCABULARY else ">"
        choices["embed_dim"] = (
            64 if vocabulary <= LARGE_VOCABULARY else 128,
            f"{vocabulary} distinct tokens on the larger side {relation} {LARGE_VOCABULARY}",
        )
    if "hidden_size" not in given:
        size = 128 if count < LARGE_DATA else 256
        relation = "<" if count < LARGE_DATA else ">="
        choices["hidden_size"] = (size, f"{count} training pairs {relation} {LARGE_DATA}")
    # In the target tokenizer's tokens, what the decoder emits: "2002 01 20" is 11, not 3 words;
    # over the pairs training keeps (a 391-token target over max_length made every output 592 long).
    source_lengths = [len(ids) for ids in encode(tokenizers["source"], sources)]
    target_ids = encode(tokenizers["target"], targets)
    kept = [len(ids) for ids, source in zip(target_ids, source_lengths, strict=True)
            if 0 < len(ids) <= config.max_length and 0 < source <= config.max_length]
    longest = max(kept, default=1)
    if "batch_size" not in given:
        batch = min(MAX_BATCH, max(MIN_BATCH, 2 ** int(math.log2(max(count / 50, 1)))))
        steps = math.ceil(count / batch)
        reason = f"{steps} steps an epoch over {count} pairs (~50 aimed at, within {MIN_BATCH}-{MAX_BATCH})"
        # the logits (B, T, V) and their gradients must fit too: long targets over a large
        # vocabulary (8,000 characters, 250 a line) take a gigabyte at a batch of 128
        per_pair = (longest + 1) * tokenizers["target"].get_vocab_size() * LOGIT_BYTES
        fits = 2 ** int(math.log2(max(LOGITS_BUDGET // per_pair, 1)))
        if fits < batch:
            batch = fits
            reason = (f"the largest power of 2 whose logits ({longest + 1} target tokens x "
                      f"{tokenizers['target'].get_vocab_size()} words) fit {LOGITS_BUDGET >> 20} MiB")
        choices["batch_size"] = (batch, reason)
    if "epochs" not in given:
        steps = math.ceil(count / choices.get("batch_size", (config.batch_size,))[0])
        epochs = min(MAX_AUTO_EPOCHS, max(config.epochs, math.ceil(MIN_STEPS / max(steps, 1))))
        if epochs != config.epochs:
            choices["epochs"] = (epochs, f"about {MIN_STEPS} steps at {steps} an epoch, at most "
                                         f"{MAX_AUTO_EPOCHS} epochs")
            if "early_stopping_patience" not in given and config.early_stopping_patience is None:
                choices["early_stopping_patience"] = (
                    max(5, epochs // 5), f"a fifth of the {epochs} epochs without a better validation score")
    if "max_len" not in given and targets:
        choices["max_len"] = (
            math.ceil(1.5 * longest) + 5,
            f"1.5 x the longest training target ({longest} {kinds['target']} tokens) + 5",
        )
    return choices


def choose_defaults(
    config: Seq2SeqConfig, train_pairs: Sequence[tuple[str, str]], given: Collection[str] | None = None
) -> tuple[Seq2SeqConfig, dict[str, str]]:
    """``config`` with the settings not in ``given`` chosen for ``config.data`` and its ``train_pairs``,
    and ``{setting: "value (why)"}`` for each one changed. ``given=None``: every setting that
    differs from its default counts as given."""
    given = set(changed_fields(config) if given is None else given)
    choices: dict[str, Any] = {}
    if config.data == CMUDICT:
        choices = {name: (value, CMUDICT_REASON) for name, value in CMUDICT_RECIPE.items()
                   if name not in given}  # fmt: skip
    elif config.data not in BUILTIN_DATA:
        choices = _user_choices(config, train_pairs, given)
    model = {k: v for k, (v, _) in choices.items() if k in MODEL_FIELDS}
    top = {k: v for k, (v, _) in choices.items() if k not in MODEL_FIELDS}
    settled = dataclasses.replace(config, model=dataclasses.replace(config.model, **model), **top)
    if config.data == CMUDICT:
        return settled, {name: f"{value}" for name, (value, _) in choices.items()}
    return settled, {name: f"{value} ({why})" for name, (value, why) in choices.items()}


def summary_line(data: str, chosen: dict[str, str]) -> str:
    """The one log line saying what was chosen and why."""
    if not chosen:
        return "seq2seq defaults: nothing chosen from the data (every setting given, or the data set's own)"
    settings = ", ".join(f"{name} {value}" for name, value in chosen.items())
    if data == CMUDICT:
        return f"seq2seq defaults for cmudict: {settings} ({CMUDICT_REASON})"
    return "seq2seq defaults chosen from the data: " + "; ".join(f"{k} {v}" for k, v in chosen.items())
