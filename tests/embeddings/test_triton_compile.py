"""The fused word2vec kernel compiles for a real GPU, checked on a machine without one.

Triton's interpreter (what the other kernel tests run) executes the kernel's Python with NumPy and
accepts what the compiler refuses: a module global that is not ``tl.constexpr``, say. Triton's own
compiler runs without a device when given a target, down to the GPU's machine code (``ptxas``
ships in the wheel), so this test builds the kernel for an H100 (``sm_90``) in a fresh process
without ``TRITON_INTERPRET``, as a CUDA run would, for the shapes the trainer launches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

_COMPILE = textwrap.dedent(
    """
    import json, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from nlp182.embeddings import triton_sgns

    window, negative, dim, cbow = json.loads(sys.argv[1])
    signature = {
        "w_in": "*fp32", "w_out": "*fp32", "ids": "*i32", "sentences": "*i32", "reach": "*i32",
        "noise": "*i32", "count_ptr": "*i64", "stats": "*fp64", "first": "i32", "last": "i32",
        "alpha_start": "fp32", "alpha_end": "fp32", "dim": "i32", "negative": "i32",
    }
    constants = {
        "WINDOW": window, "CONTEXT_BLOCK": max(16, triton.next_power_of_2(2 * window)),
        "OUT_BLOCK": max(16, triton.next_power_of_2(1 + negative)),
        "BLOCK_D": max(16, triton.next_power_of_2(dim)),
        "CENTRES": triton_sgns.CENTRES_PER_PROGRAM, "CBOW": cbow,
    }
    signature.update({name: "constexpr" for name in constants})
    kernel = triton.compile(
        ASTSource(triton_sgns._window_kernel, signature, constants), target=GPUTarget("cuda", 90, 32)
    )
    print(json.dumps({"ptx": "atom" in kernel.asm["ptx"] or "red." in kernel.asm["ptx"],
                      "cubin": len(kernel.asm["cubin"])}))
    """
)


@pytest.mark.parametrize(
    ("window", "negative", "dim", "cbow"),
    [(5, 5, 100, False), (5, 5, 100, True), (2, 3, 8, False)],
    ids=["sg-defaults", "cbow-defaults", "sg-small"],
)
def test_kernel_compiles_for_sm90_without_a_gpu(
    window: int, negative: int, dim: int, cbow: bool, tmp_path: os.PathLike[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE, json.dumps([window, negative, dim, cbow])],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["ptx"] and built["cubin"] > 0  # the weights are updated with atomics, to machine code
