"""Captioning settings left to auto are chosen from the captions and the run's length, logged on one
line; a run that learned nothing ends with warnings (log, metrics.json, closing line)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nlp182 import cli
from nlp182.captioning import CaptionConfig, CaptionModelConfig
from nlp182.captioning.builtin import make_shape_scenes
from nlp182.captioning.captioner import Caption, Captioner
from nlp182.captioning.data import CaptionedImage
from nlp182.captioning.defaults import (
    choose_defaults,
    choose_monitor,
    first_word_names_the_image,
    long_caption_words,
    most_common_first_word,
    summary_line,
)
from nlp182.captioning.model import CaptionModel
from nlp182.captioning.readers import read_karpathy
from nlp182.captioning.synthetic import user_captions, write_user_set
from nlp182.captioning.vocab import EOS_ID, CaptionVocab
from nlp182.train.diagnostics import empty_share

BLANK = torch.zeros(3, 8, 8)
RUN = ["--no-progress", "--threads", "1", "--device", "cpu"]


#: The smallest captioner the CLI trains in a second (a 2 x 2 grid, 8-wide layers).
TINY_MODEL = ["--image-size", "16", "--grid", "2", "--feature-dim", "8", "--embed-dim", "8",
              "--hidden-size", "8"]


def _train_argv(karpathy: Path, run: Path, epochs: int) -> list[str]:
    """``nlp182 train caption`` on the Karpathy fixture with the tiny captioner, for ``epochs``."""
    return ["train", "caption", "--data", str(karpathy), "--images", str(karpathy.parent / "images"),
            "--out", str(run), "--epochs", str(epochs), *TINY_MODEL, *RUN]


def _items(*captions: str) -> list[CaptionedImage]:
    return [CaptionedImage(BLANK, [caption]) for caption in captions]


def test_short_captions_are_monitored_by_exact_match_long_ones_by_cider_d() -> None:
    digits = _items("three", "one four", "nine two seven", "five five one eight", "six")
    assert choose_defaults(CaptionConfig(time_budget_s=600.0), digits, 188)[0].curriculum_steps == 150
    assert choose_monitor(digits)[0] == "exact_match"
    assert "median caption has 2 words" in choose_monitor(digits)[1]  # lengths 1, 2, 3, 4, 1
    scenes = make_shape_scenes(40, size=48, seed=0)  # shapes: relations, 4-14 words
    monitor, why = choose_monitor(scenes)
    assert monitor == "cider_d" and "(> 5)" in why


def test_a_median_caption_of_exactly_five_words_is_short() -> None:
    """The captioning guide monitors exact match when the median caption has at most 5 words: 5 is
    short, 6 long."""
    five = _items("a red square on blue", "a b c d e f", "one two three four")  # 5, 6 and 4 words
    monitor, why = choose_monitor(five)
    assert monitor == "exact_match" and "the median caption has 5 words (<= 5)" in why
    assert choose_monitor(_items("a red square on a blue", "a b c d e f", "one two"))[0] == "cider_d"


def test_a_budget_on_digits_sized_data_gives_the_digits_recipe() -> None:
    # 6000 one-caption canvases in batches of 32: 188 steps an epoch (the recipe's 600 / 150 / 0.998).
    digits = _items("three one", "four", "one five nine", "two six")  # the first word names a digit
    config, chosen = choose_defaults(CaptionConfig(time_budget_s=600.0), digits, 188)
    assert (
        (config.pretrain_steps, config.curriculum_steps) == (round(3.2 * 188), round(0.8 * 188)) == (602, 150)
    )
    assert config.ema_decay == round(1 - 1 / (2.7 * 188), 4) == 0.998
    assert (config.epochs, config.early_stopping_patience, config.monitor) == (1000, 0, "exact_match")
    assert "half the 600 s budget" in chosen["early_stopping_patience"]
    assert set(chosen) == {
        "epochs",
        "monitor",
        "early_stopping_patience",
        "ema_decay",
        "pretrain_steps",
        "curriculum_steps",
    }


@pytest.mark.parametrize(("epochs", "patience"), [(8, 10), (21, 11), (40, 20), (150, 75)])
def test_patience_is_half_the_epochs_at_least_ten(epochs: int, patience: int) -> None:
    config, chosen = choose_defaults(CaptionConfig(epochs=epochs), _items("a red square"), 10)
    assert config.early_stopping_patience == patience == max(10, math.ceil(epochs / 2))
    assert chosen["early_stopping_patience"].startswith(f"{patience} (half of {epochs} epochs")


def test_short_runs_cap_pretraining_and_curriculum_at_a_share_of_their_steps() -> None:
    # 300 images, batch 32 -> 10 steps an epoch; 40 epochs = 400 steps.
    varied = _items("red square", "blue disc", "green square")
    config, _ = choose_defaults(CaptionConfig(epochs=40), varied, 10)
    assert (config.pretrain_steps, config.curriculum_steps) == (50, 8)  # floors, under 15% / 3% of 400
    assert config.ema_decay == round(1 - 1 / 27, 4)
    # 48 images -> 2 steps an epoch, 20 epochs = 40 steps: 15% is 6 pre-training steps, 3% one per word.
    config, chosen = choose_defaults(CaptionConfig(epochs=20), varied, 2)
    assert (config.pretrain_steps, config.curriculum_steps) == (6, 1)
    assert chosen["pretrain_steps"] == "6 (15% of the run's 40 steps)"
    assert config.ema_decay == 0.9  # at least a 10-step horizon
    assert config.epochs == 20 and "epochs" not in chosen


def test_long_captions_shorten_the_curriculum_to_four_epochs_in_all() -> None:
    # Flickr-like: 30,000 pairs in batches of 32 -> 938 steps an epoch; 90% of captions within 16 words.
    lengths = (8, 9, 10, 11, 12, 12, 13, 14, 16, 20)
    items = _items(*(" ".join([f"first{n}", *["word"] * (n - 1)]) for n in lengths))  # varied first words
    config, chosen = choose_defaults(CaptionConfig(time_budget_s=3600.0), items, 938)
    assert config.curriculum_steps == round(4 / 20 * 938)  # the 90th percentile of ten lengths: the 10th
    assert chosen["curriculum_steps"] == "188 (4 image passes over the 20 words of a long caption)"
    assert config.monitor == "cider_d"


def test_horizons_count_passes_over_the_images_not_over_their_captions() -> None:
    # shapes: 6,000 images with 3.5 references each -> 656 steps over the pairs, 188 over the images.
    scenes = make_shape_scenes(40, size=48, seed=0)
    config, chosen = choose_defaults(CaptionConfig(time_budget_s=600.0), scenes, 656, image_steps=188)
    assert config.pretrain_steps == round(3.2 * 188) and config.ema_decay == round(1 - 1 / (2.7 * 188), 4)
    assert "image passes of 188" in chosen["ema_decay"]
    # the same images with their captions' first word naming the leftmost object: every word is
    # scored after 4 image passes (shapes' own captions start with "a", so it has none: see below)
    named = [dataclasses.replace(s, captions=[c.split(" ", 1)[1] for c in s.captions]) for s in scenes]
    config, _ = choose_defaults(CaptionConfig(time_budget_s=600.0), named, 656, image_steps=188)
    words = long_caption_words(named)
    assert config.curriculum_steps == round(4 / words * 188)
    assert config.curriculum_steps * words <= 4 * 188 + words


def test_no_curriculum_when_most_captions_start_with_the_same_word() -> None:
    # "a big red square": scored on "a" alone, the decoder learns that the image does not matter.
    scenes = make_shape_scenes(40, size=48, seed=0)
    for captions in (user_captions(), [c for s in scenes for c in s.captions]):
        config, chosen = choose_defaults(CaptionConfig(epochs=40), _items(*captions), 10)
        assert config.curriculum_steps == 0
        why = chosen["curriculum_steps"]
        assert why.startswith("0 (off: ") and "start with 'a'" in why
    assert most_common_first_word(_items("a dog", "a cat", "two dogs", "three cats")) == ("a", 0.5)
    assert first_word_names_the_image(_items("a dog", "a cat", "two dogs", "three cats"))  # half: on
    assert not first_word_names_the_image(_items("a dog", "a cat", "a bird", "three cats"))


def test_given_settings_are_kept_and_zero_turns_each_part_off() -> None:
    given = CaptionConfig(
        epochs=3,
        monitor="bleu4",
        early_stopping_patience=0,
        ema_decay=0.0,
        pretrain_steps=0,
        curriculum_steps=0,
    )
    config, chosen = choose_defaults(given, _items("three"), 188)
    assert config == given and chosen == {}
    assert summary_line(chosen) == "every setting was given; nothing chosen from the data"


def test_cli_logs_one_line_of_choices_and_saves_the_chosen_config(
    karpathy: Path, tmp_path: Path, caplog
) -> None:
    run = tmp_path / "run"
    argv = _train_argv(karpathy, run, epochs=2)
    with caplog.at_level(logging.INFO, logger="nlp182.captioning.train"):
        assert cli.main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if "chosen from the data" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "monitor exact_match (the median caption has 3 words" in lines[0]
    assert "early_stopping_patience 10 (half of 2 epochs, at least 10)" in lines[0]
    saved = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert saved["monitor"] == "exact_match" and saved["early_stopping_patience"] == 10
    assert saved["pretrain_steps"] == 1  # 15% of 4 steps, at least 1
    assert saved["curriculum_steps"] == 0  # every caption starts with "a"
    assert set(metrics["chosen"]) == {
        "monitor",
        "early_stopping_patience",
        "ema_decay",
        "pretrain_steps",
        "curriculum_steps",
    }
    assert "best_valid_exact_match" in metrics


def test_the_defaults_are_the_digits_recipe() -> None:
    config, model = CaptionConfig(), CaptionModelConfig()
    assert (config.regularizer, config.bn_recalibration_batches, config.batch_size) == (0.0, 50, 32)
    assert (model.encoder, model.encoder_width, model.grid, model.position_init) == (
        "small_cnn",
        1.0,
        12,
        "sincos",
    )
    assert (config.monitor, config.ema_decay, config.pretrain_steps, config.curriculum_steps) == (
        "auto",
        None,
        None,
        None,
    )


def test_help_shows_one_command_for_a_users_karpathy_json_without_tuning_flags(capsys) -> None:
    from nlp182.commands.captioning import USER_EXAMPLE

    with pytest.raises(SystemExit):
        cli.main(["train", "caption", "--help"])
    assert USER_EXAMPLE in capsys.readouterr().out
    argv = USER_EXAMPLE.split(" > ")[0].split()
    assert {a for a in argv if a.startswith("--")} == {"--data", "--images", "--out"}
    args = cli.build_parser().parse_args(argv[1:])
    assert args.data == "dataset.json" and args.monitor == "auto" and args.epochs is None


def test_generated_user_set_reads_as_a_karpathy_json(tmp_path: Path) -> None:
    path = write_user_set(tmp_path, 12, 3, 2, seed=5)
    splits = read_karpathy(path)
    assert [len(splits[name]) for name in ("train", "valid", "test")] == [12, 3, 2]
    captions = {c for items in splits.values() for item in items for c in item.captions}
    assert captions <= set(user_captions()) and len(user_captions()) == 6
    image = splits["train"][0].pixels(64)
    assert image.shape == (3, 64, 64) and float(image.max()) > 0.5  # the square is bright on a dark ground
    assert float(image.median()) < 0.25
    again = write_user_set(tmp_path / "again", 12, 3, 2, seed=5)
    assert again.read_text().replace("again/", "") == path.read_text()


def test_a_set_too_small_to_learn_ends_with_warnings_not_silence(tmp_path: Path, capsys, caplog) -> None:
    path = write_user_set(tmp_path / "data", 48, 6, 6, seed=0)  # the 60-image first try
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert (
            cli.main(["train", "caption", "--data", str(path), "--out", str(run), "--epochs", "2", *RUN]) == 0
        )
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads((run / "metrics.json").read_text())
    warnings = metrics["warnings"]
    # of two epochs tied at 0, the later one is kept
    assert any(w.startswith("the kept epoch (2) has valid_exact_match = 0") for w in warnings)
    assert f"{len(warnings)} WARNING" in closing and all(w in closing for w in warnings)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(w in logged for w in warnings)


def test_a_model_that_says_nothing_gets_the_empty_caption_warning(
    karpathy: Path, tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    vocab = CaptionVocab.build(["a red square", "a blue box"])
    config = dataclasses.replace(
        CaptionConfig(image_size=16),
        model=CaptionModelConfig(grid=2, feature_dim=8, embed_dim=8, hidden_size=8),
    )
    model = CaptionModel(len(vocab), config.model).eval()
    with torch.no_grad():
        model.decoder.out.bias.fill_(-50.0)
        model.decoder.out.bias[EOS_ID] = 50.0  # <eos> first, always
    captions = Captioner(model, vocab, config).caption(torch.rand(3, 3, 16, 16), beam_width=1)
    assert [c.text for c in captions] == ["", "", ""]
    assert empty_share([c.text for c in captions]) == 1.0

    saved, image = tmp_path / "silent-run", tmp_path / "look.png"
    Captioner(model, vocab, config).save(saved)
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["caption", str(saved), str(image), "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "\n"
    assert [r.getMessage() for r in caplog.records] == [
        f"{image}: the model output an empty caption (its training run's metrics.json may say why, "
        "under warnings)"
    ]

    import nlp182.captioning.train as train_module

    def silent(captioner, items, beam_width, batch_size=128):
        return [Caption([], torch.zeros(0, 4), 0.0, True) for _ in items]  # grid 2: 4 locations

    monkeypatch.setattr(train_module, "caption_items", silent)
    run = tmp_path / "run"
    assert cli.main(_train_argv(karpathy, run, epochs=1)) == 0
    warnings = json.loads((run / "metrics.json").read_text())["warnings"]
    assert (
        "the kept model outputs an empty caption for 1 of 1 validation inputs (all of them: it says nothing)"
        in warnings
    )
