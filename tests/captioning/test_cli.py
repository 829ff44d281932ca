"""`nlp182 train caption` on a Karpathy-JSON fixture (one step), `nlp182 caption` with overlays, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from nlp182 import cli
from nlp182.captioning import CaptionConfig, CaptionModelConfig
from nlp182.captioning import train as captioning_train
from nlp182.captioning.captioner import Captioner

TINY = [
    "--image-size",
    "16",
    "--encoder",
    "small_cnn",
    "--encoder-width",
    "0.25",
    "--grid",
    "2",
    "--feature-dim",
    "8",
    "--embed-dim",
    "8",
    "--hidden-size",
    "8",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--beam-width",
    "2",
    "--num-overlays",
    "1",
    "--no-progress",
    "--threads",
    "1",
    "--device",
    "cpu",
]


def test_every_config_field_is_a_flag() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["train", "caption", "--out", "x"])
    for config in (CaptionConfig(), CaptionModelConfig()):
        for field in dataclasses.fields(config):
            if field.name != "model":
                assert getattr(args, field.name) == getattr(config, field.name), field.name


def test_karpathy_fixture_trains_one_step_and_captions(
    karpathy: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    images = karpathy.parent / "images"
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(images), "--out", str(run), *TINY]
    widths: list[int | None] = []
    caption = Captioner.caption

    def recording(self: Captioner, images, beam_width=None, **options):
        widths.append(beam_width)
        return caption(self, images, beam_width, **options)

    monkeypatch.setattr(Captioner, "caption", recording)
    assert cli.main(argv) == 0
    assert widths.count(2) == 1  # the test split's beam captions are scored and drawn from one decode
    assert "test greedy: exact" in capsys.readouterr().out
    for name in (
        "config.json",
        "vocab.txt",
        "model.safetensors",
        "metrics.json",
        "loss.png",
        "valid_bleu.png",
        "overlays/test-0.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training_pairs"] == 4 and metrics["history"][0]["step"] == 1
    assert metrics["test"]["greedy"]["images"] == 1 and 0 <= metrics["test"]["beam2"]["bleu4"] <= 100
    overlay = tmp_path / "look.png"
    argv = [
        "caption",
        str(run),
        str(images / "red.png"),
        str(images / "blue.png"),
        "--beam",
        "3",
        "--overlay",
        str(overlay),
        "--device",
        "cpu",
    ]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(images / "red.png"), str(images / "blue.png")]
    vocab = set((run / "vocab.txt").read_text().split())
    assert all(set(line.split("\t")[1].split()) <= vocab for line in lines)
    assert (tmp_path / "look-0.png").is_file() and (tmp_path / "look-1.png").is_file()
    # one image that cannot be read is named, and the others are still captioned (exit 1)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    broken = tmp_path / "broken.png"
    argv = ["caption", str(run), str(images / "red.png"), str(broken), str(images / "blue.png")]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == [str(images / "red.png"), str(images / "blue.png")]
    assert cli.main(["caption", str(run), str(tmp_path / "broken.png")]) == 2
    assert cli.main(["caption", str(run), str(images / "red.png")]) == 0
    assert "\t" not in capsys.readouterr().out  # one image: the caption alone
    photo = (images / "red.png").read_bytes()
    for extra, message in ((["--overlay", str(images / "red.png")], "is one of the inputs"),
                           (["--overlay", str(tmp_path / "look-0.png")], "exists; pass --overwrite")):
        argv = ["caption", str(run), str(images / "red.png"), *extra]  # checked before captioning
        assert cli.main(argv) == 2 and message in capsys.readouterr().err
        assert cli.main([*argv, "--overwrite"]) == (2 if "inputs" in message else 0)
        capsys.readouterr()
    assert (images / "red.png").read_bytes() == photo  # the image captioned is never drawn over


def test_caption_max_len_bounds_the_words_printed(tmp_path: Path, capsys, endless_red: Captioner) -> None:
    """``caption --max-len N`` stops each caption at N words, in place of the run's ``max_len``."""
    from PIL import Image

    endless_red.save(tmp_path / "run")
    image = tmp_path / "look.png"
    Image.new("RGB", (16, 16)).save(image)
    assert cli.main(["caption", str(tmp_path / "run"), str(image), "--device", "cpu"]) == 0
    assert capsys.readouterr().out == " ".join(["red"] * 6) + "\n"  # the run's max_len
    assert cli.main(["caption", str(tmp_path / "run"), str(image), "--max-len", "2", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "red red\n"


def test_pretraining_curriculum_frozen_encoder_and_time_budget_flags(karpathy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    images = karpathy.parent / "images"
    extra = ["--pretrain-steps", "3", "--curriculum-steps", "1", "--encoder-lr-scale", "0"]
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(images), "--out", str(run), *TINY]
    argv += [*extra, "--epochs", "3", "--time-budget-s", "0.001"]
    assert cli.main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["step"] for r in metrics["pretraining"]] == [1]  # the budget, spent, stops it too
    # The budget (already spent by pre-training) ends training after the first step: 1 of 3 epochs.
    assert len(metrics["history"]) == 1 and metrics["history"][0]["partial"]
    config = json.loads((run / "config.json").read_text())
    assert (config["pretrain_steps"], config["curriculum_steps"], config["encoder_lr_scale"]) == (3, 1, 0.0)


def test_a_data_set_without_test_images_says_the_run_has_no_test_scores(karpathy: Path, tmp_path: Path,
                                                                          caplog) -> None:
    """A Karpathy file with no image marked "test" trained and saved a run whose test scores were
    an empty record, without a word."""
    data = json.loads(karpathy.read_text())
    for entry in data["images"]:
        entry["split"] = "val" if entry["split"] == "test" else entry["split"]
    karpathy.write_text(json.dumps(data))
    run = tmp_path / "run"
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(karpathy.parent / "images"),
            "--out", str(run), *TINY]
    assert cli.main(argv) == 0
    assert "the data has no test images" in caplog.text
    warnings = json.loads((run / "metrics.json").read_text())["warnings"]
    assert any("no test images" in line for line in warnings)


def test_bad_data_exits_2_with_one_line_and_writes_nothing(tsv: Path, tmp_path: Path, capsys) -> None:
    tsv.write_text(tsv.read_text() + "blue.png\t\n")
    run = tmp_path / "run"
    assert cli.main(["train", "caption", "--data", str(tsv), "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tsv} line 8: empty caption" in err
    assert not run.exists() and not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_caption_of_a_missing_image_or_run_exits_2(tmp_path: Path, capsys) -> None:
    assert cli.main(["caption", str(tmp_path / "nope"), "x.png"]) == 2
    assert "nlp182 train caption" in capsys.readouterr().err


def test_lr_schedule_decays_over_the_epochs_without_a_budget(karpathy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    images = karpathy.parent / "images"
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(images), "--out", str(run), *TINY]
    argv += ["--epochs", "2", "--lr", "0.004", "--lr-schedule", "cosine", "--early-stopping-patience", "5"]
    assert cli.main(argv) == 0
    history = json.loads((run / "metrics.json").read_text())["history"]
    # Each epoch's record holds the rate its last step used (one step an epoch here): the full rate,
    # then half way down the cosine, cos(pi / 2) -> lr / 2.
    assert [r["lr"] for r in history] == [0.004, 0.002]


def test_monitor_and_batch_norm_recalibration_flags(karpathy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    images = karpathy.parent / "images"
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(images), "--out", str(run), *TINY]
    argv += ["--monitor", "exact_match", "--bn-recalibration-batches", "2"]
    assert cli.main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_valid_exact_match"] == metrics["history"][0]["valid_exact_match"]
    config = json.loads((run / "config.json").read_text())
    assert (config["monitor"], config["bn_recalibration_batches"]) == ("exact_match", 2)


def test_ema_decay_flag_keeps_and_saves_the_averaged_weights(karpathy: Path, tmp_path: Path) -> None:
    import torch

    from nlp182.captioning.captioner import Captioner
    from nlp182.train import list_checkpoints, load_checkpoint

    run = tmp_path / "run"
    images = karpathy.parent / "images"
    argv = ["train", "caption", "--data", str(karpathy), "--images", str(images), "--out", str(run), *TINY]
    # No batch-norm recalibration: it would change the kept average's statistics after the checkpoint.
    assert cli.main([*argv, "--ema-decay", "0.5", "--bn-recalibration-batches", "0"]) == 0
    assert json.loads((run / "config.json").read_text())["ema_decay"] == 0.5
    last = load_checkpoint(list_checkpoints(run / "train")[-1])  # after the only epoch: raw weights and EMA
    averaged, raw = last["ema"]["shadow"], last["model"]
    assert not torch.equal(averaged["decoder.out.weight"], raw["decoder.out.weight"])
    saved = Captioner.load(run, device="cpu").model.state_dict()
    for key, value in averaged.items():  # what the run saved is the average, not the last weights
        assert torch.equal(saved[key], value), key


def _untimed(record: dict) -> dict:
    """A metrics record without its clock readings (rates and seconds differ between any two runs)."""
    return {key: value for key, value in record.items() if not key.endswith(("_per_s", "_s", "seconds"))}


def test_two_deterministic_runs_of_one_seed_give_the_same_metrics(
    karpathy: Path, tmp_path: Path, monkeypatch
) -> None:
    images = karpathy.parent / "images"
    seen = []
    train = captioning_train._train

    def recording(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return train(*args, **kwargs)

    monkeypatch.setattr(captioning_train, "_train", recording)
    runs = []
    for name in ("a", "b"):
        argv = ["train", "caption", "--data", str(karpathy), "--images", str(images),
                "--out", str(tmp_path / name), *TINY, "--epochs", "2", "--deterministic"]
        assert cli.main(argv) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs.append(([_untimed(record) for record in metrics["history"]], _untimed(metrics["test"])))
    assert seen == [True, True] and not torch.are_deterministic_algorithms_enabled()
    assert runs[0] == runs[1]
