"""A 20M+ token English corpus from Debian packages that install offline (the recipe, not the text).

    apt-get update
    apt-get install -y --no-install-recommends $(python -m nlp182.corpora.debian --packages)
    python -m nlp182.corpora.debian --out corpora/debian.txt

Each package's files are listed with ``dpkg -L`` (so the corpus depends only on the package
versions) and read by their format: dictionaries (dictd ``.dz``: GCIDE, FOLDOC, the Jargon File,
...), WordNet's glosses, manuals and documentation as reStructuredText, POD, Info, AsciiDoc or
HTML. Every paragraph becomes one line of normalised tokens (``corpora.text.write_corpus``). The
result is 20.3M tokens (1.08M lines, 118 MB) with the Debian 12 versions of these packages.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from nlp182.corpora.text import WrittenCorpus, paragraphs, read_text, write_corpus
from nlp182.errors import MissingFileError

#: package -> pattern of the installed paths to read (matched against the whole path).
PACKAGES = {
    "dict-gcide": r".*\.dict\.dz",
    "dict-foldoc": r".*\.dict\.dz",
    "dict-jargon": r".*\.dict\.dz",
    "dict-devil": r".*\.dict\.dz",
    "dict-vera": r".*\.dict\.dz",
    "wordnet-base": r".*/data\.(noun|verb|adj|adv)",
    "python3.11-doc": r".*/_sources/.*\.rst\.txt",
    "linux-doc-6.1": r".*/_sources/.*\.rst\.txt",
    "postgresql-doc-15": r".*\.html",
    "debian-reference-en": r".*\.en\.html",
    "developers-reference": r".*\.html",
    "perl-doc": r".*\.pod",
    "git-doc": r".*/git-doc/[^/]*\.txt",
    "sqlite3-doc": r".*\.html",
    "fortunes": r".*/fortunes/[^/.]+",
    "emacs-common": r".*/etc/(NEWS(\.\d+)?|TODO|PROBLEMS|DEBUG|JOKES|ETAGSCHANGES)",
    "octave-doc": r".*/octave\.html/.*\.html",
    "apache2-doc": r".*/manual/en/.*\.html",
    "debian-handbook": r".*/html/en-US/.*\.html",
    "nodejs-doc": r".*/api/(?!all\.html)[^/]*\.html",
    "debian-policy": r".*/debian-policy/.*\.txt\.gz",
    "bash-doc": r".*/bashref\.html",
    "gnu-standards": r".*/gnu-standards/.*\.html",
    "r-doc-html": r".*/doc/manual/.*\.html",
    "ruby3.1-doc": r".*\.html",
    "erlang-doc": r".*\.html",
}
_TAGS = re.compile(r"<[^>]+>")
_SKIPPED_ELEMENTS = re.compile(r"<(script|style|pre|code)\b.*?</\1>", re.S | re.I)
_BLOCK_ENDS = re.compile(r"</(p|li|dd|dt|h\d|div|td|th|title|caption)>|<br\s*/?>", re.I)
_WEBSTER = re.compile(r"\[(1913 Webster|PJC|WordNet 1\.5|Webster 1913 Suppl\.)[^\]]*\]")


def missing_packages() -> list[str]:
    """The packages of ``PACKAGES`` that are not installed here."""
    return [p for p in PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]


def installed_files(package: str) -> list[Path]:
    """The regular files ``package`` installed, in ``dpkg -L`` order."""
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listed.returncode != 0:
        raise MissingFileError(f"package {package} is not installed; apt-get install {package}")
    pattern = re.compile(PACKAGES[package])
    return [Path(p) for p in listed.stdout.splitlines() if pattern.fullmatch(p) and Path(p).is_file()]


def html_paragraphs(text: str) -> Iterator[str]:
    """Paragraph-level text of an HTML page (scripts, styles and code blocks left out)."""
    body = _SKIPPED_ELEMENTS.sub(" ", text)
    for block in _BLOCK_ENDS.split(body):
        if block:
            joined = " ".join(html.unescape(_TAGS.sub(" ", block)).split())
            if joined:
                yield joined


def wordnet_glosses(text: str) -> Iterator[str]:
    """The gloss (definition and examples) of every synset of a WordNet ``data.*`` file."""
    for line in text.splitlines():
        if not line.startswith(" ") and " | " in line:
            yield line.split(" | ", 1)[1].strip()


def file_paragraphs(package: str, path: Path) -> Iterator[str]:
    """Paragraphs of one installed file, read by its format."""
    text = read_text(path)
    if ".html" in path.name:
        yield from html_paragraphs(text)
    elif package == "wordnet-base":
        yield from wordnet_glosses(text)
    elif package == "fortunes":
        yield from paragraphs(text.replace("\n%\n", "\n\n"))
    else:
        yield from paragraphs(_WEBSTER.sub(" ", text))


def debian_paragraphs() -> Iterator[str]:
    """Every paragraph of every package in ``PACKAGES``, package by package."""
    for package in PACKAGES:
        for path in installed_files(package):
            yield from file_paragraphs(package, path)


def build(out: str | Path) -> WrittenCorpus:
    """Write the corpus to ``out``; paragraphs of fewer than 3 tokens (headings, index lines)
    are left out."""
    return write_corpus(debian_paragraphs(), out, min_tokens=3)


def main() -> int:
    """Build the corpus from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description="Build the Debian-package English corpus.")
    parser.add_argument("--out", default="corpora/debian.txt")
    parser.add_argument("--packages", action="store_true", help="print the packages to install and exit")
    args = parser.parse_args()
    if args.packages:
        print(" ".join(PACKAGES))
        return 0
    missing = missing_packages()
    if missing:  # all of them in one line, before anything is written
        print(f"debian corpus: {len(missing)} of its packages are not installed; run\n"
              f"  apt-get install --no-install-recommends {' '.join(missing)}", file=sys.stderr)
        return 2
    written = build(args.out)
    print(f"{written.path}: {written.lines:,} lines, {written.tokens:,} tokens, sha256 {written.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
