"""One script for one process or N under torchrun: ``[torchrun --nproc_per_node=2] ddp_script.py OUT_FILE``.

The per-process batch is ``GLOBAL_BATCH // world_size``; without shuffling, the DistributedSampler
gives rank r the samples r, r + N, ..., so the ranks' batches together are exactly the
single-process batch, and DDP's gradient average equals the single-process gradient.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset

from nlp182.optim import SGD
from nlp182.train import Trainer, TrainerConfig, distributed_loader, init_distributed

GLOBAL_BATCH = 16


def main(out_file: str) -> None:
    ctx = init_distributed("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (96,), generator=g)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = distributed_loader(TensorDataset(x, y), GLOBAL_BATCH // ctx.world_size, shuffle=False)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    trainer = Trainer(model, opt, loss_fn, TrainerConfig(epochs=3, device="cpu", progress=False))
    history = trainer.fit(loader, loader)
    if ctx.is_main:
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        tensors["valid_loss"] = torch.tensor([r["valid_loss"] for r in history], dtype=torch.float64)
        save_file(tensors, out_file)
    if ctx.is_distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
