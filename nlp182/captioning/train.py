"""Train a captioner end to end with the shared :class:`~nlp182.train.Trainer`.

Steps: generate or read the data and split it, build the vocabulary from the training captions,
fit with teacher forcing (the Trainer's ``eval_fn`` decodes the validation images greedily
every epoch and scores BLEU-4; early stopping and the kept weights follow that score), restore
the best epoch's weights, score the test split with greedy and beam search, and save the run
folder with curves and attention overlays of a few test images.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from nlp182.captioning.builtin import digits_splits, shapes_splits
from nlp182.captioning.captioner import Caption, Captioner
from nlp182.captioning.config import CaptionConfig
from nlp182.captioning.data import CaptionedImage, image_batches, make_loader
from nlp182.captioning.defaults import choose_defaults, patience_seconds, pretrain_time_limit, summary_line
from nlp182.captioning.evaluate import caption_items, evaluate, score_captions
from nlp182.captioning.loss import CaptionLoss
from nlp182.captioning.model import CaptionModel, check_image_size
from nlp182.captioning.overlay import save_overlay
from nlp182.captioning.pretrain import pretrain_encoder
from nlp182.captioning.readers import read_karpathy, read_tsv, split_images
from nlp182.captioning.vocab import CaptionVocab, tokenize
from nlp182.device import (
    deterministic_algorithms,
    random_state_kept,
    seed_everything,
    select_device,
    torch_threads,
)
from nlp182.errors import InvalidInputError
from nlp182.io import atomic_write_json, check_input_file, read_json, written_by
from nlp182.optim import Adam, ProgressDecay
from nlp182.plots import loss_curves
from nlp182.train import Trainer, TrainerConfig, load_checkpoint
from nlp182.train.checkpoint import list_checkpoints
from nlp182.train.diagnostics import EMPTY_KEY, empty_share, kept_empty_outputs
from nlp182.train.run import (
    CHOSEN_FILE,
    check_resumable,
    check_same_data,
    resumable_run,
    resumed_choices,
    resumed_config,
)
from nlp182.vision import freeze, recalibrate_batch_norm

log = logging.getLogger(__name__)
Splits = dict[str, list[CaptionedImage]]


def load_splits(config: CaptionConfig) -> Splits:
    """Train / valid / test images for ``config.data`` (built-in generator, Karpathy JSON or TSV)."""
    counts = (config.train_images, config.valid_images, config.test_images)
    if config.data == "digits":
        return digits_splits(counts, config.image_size, config.max_objects or 5, seed=config.seed)
    if config.data == "shapes":
        return shapes_splits(counts, config.image_size, config.max_objects or 3, seed=config.seed)
    path = check_input_file(config.data, "--data", missing_hint=" (nor is it 'digits' or 'shapes')")
    if path.suffix.lower() == ".json":
        splits = read_karpathy(path, config.images, config.max_image_pixels)
        if not splits["train"]:
            raise InvalidInputError(
                f"{path}: no image is in the train (or restval) split ({len(splits['valid'])} valid, "
                f"{len(splits['test'])} test); mark the images to learn from \"split\": \"train\""
            )
        if not splits["valid"]:
            carved = split_images(splits["train"], config.valid_fraction, 0.0, seed=config.seed)
            splits["train"], splits["valid"] = carved["train"], carved["valid"]
        return splits
    items = read_tsv(path, config.images, config.max_image_pixels)
    return split_images(items, config.valid_fraction, config.test_fraction, config.seed)


def trainable(items: Sequence[CaptionedImage], max_words: int) -> tuple[list[CaptionedImage], list[str]]:
    """``items`` keeping only captions of at most ``max_words`` words (images left without any
    dropped), and the warning that counts what was left out (none when nothing was)."""
    kept = []
    for item in items:
        captions = [c for c in item.captions if len(tokenize(c)) <= max_words]
        if captions:
            kept.append(dataclasses.replace(item, captions=captions))  # its pixel limit too
    total = sum(len(item.captions) for item in items)
    long = total - sum(len(item.captions) for item in kept)
    if not long:
        return kept, []
    dropped = len(items) - len(kept)
    message = (
        f"{long} of {total} training captions are longer than max_caption_len={max_words} words and are "
        f"left out, and with them {dropped} image{'' if dropped == 1 else 's'} with no shorter caption; "
        "raise --max-caption-len to train on them"
    )
    log.warning("%s", message)
    return kept, [message]


def parameter_groups(model: CaptionModel, lr: float, encoder_lr_scale: float) -> list[dict[str, Any]]:
    """Adam groups: the decoder at ``lr``, the encoder at ``encoder_lr_scale * lr``.

    A scale of 0 freezes the encoder's backbone (its batch norms keep their statistics) and leaves
    its projection and location embeddings out of the optimizer.
    """
    if encoder_lr_scale == 1:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if encoder_lr_scale == 0:
        freeze(model.encoder.backbone)
    encoder = [p for p in model.encoder.parameters() if p.requires_grad] if encoder_lr_scale > 0 else []
    decoder = [p for p in model.decoder.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": decoder}]
    if encoder:
        groups.append({"params": encoder, "lr": lr * encoder_lr_scale})
    return groups


def run_progress(trainer: Trainer | None, steps: int, total_steps: int) -> float:
    """The share of ``trainer``'s run done: its training seconds over its time budget when it has
    one, else ``steps`` (optimizer steps taken) over ``total_steps`` (0 before the Trainer exists)."""
    if trainer is None:
        return 0.0
    budget = trainer.config.time_budget_s
    if budget is not None:
        return trainer.train_time_s / budget
    return steps / max(total_steps, 1)


def make_eval_fn(
    captioner: Captioner,
    items: Sequence[CaptionedImage],
    calibration: Sequence[CaptionedImage] = (),
    batch_size: int = 64,
) -> Callable[[torch.nn.Module, Iterable[Any]], dict[str, float]]:
    """``eval_fn`` for the Trainer: greedy captions of ``items`` scored as ``valid_bleu4`` (0-100),
    ``valid_cider_d`` and ``valid_exact_match``, and the share of empty captions (``valid_empty``).

    With ``calibration`` images, the encoder's batch-norm statistics are first recomputed from them
    in batches of ``batch_size`` (:func:`~nlp182.vision.recalibrate_batch_norm`).
    """
    size = captioner.config.image_size

    def evaluate_valid(model: torch.nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        del model, batches  # the captioner holds the same model; the items are fixed
        if calibration:
            device = captioner.device
            images = (chunk.to(device) for chunk, _ in image_batches(calibration, size, batch_size))
            recalibrate_batch_norm(captioner.model.encoder, images)
        captions = caption_items(captioner, items, beam_width=1)
        scores = score_captions(captions, items, captioner.grid, size)
        found = {f"valid_{k}": float(scores[k]) for k in ("bleu4", "cider_d", "exact_match")}
        return {**found, EMPTY_KEY: empty_share([caption.text for caption in captions])}

    return evaluate_valid


def _curves(history: list[dict[str, Any]], folder: Path) -> None:
    loss_curves(
        {"train": [r["train_loss"] for r in history]},
        folder / "loss.png",
        title="training loss per epoch",
        xlabel="epoch",
    )
    loss_curves(
        {
            "valid BLEU-4 (greedy)": [r["valid_bleu4"] for r in history],
            "valid exact match x 100 (greedy)": [100 * r["valid_exact_match"] for r in history],
        },
        folder / "valid_bleu.png",
        title="validation BLEU-4 and exact match (0-100) per epoch",
        xlabel="epoch",
        ylabel="score (0-100)",
    )


def write_overlays(
    captioner: Captioner, captions: Sequence[Caption], items: Sequence[CaptionedImage], folder: Path
) -> None:
    """Overlay PNGs ``folder/test-<i>.png`` of the ``captions`` already made for ``items``."""
    for images, chunk in image_batches(items, captioner.config.image_size, len(items) or 1):
        for index, (caption, image, item) in enumerate(zip(captions, images, chunk, strict=True)):
            title = f"{caption.text}   (reference: {item.captions[0]})"
            save_overlay(caption, image, captioner.grid, folder / f"test-{index}.png", title=title)


def train_captioner(
    config: CaptionConfig, out_dir: str | os.PathLike[str], resume: bool = False,
    given: Collection[str] | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    """Train, evaluate and save a run folder at ``out_dir``; return what ``metrics.json`` holds.

    ``out_dir`` must be missing or empty, or with ``overwrite`` an earlier run (a file, or a
    folder of other files, is never replaced; :class:`~nlp182.errors.OutputError` before any work).

    Settings left to ``auto`` are chosen from the training captions and the run's length first
    (:func:`~nlp182.captioning.defaults.choose_defaults`; one log line says what and why, and
    ``metrics.json`` has them under ``chosen``). ``metrics.json`` also holds ``stop_reason`` and
    ``warnings``: one line per problem found (a kept epoch scoring 0, a training loss that stopped
    falling, a kept model that outputs empty captions), each also logged. With
    ``config.deterministic`` it trains with deterministic kernels (``deterministic_algorithms``).

    The run is staged in ``OUT.incomplete`` (:func:`~nlp182.train.run.resumable_run`): Ctrl-C keeps
    it with its checkpoints, and ``resume=True`` continues from the last one with the interrupted
    run's settled config (``config`` changes only :data:`~nlp182.train.run.RESUME_OVERRIDES`), its
    vocabulary and choices, its encoder pre-training not repeated, and ends as an uninterrupted run
    would. ``given`` names the settings typed on the command line: a resumed run refuses one
    typed at another value than the run's, its default too.
    """
    # the caller's thread count and random state are put back after
    with deterministic_algorithms(config.deterministic), torch_threads(), random_state_kept():
        return _train(config, out_dir, resume, given, overwrite)


#: The best value of each validation score that has one: reaching it ends the run (nothing later
#: could be kept instead).
PERFECT_SCORES = {"exact_match": 1.0, "bleu4": 100.0}

#: The file of a staged run that a resumed one reads back beside what was chosen from the data
#: (``CHOSEN_FILE``): the encoder pre-training's records and seconds (counted in the time budget).
PRETRAINING_FILE = "pretraining.json"


def _train(config: CaptionConfig, out_dir: str | os.PathLike[str], resume: bool,
           given: Collection[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    resumed = resume
    if resumed:  # the interrupted run's data and settled choices, before anything is read
        check_resumable(out_dir)
        config = resumed_config(CaptionConfig, out_dir, config, typed=given)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    check_image_size(config.model, config.image_size)  # before the images are read
    splits = load_splits(config)
    train_items, data_warnings = trainable(splits["train"], config.max_caption_len)
    if not train_items or not splits["valid"]:
        raise InvalidInputError("training needs non-empty train and valid splits")
    with resumable_run(out_dir, resume, overwrite) as staging:
        described = [[(str(item.image) if isinstance(item.image, Path) else item.name, item.captions)
                      for item in split] for split in (train_items, splits["valid"], splits["test"])]
        check_same_data(staging, described, resumed, config.data)
        if resumed:
            vocab = CaptionVocab.load(staging / "vocab.txt")
            chosen = resumed_choices(staging, given)
        else:
            vocab = CaptionVocab.build((c for item in train_items for c in item.captions), config.min_count)
        loader = make_loader(
            train_items, vocab, config.image_size, config.batch_size, shuffle=True, seed=config.seed
        )
        if not resumed:
            image_steps = math.ceil(len(train_items) / config.batch_size)
            config, chosen = choose_defaults(config, train_items, len(loader), image_steps)
            atomic_write_json(staging / CHOSEN_FILE, chosen)
        log.info("%s", summary_line(chosen))
        captioner = Captioner(CaptionModel(len(vocab), config.model), vocab, config)
        captioner.save_settings(staging)  # for a resumed run
        model = captioner.model
        if resumed and list_checkpoints(staging / "train") and (staging / PRETRAINING_FILE).is_file():
            done = read_json(staging / PRETRAINING_FILE)  # the checkpoint holds the pre-trained encoder
            pretraining, pretrain_time = done["records"], float(done["time_s"])
        else:
            start = time.perf_counter()
            pretraining = pretrain_encoder(
                model, loader, len(vocab), config.pretrain_steps, config.lr, select_device(config.device),
                time_limit_s=pretrain_time_limit(config, chosen),
            )
            pretrain_time = time.perf_counter() - start
            atomic_write_json(staging / PRETRAINING_FILE, {"records": pretraining, "time_s": pretrain_time})
        budget = config.time_budget_s
        auto_patience = "early_stopping_patience" in chosen
        optimizer = Adam(parameter_groups(model, config.lr, config.encoder_lr_scale), lr=config.lr)
        clock: dict[str, Any] = {}
        loss_fn = CaptionLoss(
            config.regularizer, config.baseline_momentum, config.entropy_weight, config.curriculum_steps,
            step_count=lambda: clock["trainer"].global_step,
        )  # fmt: skip
        trainer_config = TrainerConfig(
            epochs=config.epochs,
            device=config.device,
            amp=config.amp,
            clip_grad_norm=config.clip_grad_norm,
            out_dir=str(staging / "train"),
            keep_last=1,
            resume="auto" if resume else None,
            early_stopping_patience=config.early_stopping_patience or None,
            early_stopping_patience_s=patience_seconds(config) if auto_patience else None,
            patience_after_nonzero=auto_patience,
            time_budget_s=None if budget is None else max(budget - pretrain_time, 1e-3),
            ema_decay=config.ema_decay or None,
            monitor=f"valid_{config.monitor}",
            monitor_mode="max",
            monitor_limit=PERFECT_SCORES.get(config.monitor),
            keep_best=True,
            stall_metric="cross_entropy" if model.decoder.hard else "loss",  # REINFORCE's term need not fall
            seed=config.seed,
            progress=config.progress,
        )
        calibration = train_items[: config.bn_recalibration_batches * config.batch_size]

        def progress() -> float:  # the Trainer's clock, or the scheduler's own count of steps
            steps = clock["scheduler"].last_epoch if "scheduler" in clock else 0
            return run_progress(clock.get("trainer"), steps, config.epochs * len(loader))

        scheduler = ProgressDecay(optimizer, progress, config.lr_schedule)
        clock["scheduler"] = scheduler
        trainer = Trainer(
            model,
            optimizer,
            loss_fn,
            trainer_config,
            scheduler=scheduler,
            scheduler_interval="step",
            eval_fn=make_eval_fn(captioner, splits["valid"], calibration, config.batch_size),
        )
        clock["trainer"] = trainer
        if budget is not None and pretrain_time > 0:
            trainer.budget_label = f"{budget:g} s, {pretrain_time:.1f} s of it pre-training the encoder"
        loss_fn.to(trainer.device)
        history = trainer.fit(loader, splits["valid"])
        train_time = pretrain_time + trainer.train_time_s
        best = load_checkpoint(staging / "train" / "best.safetensors")
        model.load_state_dict(best["model"])
        silent = kept_empty_outputs(history, int(best["epoch"]), len(splits["valid"]), "caption")
        if silent is not None:
            trainer.warn(silent)
        test: dict[str, Any] = {}
        beam: list[Caption] = []
        if splits["test"]:  # the beam captions are decoded once: scored here, drawn as overlays below
            test["greedy"] = evaluate(captioner, splits["test"], beam_width=1)
            beam = caption_items(captioner, splits["test"], config.beam_width)
            scored = score_captions(beam, splits["test"], captioner.grid, config.image_size)
            test[f"beam{config.beam_width}"] = scored
        else:
            trainer.warn("the data has no test images (no image in the \"test\" split), so the run has no "
                         "test scores and no overlays; mark some images \"test\" to measure the model")
        metrics = {
            "history": history,
            "pretraining": pretraining,
            "pretrain_time_s": pretrain_time,
            "best_epoch": int(best["epoch"]),
            f"best_valid_{config.monitor}": float(best["value"]),
            "train_time_s": train_time,
            "device": str(trainer.device),
            "images": {**{name: len(items) for name, items in splits.items()}, "train": len(train_items)},
            "training_pairs": len(loader.dataset),
            "vocab_size": len(vocab),
            "parameters": sum(p.numel() for p in model.parameters()),
            "scale": "BLEU on 0-100; CIDEr-D x10 as in the COCO evaluation; correctness in [0, 1]",
            "test": test,
            "chosen": chosen,
            "stop_reason": trainer.stop_reason,
            "warnings": [*data_warnings, *trainer.warnings],
        }
        captioner.save(staging)
        # which holds chosen and pretraining
        atomic_write_json(staging / "metrics.json", {**metrics, "written_by": written_by()})
        (staging / PRETRAINING_FILE).unlink()
        _curves(history, staging)
        shown = slice(config.num_overlays)
        write_overlays(captioner, beam[shown], splits["test"][shown], staging / "overlays")
    for name, scores in test.items():
        log.info(
            "test %s: exact %.4f, BLEU-4 %.2f, CIDEr-D %.3f",
            name,
            scores["exact_match"],
            scores["bleu4"],
            scores["cider_d"],
        )
    return metrics
