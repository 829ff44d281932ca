import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlp182.cli import main
from nlp182.vision import runs
from nlp182.vision.fit import FitConfig
from nlp182.vision.models import SmallCNN
from nlp182.vision.registry import create_model
from nlp182.vision.runs import DigitsRunConfig, ShapesRunConfig


def test_train_digits_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "digits"
    code = main(
        [
            "train",
            "digits",
            "--out",
            str(out),
            "--epochs",
            "3",
            "--width",
            "0.5",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "test accuracy" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["fit"]["epochs"] == 3 and config["width"] == 0.5
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.85 and len(metrics["train_loss"]) == 3
    model = SmallCNN(1, 10, 0.5)
    model.load_state_dict(load_file(out / "model.safetensors"))
    for name in ("filters.png", "occlusion.png", "saliency.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_train_digits_holds_out_its_test_fraction_and_trains_with_its_dropout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--test-fraction`` sets the split the accuracy is measured on and ``--dropout`` the network
    trained: both must shape the run itself, not only the ``config.json`` that records them."""
    built = []

    def recording(*args, **kwargs) -> torch.nn.Module:
        built.append(create_model(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(runs, "create_model", recording)
    out = tmp_path / "digits"
    flags = ["--test-fraction", "0.5", "--dropout", "0.5", "--width", "0.25", "--epochs", "1"]
    assert main(["train", "digits", "--out", str(out), *flags, "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["test_size"], metrics["train_size"]) == (899, 898)  # half of the 1797 digits
    assert len(built) == 1 and built[0].dropout.p == 0.5


def test_train_shapes_small_run(tmp_path):
    out = tmp_path / "shapes"
    args = [
        "train",
        "shapes",
        "--out",
        str(out),
        "--model",
        "fcn",
        "--width",
        "0.25",
        "--size",
        "16",
        "--train-size",
        "32",
        "--test-size",
        "8",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["mean_iou"] <= 1.0 and len(metrics["iou_per_class"]) == 4
    assert (out / "segmentation.png").exists()
    model = create_model("fcn", in_channels=3, num_classes=4, width=0.25)  # the --width the run was given
    model.load_state_dict(load_file(out / "model.safetensors"))


def test_train_shapes_scores_images_it_did_not_train_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test shapes are drawn with another seed than the training shapes: drawn with the same one,
    a test set as large as the training set is the training set, and the mean IoU measures fitting."""
    drawn, draw = [], runs.make_shapes_segmentation

    def recording(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        drawn.append(draw(n, size, seed=seed))
        return drawn[-1]

    monkeypatch.setattr(runs, "make_shapes_segmentation", recording)
    config = ShapesRunConfig(
        model="fcn",
        width=0.25,
        size=16,
        train_size=4,
        test_size=4,
        fit=FitConfig(epochs=1, device="cpu", progress=False, seed=3),
    )
    runs.train_shapes_run(config, tmp_path / "shapes")
    (train, _), (test, _) = drawn
    assert not any(torch.equal(image, seen) for image in test for seen in train)


def test_cli_defaults_equal_the_config_defaults():
    from nlp182.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "shapes", "--out", "x"])
    from nlp182.commands.flags import config_from_args

    assert config_from_args(ShapesRunConfig, args) == ShapesRunConfig()
    args = parser.parse_args(["train", "digits", "--out", "x"])
    assert config_from_args(DigitsRunConfig, args) == DigitsRunConfig()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "digits", "--out", "x", "--device", "tpu"], "--device must be one of"),
        (["train", "digits", "--out", "x", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["train", "digits", "--out", "x", "--test-fraction", "1.5"], "--test-fraction must be less than 1"),
    ],
)
def test_bad_flags_print_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [a if a != "x" else str(tmp_path / "run") for a in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nlp182 train digits: error:") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()
