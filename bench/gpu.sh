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
# It needs no virtualenv: the machine's python3 (or $PYTHON) with PyTorch, and this checkout on
# PYTHONPATH. Steps whose packages are missing are skipped with the reason. See bench/gpu.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
"$PYTHON" -m bench.gpu "$@"
