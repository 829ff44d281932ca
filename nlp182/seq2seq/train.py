"""Train a seq2seq translator end to end with the shared :class:`~nlp182.train.Trainer`.

Steps: read / generate the pairs and split them, train the two tokenisers on the training side
only, encode, fit with teacher forcing (validation every epoch: teacher-forced loss and the
task's metrics on greedy outputs; the best epoch by the first metric is the one kept), then score
the held-out test split with beam search and greedy search (each decodes it once) and save the
run folder with attention heatmaps of the first few beam outputs. The run is staged in ``OUT.incomplete`` (see
:mod:`nlp182.train.run`): Ctrl-C keeps its checkpoints and ``resume=True`` continues it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nlp182.device import deterministic_algorithms, random_state_kept, seed_everything, torch_threads
from nlp182.errors import InvalidInputError
from nlp182.io import atomic_write_json, written_by
from nlp182.optim import Adam
from nlp182.optim.schedules import Cosine, InverseSqrtDecay
from nlp182.seq2seq.architectures import build_model
from nlp182.seq2seq.batching import Seq2SeqBatch, make_loader
from nlp182.seq2seq.cmudict import CMUDICT, cmudict_splits
from nlp182.seq2seq.config import DATES, Seq2SeqConfig
from nlp182.seq2seq.data import Pair, date_splits, read_aligned_files, read_tsv, split_pairs
from nlp182.seq2seq.defaults import choose_defaults, summary_line
from nlp182.seq2seq.metrics import ERROR_METRICS, PERFECT_SCORES, score
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import PAD_ID, encode, train_tokenizer
from nlp182.seq2seq.translator import Translation, Translator
from nlp182.settings import flags_set
from nlp182.train import Trainer, TrainerConfig
from nlp182.train.diagnostics import EMPTY_KEY, empty_share, kept_empty_outputs
from nlp182.train.run import (
    CHOSEN_FILE,
    check_resumable,
    check_same_data,
    resumable_run,
    resumed_choices,
    resumed_config,
)

log = logging.getLogger(__name__)

EncodedPair = tuple[list[int], list[int]]


def _read(config: Seq2SeqConfig, data: str, target_file: str | None) -> list[Pair]:
    if target_file is not None:
        return read_aligned_files(data, target_file, config.max_line_bytes)
    return read_tsv(data, config.source_column, config.target_column, config.max_line_bytes)


def load_pairs(config: Seq2SeqConfig) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train / valid / test pairs for ``config.data``; ``valid_data`` / ``test_data`` replace those splits."""
    if config.data == DATES:
        sizes = (config.date_train, config.date_valid, config.date_test)
        train, valid, test = date_splits(*sizes, seed=config.seed)
    elif config.data == CMUDICT:
        train, valid, test = cmudict_splits()
    else:
        pairs = _read(config, config.data, config.target_file)
        valid_fraction = 0.0 if config.valid_data else config.valid_fraction
        test_fraction = 0.0 if config.test_data else config.test_fraction
        train, valid, test = split_pairs(pairs, valid_fraction, test_fraction, seed=config.seed)
    if config.valid_data:
        valid = _read(config, config.valid_data, config.valid_target_file)
    if config.test_data:
        test = _read(config, config.test_data, config.test_target_file)
    for name, given, held_out in (("validation", config.valid_data, valid), ("test", config.test_data, test)):
        if given:
            _warn_overlap(name, given, held_out, train)
    return train, valid, test


#: The share of a held-out file's pairs found among the training pairs that is named in a warning.
OVERLAP_WARNING_SHARE = 0.1


def _warn_overlap(name: str, path: str, held_out: list[Pair], train: list[Pair]) -> None:
    """Warn when many pairs of a held-out file are training pairs too: the training file itself,
    or a part of it, given as --valid-data picked the best epoch on pairs the model had learnt."""
    if not held_out:
        return
    seen = set(train)
    shared = sum(pair in seen for pair in held_out)
    if shared >= OVERLAP_WARNING_SHARE * len(held_out):
        log.warning("%d of the %d %s pairs of %s are training pairs too: its scores measure what the model "
                    "learnt by heart, not how it does on new input", shared, len(held_out), name, path)


def group_references(pairs: Iterable[Pair]) -> tuple[list[str], list[list[str]]]:
    """Distinct sources (first-seen order) and, for each, every target given for it (its references)."""
    refs: dict[str, list[str]] = {}
    for source, target in pairs:
        refs.setdefault(source, []).append(target)
    return list(refs), list(refs.values())


def build_translator(config: Seq2SeqConfig, train_pairs: list[Pair]) -> Translator:
    """Tokenisers trained on ``train_pairs`` (each side its own kind) and a freshly initialised model."""
    options = {
        "vocab_size": config.vocab_size,
        "min_count": config.min_count,
        "split_digits": config.split_digits,
    }
    source_kind, target_kind = config.tokenizer_kinds()
    source_lower = config.lowercase or config.data == CMUDICT  # letters in, whatever their case
    source_tokenizer = train_tokenizer(
        (src for src, _ in train_pairs), kind=source_kind, lowercase=source_lower, **options
    )
    target_tokenizer = train_tokenizer(
        (tgt for _, tgt in train_pairs), kind=target_kind, lowercase=config.lowercase, **options
    )
    model = build_model(source_tokenizer.get_vocab_size(), target_tokenizer.get_vocab_size(), config.model)
    return Translator(model, source_tokenizer, target_tokenizer, config)


def encode_pairs(
    translator: Translator, pairs: list[Pair], max_length: int | None = None
) -> list[EncodedPair]:
    """Token ids of each pair, dropping pairs with an empty side or a side over ``max_length`` tokens."""
    sources = encode(translator.source_tokenizer, [src for src, _ in pairs])
    targets = encode(translator.target_tokenizer, [tgt for _, tgt in pairs])
    limit = max_length or float("inf")
    return [
        (s, t) for s, t in zip(sources, targets, strict=True) if 0 < len(s) <= limit and 0 < len(t) <= limit
    ]


#: Held-out pairs may run this many times ``max_length`` before they are left out of scoring:
#: longer than anything trained on is still scored, but a 16,000-token pair would stall every
#: validation pass (and the transformer cannot read past its positions at all).
HELD_OUT_LENGTH_FACTOR = 4


def bounded_held_out(translator: Translator, pairs: list[Pair], max_length: int, split: str) -> list[Pair]:
    """The ``split`` pairs whose sides fit ``HELD_OUT_LENGTH_FACTOR * max_length`` tokens and the
    model's positions; the others are counted in one warning."""
    limit = HELD_OUT_LENGTH_FACTOR * max_length
    positions = getattr(translator.model, "max_source_tokens", None)
    if positions is not None:
        limit = min(limit, positions)
    sources = encode(translator.source_tokenizer, [src for src, _ in pairs])
    targets = encode(translator.target_tokenizer, [tgt for _, tgt in pairs])
    kept = [pair for pair, source, target in zip(pairs, sources, targets, strict=True)
            if len(source) <= limit and len(target) <= limit]  # fmt: skip
    if len(kept) < len(pairs):
        log.warning("%d %s pairs are longer than %d tokens on a side and are left out of scoring",
                    len(pairs) - len(kept), split, limit)
    return kept


def sequence_loss(
    model: torch.nn.Module, batch: Seq2SeqBatch, teacher_forcing: float = 1.0, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy per target token (padding ignored) and the token accuracy."""
    logits = model(batch.source, batch.source_lengths, batch.target_in, teacher_forcing)
    loss = F.cross_entropy(
        logits.flatten(0, 1).float(),
        batch.target_out.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
    )
    real = batch.target_out != PAD_ID
    correct = (logits.argmax(dim=-1) == batch.target_out) & real
    return loss, {"token_accuracy": float(correct.sum()) / max(int(real.sum()), 1)}


def target_tokens(batch: Seq2SeqBatch) -> int:
    """Target tokens (``<eos>`` included, padding not) in a batch: the unit of training throughput."""
    return int((batch.target_out != PAD_ID).sum())


def _to(batch: Seq2SeqBatch, device: torch.device) -> Seq2SeqBatch:
    return Seq2SeqBatch(*(tensor.to(device) for tensor in batch))


def references_of(translator: Translator, references: list[list[str]]) -> list[list[str]]:
    """References passed through the target tokeniser's normaliser only (NFKC, lower-casing if set).

    Words the model cannot spell (outside the target vocabulary) stay as they are and so count
    as errors, never as ``<unk>`` matching ``<unk>``.
    """
    normalizer = translator.target_tokenizer.normalizer
    return [[normalizer.normalize_str(r) if normalizer else r for r in refs] for refs in references]


def make_eval_fn(
    translator: Translator, valid_pairs: list[Pair], names: list[str], max_len: int
) -> Callable[[torch.nn.Module, Iterable[Seq2SeqBatch]], dict[str, float]]:
    """``eval_fn`` for the Trainer: teacher-forced ``valid_loss`` (per target token of the split),
    ``valid_<metric>`` of greedy outputs and the share of them that came out empty (``valid_empty``).

    Metrics are computed per distinct source against all its references (raw text, normalised).
    """
    sources, references = group_references(valid_pairs)

    def evaluate(model: torch.nn.Module, loader: Iterable[Seq2SeqBatch]) -> dict[str, float]:
        device = next(model.parameters()).device
        summed = tokens = 0.0
        with torch.no_grad():
            for batch in loader:  # per target token over the split (batches differ in size)
                count = target_tokens(batch)
                summed += float(sequence_loss(model, _to(batch, device))[0]) * count
                tokens += count
        if not tokens:
            raise InvalidInputError("the validation split is empty")
        outputs = [
            t.text
            for t in translator.translate(
                sources, beam_width=1, max_len=max_len, warn=False, need_weights=False
            )
        ]
        scores = score(outputs, references_of(translator, references), names)
        valid = {f"valid_{k}": v for k, v in scores.items()}
        return {"valid_loss": summed / tokens, **valid, EMPTY_KEY: empty_share(outputs)}

    return evaluate


def evaluate_test(
    translator: Translator,
    test_pairs: list[Pair],
    beam_width: int | None = None,
    names: list[str] | None = None,
    need_weights: bool = False,
) -> tuple[dict[str, Any], list[Translation]]:
    """Decode the distinct test sources (beam search by default) and score them against their references.

    Pairs sharing a source are that source's alternative references. Returns the metrics (with
    the beam width used and the first ten examples) and the translations of the distinct sources
    in first-seen order, kept so that nothing decodes them again (``need_weights``: with their
    attention, for heatmaps).
    """
    names = names or translator.config.metric_names()
    sources, references = group_references(test_pairs)
    references = references_of(translator, references)
    width = translator.config.beam_width if beam_width is None else beam_width
    translations = translator.translate(sources, beam_width=width, warn=False, need_weights=need_weights)
    outputs = [t.text for t in translations]
    metrics = {
        **score(outputs, references, names),
        "beam_width": width,
        "items": len(sources),
        "examples": [
            {"source": s, "references": r, "output": o}
            for s, r, o in zip(sources[:10], references, outputs, strict=False)
        ],
    }
    return metrics, translations


def make_scheduler(
    config: Seq2SeqConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, monitor_mode: str
) -> tuple[Any, str]:
    """The ``lr_schedule`` by name, and whether the Trainer steps it per ``"step"`` or ``"epoch"``."""
    warmup = config.warmup_steps
    if config.lr_schedule == "warmup-cosine":
        total = max(config.epochs * steps_per_epoch - warmup, 1)
        return Cosine(optimizer, total_steps=total, warmup_steps=warmup), "step"
    if config.lr_schedule == "warmup-invsqrt":
        return InverseSqrtDecay(optimizer, k=1.0 / max(warmup, 1), warmup_steps=warmup), "step"
    if config.lr_schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
        return plateau(optimizer, mode=monitor_mode, factor=0.5, patience=0), "epoch"
    return None, "epoch"


def _summary(name: str, scores: dict[str, Any], names: list[str]) -> str:
    shown = ", ".join(f"{k} {scores[k]:.4g}" for k in names)
    return f"{name}: {shown}"


def train_seq2seq(
    config: Seq2SeqConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    given: Collection[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, evaluate and save a run folder at ``out_dir``; return what ``metrics.json`` holds.

    ``out_dir`` must be missing or empty, or with ``overwrite`` an earlier run (a file, or a
    folder of other files, is never replaced; :class:`~nlp182.errors.OutputError` before any work).

    Settings not in ``given`` (flag names; ``None``: those that differ from their defaults) are
    first chosen for the data (:func:`~nlp182.seq2seq.defaults.choose_defaults`: the recipe for
    ``cmudict``, sizes from the pairs of a user's file), logged on one line and kept in
    ``metrics.json`` under ``chosen``; the saved ``config.json`` holds the result. With ``resume``
    the interrupted run staged in ``OUT.incomplete`` continues from its last checkpoint (its
    tokenisers, settled config and choices are reused, whatever ``config`` says but the settings a
    resumed run may change, as more epochs) and ends exactly as an uninterrupted run would.
    ``metrics.json`` also holds ``stop_reason`` and ``warnings`` (one line per problem: a
    kept epoch scoring 0, a loss that stopped falling, a kept model that outputs empty translations).
    With ``config.deterministic`` it runs with deterministic kernels (``deterministic_algorithms``).
    """
    # the caller's thread count and random state are put back after
    with deterministic_algorithms(config.deterministic), torch_threads(), random_state_kept():
        return _train(config, out_dir, resume, given, overwrite)


#: Model settings only one architecture reads.
ARCHITECTURE_SETTINGS = {"rnn": ("cell", "attention", "input_feeding"), "transformer": ("ffn_size",)}


def _warn_unused_model_settings(model: ModelConfig) -> None:
    """Name the settings of the other architecture (``--architecture transformer --cell lstm``),
    which were accepted without a word and changed nothing."""
    unused = flags_set(model, [name for kind, names in ARCHITECTURE_SETTINGS.items()
                               if kind != model.architecture for name in names])
    if unused:
        log.warning("%s %s no effect on the %s model", ", ".join(unused),
                    "has" if len(unused) == 1 else "have", model.architecture)


def _warn_unused_settings(config: Seq2SeqConfig) -> None:
    """Name ``--warmup-steps`` without a warmup schedule and the date task's sizes with other data:
    both were accepted without a word and changed nothing."""
    unused = flags_set(config, [] if config.lr_schedule.startswith("warmup") else ["warmup_steps"])
    if config.data != DATES:
        unused += flags_set(config, ("date_train", "date_valid", "date_test"))
    if unused:
        log.warning("%s %s no effect with --lr-schedule %s and --data %s", ", ".join(unused),
                    "has" if len(unused) == 1 else "have", config.lr_schedule, config.data)


def _train(
    config: Seq2SeqConfig, out_dir: str | os.PathLike[str], resume: bool, given: Collection[str] | None,
    overwrite: bool,
) -> dict[str, Any]:
    resumed = resume
    if resumed:  # the interrupted run's settled config, before anything is read
        staged = check_resumable(out_dir)
        config = resumed_config(Seq2SeqConfig, out_dir, config, typed=given)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    train_pairs, valid_pairs, test_pairs = load_pairs(config)
    if not train_pairs or not valid_pairs:
        raise InvalidInputError("training needs non-empty train and valid splits")
    if resumed:
        chosen = resumed_choices(staged, given)
    else:
        config, chosen = choose_defaults(config, train_pairs, given)
        log.info("%s", summary_line(config.data, chosen))
        _warn_unused_model_settings(config.model)
        _warn_unused_settings(config)
    names = config.metric_names()
    monitor_mode = "min" if names[0] in ERROR_METRICS else "max"
    with resumable_run(out_dir, resume, overwrite) as staging:
        check_same_data(staging, [train_pairs, valid_pairs, test_pairs], resumed, config.data)
        atomic_write_json(staging / CHOSEN_FILE, chosen)
        if resume and (staging / "source_tokenizer.json").is_file():
            translator = Translator.load(staging, device="cpu", weights=False)
            translator.config = config
        else:
            translator = build_translator(config, train_pairs)
        translator.save(staging)
        train_ids = encode_pairs(translator, train_pairs, config.max_length)
        data_warnings = []
        if len(train_ids) < len(train_pairs):
            left_out = len(train_pairs) - len(train_ids)
            share = 100 * left_out / len(train_pairs)
            data_warnings.append(
                f"{left_out} of {len(train_pairs)} training pairs ({share:.1f}%) have "
                f"an empty side or one longer than max_length={config.max_length} tokens and are left out; "
                "raise --max-length to train on them"
            )
            log.warning("%s", data_warnings[-1])
        valid_pairs = bounded_held_out(translator, valid_pairs, config.max_length, "validation")
        test_pairs = bounded_held_out(translator, test_pairs, config.max_length, "test")
        valid_ids = encode_pairs(translator, valid_pairs)
        if not train_ids:
            raise InvalidInputError(f"no training pair is within max_length={config.max_length} tokens")
        if not valid_ids:
            raise InvalidInputError("no validation pair is short enough to score; see the warning above")
        train_loader = make_loader(train_ids, config.batch_size, shuffle=True, seed=config.seed)
        valid_loader = make_loader(valid_ids, max(config.batch_size, 256), shuffle=False)
        model = translator.model
        optimizer = Adam(model.parameters(), lr=config.lr)
        scheduler, interval = make_scheduler(config, optimizer, len(train_loader), monitor_mode)
        trainer_config = TrainerConfig(
            epochs=config.epochs,
            device=config.device,
            amp=config.amp,
            clip_grad_norm=config.clip_grad_norm,
            out_dir=str(staging / "train"),
            keep_last=1,
            resume="auto" if resume else None,
            early_stopping_patience=config.early_stopping_patience,
            monitor=f"valid_{names[0]}",
            monitor_mode=monitor_mode,
            monitor_limit=PERFECT_SCORES[names[0]],
            keep_best=True,
            time_budget_s=config.time_budget_s,
            seed=config.seed,
            progress=config.progress,
        )
        trainer = Trainer(
            model,
            optimizer,
            lambda m, b: sequence_loss(m, b, config.teacher_forcing, config.label_smoothing),
            trainer_config,
            scheduler=scheduler,
            scheduler_interval=interval,
            eval_fn=make_eval_fn(translator, valid_pairs, names, config.max_len),
            units_fn=target_tokens,
        )
        history = trainer.fit(train_loader, valid_loader)  # Ctrl-C: the staged run and checkpoints stay
        distinct = len(group_references(valid_pairs)[0])
        silent = kept_empty_outputs(history, trainer.best_epoch, distinct, "translation")
        if silent is not None:
            trainer.warn(silent)
        train_time = trainer.train_time_s
        test: dict[str, Any] = {}
        if test_pairs:  # the beam outputs are decoded once: scored here, drawn as heatmaps below
            test, drawn = evaluate_test(translator, test_pairs, names=names, need_weights=True)
            greedy, _ = evaluate_test(translator, test_pairs, 1, names)
            test["greedy"] = {k: v for k, v in greedy.items() if k in names}
        else:
            examples = list(dict.fromkeys(src for src, _ in valid_pairs))[: config.num_heatmaps]
            drawn = translator.translate(examples, warn=False)
        metrics = {
            "history": history,
            "best_epoch": trainer.best_epoch,
            "train_time_s": train_time,
            "train_target_tokens_per_s": sum(r.get("tokens_per_s", 0.0) * r["time_s"] for r in history)
            / max(train_time, 1e-9),
            "device": str(trainer.device),
            "threads": torch.get_num_threads(),
            "pairs": {"train": len(train_ids), "valid": len(valid_ids), "test": len(test_pairs)},
            "vocab": {
                "source": translator.source_tokenizer.get_vocab_size(),
                "target": translator.target_tokenizer.get_vocab_size(),
            },
            "parameters": sum(p.numel() for p in model.parameters()),
            "metrics": names,
            "longest_source_tokens": max(len(src) for src, _ in train_ids),  # translate warns beyond it
            "test": test,
            "chosen": chosen,
            "stop_reason": trainer.stop_reason,
            "warnings": [*data_warnings, *trainer.warnings],
        }
        translator.save(staging)
        atomic_write_json(staging / "metrics.json", {**metrics, "written_by": written_by()})  # holds chosen
        for index, translation in enumerate(drawn[: config.num_heatmaps]):
            translation.save_heatmap(Path(staging) / "heatmaps" / f"test-{index}.png")
    if test:
        log.info(
            "%s (beam %d); %s",
            _summary("test", test, names),
            test["beam_width"],
            _summary("greedy", test["greedy"], names),
        )
    return metrics
