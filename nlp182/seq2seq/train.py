"""Train a seq2seq translator end to end with the shared :class:`~nlp182.train.Trainer`.

Steps: read / generate the pairs and split them, train the two tokenisers on the training side
only, encode, fit with teacher forcing (validation every epoch: teacher-forced loss and greedy
exact match), then score the held-out test split with beam search (exact match and BLEU) and
save the run folder with attention heatmaps of a few test sentences.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nlp182.device import seed_everything
from nlp182.errors import InvalidInputError
from nlp182.io import atomic_write_json, staged_directory
from nlp182.optim import Adam
from nlp182.seq2seq.batching import Seq2SeqBatch, make_loader
from nlp182.seq2seq.config import DATES, Seq2SeqConfig
from nlp182.seq2seq.data import Pair, date_splits, read_aligned_files, read_tsv, split_pairs
from nlp182.seq2seq.decode import greedy_decode
from nlp182.seq2seq.metrics import corpus_bleu, exact_match
from nlp182.seq2seq.model import Seq2Seq
from nlp182.seq2seq.tokenize import PAD_ID, decode, encode, train_tokenizer
from nlp182.seq2seq.translator import Translator
from nlp182.train import Trainer, TrainerConfig

log = logging.getLogger(__name__)

EncodedPair = tuple[list[int], list[int]]


def load_pairs(config: Seq2SeqConfig) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train / valid / test pairs for ``config.data`` (the date generator, a TSV, or aligned files)."""
    if config.data == DATES:
        return date_splits(config.date_train, config.date_valid, config.date_test, seed=config.seed)
    if config.target_file is not None:
        pairs = read_aligned_files(config.data, config.target_file)
    else:
        pairs = read_tsv(config.data, config.source_column, config.target_column)
    return split_pairs(pairs, config.valid_fraction, config.test_fraction, seed=config.seed)


def build_translator(config: Seq2SeqConfig, train_pairs: list[Pair]) -> Translator:
    """Tokenisers trained on ``train_pairs`` and a freshly initialised model."""
    options = {
        "kind": config.tokenizer,
        "vocab_size": config.vocab_size,
        "min_frequency": config.min_frequency,
        "lowercase": config.lowercase,
        "split_digits": config.split_digits,
    }
    source_tokenizer = train_tokenizer((src for src, _ in train_pairs), **options)
    target_tokenizer = train_tokenizer((tgt for _, tgt in train_pairs), **options)
    model = Seq2Seq(source_tokenizer.get_vocab_size(), target_tokenizer.get_vocab_size(), config.model)
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


def _to(batch: Seq2SeqBatch, device: torch.device) -> Seq2SeqBatch:
    return Seq2SeqBatch(*(tensor.to(device) for tensor in batch))


def make_eval_fn(
    translator: Translator, max_len: int
) -> Callable[[Seq2Seq, Iterable[Seq2SeqBatch]], dict[str, float]]:
    """``eval_fn`` for the Trainer: teacher-forced ``valid_loss`` and greedy ``valid_exact_match``.

    References are the decoded target ids, so a word outside the target vocabulary counts as
    ``<unk>`` on both sides; that is fine for choosing epochs, and the reported test scores use
    the raw reference text instead (see :func:`evaluate_test`).
    """

    def evaluate(model: Seq2Seq, loader: Iterable[Seq2SeqBatch]) -> dict[str, float]:
        device = next(model.parameters()).device
        total_loss, batches, hypotheses, references = 0.0, 0, [], []
        for batch in loader:
            batch = _to(batch, device)
            total_loss += float(sequence_loss(model, batch)[0])
            batches += 1
            for hyp, ref in zip(
                greedy_decode(model, batch.source, batch.source_lengths, max_len, need_weights=False),
                batch.target_out.tolist(),
                strict=True,
            ):
                hypotheses.append(decode(translator.target_tokenizer, hyp.tokens))
                references.append(decode(translator.target_tokenizer, ref))
        if not batches:
            raise InvalidInputError("the validation split is empty")
        return {"valid_loss": total_loss / batches, "valid_exact_match": exact_match(hypotheses, references)}

    return evaluate


def evaluate_test(
    translator: Translator, test_pairs: list[Pair], beam_width: int | None = None
) -> dict[str, Any]:
    """Decode the test sources (beam search by default) and score them against their references.

    References are the raw target text passed through the tokeniser's normaliser only (NFKC and,
    if configured, lowercasing), so words the model cannot spell still count as errors.
    """
    sources = [src for src, _ in test_pairs]
    normalizer = translator.target_tokenizer.normalizer
    references = [normalizer.normalize_str(tgt) if normalizer else tgt for _, tgt in test_pairs]
    outputs = [t.text for t in translator.translate(sources, beam_width=beam_width)]
    return {
        "exact_match": exact_match(outputs, references),
        "bleu": corpus_bleu(outputs, references),
        "examples": [
            {"source": s, "reference": r, "output": o}
            for s, r, o in zip(sources[:10], references, outputs, strict=False)
        ],
    }


def train_seq2seq(config: Seq2SeqConfig, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train, evaluate and save a run folder at ``out_dir``; return what ``metrics.json`` holds."""
    seed_everything(config.seed)
    train_pairs, valid_pairs, test_pairs = load_pairs(config)
    if not train_pairs or not valid_pairs:
        raise InvalidInputError("training needs non-empty train and valid splits")
    translator = build_translator(config, train_pairs)
    train_ids = encode_pairs(translator, train_pairs, config.max_length)
    valid_ids = encode_pairs(translator, valid_pairs)
    if not train_ids:
        raise InvalidInputError(f"no training pair is within max_length={config.max_length} tokens")
    train_loader = make_loader(train_ids, config.batch_size, shuffle=True, seed=config.seed)
    valid_loader = make_loader(valid_ids, max(config.batch_size, 256), shuffle=False)
    model = translator.model
    optimizer = Adam(model.parameters(), lr=config.lr)
    with staged_directory(out_dir) as staging:
        trainer_config = TrainerConfig(
            epochs=config.epochs,
            device=config.device,
            amp=config.amp,
            clip_grad_norm=config.clip_grad_norm,
            out_dir=str(staging / "train"),
            keep_last=1,
            early_stopping_patience=config.early_stopping_patience,
            monitor="valid_exact_match",
            monitor_mode="max",
            seed=config.seed,
            progress=config.progress,
        )
        trainer = Trainer(
            model,
            optimizer,
            lambda m, b: sequence_loss(m, b, config.teacher_forcing, config.label_smoothing),
            trainer_config,
            eval_fn=make_eval_fn(translator, config.max_output_len),
        )
        start = time.perf_counter()
        history = trainer.fit(train_loader, valid_loader)
        train_time = time.perf_counter() - start
        target_tokens = sum(len(tgt) + 1 for _, tgt in train_ids) * len(history)
        test = evaluate_test(translator, test_pairs) if test_pairs else {}
        metrics = {
            "history": history,
            "train_time_s": train_time,
            "train_target_tokens_per_s": target_tokens / train_time,
            "device": str(trainer.device),
            "pairs": {"train": len(train_ids), "valid": len(valid_ids), "test": len(test_pairs)},
            "vocab": {
                "source": translator.source_tokenizer.get_vocab_size(),
                "target": translator.target_tokenizer.get_vocab_size(),
            },
            "parameters": sum(p.numel() for p in model.parameters()),
            "longest_source_tokens": max(len(src) for src, _ in train_ids),  # translate warns beyond it
            "test": test,
        }
        translator.save(staging)
        atomic_write_json(staging / "metrics.json", metrics)
        examples = [src for src, _ in test_pairs[: config.num_heatmaps]]
        for index, translation in enumerate(translator.translate(examples)):
            translation.save_heatmap(Path(staging) / "heatmaps" / f"test-{index}.png")
    log.info(
        "test exact match %.4f, BLEU %.2f",
        test.get("exact_match", float("nan")),
        test.get("bleu", float("nan")),
    )
    return metrics
