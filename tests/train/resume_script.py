"""A small training run used by test_resume.py: ``python resume_script.py OUT_DIR [SLOW_SECONDS]``.

Dropout, a shuffling DataLoader on the global RNG and Adam with a per-step schedule make every
random stream and every piece of state matter for an exact resume. Writes ``final.safetensors``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.optim import Adam, Cosine
from nlp182.train import Trainer, TrainerConfig


def main(out_dir: str, slow: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    opt = Adam(model.parameters(), lr=1e-2)
    sched = Cosine(opt, total_steps=24, warmup_steps=4)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        time.sleep(slow)
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    config = TrainerConfig(
        epochs=3,
        device="cpu",
        out_dir=out_dir,
        checkpoint_every=2,
        keep_last=2,
        resume="auto",
        progress=False,
        log_every=1,
        seed=0,
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    Trainer(model, opt, loss_fn, config, scheduler=sched, scheduler_interval="step").fit(loader)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out_dir) / "final.safetensors")
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
