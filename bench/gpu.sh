#!/usr/bin/env bash
# Every GPU figure nlp182 claims, in one command, in at most 8 minutes on one GPU (about 6).
#
#   bench/gpu.sh                  on a CUDA machine: results and the summary in bench/results/*-cuda.json
#   bench/gpu.sh --out DIR --archive "$OUT/gpu-results.tar.gz"
#                                 into another folder, packed into one file after every step (the lent
#                                 GPU machine returns 8 files from $OUT; bench/gpu_kit.sh prints the call)
#   bench/gpu.sh --dry            anywhere: tiny sizes on the CPU into a temp folder (the tests run this)
#   bench/gpu.sh --only vision    some steps only; --help lists them
#
# It needs no virtualenv: $PYTHON, else this checkout's .venv, else the machine's python3, with
# PyTorch, and this checkout on PYTHONPATH. Steps whose packages are missing are skipped with the reason. See bench/gpu.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then  # this checkout's virtualenv where `make install` made one, else python3
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import torch" 2> /dev/null; then
    echo "bench/gpu.sh: $PYTHON cannot import torch; set PYTHON to a Python that has it" >&2
    exit 2
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
"$PYTHON" -m bench.gpu "$@"
