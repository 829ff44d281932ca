"""Forward+backward time of nlp182 attention beside PyTorch's, sequence lengths 128..4096.

``python -m bench.attention`` times, in one run, the forward+backward of

* ``ScaledDotProductAttention`` vs ``torch.nn.functional.scaled_dot_product_attention``,
* ``MultiHeadAttention`` vs ``torch.nn.MultiheadAttention`` (same weights, self-attention,
  ``need_weights=False`` on both so both can use the fused kernel),
* ``AdditiveAttention`` (Bahdanau) beside them, up to the length where its ``(T, T, A)`` hidden
  tensor still fits comfortably in memory.

The machine this runs on is shared, so the measurement is built to survive interference: every
round times every case once, ours and the reference back to back, and the rounds repeat over
the whole run (short cases repeat within a round for at least ``--case-s`` seconds), so each
case gets samples from many moments. A case's time is its minimum over
the rounds (interference only ever adds time); the median ratios are recorded too. It prints
ratios first (ours / reference; goal <= 1.05) and writes ``bench/results/attention-<device>.json``.
On CUDA it runs in bf16.
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
Fn = Callable[[], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd_seconds(fn: Fn, device: torch.device) -> float:
    """Wall seconds of ``fn()`` and a backward pass through the sum of its output."""
    _sync(device)
    start = time.perf_counter()
    fn().float().sum().backward()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--lengths", default="128,256,512,1024,2048,4096")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--additive-max-len", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds over all cases")
    parser.add_argument("--case-s", type=float, default=0.3, help="least seconds per case and round")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, embed, heads = args.batch, args.embed_dim, args.heads
    lengths = [int(n) for n in args.lengths.split(",")]
    torch.manual_seed(0)
    ours_mha = MultiHeadAttention(embed, heads).to(device, dtype)
    torch_mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True).to(device, dtype)
    torch_mha.load_state_dict(ours_mha.state_dict())
    sdpa = ScaledDotProductAttention()
    additive = AdditiveAttention(embed, embed, attn_dim=64).to(device, dtype)

    # (length, name) -> (ours, reference or None)
    cases: dict[tuple[int, str], tuple[Fn, Fn | None]] = {}
    for length in lengths:
        q, k, v = (
            torch.randn(batch, heads, length, embed // heads, device=device, dtype=dtype, requires_grad=True)
            for _ in range(3)
        )
        x = torch.randn(batch, length, embed, device=device, dtype=dtype, requires_grad=True)
        cases[length, "sdpa"] = (
            lambda q=q, k=k, v=v: sdpa(q, k, v)[0],
            lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
        )
        cases[length, "mha"] = (
            lambda x=x: ours_mha(x, x, x)[0],
            lambda x=x: torch_mha(x, x, x, need_weights=False)[0],
        )
        if length <= args.additive_max_len:
            cases[length, "additive"] = (lambda x=x: additive(x, x, x)[0], None)

    samples: dict[tuple[int, str], tuple[list[float], list[float]]] = {key: ([], []) for key in cases}
    for round_index in range(args.rounds + 1):  # round 0 warms up (kernel choice, allocator)
        for key, (ours, reference) in cases.items():
            mine, theirs = samples[key]
            start = time.perf_counter()
            while True:  # short cases repeat within the round, long ones run once
                order = [(ours, mine)] + ([(reference, theirs)] if reference is not None else [])
                if len(mine) % 2:
                    order.reverse()  # alternate who goes first: no order bias
                for fn, out in order:
                    seconds = fwd_bwd_seconds(fn, device)
                    if round_index:
                        out.append(seconds)
                if time.perf_counter() - start > args.case_s:
                    break
        print(f"round {round_index}/{args.rounds} done", flush=True)

    def ms(key: tuple[int, str], side: int) -> float:
        return 1e3 * min(samples[key][side])

    rows = []
    for length in lengths:
        row: dict[str, float | int | None] = {"length": length}
        for name in ("sdpa", "mha"):
            mine, theirs = samples[length, name]
            row[f"{name}_ratio"] = min(mine) / min(theirs)
            row[f"{name}_median_ratio"] = statistics.median(mine) / statistics.median(theirs)
            row[f"{name}_ours_ms"], row[f"{name}_torch_ms"] = ms((length, name), 0), ms((length, name), 1)
        row["additive_ms"] = ms((length, "additive"), 0) if (length, "additive") in samples else None
        rows.append(row)

    print(f"attention forward+backward on {device} ({dtype}), B={batch}, E={embed}, H={heads}, ")
    print(f"{args.rounds} rounds, ms = minimum over rounds")
    print(
        f"{'T':>5} {'sdpa ratio':>10} {'mha ratio':>10} | {'sdpa ours':>10} {'sdpa torch':>10} "
        f"{'mha ours':>10} {'mha torch':>10} {'additive':>11}"
    )
    for row in rows:
        additive_text = (
            f"{row['additive_ms']:11.2f}" if row["additive_ms"] is not None else f"{'(skipped)':>11}"
        )
        print(
            f"{row['length']:5d} {row['sdpa_ratio']:10.3f} {row['mha_ratio']:10.3f} | "
            f"{row['sdpa_ours_ms']:10.2f} {row['sdpa_torch_ms']:10.2f} "
            f"{row['mha_ours_ms']:10.2f} {row['mha_torch_ms']:10.2f} {additive_text}"
        )
    worst = max(max(r["sdpa_ratio"], r["mha_ratio"]) for r in rows)
    print(f"worst ratio {worst:.3f} (goal <= {GOAL_RATIO})")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        args.out / f"attention-{device.type}.json",
        {
            "device": str(device),
            "dtype": str(dtype),
            "threads": torch.get_num_threads(),
            "batch": batch,
            "embed_dim": embed,
            "heads": heads,
            "additive_attn_dim": 64,
            "rounds": args.rounds,
            "goal_ratio": GOAL_RATIO,
            "worst_ratio": worst,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
