"""Render the benchmark pages of the documentation from ``bench/results/*.json``.

``python -m bench.pages`` writes ``docs/benchmarks/<area>.md`` (tables, plus SVG plots in
``docs/benchmarks/img/``) and the headline table of ``README.md``; ``--check`` writes nothing and
exits 1 when a committed page differs from what the results say (commit dates aside). No figure is
typed by hand: each table is read from a results file, and each figure names its machine (from the file's
``measured_on`` / ``machine`` record), its date (the file's last commit) and the command that made
it. The prose of each page, with the design notes and ablations, is the template
``docs/benchmarks/templates/<area>.md``: a line ``<!-- figure: NAME -->`` there is replaced by the
figure ``NAME``; figures a template does not place are appended at its end.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp182.io import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGES = ROOT / "docs" / "benchmarks"
TEMPLATES = PAGES / "templates"
README = ROOT / "README.md"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
W2V_LARGE = (
    "python -m bench.embeddings --large corpora/debian.txt --runs 3 --epochs 3 --parts w2v --threads 2"
)
COMMITTED = re.compile(r"committed (\d{4}-\d{2}-\d{2}|uncommitted)")
FIGURE_LINE = re.compile(r"^<!-- figure: ([a-z0-9_-]+) -->$", re.M)


# ---------------------------------------------------------------------------------------- reading
def load(name: str) -> dict[str, Any]:
    """The results file ``bench/results/<name>.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def commit_date(path: Path) -> str:
    """The day of the last commit that touched ``path`` (``uncommitted`` outside git or before one)."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", str(path.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    return out or "uncommitted"


def _loads(values: Any) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def machine_of(data: dict[str, Any]) -> str:
    """Describe the machine a results file was measured on, from what the file recorded."""
    parts: list[str] = []
    measured = data.get("measured_on")
    machine = data.get("machine")
    if isinstance(measured, dict):
        parts.append(f"{measured['device_name']}, {measured['cpus']} CPU cores, torch {measured['torch']}")
        if measured.get("cuda"):
            parts.append(f"CUDA {measured['cuda']}")
    elif isinstance(machine, dict):
        what = machine.get("device_name") or machine.get("gpu") or "CPU"
        parts.append(
            f"{what}, {machine['cpus']} CPU cores" if what != "CPU" else f"{machine['cpus']} CPU cores"
        )
        for key, label in (("torch", "torch"), ("faiss", "FAISS"), ("python", "Python")):
            if machine.get(key):
                parts.append(f"{label} {machine[key]}")
    else:
        device = data.get("device_name") or data.get("gpu") or data.get("device", "cpu")
        parts.append(str(device))
        if data.get("torch"):
            parts.append(f"torch {data['torch']}")
    threads = data.get("threads")
    if isinstance(threads, int):
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if isinstance(machine, dict):
        before = machine.get("loadavg_before")
        after = machine.get("loadavg_after") or machine.get("load_average_at_end")
        if before:
            parts.append(f"load average before {_loads(before)}")
        if after:
            parts.append(f"after {_loads(after)}")
    elif data.get("loadavg_before"):
        parts.append(f"load average before {_loads(data['loadavg_before'])}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------- writing
def fmt(value: Any, digits: int = 3) -> str:
    """A number as a table shows it: ints with thousands separators, floats to ``digits`` places."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1e5:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def quality(r: dict[str, Any]) -> list[str]:
    """WordSim-353 and SimLex-999 Spearman and 3CosAdd analogy accuracy of one result, as table cells."""
    return [fmt(r["wordsim353_spearman"]), fmt(r["simlex999_spearman"]), pct(r["analogy_3cosadd"])]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Figure:
    """One generated figure: a table (and maybe a plot) from results files, with its provenance."""

    title: str
    sources: list[str]
    command: str
    body: str
    plot: str | None = None
    note: str | None = None

    def render(self) -> str:
        provenance = []
        for name in self.sources:
            data = load(name)
            provenance.append(
                f"`bench/results/{name}.json`: {machine_of(data)}; "
                f"committed {commit_date(RESULTS / f'{name}.json')}"
            )
        lines = [f"### {self.title}", "", self.body, ""]
        if self.plot:
            lines += [f"![{self.title}](img/{self.plot})", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append(f"**Command:** `{self.command}`  ")
        lines += [f"**Measured:** {p}  " for p in provenance]
        return "\n".join(lines).rstrip() + "\n"


@dataclass
class Page:
    area: str
    title: str
    figures: dict[str, Figure] = field(default_factory=dict)

    def add(self, key: str, figure: Figure) -> None:
        self.figures[key] = figure

    def render(self) -> str:
        template = TEMPLATES / f"{self.area}.md"
        text = template.read_text(encoding="utf-8") if template.exists() else f"# {self.title}\n"
        placed = set(FIGURE_LINE.findall(text))
        unknown = placed - set(self.figures)
        if unknown:
            raise SystemExit(f"{template}: no figure named {', '.join(sorted(unknown))}")
        text = FIGURE_LINE.sub(lambda m: self.figures[m.group(1)].render().rstrip(), text)
        rest = [f.render() for key, f in self.figures.items() if key not in placed]
        header = (
            f"<!-- generated by `python -m bench.pages` from bench/results/, templates/{template.name} -->\n"
        )
        return header + text.rstrip() + "\n" + ("\n" + "\n".join(rest) if rest else "")


# ---------------------------------------------------------------------------------------- plots
def save_plot(name: str, draw: Callable[[Any], None], out_dir: Path) -> str:
    """Draw with matplotlib (Agg) into ``out_dir/name.svg``, reproducibly; return the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "nlp182"
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    atomic_write_bytes(out_dir / f"{name}.svg", buffer.getvalue())
    plt.close(fig)
    return f"{name}.svg"


# ---------------------------------------------------------------------------------------- areas
def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def embeddings_page(img: Path) -> Page:
    page = Page("embeddings", "Embeddings")
    w2v = load("embeddings-large-w2v-cpu")
    rows = []
    for model, label in (("sg", "skip-gram"), ("cbow", "CBOW")):
        runs, summary = w2v["word2vec"][model], w2v["summary"][model]
        ours = {
            k: _mean([r[k] for r in runs["ours"]])
            for k in ("words_per_second", "wordsim353_spearman", "simlex999_spearman", "analogy_3cosadd")
        }
        theirs = {k: _mean([r[k] for r in runs["gensim"]]) for k in ours}
        rows.append(
            [
                label,
                f"**{summary['wall_ratio']:.2f}x** ({summary['ours_wall_seconds']:.1f} s / "
                f"{summary['gensim_wall_seconds']:.1f} s)",
                f"**{summary['words_per_second_ratio']:.2f}x** ({ours['words_per_second']:,.0f} / "
                f"{theirs['words_per_second']:,.0f})",
                f"{ours['wordsim353_spearman']:.3f} / {theirs['wordsim353_spearman']:.3f}",
                f"{ours['simlex999_spearman']:.3f} / {theirs['simlex999_spearman']:.3f}",
                f"{pct(ours['analogy_3cosadd'])} / {pct(theirs['analogy_3cosadd'])}",
                f"{summary['gensim_lines_wall_seconds']:.1f} s",
            ]
        )

    def draw_w2v(ax: Any) -> None:
        labels = ["skip-gram", "CBOW"]
        series = [
            ("nlp182", "ours_wall_seconds"),
            ("gensim corpus_file", "gensim_wall_seconds"),
            ("gensim LineSentence", "gensim_lines_wall_seconds"),
        ]
        for i, (name, key) in enumerate(series):
            values = [w2v["summary"][m][key] for m in ("sg", "cbow")]
            ax.bar([x + 0.27 * i for x in range(2)], values, width=0.27, label=name)
        ax.set_xticks([0.27, 1.27], labels)
        ax.set_ylabel("text to saved vectors, s")
        ax.legend()

    page.add(
        "w2v-scale",
        Figure(
            "word2vec beside gensim at scale (20.3M tokens, 3 epochs)",
            ["embeddings-large-w2v-cpu"],
            W2V_LARGE,
            table(
                [
                    "model",
                    "text to saved vectors, nlp182 / gensim",
                    "training words/s",
                    "WS353 (ours / gensim)",
                    "SimLex-999",
                    "analogies (3CosAdd)",
                    "gensim LineSentence, 1 run",
                ],
                rows,
            ),
            plot=save_plot("w2v-scale", draw_w2v, img),
            note=f"Mean of {w2v['runs']} interleaved runs, each job in a fresh process; {w2v['note']}.",
        ),
    )
    rss = w2v["summary"]["rss"]
    page.add(
        "w2v-memory",
        Figure(
            "Peak memory of `train w2v` (skip-gram)",
            ["embeddings-large-w2v-cpu"],
            W2V_LARGE,
            table(
                ["corpus", "tokens", "words", "peak RSS"],
                [
                    [
                        "whole",
                        fmt(rss["full"]["tokens"]),
                        fmt(rss["full"]["vocab"]),
                        f"{rss['full']['peak_rss_mb']:.0f} MB",
                    ],
                    [
                        "first half",
                        fmt(rss["half"]["tokens"]),
                        fmt(rss["half"]["vocab"]),
                        f"{rss['half']['peak_rss_mb']:.0f} MB",
                    ],
                    ["per extra word", "", "", f"{rss['bytes_per_extra_word']:,.0f} bytes"],
                ],
            ),
        ),
    )
    lsa = load("embeddings-large-lsa-cpu")
    rows = []
    for key, label in (("50k", "`--max-vocab 50000`"), ("all", "all at min_count 5")):
        r = lsa["lsa"][key]
        rows.append(
            [
                label,
                fmt(r["vocab"]),
                f"{r['seconds']:.1f} s",
                f"{r['encode_seconds']:.1f} s",
                f"{r['count_seconds']:.1f} s",
                f"{r['svd_seconds']:.1f} s",
                f"{r['peak_rss_mb'] / 1024:.2f} GB",
                *quality(r),
            ]
        )
    page.add(
        "lsa-scale",
        Figure(
            "LSA at scale (20.3M tokens), text to vectors",
            ["embeddings-large-lsa-cpu"],
            "python -m bench.embeddings --large corpora/debian.txt --parts lsa --threads 1",
            table(
                ["LSA", "words", "wall", "encode", "count", "SVD", "peak RSS", "WS353", "SimLex",
                 "analogies"],
                rows,
            ),
            note=(
                f"Counting (text to co-occurrence matrix, including the one encoding pass): "
                f"{lsa['summary']['lsa']['counting_speedup_vs_before']:.1f}x faster than counting straight "
                f"from the text without the encoding cache ({lsa['old_lsa_count']['count_seconds']:.1f} s), "
                "same corpus and job file."
            ),
        ),
    )
    svd = lsa["svd"]
    page.add(
        "svd",
        Figure(
            f"Choice of SVD: PPMI matrix of {svd['vocab']:,} words, rank {svd['rank']}",
            ["embeddings-large-lsa-cpu"],
            "python -m bench.embeddings --large corpora/debian.txt --parts lsa --threads 1",
            table(
                ["SVD", "seconds", "largest relative error vs ARPACK", "WS353", "SimLex", "analogies"],
                [
                    [
                        name,
                        f"{svd[key]['seconds']:.1f}",
                        fmt(svd[key].get("max_relative_error_vs_scipy")),
                        fmt(svd[key]["wordsim353_spearman"]),
                        fmt(svd[key]["simlex999_spearman"]),
                        pct(svd[key]["analogy_3cosadd"]),
                    ]
                    for key, name in (
                        ("torch", "nlp182 randomized (torch)"),
                        ("sklearn", "scikit-learn randomized_svd"),
                        ("scipy", "scipy svds (ARPACK)"),
                    )
                ],
            ),
        ),
    )
    small = load("embeddings-cpu")
    rows = []
    for model, label in (("sg", "skip-gram"), ("cbow", "CBOW")):
        engines = small["word2vec"][model]
        gensim = engines["gensim"]
        for engine in sorted(k for k in engines if k != "gensim"):
            r = engines[engine]
            rows.append(
                [
                    label,
                    engine,
                    f"{r['words_per_second'] / gensim['words_per_second']:.2f} "
                    f"({r['words_per_second']:,.0f} / {gensim['words_per_second']:,.0f})",
                    f"{r['wordsim353_spearman']:.3f} / {gensim['wordsim353_spearman']:.3f}",
                    f"{r['simlex999_spearman']:.3f} / {gensim['simlex999_spearman']:.3f}",
                    f"{pct(r['analogy_3cosadd'])} / {pct(gensim['analogy_3cosadd'])}",
                ]
            )
    for key, label in (("torch", "LSA, randomized SVD in torch"), ("sklearn", "LSA, scikit-learn's SVD")):
        r = small["lsa"][key]
        rows.append(
            [
                label,
                f"{r['seconds']:.1f} s",
                "",
                *quality(r),
            ]
        )
    page.add(
        "default-corpus",
        Figure(
            "The default corpus (540k tokens), every engine",
            ["embeddings-cpu"],
            "python -m bench.embeddings",
            table(
                ["model", "engine", "nlp182 / gensim words/s", "WS353 (nlp182 / gensim)", "SimLex-999",
                 "analogies (3CosAdd)"],
                rows,
            ),
        ),
    )
    gpu = load("embeddings-cuda")
    rows = [
        [label, engine, f"{r['words_per_second']:,.0f}", fmt(r["wordsim353_spearman"])]
        for model, label in (("sg", "skip-gram"), ("cbow", "CBOW"))
        for engine, r in sorted(gpu["word2vec"][model].items())
    ]
    rows += [
        [f"LSA ({key} SVD)", "", f"{r['seconds']:.2f} s", fmt(r["wordsim353_spearman"])]
        for key, r in sorted(gpu["lsa"].items())
    ]
    page.add(
        "gpu",
        Figure(
            "The default corpus on a GPU",
            ["embeddings-cuda"],
            "bench/gpu.sh",
            table(["model", "engine", "words/s (or time)", "WS353"], rows),
        ),
    )
    for name, title, flags in (
        ("gensim-schedule", "Learning-rate schedules: 1 epoch of skip-gram on a 2.0M-token sample", ""),
        ("gensim-schedule-shuffled", "The same on the sample's lines shuffled", " --seeds 2"),
        (
            "gensim-schedule-cbow-half-1thread",
            "Like for like: CBOW, one thread, 3 epochs, half the corpus",
            " --model cbow --threads 1 --same-schedule --epochs 3 --seeds 2",
        ),
    ):
        data = load(f"{name}-cpu")
        command = f"python -m bench.gensim_schedule --corpus {Path(data['corpus']).name}{flags} --name {name}"
        rows = [
            [engine, *(fmt(r[c]) if "analogy" not in c else pct(r[c]) for c in data["columns"])]
            for engine, r in data["results"].items()
        ]
        page.add(
            name,
            Figure(
                f"{title} ({data['seeds']} seeds)",
                [f"{name}-cpu"],
                command,
                table(["trainer", *data["columns"]], rows),
            ),
        )
    spread = load("distributed-cpu")
    page.add(
        "distributed",
        Figure(
            "word2vec over N processes (`torchrun`, gloo), beside one process",
            ["distributed-cpu"],
            "python -m bench.distributed",
            table(
                ["kernel", "processes", "epochs", "WordSim-353", "SimLex-999", "analogies",
                 "WordSim-353 / one process"],
                [
                    [kernel, procs, row["epochs"], fmt(row["scores"]["wordsim353"]),
                     fmt(row["scores"]["simlex999"]), pct(row["scores"]["analogy"]),
                     f"**{row['ratio_to_one_process']['wordsim353']:.2f}x**"]
                    for kernel, by_procs in spread["rows"].items()
                    for procs, row in by_procs.items()
                ],
            ),
        ),
    )
    wiki = load("wiki-prepare-cpu")
    page.add(
        "wiki-prepare",
        Figure(
            "`corpus prepare --wiki` beside gensim's text pass and make_wiki",
            ["wiki-prepare-cpu"],
            "python -m bench.wiki_prepare --repeat 3",
            table(
                ["dump", "compressed", "nlp182", "gensim WikiCorpus text pass", "speed, nlp182 / gensim",
                 "make_wiki (two passes)"],
                [
                    [
                        r["dump"],
                        f"{r['compressed_mb']:.1f} MB",
                        f"{r['ours_seconds']:.1f} s",
                        f"{r['gensim_text_pass_seconds']:.1f} s",
                        f"**{r['text_pass_speed_ratio']:.2f}x**",
                        f"{r['make_wiki_seconds']:.1f} s",
                    ]
                    for r in wiki["rows"]
                ],
            ),
        ),
    )
    return page


def vectors_page(img: Path) -> Page:
    page = Page("vectors", "Vector store")
    data = load("vectors-cpu")
    labels = {
        "limit": "`load_word2vec_format(limit=300000)`",
        "mmap": 'memory-mapped (`Vectors.load(run)` / `KeyedVectors.load(kv, mmap="r")`)',
    }
    rows = []
    for key, label in labels.items():
        s = data["scenarios"][key]
        ours, theirs, ratio = s["nlp182"], s["gensim"], s["ratio"]
        rows.append(
            [
                label,
                f"**{ratio['query_ms']:.2f}** ({ours['query_ms']:.0f} / {theirs['query_ms']:.0f})",
                f"{ratio['first_query_s']:.2f} ({ours['first_query_s']:.2f} s / "
                f"{theirs['first_query_s']:.1f} s)",
                f"{ratio['load_s']:.2f} ({ours['load_s']:.1f} s / {theirs['load_s']:.1f} s)",
                f"**{ratio['peak_rss_mb']:.2f}** ({ours['peak_rss_mb']:.0f} / "
                f"{theirs['peak_rss_mb']:.0f} MB)",
                fmt(s["same_top10"]),
            ]
        )
    cfg = data["config"]
    page.add(
        "store",
        Figure(
            f"A {cfg['limit'] // 1000}k x {cfg['dim']} store beside gensim "
            "(nlp182 / gensim, below 1: nlp182 needs less)",
            ["vectors-cpu"],
            "python -m bench.vectors",
            table(
                ["store", "most_similar (ms)", "first query (norms)", "load", "peak RSS", "same top 10"], rows
            ),
            note=data["note"],
        ),
    )
    return page


def serve_page(img: Path) -> Page:
    page = Page("serve", "Similarity service")
    data = load("serve-cpu")
    rows = [
        [name, fmt(g["value"]), fmt(g.get("goal")), fmt(g["met"]) if "met" in g else ""]
        for name, g in data["goals"].items()
    ]
    cfg = data["config"]
    page.add(
        "goals",
        Figure(
            f"HTTP service, {cfg['big_words']:,}-word store and a trained {cfg['dim']}-dimension run, "
            f"{cfg['connections']} connections",
            ["serve-cpu"],
            "python -m bench.serve",
            table(["measure", "value", "goal", "met"], rows),
            note=data["machine"]["note"],
        ),
    )
    costly = data["costly"]
    rows = [[name, f"{r['seconds']:.3g} s", r.get("limit", "")] for name, r in costly["requests"].items()]
    rows += [
        [f"{name} (vs a scan)", f"{r['seconds'] * 1e3:.3g} ms", f"{r['speedup']:,.0f}x faster"]
        for name, r in costly["lookups"].items()
    ]
    page.add(
        "costly",
        Figure(
            "The costliest allowed requests, and vocabulary lookups",
            ["serve-cpu"],
            "python -m bench.serve",
            table(["request", "time", "limit or speed-up"], rows),
        ),
    )
    hnsw = load("hnsw-recall-cpu")

    def draw(ax: Any) -> None:
        for key, label in (("trained", "trained vectors"), ("random", "random vectors")):
            points = hnsw[key]["by_ef_search"]
            ax.plot(
                [p["us_per_query"] for p in points], [p["recall_at_10"] for p in points], "o-", label=label
            )
        ax.set_xlabel("microseconds per query")
        ax.set_ylabel("recall@10 vs exact")
        ax.legend()

    rows = [
        [
            p["ef_search"],
            fmt(p["recall_at_10"], 4),
            f"{p['us_per_query']:.0f}",
            fmt(r["recall_at_10"], 4),
            f"{r['us_per_query']:.0f}",
        ]
        for p, r in zip(hnsw["trained"]["by_ef_search"], hnsw["random"]["by_ef_search"], strict=True)
    ]
    t = hnsw["trained"]
    page.add(
        "hnsw",
        Figure(
            f"HNSW recall against exact search ({t['words']:,} x {t['dim']}, M={t['m']}, "
            f"efConstruction={t['ef_construction']}; default efSearch {hnsw['default_ef_search']})",
            ["hnsw-recall-cpu"],
            "python -m bench.hnsw_recall",
            table(["efSearch", "recall@10, trained", "us/query", "recall@10, random", "us/query"], rows),
            plot=save_plot("hnsw-recall", draw, img),
        ),
    )
    return page


def seq2seq_page(img: Path) -> Page:
    page = Page("seq2seq", "Seq2seq")
    names = [
        "seq2seq-cmudict-cpu",
        "seq2seq-cmudict-cuda-rnn-320s",
        "seq2seq-cmudict-cuda-150s",
        "seq2seq-cmudict-cpu-2threads-h100host",
        "seq2seq-cmudict-cuda-transformer-320s",
        "seq2seq-cmudict-cuda",
        "seq2seq-cmudict-cpu-contended",
    ]
    rows = []
    for name in names:
        data = load(name)
        goal = data["goal"]["wer"]
        for run in data["runs"]:
            where = (
                f"GPU ({data['machine']['gpu']})"
                if run["device"] == "cuda"
                else f"CPU, {run['threads']} thread(s)"
            )
            rows.append(
                [
                    f"{run['test_wer_beam'] / goal:.2f}",
                    f"{run['architecture']}, {where}",
                    f"{run['train_time_s']:,.0f} s, {run['epochs']} epochs",
                    f"{pct(run['test_wer_beam'])} ({pct(run['test_wer_greedy'])})",
                    f"{pct(run['test_per_beam'], 2)} ({pct(run['test_per_greedy'], 2)})",
                    f"{run['train_target_tokens_per_s']:,.0f}",
                    f"`{name}.json`",
                ]
            )
    cpu = load("seq2seq-cmudict-cpu")
    history = cpu["runs"][0]["history"]

    def draw(ax: Any) -> None:
        ax.plot(
            [h["epoch"] for h in history],
            [100 * h["valid_wer"] for h in history],
            "o-",
            label="validation WER",
        )
        ax.plot(
            [h["epoch"] for h in history],
            [100 * h["valid_per"] for h in history],
            "s-",
            label="validation PER",
        )
        ax.axhline(100 * cpu["goal"]["wer"], color="grey", linestyle="--", label="WER goal")
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.legend()

    page.add(
        "cmudict",
        Figure(
            f"Grapheme-to-phoneme on CMUdict, test set, beam 5 (greedy in brackets); goal WER <= "
            f"{pct(cpu['goal']['wer'], 0)}, PER <= {pct(cpu['goal']['per'], 0)}",
            names,
            "python -m bench.seq2seq_cmudict (--device, --time-budget-s); "
            "the CPU row: the CLI command of the G2P guide",
            table(
                ["WER / goal", "model, where", "training", "WER", "PER", "target tokens/s", "results file"],
                rows,
            ),
            plot=save_plot("cmudict-valid", draw, img),
        ),
    )
    page.add(
        "published",
        Figure(
            "Published figures (their split, not ours: compare with care)",
            ["seq2seq-cmudict-cpu"],
            "python -m bench.seq2seq_cmudict",
            table(
                ["system", "split", "WER", "PER"],
                [[p["system"], p["split"], pct(p["wer"]), pct(p["per"], 2)] for p in cpu["published"]],
            ),
        ),
    )
    rows = []
    for name in ("seq2seq-dates-cpu", "seq2seq-dates-cuda"):
        d = load(name)
        rows.append(
            [
                d["device"],
                fmt(d["pairs"]["train"]),
                f"{d['train_time_s']:.0f} s",
                len(d["history"]),
                fmt(d["test_exact_match_greedy"]),
                fmt(d["test_exact_match_beam"]),
                f"{d['train_target_tokens_per_s']:,.0f}",
            ]
        )
    page.add(
        "dates",
        Figure(
            "Date normalisation",
            ["seq2seq-dates-cpu", "seq2seq-dates-cuda"],
            "python -m bench.seq2seq_dates",
            table(
                [
                    "device",
                    "training pairs",
                    "training",
                    "epochs",
                    "test exact (greedy)",
                    "test exact (beam)",
                    "target tokens/s",
                ],
                rows,
            ),
        ),
    )
    beam = load("beam-search-cpu")
    page.add(
        "beam-search",
        Figure(
            "Beam search beside greedy search: numbers written in words",
            ["beam-search-cpu"],
            "python -m bench.beam_search",
            table(
                ["training", "beam width", "test exact match", "/ greedy"],
                [
                    ["the defaults" if epochs == "auto" else f"{epochs} epochs", width,
                     pct(row["exact_match"]), f"**{row['ratio_to_greedy']:.2f}x**"]
                    for epochs, run in sorted(beam["rows"].items(), key=lambda item: item[0] != "auto")
                    for width, row in sorted(run["widths"].items(), key=lambda item: int(item[0]))
                ],
            ),
        ),
    )
    return page


CAPTION_RUNS = [
    ("captioning-run-digits-cpu", "digits, the recipe, seed 0"),
    ("captioning-run-digits-seed1-cpu", "digits, the recipe, seed 1"),
    ("captioning-run-digits-seed2-cpu", "digits, the recipe, seed 2"),
    ("captioning-run-digits_regularizer-cpu", "digits: + doubly stochastic regulariser 0.01"),
    ("captioning-run-digits_hard-cpu", "digits: hard attention (REINFORCE, gated)"),
    ("captioning-screen-digits-hard-paper-cpu", "digits: hard attention as in the paper (no gate)"),
    ("captioning-screen-digits-no-ema-cpu", "digits: without the weight average"),
    ("captioning-run-shapes-cpu", "shapes, 2000 scenes x 4 epochs"),
    ("captioning-run-shapes_regularizer_same_budget-cpu", "shapes 600 x 2, regulariser 0.01"),
    ("captioning-run-shapes_no_regularizer-cpu", "shapes 600 x 2, no regulariser"),
    ("captioning-run-shapes_hard-cpu", "shapes 600 x 2, hard attention"),
    ("captioning-screen-shapes-hard-paper-cpu", "shapes 600 x 2, hard attention as in the paper"),
    ("captioning-run-digits-cuda-first-call", "digits on a GPU, 45 s budget, first call"),
    ("captioning-run-digits-cuda", "digits on a GPU, 45 s budget, second call"),
]


def captioning_page(img: Path) -> Page:
    page = Page("captioning", "Captioning")
    rows = []
    for name, label in CAPTION_RUNS:
        r = load(name)
        g, b = r["test"]["greedy"], r["test"]["beam5"]
        rows.append(
            [
                label,
                f"{len(r['history'])} ({r['best_epoch']})",
                f"{fmt(g['exact_match'])} / {fmt(b['exact_match'])}",
                f"{g['bleu4']:.1f} / {b['bleu4']:.1f}",
                f"{g['cider_d']:.2f} / {b['cider_d']:.2f}",
                f"{fmt(g['attention_correctness'])} / {fmt(g['uniform_baseline'])}",
                f"{r['images']['train']:,} / {r['images']['test']:,}",
                f"{r['wall_s']:,.0f} s",
            ]
        )
    page.add(
        "runs",
        Figure(
            "Every captioning run: test split, greedy / beam 5",
            [name for name, _ in CAPTION_RUNS[:3]],
            "python -m bench.captioning --threads 2 (--seed N for the other seeds); "
            "other runs: the flags in each file's config",
            table(
                [
                    "run",
                    "epochs (kept)",
                    "exact",
                    "BLEU-4 (0-100)",
                    "CIDEr-D",
                    "attention correctness / uniform",
                    "train / test images",
                    "wall",
                ],
                rows,
            ),
            note="Each run's configuration, load averages, per-epoch history and test examples are in "
            "its file (`bench/results/<run>.json`, named in the list of runs above).",
        ),
    )

    def draw(ax: Any) -> None:
        for name, label in [*CAPTION_RUNS[:3], CAPTION_RUNS[6]]:
            history = load(name)["history"]
            ax.plot([h["epoch"] for h in history], [h["valid_exact_match"] for h in history], label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation exact match")
        ax.legend(fontsize=8)

    page.add(
        "curves",
        Figure(
            "Digits: validation exact match per epoch",
            [CAPTION_RUNS[0][0], CAPTION_RUNS[6][0]],
            "python -m bench.captioning",
            "Three seeds of the recipe, and seed 0 without the weight average.",
            plot=save_plot("captioning-valid-exact", draw, img),
        ),
    )
    return page


def _goal_cells(run: dict[str, Any]) -> list[str]:
    """What one defaults run measured, as table cells: exact / attention correctness, or WER / PER."""
    if "wer" in run:
        return [f"WER {pct(run['wer'])}, PER {pct(run['per'], 2)} (beam 5)", "", ""]
    correctness = run.get("attention_correctness")
    uniform = run.get("uniform_baseline")
    attention = f"{correctness:.2f} / {uniform:.2f}" if correctness is not None and uniform else "no boxes"
    return [f"exact {fmt(run['exact'])}", attention, f"{run['epochs']} ({run['best_epoch']})"]


DEFAULTS_COLUMNS = (
    "run", "test (greedy)", "attention correctness / uniform", "epochs (kept)", "warnings", "goal"
)


def _goals_note(data: dict[str, Any]) -> str:
    goals = data["goals"]
    return (
        f"Goals: digits exact >= {goals['digits_exact']} and attention correctness >= "
        f"{goals['digits_attention_correctness']} on every seed; shapes exact >= {goals['shapes_exact']} "
        f"and correctness >= {goals['shapes_correctness_over_uniform']:g}x uniform; CMUdict WER <= "
        f"{pct(goals['cmudict_wer'], 0)} and PER <= {pct(goals['cmudict_per'], 0)}; generated user sets "
        f"exact >= {goals['user_exact']}, and a set too small to learn ends with a warning. Each run's "
        "commit, command line, chosen settings and load average before it are in the file."
    )


def defaults_page(img: Path) -> Page:
    del img  # tables only
    page = Page("defaults", "First runs with the defaults")
    from bench.defaults import commands

    data = load("defaults-cpu")
    measured = {run["name"]: run for run in data["runs"]}
    rows = []
    for name in commands(Path("runs"), Path("data")):
        run = measured.get(name)
        if run is None:
            rows.append([f"`{name}`", "not measured", "", "", "", ""])
            continue
        warnings = "; ".join(run["warnings"]) or "none"
        rows.append([f"`{name}`", *_goal_cells(run), warnings, "met" if run["met"] else "**missed**"])
    page.add(
        "runs",
        Figure(
            "Every run through the CLI, its defaults and no tuning flag",
            ["defaults-cpu"],
            "python -m bench.defaults (each run's command line is in the file; logs in "
            "bench/results/logs/defaults-<run>.log)",
            table(DEFAULTS_COLUMNS, rows),
            note=_goals_note(data),
        ),
    )
    return page


def vision_page(img: Path) -> Page:
    page = Page("vision", "Vision")
    for name, title in (
        ("vision-cpu", "The vision core on a CPU"),
        ("vision-cuda", "The vision core on a GPU"),
    ):
        data = load(name)
        rows = [[r["measure"], fmt(r["nlp182"]), fmt(r["reference"]), fmt(r["ratio"])] for r in data["table"]]
        page.add(
            name,
            Figure(
                f"{title} ({data['total_wall_s']:.0f} s in all)",
                [name],
                f"python -m bench.vision --device {data['device']} --threads {data['threads']}",
                table(["measure", "nlp182", "reference", "ratio"], rows),
            ),
        )
    return page


def attention_page(img: Path) -> Page:
    page = Page("attention", "Attention")
    for name in ("attention-cuda", "attention-cpu"):
        data = load(name)
        rows = [
            [
                fmt(r["length"]),
                fmt(r["sdpa_ours_ms"]),
                fmt(r["sdpa_torch_ms"]),
                fmt(r["sdpa_median_ratio"]),
                fmt(r["mha_ours_ms"]),
                fmt(r["mha_torch_ms"]),
                fmt(r["mha_median_ratio"]),
                fmt(r["additive_ms"]),
            ]
            for r in data["rows"]
        ]
        page.add(
            name,
            Figure(
                f"{data['dtype'].removeprefix('torch.')} forward + backward on {data['device']}, "
                f"B={data['batch']}, E={data['embed_dim']}, H={data['heads']} "
                f"(goal: ours / SDPA <= {data['goal_ratio']})",
                [name],
                f"python -m bench.attention --device {data['device']}",
                table(
                    [
                        "T",
                        "ours SDPA ms",
                        "torch SDPA ms",
                        "ratio",
                        "ours MHA ms",
                        "nn.MultiheadAttention ms",
                        "ratio",
                        "additive ms",
                    ],
                    rows,
                ),
            ),
        )

    def draw(ax: Any) -> None:
        for name in ("attention-cuda", "attention-cpu"):
            data = load(name)
            rows = data["rows"]
            ax.plot(
                [r["length"] for r in rows],
                [r["sdpa_median_ratio"] for r in rows],
                "o-",
                label=f"{data['device']}: ours / SDPA",
            )
            ax.plot(
                [r["length"] for r in rows],
                [r["mha_median_ratio"] for r in rows],
                "s--",
                label=f"{data['device']}: ours / nn.MultiheadAttention",
            )
        ax.axhline(1.05, color="grey", linestyle=":", label="goal 1.05")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("time ratio (median)")
        ax.legend(fontsize=8)

    page.add(
        "ratios",
        Figure(
            "Time ratios by sequence length",
            ["attention-cuda", "attention-cpu"],
            "python -m bench.attention",
            "Below 1: ours is faster.",
            plot=save_plot("attention-ratios", draw, img),
        ),
    )
    return page


def optim_page(img: Path) -> Page:
    page = Page("optim", "Optimizers")
    for name in ("optim-cuda", "optim-cpu"):
        data = load(name)
        rows = [
            [r["optimizer"], f"{r['nlp182_ms']:.3f}", f"{r['torch_ms']:.3f}", f"{r['ratio']:.2f}"]
            for r in data["rows"]
        ]
        page.add(
            name,
            Figure(
                f"Step time on {data['device']}, {data['parameters']:,} parameters "
                f"(goal: ours / torch.optim <= {data['goal_ratio']}; worst {data['worst_ratio']:.2f})",
                [name],
                f"python -m bench.optim --device {data['device']}",
                table(["optimizer", "nlp182 ms", "torch.optim (foreach) ms", "ratio"], rows),
            ),
        )
    search = load("hparam_search-cpu")
    runs = search["random_coarse_to_fine"]["runs"]
    page.add(
        "hparam",
        Figure(
            f"Hyper-parameter search: a {search['budget']}-trial grid against random coarse-to-fine search",
            ["hparam_search-cpu"],
            "python -m bench.hparam_search",
            table(
                ["search", "best validation accuracy", "best parameters"],
                [
                    [
                        "grid",
                        fmt(search["grid"]["best_valid_accuracy"]),
                        ", ".join(f"{k}={v:.3g}" for k, v in search["grid"]["best_params"].items()),
                    ],
                    [
                        f"random coarse-to-fine, mean of {len(runs)} seeds",
                        fmt(search["random_coarse_to_fine"]["mean_best_valid_accuracy"]),
                        "",
                    ],
                    ["ratio, random / grid", fmt(search["ratio_random_over_grid"]), ""],
                ],
            ),
        ),
    )
    return page


def gpu_page(img: Path) -> Page:
    page = Page("gpu", "GPU")
    data = load("gpu-cuda")
    rows = []
    for step in data["steps"]:
        figures = "; ".join(
            f"{k}: {fmt(v, 4) if isinstance(v, float) else fmt(v)}" for k, v in step["figures"].items()
        )
        rows.append([step["step"], step["status"], f"{step['seconds']:.0f}", step["claims"], figures])
    page.add(
        "steps",
        Figure(
            f"Every GPU figure in one run ({sum(s['seconds'] for s in data['steps']):.0f} s of steps)",
            ["gpu-cuda"],
            "bench/gpu.sh --out DIR",
            table(["step", "status", "s", "what it measures", "figures"], rows),
        ),
    )
    return page


AREAS: dict[str, Callable[[Path], Page]] = {
    "embeddings": embeddings_page,
    "vectors": vectors_page,
    "serve": serve_page,
    "seq2seq": seq2seq_page,
    "captioning": captioning_page,
    "defaults": defaults_page,
    "vision": vision_page,
    "attention": attention_page,
    "optim": optim_page,
    "gpu": gpu_page,
}


# ---------------------------------------------------------------------------------------- headline
def headline() -> str:
    """The README's table of headline figures, each read from its results file."""
    w2v = load("embeddings-large-w2v-cpu")["summary"]
    vectors = load("vectors-cpu")["scenarios"]["mmap"]["ratio"]
    serve = load("serve-cpu")["goals"]
    hnsw_recall, hnsw_p99 = serve["hnsw: recall@10 vs exact (rows shown only if met)"], serve["hnsw: p99 ms"]
    g2p = load("seq2seq-cmudict-cpu")["runs"][0]
    seeds = [load(name)["test"]["greedy"] for name, _ in CAPTION_RUNS[:3]]
    attention = [r["sdpa_median_ratio"] for r in load("attention-cuda")["rows"]]
    optim = [r["ratio"] for r in load("optim-cuda")["rows"]]
    svd = load("embeddings-large-lsa-cpu")["svd"]
    rows = [
        [
            "word2vec, 20.3M tokens, text to vectors",
            f"skip-gram **{w2v['sg']['wall_ratio']:.2f}x**, "
            f"CBOW **{w2v['cbow']['wall_ratio']:.2f}x** faster than gensim",
            "[embeddings](docs/benchmarks/embeddings.md)",
        ],
        [
            "LSA randomized SVD, 50k words",
            f"{svd['torch']['seconds']:.1f} s; scikit-learn {svd['sklearn']['seconds']:.1f} s,"
            f" ARPACK {svd['scipy']['seconds']:.1f} s",
            "[embeddings](docs/benchmarks/embeddings.md)",
        ],
        [
            "vector store, 300k x 300, memory-mapped",
            f"most_similar {vectors['query_ms']:.2f}x gensim's time, "
            f"peak memory {vectors['peak_rss_mb']:.2f}x",
            "[vectors](docs/benchmarks/vectors.md)",
        ],
        [
            "similarity service over HTTP, HNSW index",
            f"{serve['hnsw: HTTP rps / gensim qps']['value']:.1f}x gensim's in-process (exact) "
            f"queries/s at recall@10 {hnsw_recall['value']:.3f}; p99 {hnsw_p99['value']:.0f} ms at "
            f"saturation (goal {hnsw_p99['goal']:.0f} ms: {_met(hnsw_p99)}), "
            f"{serve['hnsw: p99 beside 100 slow clients / alone']['value']:.2f}x beside 100 slow clients",
            "[service](docs/benchmarks/serve.md)",
        ],
        [
            "G2P on CMUdict, 1 CPU thread, 45 min",
            f"test WER {pct(g2p['test_wer_beam'])}, PER {pct(g2p['test_per_beam'], 2)}",
            "[seq2seq](docs/benchmarks/seq2seq.md)",
        ],
        [
            "captioning digits, 3 seeds, 600 s each",
            "exact "
            + " / ".join(fmt(s["exact_match"]) for s in seeds)
            + ", attention correctness "
            + " / ".join(f"{s['attention_correctness']:.2f}" for s in seeds),
            "[captioning](docs/benchmarks/captioning.md)",
        ],
        [
            "first runs with the defaults alone (2 CPU cores)",
            _defaults_headline(load("defaults-cpu")["runs"]),
            "[defaults](docs/benchmarks/defaults.md)",
        ],
        [
            "attention bf16 on an H100",
            f"ours / SDPA {min(attention):.2f}-{max(attention):.2f}",
            "[attention](docs/benchmarks/attention.md)",
        ],
        [
            "nine optimizer settings (5 optimizers) on an H100",
            f"ours / torch.optim {min(optim):.2f}-{max(optim):.2f}",
            "[optimizers](docs/benchmarks/optim.md)",
        ],
    ]
    return table(["what", "figure", "page"], rows)


def _met(goal: dict[str, Any]) -> str:
    """How a results file's goal entry reads in prose: met or not met."""
    return "met" if goal["met"] else "not met"


def _defaults_headline(runs: list[dict[str, Any]]) -> str:
    """One cell: each family of :mod:`bench.defaults` runs, its figure and how many met their goal."""
    families = (("digits", "digits 600 s"), ("shapes", "shapes 600 s"), ("cmudict", "CMUdict 2,700 s"),
                ("user300", "300 generated images"), ("user60", "60 images"))  # fmt: skip
    parts = []
    for prefix, label in families:
        found = [r for r in runs if r["name"].split("-")[0] == prefix]
        if not found:
            continue
        if prefix == "cmudict":
            figure = f"WER {pct(found[0]['wer'])}, PER {pct(found[0]['per'], 2)}"
        else:
            figure = "exact " + " / ".join(fmt(r["exact"]) for r in found)
        met = sum(r["met"] for r in found)
        parts.append(f"{label}: {figure} ({met} of {len(found)} met)")
    return "; ".join(parts)


def with_headline(readme: str) -> str:
    start, end = readme.index(HEADLINE_START) + len(HEADLINE_START), readme.index(HEADLINE_END)
    return readme[:start] + "\n" + headline() + "\n" + readme[end:]


def index_page() -> str:
    lines = [
        "<!-- generated by `python -m bench.pages` -->",
        "# Benchmarks",
        "",
        "Every table and plot on these pages is generated from the results files in `bench/results/` by",
        "`python -m bench.pages`; none is typed by hand. Each figure names the file it comes from, the",
        "machine it was measured on (as the file recorded it), the day the file was committed and the",
        "command that produced it. Benchmarks run the reference beside nlp182 in the same job, interleaved",
        "where timing matters, and report ratios: the development machine has 2 shared cores, and ratios",
        "survive its noise where absolute times do not.",
        "",
        "| page | what it compares |",
        "| --- | --- |",
    ]
    what = {
        "embeddings": "word2vec and LSA beside gensim and scikit-learn: speed, memory, quality",
        "vectors": "the vector store beside gensim's KeyedVectors",
        "serve": "the HTTP service: throughput, latency, reloads, memory, HNSW recall",
        "seq2seq": "G2P on CMUdict and date normalisation",
        "captioning": "Show, Attend and Tell on digits and shapes, with ablations",
        "defaults": "a user's first runs, captioning and G2P, with the defaults alone",
        "vision": "the vision core beside torch.nn, scikit-learn and float64 references",
        "attention": "attention modules beside PyTorch's SDPA and nn.MultiheadAttention",
        "optim": "optimizer step time beside torch.optim; hyper-parameter search",
        "gpu": "every GPU figure from one `bench/gpu.sh` run",
    }
    lines += [f"| [{area}]({area}.md) | {what[area]} |" for area in AREAS]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- main
def render_all(img: Path) -> dict[Path, str]:
    """Every generated page (and the README) by path, with plots written into ``img``."""
    out = {PAGES / f"{area}.md": build(img).render() for area, build in AREAS.items()}
    out[PAGES / "index.md"] = index_page()
    out[README] = with_headline(README.read_text(encoding="utf-8"))
    return out


def undated(text: str) -> str:
    """``text`` without its commit dates: they depend on the clone's history (a shallow clone has
    one date for every file), the tables and their sources do not."""
    return COMMITTED.sub("committed <date>", text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed page or the README table is out of date",
    )
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pages = render_all(Path(tmp))
        stale = [
            p
            for p, text in pages.items()
            if not p.exists() or undated(p.read_text(encoding="utf-8")) != undated(text)
        ]
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run python -m bench.pages)", file=sys.stderr)
        return 1 if stale else 0
    pages = render_all(PAGES / "img")
    for path, text in pages.items():
        atomic_write_text(path, text)
    print(f"wrote {len(pages)} pages and their plots from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
