"""``nlp182 train caption`` and ``nlp182 caption``.

Every field of :class:`CaptionConfig` and its :class:`CaptionModelConfig` is a flag of the same
name (``image_size`` -> ``--image-size``; booleans also have ``--no-...``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nlp182.captioning.config import AUTO, MONITORS, CaptionConfig
from nlp182.captioning.model import CAPTION_ATTENTION, ENCODERS, POSITION_INITS
from nlp182.commands.flags import add_config_flags, config_from_args, train_group
from nlp182.optim.schedules import PROGRESS_SHAPES
from nlp182.train.diagnostics import closing_note

log = logging.getLogger(__name__)

#: One command that trains on a user's Karpathy-split JSON with the defaults alone.
USER_EXAMPLE = "nlp182 train caption --data dataset.json --images images/ --out runs/mine > train.log 2>&1"
CHOICES = {
    "attention": CAPTION_ATTENTION,
    "encoder": ENCODERS,
    "lr_schedule": PROGRESS_SHAPES,
    "monitor": (AUTO, *MONITORS),
    "position_init": POSITION_INITS,
}
HELP = {
    "data": "digits or shapes (built-in, with boxes), a Karpathy-split JSON, or a TSV of image<TAB>caption",
    "images": "folder the JSON / TSV image paths are relative to (unset: the file's own folder)",
    "max_image_pixels": "images with more pixels (width x height) are refused before they are decoded",
    "image_size": "every image is resized to this many pixels square, in training and captioning alike",
    "train_images": "built-in sets: training images to generate",
    "valid_images": "built-in sets: validation images (their greedy --monitor score picks the best epoch)",
    "test_images": "built-in sets: held-out test images",
    "max_objects": "built-in sets: most objects per image (unset: 5 digits, 3 shapes)",
    "valid_fraction": "TSV, or a JSON without a val split: share of images held out for validation",
    "test_fraction": "TSV: share of images held out for the final scores",
    "min_count": "fewest occurrences for a caption word to get its own entry (rarer words become <unk>)",
    "max_caption_len": "training captions longer than this many words are skipped",
    "encoder": "vision model whose feature map is attended over",
    "encoder_width": "width multiplier of the encoder (small_cnn: 16 x this channels)",
    "freeze_encoder": "freeze the encoder's layers up to this top-level name, or all (unset: train it all)",
    "grid": "the feature map is max pooled to grid x grid attention locations",
    "feature_dim": "size of each location's annotation vector",
    "positions": "add a learned embedding of each location to its annotation vector",
    "position_init": "start of the location embeddings: small random values, or a 2-D sine/cosine code",
    "embed_dim": "size of the word embeddings",
    "hidden_size": "size of the LSTM state",
    "attention": "how the decoder scores the locations (hard: one sampled location, REINFORCE)",
    "num_heads": "heads of multi-head attention",
    "regularizer": "weight of the doubly stochastic penalty, summed over locations (0 turns it off; it "
    "pushes against sharp attention on grids this fine)",
    "entropy_weight": "hard attention: weight of the entropy bonus",
    "baseline_momentum": "hard attention: momentum of the moving-average reward baseline",
    "curriculum_steps": "score only the first word for this many steps, then the first two, and so on "
    "(0: every word from the start; unset: 0.8 of an epoch, at least 5, at most 3%% of a run without "
    "a budget)",
    "pretrain_steps": "steps of encoder pre-training on each caption's bag of words before caption "
    "training (0: none; unset: 3.2 epochs, at least 50, at most 15%% of a run without a budget)",
    "epochs": "passes over the training data (unset: 40, or with --time-budget-s a ceiling the budget "
    "ends first)",
    "encoder_lr_scale": "learning rate of the encoder in caption training, as a multiple of --lr "
    "(0 freezes it)",
    "lr_schedule": "caption training rate over the run: constant, or linear / cosine decay to 0 at the end "
    "of --time-budget-s (else of --epochs)",
    "clip_grad_norm": "gradients are scaled down to at most this norm before each step (unset: no clipping)",
    "early_stopping_patience": "stop after this many epochs without a better validation --monitor score "
    "(0: train every epoch; unset: a third of --epochs, at least 10, or with --time-budget-s half "
    "the budget in seconds, counted once the score is above 0)",
    "monitor": "validation score (greedy decoding) that picks the kept epoch and drives early stopping "
    "(auto: exact_match when the median training caption has at most 5 words, else cider_d)",
    "bn_recalibration_batches": "before each validation, recompute the encoder's batch-norm statistics from "
    "this many training batches (0: keep the running averages)",
    "ema_decay": "validate, keep and save an exponential moving average of the weights with this decay "
    "per step (warmed up; 0: the weights themselves; unset: a horizon of 2.7 epochs of steps)",
    "time_budget_s": "stop training once its steps (encoder pre-training included) took this many "
    "seconds (unset: no limit)",
    "beam_width": "beam width of the test scores and overlays (1: greedy)",
    "length_penalty": "beam search ranks by log-probability / length ** this",
    "max_len": "most words per generated caption",
    "num_overlays": "attention overlays of test images saved in the run folder",
    "num_threads": "PyTorch CPU threads (unset: PyTorch's choice; 1-2 on a shared machine)",
}


def _run_train(args: argparse.Namespace) -> int:
    from nlp182.captioning.train import train_captioner

    config = config_from_args(CaptionConfig, args)
    metrics = train_captioner(config, args.out)
    parts = []
    for name, scores in metrics["test"].items():
        parts.append(
            f"{name}: exact {scores['exact_match']:.4f}, BLEU-4 {scores['bleu4']:.2f} (0-100), "
            f"CIDEr-D {scores['cider_d']:.3f}"
        )
    summary = "test " + "; ".join(parts) + "; " if parts else ""
    note = closing_note(metrics.get("warnings", []))
    print(f"{summary}trained in {metrics['train_time_s']:.1f} s; run saved to {args.out}{note}")
    return 0



def _overlay_paths(base: Path, count: int) -> list[Path]:
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix or '.png'}") for i in range(count)]


def _run_caption(args: argparse.Namespace) -> int:
    from nlp182.captioning.captioner import Captioner
    from nlp182.captioning.overlay import save_overlay

    captioner = Captioner.load(args.run, device=args.device)
    images = captioner.load_images(args.image)
    captions = captioner.caption(images, beam_width=args.beam, max_len=args.max_len)
    for path, caption in zip(args.image, captions, strict=True):
        print(caption.text)
        if not caption.words:
            log.warning("%s: the model output an empty caption (its training run's metrics.json may "
                        "say why, under warnings)", path)
    if args.overlay is not None:
        paths = _overlay_paths(Path(args.overlay), len(captions))
        for caption, image, path in zip(captions, images, paths, strict=True):
            save_overlay(caption, image, captioner.grid, path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train caption`` and ``caption``."""
    train = train_group(subparsers).add_parser(
        "caption",
        help="train an attention captioner (Show, Attend and Tell) on digits, shapes or your images",
        description="Train an attention captioner. The defaults are a measured recipe; what depends on\n"
        "the data (validation score, epochs, patience, weight average, pre-training, word curriculum)\n"
        "is chosen from your captions, and the log says what was chosen and why.",
        epilog=f"example, on your own Karpathy-split JSON with no tuning flags:\n  {USER_EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--out", required=True, help="run folder to write (replaced as a whole on success)")
    add_config_flags(train, CaptionConfig, choices=CHOICES, helps=HELP)
    train.set_defaults(func=_run_train)

    caption = subparsers.add_parser("caption", help="caption images with a trained captioning run")
    caption.add_argument("run", help="run folder written by `nlp182 train caption`")
    caption.add_argument("image", nargs="+", help="image file(s) to caption")
    caption.add_argument("--beam", type=int, default=None, help="beam width (1 = greedy; default: run's)")
    caption.add_argument("--max-len", type=int, default=None, help="most words per caption (default: run's)")
    caption.add_argument(
        "--overlay",
        default=None,
        help="save the per-word attention overlay PNG here; with several images, NAME-0.png, NAME-1.png, ...",
    )
    caption.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    caption.set_defaults(func=_run_caption)
