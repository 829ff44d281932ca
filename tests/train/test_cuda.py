"""The Trainer on CUDA: bf16 autocast trains; fp16 overflow steps are skipped, not fatal, with clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nlp182.train import Trainer, TrainerConfig

pytestmark = pytest.mark.cuda


def _problem() -> tuple[nn.Module, DataLoader]:
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = x @ torch.randn(16, 1)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
    return model, DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True,
                             generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_mixed_precision_with_clipping_trains_on_cuda(amp_dtype: str) -> None:
    model, loader = _problem()

    def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return 1e3 * nn.functional.mse_loss(net(x).float(), y)  # large: fp16 backward overflows at first

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn,
                      TrainerConfig(epochs=4, device="cuda", amp_dtype=amp_dtype, clip_grad_norm=1.0,
                                    progress=False))
    history = trainer.fit(loader)
    assert next(model.parameters()).device.type == "cuda"
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    if amp_dtype == "float16":
        assert trainer.scaler.get_scale() < 65536.0  # overflowing steps were skipped and the scale backed off
