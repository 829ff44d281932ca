"""Batch normalisation written out (Ioffe & Szegedy 2015).

Training: normalise each channel with the mean and (biased) variance of the batch, then scale by
``gamma`` and shift by ``beta`` so the layer can undo the normalisation where that helps. The
running mean and the running *unbiased* variance are updated by an exponential moving average
(``momentum``) and are what evaluation uses, so a single test image is handled deterministically.
Parameter and buffer names match ``torch.nn.BatchNorm2d`` (``weight`` is gamma, ``bias`` is beta)
so state dicts move between the two.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from nlp182.errors import ShapeError


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over every dimension except the channel dimension 1.

    x: ``(B, C)``, ``(B, C, L)`` or ``(B, C, H, W)``; returns the same shape and dtype (float16
    and bfloat16 normalised in float32).

    As in ``torch.nn.BatchNorm2d``: ``momentum=None`` makes the running statistics a cumulative
    average over every batch seen (factor ``1 / batches``); ``affine=False`` learns no gamma and
    beta; ``track_running_stats=False`` keeps no statistics and normalises by the batch's own in
    evaluation too; ``device`` and ``dtype`` place the parameters and statistics. ``frozen=True``
    makes the layer use its running statistics even in training mode and stop updating them, which
    is what a frozen feature extractor needs (see ``vision.transfer.freeze``). It is a ``torch.nn``
    batch norm to the tools that look for one (``torch.optim.swa_utils.update_bn``,
    ``nn.SyncBatchNorm.convert_sync_batchnorm``, fusion), with its own ``forward``;
    ``SyncBatchNorm`` has no ``frozen``, so freeze after converting.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.frozen = False

    def reset_running_stats(self) -> None:
        """Start the running statistics over (mean 0, variance 1), unless the layer is frozen: a
        frozen feature extractor keeps its statistics whatever asks (``update_bn`` asks every
        torch batch norm, and a frozen layer would never fill them again)."""
        if not getattr(self, "frozen", False):  # torch's __init__ calls this before ``frozen`` is set
            super().reset_running_stats()

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ShapeError(f"batch norm expects (B, {self.num_features}, ...); got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if x.numel() == 0:  # an empty batch: nothing to normalise, no statistics to fold in (as torch)
            return x.clone()
        shape = [1, -1] + [1] * (x.dim() - 2)
        # half-precision input (autocast's) is normalised in float32 and returned in its own dtype,
        # as torch's kernels do: statistics rounded to bfloat16 were off by up to 10x more
        compute = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if (self.training and not self.frozen) or not self.track_running_stats:
            dims = [0, *range(2, x.dim())]
            count = x.numel() // self.num_features
            if count < 2:
                remedy = ("use a batch larger than 1 or call model.eval()" if self.track_running_stats else
                          "this layer has no running statistics (track_running_stats=False), so it "
                          "normalises by the batch in eval mode too: give it a batch larger than 1")
                raise ShapeError("batch norm on batch statistics needs more than one value per channel; "
                                 + remedy)
            var, mean = torch.var_mean(compute, dim=dims, unbiased=False)
            if self.training and self.track_running_stats and not self.frozen:
                self._track(mean.detach(), var.detach() * (count / (count - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        # gamma * (x - mean) / sqrt(var + eps) + beta, folded into one scale and one shift per channel
        # so the full-size tensor is touched by two element-wise ops instead of four.
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = self.weight * scale
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        return torch.addcmul(shift.view(shape), compute, scale.view(shape)).to(x.dtype)

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """Fold one batch's statistics ``(C,)`` into the running ones."""
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var), factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}, frozen={self.frozen}"
        )


def batch_spans(count: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches of ``count`` examples, ``batch_size`` each but the last;
    a last batch of one example joins the one before it (65 and not 64 + 1), since batch norm on
    batch statistics cannot normalise a lone example and the epoch would fail at its end."""
    starts = list(range(0, count, batch_size))
    if batch_size > 1 and len(starts) > 1 and count - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, [*starts[1:], count][: len(starts)], strict=True))


@torch.no_grad()
def recalibrate_batch_norm(module: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Replace the running statistics of ``module``'s batch norms by their plain average over ``inputs``.

    Each input batch ``(B, ...)`` runs through ``module`` in training mode without gradients; the ``k``-th
    (from 0) is folded in with momentum ``1 / (k + 1)``, so the statistics end as the mean of the
    per-batch ones at the current weights, not an average that lags behind weights that moved
    during training (the "precise BN" of Wu & Johnson, 2021). Frozen layers keep theirs; modes and
    momenta are restored after. Returns the number of batches used (0 leaves every layer as it was).
    """
    norms = [
        m for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        and not getattr(m, "frozen", False)
    ]
    modes = {m: m.training for m in module.modules()}
    momenta = [m.momentum for m in norms]
    used = 0
    try:
        module.train()
        for k, batch in enumerate(inputs):
            for norm in norms:
                norm.momentum = 1.0 / (k + 1)
            module(batch)
            used = k + 1
    finally:
        for m, training in modes.items():
            m.training = training
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    return used
