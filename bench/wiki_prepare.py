"""``nlp182 corpus prepare --wiki`` beside gensim on the same dumps.

``python -m bench.wiki_prepare [--repeat 8]`` runs, each in a fresh process with the same number
of markup-stripping processes (the CPU count minus one, gensim's default), on the small English
dump gensim ships and on a larger dump assembled from it (its pages repeated ``--repeat`` times,
recompressed), and reports MB of compressed dump per second:

- ``nlp182 corpus prepare --wiki``: one article a line, written to a file;
- the same work in gensim, the like-for-like reference: ``WikiCorpus(dump, dictionary={})``'s
  ``get_texts()`` (its text pass), each article's tokens joined by spaces and written to a file;
- gensim's ``make_wiki`` script for context: after the same text pass it makes a second pass to
  write bag-of-words and TF-IDF matrices, so its time holds more work.

Writes ``bench/results/wiki-prepare-cpu.json``. The machine is shared: read the ratios.
"""

from __future__ import annotations

import argparse
import bz2
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.embeddings_scale import write_result
from nlp182.corpora.prepare import WIKI_DUMP, gensim_data

#: gensim's text pass alone, written as nlp182 writes its corpus: one article a line.
GENSIM_TEXT_PASS = """
import sys
from gensim.corpora.wikicorpus import WikiCorpus
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for tokens in WikiCorpus(sys.argv[1], dictionary={}).get_texts():
        out.write(" ".join(tokens) + "\\n")
"""

_PAGES = re.compile(rb"(.*?</siteinfo>\n)(.*)(</mediawiki>\s*)$", re.S)


def assemble(repeat: int, out: Path) -> Path:
    """A dump of the shipped dump's pages repeated ``repeat`` times (bz2, as dumps are)."""
    head, pages, tail = _PAGES.match(bz2.decompress(gensim_data(WIKI_DUMP).read_bytes())).groups()
    out.write_bytes(bz2.compress(head + pages * repeat + tail, compresslevel=9))
    return out


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=8, help="copies of the shipped pages in the larger dump"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        dumps = {
            "shipped": gensim_data(WIKI_DUMP),
            f"shipped x{args.repeat}": assemble(args.repeat, Path(folder) / "big.xml.bz2"),
        }
        for number, (name, dump) in enumerate(dumps.items()):
            megabytes = dump.stat().st_size / 2**20
            ours, _ = _timed(
                [sys.executable, "-m", "nlp182.cli", "corpus", "prepare", "--wiki", str(dump),
                 "--out", f"{folder}/ours-{number}.txt"]
            )  # fmt: skip
            text_pass, _ = _timed(
                [sys.executable, "-c", GENSIM_TEXT_PASS, str(dump), f"{folder}/gensim-{number}.txt"]
            )
            gensim, log = _timed(
                [sys.executable, "-m", "gensim.scripts.make_wiki", str(dump), f"{folder}/gensim-{number}"]
            )
            first_pass = re.search(r"finished iterating over Wikipedia corpus of .*", log)
            row = {
                "dump": name,
                "compressed_mb": megabytes,
                "ours_seconds": ours,
                "gensim_text_pass_seconds": text_pass,
                "text_pass_speed_ratio": text_pass / ours,
                "make_wiki_seconds": gensim,
                "ours_mb_per_second": megabytes / ours,
                "make_wiki_mb_per_second": megabytes / gensim,
                "speed_ratio": gensim / ours,
                "make_wiki_first_pass_log": first_pass.group(0) if first_pass else None,
            }
            rows.append(row)
            print(
                f"{name:<14} {megabytes:6.1f} MB: ours {ours:6.1f} s ({row['ours_mb_per_second']:.2f} MB/s), "
                f"gensim text pass {text_pass:6.1f} s (ratio {row['text_pass_speed_ratio']:.2f}), "
                f"make_wiki {gensim:6.1f} s (ratio {row['speed_ratio']:.2f})",
                flush=True,
            )
    result = {"processes": max(1, (os.cpu_count() or 2) - 1), "loadavg_before": load_before,
              "loadavg_after": os.getloadavg(), "rows": rows}
    print(f"wrote {write_result(result, 'wiki-prepare-cpu')}")


if __name__ == "__main__":
    main()
