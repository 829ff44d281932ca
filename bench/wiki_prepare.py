"""``nlp182 corpus prepare --wiki`` beside gensim's ``make_wiki`` on the same dumps, interleaved.

``python -m bench.wiki_prepare [--repeat 8]`` runs both commands (each in a fresh process, the
same number of markup-stripping processes: the CPU count minus one, gensim's default) on the small
English dump gensim ships and on a larger dump assembled from it (its pages repeated ``--repeat``
times, recompressed), and reports MB of compressed dump per second. ``make_wiki`` does more than
extract text: after its text pass it makes a second pass to write bag-of-words and TF-IDF
matrices, so its time is given whole and for its first (text and dictionary) pass as gensim logs
it. Writes ``bench/results/wiki-prepare-cpu.json``. The machine is shared: read the ratio.
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
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        dumps = {
            "shipped": gensim_data(WIKI_DUMP),
            f"shipped x{args.repeat}": assemble(args.repeat, Path(folder) / "big.xml.bz2"),
        }
        for name, dump in dumps.items():
            megabytes = dump.stat().st_size / 2**20
            ours, _ = _timed(
                [sys.executable, "-m", "nlp182.cli", "corpus", "prepare", "--wiki", str(dump),
                 "--out", f"{folder}/ours.txt"]
            )  # fmt: skip
            gensim, log = _timed(
                [sys.executable, "-m", "gensim.scripts.make_wiki", str(dump), f"{folder}/gensim"]
            )
            first_pass = re.search(r"finished iterating over Wikipedia corpus of .*", log)
            row = {
                "dump": name,
                "compressed_mb": megabytes,
                "ours_seconds": ours,
                "make_wiki_seconds": gensim,
                "ours_mb_per_second": megabytes / ours,
                "make_wiki_mb_per_second": megabytes / gensim,
                "speed_ratio": gensim / ours,
                "make_wiki_first_pass_log": first_pass.group(0) if first_pass else None,
            }
            rows.append(row)
            print(
                f"{name:<14} {megabytes:6.1f} MB: ours {ours:6.1f} s ({row['ours_mb_per_second']:.2f} MB/s), "
                f"make_wiki {gensim:6.1f} s ({row['make_wiki_mb_per_second']:.2f} MB/s), "
                f"ratio {row['speed_ratio']:.2f}",
                flush=True,
            )
    result = {"processes": max(1, (os.cpu_count() or 2) - 1), "loadavg_after": os.getloadavg(), "rows": rows}
    print(f"wrote {write_result(result, 'wiki-prepare-cpu')}")


if __name__ == "__main__":
    main()
