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


def _add_updates_worker(rank: int, folder: str) -> None:
    """One of two gloo processes: change a start table by rank-specific updates, then add them up."""
    import torch
    import torch.distributed as dist

    from nlp182.embeddings import distributed

    dist.init_process_group("gloo", init_method=f"file://{folder}/group", rank=rank, world_size=2)
    try:
        table = torch.arange(6.0).view(2, 3)
        before = distributed.snapshot(table)
        table[rank] += 10.0 * (rank + 1)  # each process changes its own row, as Hogwild threads do
        table[:, 0] += 1.0  # and both change a shared column
        distributed.add_updates_((table,), before)
        torch.save(table, f"{folder}/table{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_processes_add_up_their_updates_in_rounds_of_spans(tmp_path) -> None:
    """Averaging the processes' tables once a chunk divided each one's updates by their number:
    on the 540k-token corpus (one chunk) 4 processes scored WordSim-353 0.24 where one scores 0.45.
    The updates are now added up after every SYNC_SPANS spans of each process (0.44)."""
    import torch
    import torch.multiprocessing as mp

    from nlp182.embeddings.word2vec import SYNC_SPANS, _sync_rounds

    mp.spawn(_add_updates_worker, args=(str(tmp_path),), nprocs=2, join=True)
    expected = torch.arange(6.0).view(2, 3)
    expected[0] += 10.0
    expected[1] += 20.0
    expected[:, 0] += 2.0
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"table{rank}.pt"), expected)

    spans = list(range(5 * 3 * SYNC_SPANS + 7))
    shares = [_sync_rounds(spans, rank, 3) for rank in range(3)]
    assert len({len(rounds) for rounds in shares}) == 1 and len(shares[0]) == 6  # same rounds everywhere
    assert all(len(share) <= SYNC_SPANS for rounds in shares for share in rounds)
    assert sorted(span for rounds in shares for share in rounds for span in share) == spans
    assert _sync_rounds(spans, 0, 1) == [spans]  # one process: no rounds
