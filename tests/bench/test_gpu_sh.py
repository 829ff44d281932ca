"""``bench/gpu.sh --dry`` runs every GPU step with tiny sizes on the CPU, so the script cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from bench import gpu, gpu_embeddings, thread_scaling

ROOT = Path(__file__).resolve().parents[2]


def _tiny_corpus(folder: Path) -> tuple[Path, Path]:
    """Sentences from 4 topics of 8 words, and evaluation files in the prepared layout over those words."""
    rng = np.random.default_rng(0)
    topics = [[f"t{t}w{w}" for w in range(8)] for t in range(4)]
    corpus = folder / "corpus.txt"
    corpus.write_text("".join(" ".join(rng.choice(topics[rng.integers(4)], 10)) + "\n" for _ in range(300)))
    eval_dir = folder / "eval"
    eval_dir.mkdir()
    pairs = "".join(f"t{t}w0\tt{t}w1\t9.0\nt{t}w0\tt{(t + 1) % 4}w0\t1.0\n" for t in range(4))
    for name in ("wordsim353.tsv", "simlex999.txt"):
        (eval_dir / name).write_text("# Word 1\tWord 2\tHuman (mean)\n" + pairs)
    (eval_dir / "questions-words.txt").write_text(": topics\nt0w0 t0w1 t1w0 t1w1\nt2w0 t2w1 t3w0 t3w1\n")
    return corpus, eval_dir


def test_dry_run_measures_every_step_into_a_temp_folder(tmp_path: Path) -> None:
    corpus, eval_dir = _tiny_corpus(tmp_path)
    out = tmp_path / "out"
    committed = {p: p.stat().st_mtime_ns for p in (ROOT / "bench" / "results").iterdir()}
    env = {**os.environ, "PYTHON": sys.executable}
    archive = tmp_path / "returned" / "gpu-results.tar.gz"
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--dry", "--out", str(out),
                           "--corpus", str(corpus), "--eval-dir", str(eval_dir), "--archive", str(archive)],
                          env=env, capture_output=True, text=True, timeout=480, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "On a GPU this produces:" in done.stdout and "word2vec batched words/s" in done.stdout
    summary = json.loads((out / "gpu-cpu.json").read_text())
    status = {entry["step"]: entry["status"] for entry in summary["steps"]}
    assert set(status) == {step.name for step in gpu.STEPS}
    for step in gpu.STEPS:
        if gpu.skip_reason(step, corpus, eval_dir, dry=True) is None:
            assert status[step.name] == "ok", (step.name, status[step.name])
            if step.result_stem(dry=True):
                data = json.loads((out / f"{step.result_stem(dry=True)}-cpu.json").read_text())
                assert data["measured_on"]["device_name"] == "cpu"
        else:
            assert status[step.name].startswith("skipped")
    figures = {entry["step"]: entry["figures"] for entry in summary["steps"]}
    assert figures["embeddings"]["sg torch-batched words/s"] > 0
    assert figures["tests"]["skipped"] >= 1  # the CUDA tests were found, and skip on a CPU
    assert "| vision | ok |" in (out / "gpu-cpu.md").read_text()
    assert committed == {p: p.stat().st_mtime_ns for p in (ROOT / "bench" / "results").iterdir()}
    with tarfile.open(archive) as tar:  # every result in one file: the GPU machine returns 8 at most
        packed = set(tar.getnames())
    assert {"gpu-cpu.json", "gpu-cpu.md", "gpu-logs/vision.log", "vision-cpu.json"} <= packed
    assert packed == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_cuda_tests_are_found_by_their_marker() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in gpu.cuda_test_files()}
    assert {"tests/optim/test_match_torch.py", "tests/train/test_cuda.py", "tests/vision/test_cuda.py",
            "tests/attention/test_cuda.py", "tests/embeddings/test_cuda.py"} <= found
    assert "tests/attention/test_modules.py" not in found


def test_a_bench_lacking_a_flag_is_skipped_not_run(tmp_path: Path) -> None:
    assert {"--out", "--quick", "--device"} <= gpu.declared_flags("bench.vision")
    step = gpu.Step("x", "bench.vision", "x", ("--no-such-flag",), ("--device", "cpu"), 1)
    assert "lacks the flags --no-such-flag" in gpu.skip_reason(step, tmp_path, tmp_path)
    assert gpu.skip_reason(step, tmp_path, tmp_path, dry=True) is None


def test_the_large_corpus_is_taken_compressed_and_its_absence_skips_its_steps(tmp_path: Path) -> None:
    import gzip
    import lzma

    text = b"one two three\nfour five\n" * 100
    for suffix, opener in ((".gz", gzip.open), (".xz", lzma.open)):
        packed = tmp_path / f"corpus.txt{suffix}"
        with opener(packed, "wb") as handle:
            handle.write(text)
        folder = tmp_path / suffix.strip(".")
        folder.mkdir()
        assert gpu.unpacked(packed, folder).read_bytes() == text
    plain = tmp_path / "plain.txt"
    assert gpu.unpacked(plain, tmp_path) == plain
    step = next(s for s in gpu.STEPS if s.needs_large_corpus)
    corpus, eval_dir = _tiny_corpus(tmp_path)
    assert "20M-token corpus" in gpu.skip_reason(step, corpus, eval_dir, dry=False, large_corpus=plain)
    assert gpu.skip_reason(step, corpus, eval_dir, dry=True, large_corpus=plain) is None


def test_a_step_out_of_time_stops_its_worker_processes_too(tmp_path: Path) -> None:
    """A bench's worker (a grandchild) must not run on beside the next step's timings."""
    marker = tmp_path / "late"
    worker = f"import pathlib, time; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('ran on')"
    bench = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {worker!r}]); "
             "time.sleep(60)")
    status, seconds, _ = gpu.run_step([sys.executable, "-c", bench], tmp_path / "step.log", timeout=1)
    assert status == "timeout after 1 s" and seconds < 10
    time.sleep(4)
    assert not marker.exists()


def test_gpu_embeddings_records_goals_from_the_jobs_done_so_far() -> None:
    args = gpu_embeddings.argparse.Namespace(corpus="c.txt", device="cuda", epochs=3, threads=16)
    scores = {"wordsim353_spearman": 0.30, "simlex999_spearman": 0.20, "analogy_3cosadd": 0.10}
    fused = {"words_per_second": 12e6, "wall_seconds": 10.0, **scores}
    partial = gpu_embeddings.record(args, {"sg": {"fused": fused}}, None, complete=False)
    assert partial["goals"] == {"sg words/s >= 1e+07": True} and partial["complete"] is False
    worse = {**scores, "wordsim353_spearman": 0.28, "words_per_second": 1e6, "wall_seconds": 45.0}
    gensim = {**scores, "words_per_second": 2e6, "wall_seconds": 60.0}
    lsa = {"wall_seconds": 8.0}
    rows = {"sg": {"fused": fused, "c-kernel": worse, "gensim": gensim}}
    done = gpu_embeddings.record(args, rows, lsa, True)
    assert done["goals"]["sg text to vectors >= 5.0x gensim (16 workers)"]  # 60 s >= 5 x 10 s
    assert done["goals"]["sg wordsim353_spearman within 0.01 of the C kernel"]  # fused is better
    assert done["goals"]["LSA text to vectors <= 10.0 s"]
    slow = gpu_embeddings.record(args, {"sg": {"fused": {**fused, "wall_seconds": 13.0}, "gensim": gensim}},
                                 None, True)
    assert not slow["goals"]["sg text to vectors >= 5.0x gensim (16 workers)"]


def test_thread_scaling_takes_whole_lines_up_to_the_token_count(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c\nd e\nf g h i\nj\n")
    assert thread_scaling.head_of(corpus, 5, tmp_path).read_text() == "a b c\nd e\n"
    assert thread_scaling.head_of(corpus, 6, tmp_path).read_text() == "a b c\nd e\nf g h i\n"
    assert thread_scaling.head_of(corpus, 100, tmp_path).read_text() == corpus.read_text()
