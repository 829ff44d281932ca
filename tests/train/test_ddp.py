"""Two CPU processes under torchrun (gloo) end with the parameters of one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("ddp_script.py")
ROOT = Path(__file__).resolve().parents[2]


def test_two_process_ddp_equals_single_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.safetensors"
    double = tmp_path / "ddp.safetensors"
    subprocess.run([sys.executable, str(SCRIPT), str(single)], env=env, check=True, timeout=120)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(SCRIPT),
            str(double),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    a, b = load_file(single), load_file(double)
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-12, msg=name)
    # Training made progress, and without the gradient all-reduce rank 0 would have seen half the data.
    assert float(a["valid_loss"][-1]) < float(a["valid_loss"][0])


def test_a_loader_built_before_the_trainer_joins_the_group_is_split_too(monkeypatch) -> None:
    """The documented script builds its loader first: each of two processes read all four batches
    (no group yet), not its own two."""
    from torch.utils.data import DistributedSampler, TensorDataset

    from nlp182.train import distributed_loader

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    data = TensorDataset(torch.arange(64))
    loader = distributed_loader(data, batch_size=16, shuffle=False)
    assert isinstance(loader.sampler, DistributedSampler) and len(loader) == 2
    assert [int(i) for batch in loader for i in batch[0]] == list(range(1, 64, 2))  # rank 1's shard
