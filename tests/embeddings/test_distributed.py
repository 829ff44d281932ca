"""Data-parallel word2vec: ``torchrun`` with two gloo processes on a CPU trains one model."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlp182.embeddings import native
from nlp182.embeddings.vectors import Vectors


def _train(kernel: str, corpus, out, procs: int, epochs: int) -> subprocess.CompletedProcess:
    """``nlp182 train w2v`` under ``torchrun`` with ``procs`` gloo processes."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
        "-m", "nlp182.cli", "train", "w2v", "--corpus", str(corpus), "--out", str(out),
        "--vector-size", "16", "--window", "3", "--epochs", str(epochs), "--min-count", "1", "--threads", "1",
        "--kernel", kernel, "--device", "cpu", "--eval-dir", str(out.parent / "none"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _displacement(run) -> float:
    """How far training moved the input vectors from their seeded start (gensim's uniform
    ``[-1/D, 1/D)`` from the run's seed), as the root mean square over the rows."""
    import torch

    vectors = Vectors.load(run)
    rows, dim = vectors.vectors.shape
    seed = json.loads((run / "config.json").read_text())["seed"]
    start = (torch.rand(rows, dim, generator=torch.Generator().manual_seed(seed)) * 2.0 - 1.0) / dim
    return float(np.sqrt(np.mean((vectors.vectors - start.numpy()) ** 2)))


@pytest.mark.parametrize("kernel", ["native", "batched"])
def test_torchrun_two_gloo_processes_train_one_model(kernel, topic_corpus, tmp_path) -> None:
    if kernel == "native" and not native.available():
        pytest.skip("no C compiler for the native kernel")
    path, topics = topic_corpus
    out = tmp_path / "run"
    done = _train(kernel, path, out, procs=2, epochs=3)
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


@pytest.mark.parametrize("kernel", ["native", "batched"])
def test_two_processes_move_the_vectors_as_far_as_one(kernel, topic_corpus, tmp_path) -> None:
    """Each process's updates count in full: averaging the tables instead divided them by the
    number of processes, and one epoch of 2 processes moved the vectors about half as far as
    one process did."""
    if kernel == "native" and not native.available():
        pytest.skip("no C compiler for the native kernel")
    path, _ = topic_corpus
    _train(kernel, path, tmp_path / "one", procs=1, epochs=1)
    _train(kernel, path, tmp_path / "two", procs=2, epochs=1)
    ratio = _displacement(tmp_path / "two") / _displacement(tmp_path / "one")
    assert 0.8 < ratio < 1.25, ratio


def _counting_worker(rank: int, folder: str, corpus: str, kernel: str) -> None:
    """One of two gloo processes training with a stand-in step that adds the number of examples
    (batched) or centres (fused) it is given to every weight of row 0 of both tables, and counts them."""
    import os

    import torch
    import torch.distributed as dist

    from nlp182.embeddings import device_pipeline, distributed, word2vec
    from nlp182.text.corpus import CorpusSource
    from nlp182.text.encoded import encode, open_corpus

    os.environ.update(WORLD_SIZE="2", RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{folder}/group", rank=rank, world_size=2)
    distributed.SYNC_TOKENS = 500  # several rounds of exchanges in each chunk
    counted = [0]

    def add_count(w_in: torch.Tensor, w_out: torch.Tensor, count: int) -> None:
        w_in[0] += count
        w_out[0] += count
        counted[0] += count

    def fused(w_in, w_out, *args, first: int, last: int) -> None:
        add_count(w_in, w_out, last - first)

    def batched(self, batch, alpha) -> torch.Tensor:
        add_count(self.w_in, self.w_out, len(batch[0]))
        return torch.zeros(())

    try:
        source = CorpusSource(corpus)
        distributed.main_first(lambda: encode(source))
        config = word2vec.Word2VecConfig(vector_size=4, epochs=2, min_count=1, kernel=kernel, device="cpu")
        encoded, vocab = open_corpus(source, config.vocab_config())
        model = word2vec.SGNS(vocab, config, torch.device("cpu"))
        start = model.w_in[0].clone()
        if kernel == "triton":
            from nlp182.embeddings import triton_sgns

            triton_sgns.train_centres = fused
            device_pipeline.train_on_device(model, encoded, lambda progress: 0.025, _NoBar())
        else:
            word2vec.SGNS.step = batched
            word2vec._train_batched(model, encoded, config, _NoBar())
        added = (model.w_in[0] - start).tolist() + model.w_out[0].tolist()
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps({"added": added, "counted": counted[0]}))
    finally:
        dist.destroy_process_group()


class _NoBar:
    """A progress bar that shows nothing."""

    def update(self, *_args: object) -> None:
        pass

    def set_postfix(self, *_args: object, **_kwargs: object) -> None:
        pass


@pytest.mark.parametrize("kernel", ["batched", "triton"])
def test_the_batched_and_fused_kernels_add_up_every_process_updates(kernel, topic_corpus, tmp_path) -> None:
    """Every process ends with the sum of both processes' updates, exchanged in rounds within each
    chunk (the stand-in step counts examples; the real steps are tested against word2vec's update
    elsewhere). Averaging the tables after each chunk kept half of them."""
    import torch.multiprocessing as mp

    path, _ = topic_corpus
    mp.spawn(_counting_worker, args=(str(tmp_path), str(path), kernel), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    total = sum(rank["counted"] for rank in ranks)
    assert all(rank["counted"] > 0.3 * total for rank in ranks)  # both processes trained
    for rank in ranks:
        assert rank["added"] == [float(total)] * 8


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


def test_every_process_counts_the_same_rounds_of_its_examples() -> None:
    """The batched and fused kernels exchange updates after about SYNC_TOKENS tokens of each
    process; the rounds come from the whole chunk, so processes with different shares of it still
    meet at every exchange (a process with one round fewer would wait for ever)."""
    from nlp182.embeddings.distributed import SYNC_TOKENS, sync_slices

    chunk = 5 * 3 * SYNC_TOKENS + 7
    shares = [sync_slices(count, chunk, 3) for count in (chunk // 3, chunk // 3 + 2, 0)]
    assert {len(rounds) for rounds in shares} == {6}
    for count, rounds in zip((chunk // 3, chunk // 3 + 2, 0), shares, strict=True):
        assert rounds[0][0] == 0 and rounds[-1][1] == count
        assert all(a[1] == b[0] for a, b in itertools.pairwise(rounds))  # contiguous, nothing left out
        assert max(last - first for first, last in rounds) <= SYNC_TOKENS + 1
    assert sync_slices(1234, 10 * SYNC_TOKENS, 1) == [(0, 1234)]  # one process: one round
