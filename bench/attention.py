"""Forward+backward time of nlp182 attention beside PyTorch's, sequence lengths 128..4096.

``python -m bench.attention`` times, in one run and interleaved (ours, reference, ours, ... so
load from other processes hits both alike), the forward+backward of

* ``ScaledDotProductAttention`` vs ``torch.nn.functional.scaled_dot_product_attention``,
* ``MultiHeadAttention`` vs ``torch.nn.MultiheadAttention`` (same weights, self-attention,
  ``need_weights=False`` on both so both can use the fused kernel),
* ``AdditiveAttention`` (Bahdanau) beside them, up to the length where its ``(T, T, A)`` hidden
  tensor still fits comfortably in memory.

Each time is the minimum over the repeats: interference from other processes on a shared
machine only ever adds time, so the minimum is the stable estimate of what the code costs (the
median ratios are recorded too). It prints ratios first (ours / reference; goal <= 1.05) and
writes ``bench/results/attention-<device>.json``. On CUDA it runs in bf16.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from nlp182.attention import AdditiveAttention, MultiHeadAttention, ScaledDotProductAttention
from nlp182.device import select_device
from nlp182.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO = 1.05


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _fwd_bwd(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn().float().sum().backward()
    _sync(device)
    return time.perf_counter() - start


def time_pair(
    ours: Callable[[], torch.Tensor],
    reference: Callable[[], torch.Tensor],
    device: torch.device,
    budget_s: float,
) -> tuple[list[float], list[float]]:
    """Seconds of forward+backward of ``ours`` and ``reference``, measured alternately (>= 5 each)."""
    for _ in range(2):  # warm-up: kernel selection, allocator
        _fwd_bwd(ours, device)
        _fwd_bwd(reference, device)
    mine, theirs = [], []
    start = time.perf_counter()
    while len(mine) < 5 or (time.perf_counter() - start < budget_s and len(mine) < 50):
        mine.append(_fwd_bwd(ours, device))
        theirs.append(_fwd_bwd(reference, device))
    return mine, theirs


def time_one(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int = 3) -> float:
    """Minimum seconds of forward+backward of ``fn`` over ``repeats`` after one warm-up."""
    _fwd_bwd(fn, device)
    return min(_fwd_bwd(fn, device) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--lengths", default="128,256,512,1024,2048,4096")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--additive-max-len", type=int, default=1024)
    parser.add_argument("--budget-s", type=float, default=2.0, help="timing seconds per length and pair")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, embed, heads = args.batch, args.embed_dim, args.heads
    head_dim = embed // heads
    torch.manual_seed(0)
    ours_mha = MultiHeadAttention(embed, heads).to(device, dtype)
    torch_mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True).to(device, dtype)
    torch_mha.load_state_dict(ours_mha.state_dict())
    sdpa = ScaledDotProductAttention()
    additive = AdditiveAttention(embed, embed, attn_dim=64).to(device, dtype)
    rows = []
    for length in (int(n) for n in args.lengths.split(",")):
        q, k, v = (
            torch.randn(batch, heads, length, head_dim, device=device, dtype=dtype, requires_grad=True)
            for _ in range(3)
        )
        x = torch.randn(batch, length, embed, device=device, dtype=dtype, requires_grad=True)
        sdpa_ours, sdpa_ref = time_pair(
            lambda q=q, k=k, v=v: sdpa(q, k, v)[0],
            lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
            device,
            args.budget_s,
        )
        mha_ours, mha_ref = time_pair(
            lambda x=x: ours_mha(x, x, x)[0],
            lambda x=x: torch_mha(x, x, x, need_weights=False)[0],
            device,
            args.budget_s,
        )
        additive_s = (
            time_one(lambda x=x: additive(x, x, x)[0], device) if length <= args.additive_max_len else None
        )
        rows.append(
            {
                "length": length,
                "sdpa_ratio": min(sdpa_ours) / min(sdpa_ref),
                "mha_ratio": min(mha_ours) / min(mha_ref),
                "sdpa_ours_ms": 1e3 * min(sdpa_ours),
                "sdpa_torch_ms": 1e3 * min(sdpa_ref),
                "mha_ours_ms": 1e3 * min(mha_ours),
                "mha_torch_ms": 1e3 * min(mha_ref),
                "additive_ms": None if additive_s is None else 1e3 * additive_s,
                "repeats": len(sdpa_ours),
                "median_ratio_sdpa": statistics.median(sdpa_ours) / statistics.median(sdpa_ref),
                "median_ratio_mha": statistics.median(mha_ours) / statistics.median(mha_ref),
            }
        )
        row = rows[-1]
        additive_text = f"{row['additive_ms']:11.2f}" if additive_s is not None else f"{'(skipped)':>11}"
        if len(rows) == 1:
            print(
                f"attention forward+backward on {device} ({dtype}), B={batch}, E={embed}, H={heads}; "
                "ms (min of repeats)"
            )
            print(
                f"{'T':>5} {'sdpa ratio':>10} {'mha ratio':>10} | {'sdpa ours':>10} {'sdpa torch':>10} "
                f"{'mha ours':>10} {'mha torch':>10} {'additive':>11}"
            )
        print(
            f"{length:5d} {row['sdpa_ratio']:10.3f} {row['mha_ratio']:10.3f} | "
            f"{row['sdpa_ours_ms']:10.2f} {row['sdpa_torch_ms']:10.2f} "
            f"{row['mha_ours_ms']:10.2f} {row['mha_torch_ms']:10.2f} {additive_text}",
            flush=True,
        )
    worst = max(max(r["sdpa_ratio"], r["mha_ratio"]) for r in rows)
    print(f"worst ratio {worst:.3f} (goal <= {GOAL_RATIO})")
    atomic_write_json(
        RESULTS / f"attention-{device.type}.json",
        {
            "device": str(device),
            "dtype": str(dtype),
            "threads": torch.get_num_threads(),
            "batch": batch,
            "embed_dim": embed,
            "heads": heads,
            "additive_attn_dim": 64,
            "goal_ratio": GOAL_RATIO,
            "worst_ratio": worst,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
