"""An interrupted captioning run resumes from its checkpoint and ends as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlp182 import cli
from nlp182.captioning import train as caption_train
from nlp182.captioning.synthetic import write_user_set
from nlp182.train.checkpoint import load_checkpoint

#: A captioner small enough to train a few epochs in seconds; every default part stays on
#: (pre-training, word curriculum, weight average, batch-norm recalibration, data-chosen monitor).
TINY = ["--image-size", "16", "--grid", "2", "--feature-dim", "8", "--embed-dim", "8",
        "--hidden-size", "8", "--batch-size", "4", "--epochs", "4", "--no-progress", "--threads", "1",
        "--device", "cpu"]  # fmt: skip


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def test_resume_after_an_interrupt_equals_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], interrupt_after_epoch
) -> None:
    data = write_user_set(tmp_path / "data", 16, 4, 4, size=24, seed=1)
    straight, out = tmp_path / "straight", tmp_path / "interrupted"
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(straight), *TINY]) == 0
    chosen = json.loads((straight / "metrics.json").read_text())["chosen"]
    assert {"pretrain_steps", "curriculum_steps", "ema_decay"} <= set(chosen)  # the parts resumed are on
    lift = interrupt_after_epoch(2)
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(out), *TINY]) == 130  # Ctrl-C
    assert f"nlp182 train caption --out {out} --resume" in capsys.readouterr().err
    staged = Path(f"{out}.incomplete")
    assert len(list((staged / "train" / "checkpoints").glob("step-*.safetensors"))) == 1  # epoch 1's
    assert not out.exists()
    lift()
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(out), *TINY]) == 2  # refused
    original = data.read_bytes()  # captions edited since: the run would go on training on others
    data.write_bytes(original.replace(b"small", b"large"))
    capsys.readouterr()
    assert cli.main(["train", "caption", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert f"{data} holds other data now" in capsys.readouterr().err
    data.write_bytes(original)
    pretrained: list[int] = []
    pretrain = caption_train.pretrain_encoder
    monkeypatch.setattr(
        caption_train, "pretrain_encoder", lambda *a, **k: pretrained.append(1) or pretrain(*a, **k)
    )
    # Only --out and --resume: the data, the model and every choice come from the interrupted run.
    assert cli.main(["train", "caption", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert not pretrained  # the checkpoint holds the pre-trained encoder
    assert not staged.exists() and not (out / "chosen.json").exists()
    resumed, expected = _weights(out), _weights(straight)
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)  # the curriculum went on, too
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen"] == chosen and len(metrics["history"]) == 4
    assert cli.main(["train", "caption", "--out", str(tmp_path / "none"), "--resume"]) == 2


def test_hard_attention_resumes_with_its_reinforce_baseline(tmp_path: Path, interrupt_after_epoch) -> None:
    """The REINFORCE baseline is state of the loss, not of the model: the checkpoint carries it, so
    the last checkpoint of a resumed run equals the uninterrupted run's, tensor for tensor."""
    data = write_user_set(tmp_path / "data", 16, 4, 4, size=24, seed=1)
    straight, out = tmp_path / "straight", tmp_path / "interrupted"
    hard = [*TINY, "--attention", "hard"]
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(straight), *hard]) == 0
    lift = interrupt_after_epoch(2)
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(out), *hard]) == 130
    lift()
    assert cli.main(["train", "caption", "--out", str(out), "--resume", "--no-progress"]) == 0
    paths = [sorted((run / "train" / "checkpoints").glob("step-*"))[-1] for run in (straight, out)]
    assert "reinforce.baseline" in load_checkpoint(paths[0])["loss"]
    last = [load_file(path) for path in paths]
    assert last[0].keys() == last[1].keys()
    assert [k for k in last[0] if not torch.equal(last[0][k], last[1][k])] == []


def test_a_setting_given_anew_at_resume_is_no_longer_reported_as_chosen(
    tmp_path: Path, interrupt_after_epoch
) -> None:
    """After --resume --epochs 2, metrics.json still said "epochs 40 (the default)" among the
    settings chosen from the data, beside a config.json of 2."""
    data = write_user_set(tmp_path / "data", 16, 4, 4, size=24, seed=1)
    out = tmp_path / "run"
    at = TINY.index("--epochs")
    untimed = TINY[:at] + TINY[at + 2 :]  # the epochs left to the data: 40
    lift = interrupt_after_epoch(1)
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(out), *untimed]) == 130
    chosen = json.loads((Path(f"{out}.incomplete") / "chosen.json").read_text())
    assert "epochs" in chosen
    lift()
    resume = ["train", "caption", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]
    assert cli.main(resume) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "epochs" not in metrics["chosen"] and len(metrics["history"]) == 2
    assert json.loads((out / "config.json").read_text())["epochs"] == 2


def test_a_full_disk_after_a_checkpoint_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C printed the resume command, an error of the machine (no space left) only the error:
    the kept checkpoints went unmentioned."""
    import errno

    from nlp182.train import Trainer

    log_epoch = Trainer._log_epoch

    def disk_full_in_epoch_2(self: Trainer, record: dict) -> None:
        log_epoch(self, record)
        if record["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trainer, "_log_epoch", disk_full_in_epoch_2)
    data = write_user_set(tmp_path / "data", 16, 4, 4, size=24, seed=1)
    out = tmp_path / "full"
    assert cli.main(["train", "caption", "--data", str(data), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"once the cause is fixed, resume with:\n  nlp182 train caption --out {out} --resume" in err
    assert err.endswith("nlp182: error: no space left on device\n")
