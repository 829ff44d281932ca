"""A run killed with SIGKILL mid-epoch resumes to exactly the parameters of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.errors import FileFormatError, MissingFileError
from nlp182.train import Trainer, TrainerConfig, list_checkpoints, load_checkpoint

SCRIPT = Path(__file__).with_name("resume_script.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, slow: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), str(slow)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path: Path) -> None:
    reference = _run(tmp_path / "ref")
    killed_dir = tmp_path / "killed"
    victim = _run(killed_dir, slow=0.1)
    deadline = time.monotonic() + 120
    target = killed_dir / "checkpoints" / "step-000000012.safetensors"  # epoch 2, batch 4 of 8
    while not target.exists():
        assert victim.poll() is None, victim.stdout.read().decode()
        assert time.monotonic() < deadline, "the training subprocess never wrote its checkpoint"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed_dir / "final.safetensors").exists()
    latest = load_checkpoint(list_checkpoints(killed_dir)[-1])["position"]
    assert latest["batch_in_epoch"] % 8 != 0, f"the kill did not land mid-epoch: {latest}"

    resumed = _run(killed_dir)
    assert resumed.wait(timeout=180) == 0, resumed.stdout.read().decode()
    assert reference.wait(timeout=180) == 0, reference.stdout.read().decode()
    final, expected = (
        load_file(killed_dir / "final.safetensors"),
        load_file(tmp_path / "ref" / "final.safetensors"),
    )
    for name, tensor in expected.items():
        assert torch.equal(final[name], tensor), name
    steps = [
        json.loads(line)["step"]
        for line in (killed_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "step"
    ]
    assert steps == list(range(1, 25))  # lines written after the checkpoint were not duplicated
    assert len(list_checkpoints(killed_dir)) == 2  # keep_last


def _tiny_run(out: Path, resume: str | None) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16))

    def loss_fn(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean()

    cfg = TrainerConfig(epochs=2, device="cpu", out_dir=str(out), resume=resume, progress=False)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, cfg)
    trainer.fit(DataLoader(data, batch_size=8))
    return trainer


def _drawing_run(out: Path, resume: str | None) -> tuple[Trainer, list[tuple[float, float]]]:
    """Two epochs of four batches, a checkpoint every two steps; each step draws from Python's and
    NumPy's global streams (as a user's augmentation would) and takes at least 5 ms."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    draws: list[tuple[float, float]] = []
    model = nn.Linear(4, 1)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16))

    def loss_fn(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        draws.append((random.random(), float(np.random.rand())))
        time.sleep(0.005)
        return ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean()

    cfg = TrainerConfig(epochs=2, device="cpu", out_dir=str(out), resume=resume, progress=False,
                        checkpoint_every=2, keep_last=4)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, cfg)
    trainer.fit(DataLoader(data, batch_size=4))
    return trainer, draws


def test_a_mid_epoch_resume_continues_the_global_streams_and_the_epoch_clock(tmp_path: Path) -> None:
    """The checkpoint holds all that continuing exactly needs: `random` and `np.random` draw on as
    in an uninterrupted run, and the half-done epoch keeps its time and example counts, so its
    throughput covers the whole epoch and the time budget counts the seconds before the stop."""
    whole, whole_draws = _drawing_run(tmp_path / "whole", None)
    mid_epoch = sorted((tmp_path / "whole" / "checkpoints").iterdir())[0]
    saved = load_checkpoint(mid_epoch)
    assert saved["position"]["batch_in_epoch"] == 2 and saved["clock"]["samples"] == 8
    resumed, resumed_draws = _drawing_run(tmp_path / "resumed", str(mid_epoch))
    assert resumed_draws == whole_draws[2:]
    epoch = resumed.history[0]
    assert epoch["samples_per_s"] * epoch["time_s"] == pytest.approx(16)  # all four batches
    assert epoch["time_s"] >= saved["clock"]["time"] + 2 * 0.005
    assert resumed.train_time_s >= 8 * 0.005 and whole.train_time_s >= 8 * 0.005


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_checkpoint_is_a_clear_error_not_a_fresh_start(tmp_path: Path, damage: str) -> None:
    _tiny_run(tmp_path, None)
    latest = list_checkpoints(tmp_path)[-1]
    data = bytearray(latest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-3] ^= 0xFF  # inside the tensor data: only the checksum can notice
    else:
        data = bytearray(b"not a checkpoint at all")
    latest.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=latest.name):
        _tiny_run(tmp_path, "auto")
    with pytest.raises(MissingFileError):
        _tiny_run(tmp_path, str(tmp_path / "nope.safetensors"))


def test_resume_after_the_last_epoch_does_nothing_more(tmp_path: Path) -> None:
    first = _tiny_run(tmp_path, None)
    again = _tiny_run(tmp_path, "auto")
    assert again.global_step == first.global_step == 4
    assert len(again.history) == 2
    for p, q in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("command", ["seq2seq", "caption"])
def test_resume_takes_a_new_time_budget(tmp_path: Path, command: str) -> None:
    """The seq2seq and captioning guides promise ``--resume --time-budget-s S``: a run stopped by its
    budget goes on with a new one, and a resume that gives none keeps the run's."""
    from nlp182.captioning import CaptionConfig
    from nlp182.seq2seq import Seq2SeqConfig
    from nlp182.train.run import incomplete_dir, resumed_config

    config_class = {"seq2seq": Seq2SeqConfig, "caption": CaptionConfig}[command]
    staged = incomplete_dir(tmp_path / "run")
    staged.mkdir()
    (staged / "config.json").write_text(json.dumps(config_class(time_budget_s=600).to_dict()))
    given = config_class(time_budget_s=5)
    assert resumed_config(config_class, tmp_path / "run", given, typed={"time_budget_s"}).time_budget_s == 5
    assert resumed_config(config_class, tmp_path / "run", config_class()).time_budget_s == 600


def test_resume_refuses_settings_other_than_the_run_s_instead_of_dropping_them(tmp_path: Path) -> None:
    """``--resume --data new.tsv --hidden-size 32`` exited 0 after training on the old data and size."""
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq import ModelConfig, Seq2SeqConfig
    from nlp182.train.run import incomplete_dir, resumed_config

    staged = incomplete_dir(tmp_path / "run")
    staged.mkdir()
    saved = Seq2SeqConfig(data=str(tmp_path / "old.tsv"), model=ModelConfig(hidden_size=64))
    (staged / "config.json").write_text(json.dumps(saved.to_dict()))
    again = resumed_config(Seq2SeqConfig, tmp_path / "run", Seq2SeqConfig(data=saved.data, epochs=7))
    assert again.epochs == 7 and again.model.hidden_size == 64  # the run's own, one allowed change
    given = Seq2SeqConfig(data=str(tmp_path / "new.tsv"), model=ModelConfig(hidden_size=32))
    with pytest.raises(InvalidInputError) as caught:
        resumed_config(Seq2SeqConfig, tmp_path / "run", given)
    message = str(caught.value)
    assert f"data was given as {given.data!r}, the run has {saved.data!r}" in message
    assert "model.hidden_size was given as 32, the run has 64" in message and "only epochs" in message
    # typed at its default value, a setting was taken for one left alone: the run's 64 went on
    default_size = ModelConfig().hidden_size
    assert default_size != 64
    typed = Seq2SeqConfig(data=saved.data, model=ModelConfig(hidden_size=default_size))
    assert resumed_config(Seq2SeqConfig, tmp_path / "run", typed).model.hidden_size == 64
    refused = f"model.hidden_size was given as {default_size}, the run has 64"
    with pytest.raises(InvalidInputError, match=refused):
        resumed_config(Seq2SeqConfig, tmp_path / "run", typed, typed={"hidden_size", "data"})
    resaved = Seq2SeqConfig(data=saved.data, model=ModelConfig(hidden_size=64), epochs=3)
    (staged / "config.json").write_text(json.dumps(resaved.to_dict()))
    back = Seq2SeqConfig(data=saved.data, epochs=Seq2SeqConfig().epochs)  # --epochs typed at its default
    assert resumed_config(Seq2SeqConfig, tmp_path / "run", back, typed={"epochs"}).epochs == back.epochs
    assert resumed_config(Seq2SeqConfig, tmp_path / "run", back).epochs == 3
    former = Seq2SeqConfig(data=saved.data, min_count=2).to_dict()
    former["min_frequency"] = former.pop("min_count")  # a run staged under the setting's former name
    (staged / "config.json").write_text(json.dumps(former))
    same = Seq2SeqConfig(data=saved.data, min_count=2)
    assert resumed_config(Seq2SeqConfig, tmp_path / "run", same).min_count == 2


def test_a_checkpoint_nested_past_the_parser_is_a_format_error(tmp_path: Path) -> None:
    """A crafted state tree nested 100k deep passed the checksum and raised RecursionError."""
    from safetensors.torch import save

    from nlp182.train.checkpoint import FORMAT, _digest

    tensors = {"t0": torch.zeros(1)}
    for name, tree in (("tree", "[" * 100_000 + "]" * 100_000), ("header", "[]")):
        metadata = {"format": FORMAT, "tree": tree, "sha256": _digest(tensors)}
        data = save(tensors, metadata=metadata)
        if name == "header":  # the safetensors header itself nested deep, its length adjusted
            header = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            data = len(header).to_bytes(8, "little") + header
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(FileFormatError, match=path.name):
            load_checkpoint(path)
