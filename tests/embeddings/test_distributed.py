"""Data-parallel word2vec: ``torchrun`` with two gloo processes on a CPU trains one model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nlp182.embeddings import native
from nlp182.embeddings.vectors import Vectors


@pytest.mark.parametrize("kernel", ["native", "batched"])
def test_torchrun_two_gloo_processes_train_one_averaged_model(kernel, topic_corpus, tmp_path) -> None:
    if kernel == "native" and not native.available():
        pytest.skip("no C compiler for the native kernel")
    path, topics = topic_corpus
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "nlp182.cli", "train", "w2v", "--corpus", str(path), "--out", str(out),
        "--vector-size", "16", "--window", "3", "--epochs", "3", "--min-count", "1", "--threads", "1",
        "--kernel", kernel, "--eval-dir", str(tmp_path / "none"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1/2" in done.stderr  # both processes trained
    metrics = json.loads((out / "metrics.json").read_text())
    counts = (out / "counts.tsv").read_text().splitlines()
    total_words = int(counts[0].split("\t")[1])
    assert metrics["train"]["raw_words"] == pytest.approx(3 * total_words, rel=0.01)  # shares add up
    vectors = Vectors.load(out)
    hits = [
        topics[neighbour] == topics[word]
        for word in list(topics)[::6]
        for neighbour, _ in vectors.most_similar(word, topn=5)
    ]
    assert np.mean(hits) > 0.9
