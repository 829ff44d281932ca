"""word2vec's negative-sampling update as one fused Triton kernel (skip-gram and CBOW) for CUDA.

The batched PyTorch step gathers ``(B, 1+K, D)`` rows, writes ``(B * (1+K), D)`` updates and
``index_add_``s them back: several trips to memory per example. This kernel does what the C kernel
(``sgns.c``) does on a CPU thread, on thousands of GPU programs at once: each program walks a block
of consecutive centres of the (subsampled) token array; for each centre it reads the window's input
rows and the output rows (the centre and its noise words) once, computes the logistic steps, and
adds them to the weights in place with atomic adds (Hogwild across programs, as the C kernel is
across threads; the atomics keep two updates of one row from overwriting each other).

Semantics, per centre, in order within a program (the float64 reference in the tests spells them
out):

- the window is the positions ``i - r .. i + r`` (``r`` the centre's drawn reach), inside the kept
  tokens and the centre's sentence, without the centre itself;
- skip-gram: every context word is an input predicting the centre against the same ``K`` noise
  words (the C kernel's shared negatives), all scores from the rows as they were before the centre,
  then every row takes its summed step;
- CBOW: the mean of the context rows predicts the centre; every context row takes the full hidden
  step (gensim's ``cbow_mean=1``); the output scores also use the rows from before the centre
  (the C kernel updates a noise word drawn twice in between: the only difference);
- a noise word equal to the centre is skipped, and so is a term whose score is saturated,
  ``|score| >= 6`` (word2vec's rule: its gradient would be 0 or the label);
- the learning rate falls linearly from ``alpha_start`` at the first kept token to ``alpha_end``
  after the last.

The kernel runs where Triton runs: on CUDA tensors, or on CPU tensors when the environment sets
``TRITON_INTERPRET=1`` before Triton is imported (the tests do; it is slow, for checking only).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from nlp182.errors import ShapeError

MAX_EXP = 6.0
# what the kernel reads: compiled Triton takes module globals only as constexpr (the interpreter
# takes any, so only a compile, as tests/embeddings/test_triton_compile.py runs, tells them apart)
_MAX_EXP = tl.constexpr(MAX_EXP)
#: Centres each program walks in order. Larger blocks mean fewer programs and less concurrency in
#: the Hogwild updates; smaller ones, more launch-grid overhead.
CENTRES_PER_PROGRAM = 64


#: Whether the kernel below was built for Triton's CPU interpreter: Triton reads
#: ``TRITON_INTERPRET`` when a kernel is decorated, that is when this module is imported.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def runs_on(device: torch.device) -> bool:
    """Whether the kernel can run on ``device``: CUDA, or the CPU in interpreter mode."""
    return device.type == "cuda" or (device.type == "cpu" and INTERPRETED)


# the launch bounds change every launch: one compiled kernel serves them all
@triton.jit(do_not_specialize=["first", "last"])
def _window_kernel(
    w_in, w_out,  # (V, D) float32, updated in place
    ids, sentences, reach,  # (N,) int32: kept tokens, their sentence numbers, each centre's reach
    noise,  # (N, K) int32 noise words of each centre
    count_ptr,  # (1,) int64: kept tokens (positions from here on are padding)
    stats,  # (2,) float64: summed loss and examples, accumulated (float32 would round past 2^24)
    first, last,  # the positions [first, last) of this launch
    alpha_start, alpha_end, dim, negative,
    WINDOW: tl.constexpr, CONTEXT_BLOCK: tl.constexpr, OUT_BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr, CENTRES: tl.constexpr, CBOW: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    count = tl.load(count_ptr)
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    slot = tl.arange(0, CONTEXT_BLOCK)
    offset = tl.where(slot < WINDOW, slot - WINDOW, slot - WINDOW + 1)  # -W..-1, 1..W, then padding
    slot_ok = slot < 2 * WINDOW
    o = tl.arange(0, OUT_BLOCK)
    label = (o == 0).to(tl.float32)
    sign = 2.0 * label - 1.0
    alpha_slope = (alpha_end - alpha_start) / tl.maximum(count, 1).to(tl.float32)
    loss = 0.0
    examples = 0.0
    base = first + pid * CENTRES
    # only the live centres: past the kept tokens (subsampling drops a third or more) a program
    # has nothing to do
    steps = tl.minimum(tl.minimum(count, last) - base, CENTRES)
    for step in range(0, steps):
        i = base + step
        live = (i < count) & (i < last)
        centre = tl.load(ids + i, mask=live, other=0)
        sentence = tl.load(sentences + i, mask=live, other=-1)
        r = tl.load(reach + i, mask=live, other=0)
        j = i + offset
        # (a centre that is not live has reach 0: no context, so no output either; vector & scalar
        # masks are avoided, Triton's interpreter mistypes them)
        ctx_ok = slot_ok & (tl.abs(offset) <= r) & (j >= 0) & (j < count)
        ctx_ok = ctx_ok & (tl.load(sentences + j, mask=ctx_ok, other=-2) == sentence)
        ctx = tl.load(ids + j, mask=ctx_ok, other=0).to(tl.int64)
        used = tl.sum(ctx_ok.to(tl.int32), axis=0)
        outputs = tl.where(used > 0, negative + 1, 0)  # the centre and its noise words, or none
        drawn = tl.load(noise + i.to(tl.int64) * negative + o - 1, mask=(o >= 1) & (o < outputs), other=0)
        words = tl.where(o == 0, centre, drawn).to(tl.int64)
        out_ok = (o < outputs) & ((o == 0) | (words != centre))
        in_mask = ctx_ok[:, None] & d_ok[None, :]
        out_mask = out_ok[:, None] & d_ok[None, :]
        in_ptrs = w_in + ctx[:, None] * dim + d[None, :]
        out_ptrs = w_out + words[:, None] * dim + d[None, :]
        # rows are read from L2 (".cg"), where the atomic adds land, never from a stale L1 line
        in_rows = tl.load(in_ptrs, mask=in_mask, other=0.0, cache_modifier=".cg")  # (C, D)
        out_rows = tl.load(out_ptrs, mask=out_mask, other=0.0, cache_modifier=".cg")  # (O, D)
        alpha = alpha_start + alpha_slope * i.to(tl.float32)
        if CBOW:
            hidden = tl.sum(in_rows, axis=0) / tl.maximum(used, 1).to(tl.float32)  # (D,)
            score = tl.sum(out_rows * hidden[None, :], axis=1)  # (O,)
            ok = out_ok & (tl.abs(score) < _MAX_EXP)
            g = tl.where(ok, (label - tl.sigmoid(score)) * alpha, 0.0)
            loss += tl.sum(tl.where(ok, tl.log(1.0 + tl.exp(-sign * score)), 0.0), axis=0)
            hidden_step = tl.sum(g[:, None] * out_rows, axis=0)  # (D,)
            tl.atomic_add(out_ptrs, g[:, None] * hidden[None, :], mask=out_mask, sem="relaxed")
            in_step = tl.zeros((CONTEXT_BLOCK, BLOCK_D), tl.float32) + hidden_step[None, :]
            tl.atomic_add(in_ptrs, in_step, mask=in_mask, sem="relaxed")
            examples += (used > 0).to(tl.float32)
        else:
            score = tl.dot(in_rows, tl.trans(out_rows), input_precision="ieee")  # (C, O)
            ok = ctx_ok[:, None] & out_ok[None, :] & (tl.abs(score) < _MAX_EXP)
            g = tl.where(ok, (label[None, :] - tl.sigmoid(score)) * alpha, 0.0)
            loss += tl.sum(tl.sum(tl.where(ok, tl.log(1.0 + tl.exp(-sign[None, :] * score)), 0.0), axis=1),
                           axis=0)
            in_step = tl.dot(g, out_rows, input_precision="ieee")  # (C, D)
            out_step = tl.dot(tl.trans(g), in_rows, input_precision="ieee")  # (O, D)
            tl.atomic_add(out_ptrs, out_step, mask=out_mask, sem="relaxed")
            tl.atomic_add(in_ptrs, in_step, mask=in_mask, sem="relaxed")
            examples += used.to(tl.float32)
        # the next centre reads rows this one wrote, possibly through other threads of the program
        tl.debug_barrier()
    tl.atomic_add(stats, loss.to(tl.float64), sem="relaxed")
    tl.atomic_add(stats + 1, examples.to(tl.float64), sem="relaxed")


def train_centres(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    ids: torch.Tensor,
    sentences: torch.Tensor,
    reach: torch.Tensor,
    noise: torch.Tensor,
    count: torch.Tensor,
    stats: torch.Tensor,
    alpha_start: float,
    alpha_end: float,
    window: int,
    cbow: bool,
    first: int = 0,
    last: int | None = None,
    centres_per_program: int = CENTRES_PER_PROGRAM,
) -> None:
    """Train on every kept centre of one token array, in place; nothing is read back to the host.

    Args:
        w_in: ``(V, D)`` float32 contiguous input matrix, updated in place.
        w_out: ``(V, D)`` float32 contiguous output matrix, updated in place.
        ids: ``(N,)`` int32 kept token ids; only the first ``count`` are read.
        sentences: ``(N,)`` int32 sentence number of each kept token (windows stay inside one).
        reach: ``(N,)`` int32 window reach of each centre, in ``[1, window]``.
        noise: ``(N, K)`` int32 noise words of each centre.
        count: ``(1,)`` int64 number of kept tokens (on the device: the caller need not wait).
        stats: ``(2,)`` float64; the summed loss and the number of examples (skip-gram pairs or
            CBOW centres) are added to it.
        alpha_start: learning rate at the first kept token (it falls linearly with the position
            over all ``count`` of them).
        alpha_end: learning rate after the last kept token.
        window: the largest reach.
        cbow: CBOW instead of skip-gram.
        first: train the centres at positions ``[first, last)`` only; the rest of the window is
            read as it is.
        last: end of those positions (default: all of them).
        centres_per_program: consecutive centres one program walks in order (1 program for all
            of them makes the run exactly sequential, as the tests use it).
    """
    size, dim = w_in.shape
    negative = noise.shape[1]
    for name, tensor in (("w_in", w_in), ("w_out", w_out)):
        if tensor.dtype != torch.float32 or not tensor.is_contiguous() or tensor.shape != (size, dim):
            shown = f"{tuple(tensor.shape)} {tensor.dtype}"
            raise ShapeError(f"{name} must be a contiguous float32 ({size}, {dim}) matrix, not {shown}")
    if stats.dtype != torch.float64 or stats.shape != (2,):
        raise ShapeError(f"stats must be a (2,) float64 tensor, not {tuple(stats.shape)} {stats.dtype}")
    last = ids.shape[0] if last is None else last
    if last <= first:
        return
    grid = (triton.cdiv(last - first, centres_per_program),)
    _window_kernel[grid](
        w_in, w_out, ids, sentences, reach, noise.contiguous(), count, stats, first, last,
        float(alpha_start), float(alpha_end), dim, negative,
        WINDOW=window, CONTEXT_BLOCK=max(16, triton.next_power_of_2(2 * window)),
        OUT_BLOCK=max(16, triton.next_power_of_2(1 + negative)), BLOCK_D=max(16, triton.next_power_of_2(dim)),
        CENTRES=centres_per_program, CBOW=cbow,
    )  # fmt: skip


def warm_up(w_in: torch.Tensor, w_out: torch.Tensor, window: int, negative: int, cbow: bool) -> None:
    """Compile the kernel for ``(V, D)`` weights ``w_in`` and ``w_out`` and these settings with a
    launch that trains nothing (no kept token), so a timed run does not include the compilation."""
    device = w_in.device
    one = torch.zeros(1, dtype=torch.int32, device=device)
    noise = torch.zeros(1, negative, dtype=torch.int32, device=device)
    count = torch.zeros(1, dtype=torch.int64, device=device)
    stats = torch.zeros(2, dtype=torch.float64, device=device)
    train_centres(w_in, w_out, one, one, one, noise, count, stats, 0.0, 0.0, window, cbow)
