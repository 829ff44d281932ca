"""``nlp182 train caption`` and ``nlp182 caption``.

Every field of :class:`CaptionConfig` and its :class:`CaptionModelConfig` is a flag of the same
name (``image_size`` -> ``--image-size``; booleans also have ``--no-...``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from nlp182.captioning.config import CaptionConfig
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
from nlp182.settings import limits_of
from nlp182.train.diagnostics import closing_note

log = logging.getLogger(__name__)

#: One command that trains on a user's Karpathy-split JSON with the defaults alone.
USER_EXAMPLE = "nlp182 train caption --data dataset.json --images images/ --out runs/mine > train.log 2>&1"


def _run_train(args: argparse.Namespace) -> int:
    from nlp182.captioning.train import train_captioner

    config = config_from_args(CaptionConfig, args)
    try:
        metrics = train_captioner(config, args.out, resume=args.resume, given=given_fields(args),
                                  overwrite=args.overwrite)
    except KeyboardInterrupt:
        interrupted("train caption", args.out)
        raise
    except OSError:
        kept_after_error("train caption", args.out)
        raise
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


#: Images captioned in one batch by ``nlp182 caption`` (hundreds of photos are not stacked at once).
CAPTION_BATCH = 64


def _run_caption(args: argparse.Namespace) -> int:
    """Caption each image: one line, the caption alone for one image and ``PATH<TAB>caption`` for
    several (so the lines say which photo each is); an image that cannot be read is named on
    standard error and the others are still captioned (exit 1 then, 2 when none could be read)."""
    import torch

    from nlp182.captioning.captioner import Captioner
    from nlp182.captioning.data import load_image
    from nlp182.captioning.overlay import save_overlay
    from nlp182.errors import Nlp182Error

    paths = [] if args.overlay is None else figure_paths(
        args.overlay, len(args.image), "--overlay", args.overwrite, inputs=args.image
    )  # before captioning: the figures can be written, and none replaces an image
    captioner = Captioner.load(args.run, device=args.device)
    size, cap = captioner.config.image_size, captioner.config.max_image_pixels
    several, failed = len(args.image) > 1, 0
    for start in range(0, len(args.image), CAPTION_BATCH):
        read = []  # (position, image (3, S, S))
        for position in range(start, min(start + CAPTION_BATCH, len(args.image))):
            try:
                read.append((position, load_image(args.image[position], size, cap)))
            except Nlp182Error as exc:  # the CLI's one-line error, and the other images go on
                failed += 1
                print(f"nlp182: error: {exc}", file=sys.stderr)
        if not read:
            continue
        images = torch.stack([image for _, image in read])
        captions = captioner.caption(images, beam_width=args.beam_width, max_len=args.max_len)
        for (position, image), caption in zip(read, captions, strict=True):
            path = args.image[position]
            print(f"{path}\t{caption.text}" if several else caption.text)
            if not caption.words:
                log.warning("%s: the model output an empty caption (its training run's metrics.json may "
                            "say why, under warnings)", path)
            if paths:
                save_overlay(caption, image, captioner.grid, paths[position])
    if failed == len(args.image):
        return 2
    return 1 if failed else 0


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
    add_out_flag(train, "run folder (staged in OUT.incomplete until training ends)")
    add_resume_flag(train)
    add_config_flags(train, CaptionConfig)
    train.set_defaults(func=_run_train)

    caption = subparsers.add_parser("caption", help="caption images with a trained captioning run")
    caption.add_argument("run", help="run folder written by `nlp182 train caption`")
    caption.add_argument("image", nargs="+", help="image file(s) to caption")
    caption.add_argument("--beam-width", "--beam", default=None,
                         type=checked(int, limits_of(CaptionConfig.__dataclass_fields__["beam_width"])),
                         help="candidates kept while decoding; 1 is greedy (default: the run's setting)")
    caption.add_argument("--max-len", type=checked(int, POSITIVE), default=None,
                         help="most words per caption (default: the run's setting)")
    caption.add_argument(
        "--overlay",
        default=None,
        help="save the per-word attention overlay PNG here; with several images, NAME-0.png, NAME-1.png, ...",
    )
    add_overwrite_flag(caption, "replace existing --overlay files (never an image being captioned)")
    caption.add_argument("--device", type=device_name, default="auto",
                         help="where to compute: auto, cpu, cuda or mps (default: auto)")
    caption.set_defaults(func=_run_caption)
