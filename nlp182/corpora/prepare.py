"""Build the default corpus and evaluation files from the real English text in gensim's wheel.

Sources (nothing is downloaded): the shortened English Wikipedia dump read with
``gensim.corpora.WikiCorpus`` (markup stripped, one article per line) and ``lee_background.cor``
(news). Not ``head500.noblanks.cor``: that text is stemmed and stop-word free, so a model trained
on it has stems ("theori", "scienc") for neighbours. The evaluation sets WordSim-353, SimLex-999
and the Google analogies are copied beside it. The result is deterministic: the printed SHA-256
is the same on every machine with the same gensim release.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from nlp182.io import atomic_open
from nlp182.progress import progress
from nlp182.signals import children_die_with_us

log = logging.getLogger(__name__)

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TEXT_FILES = ("lee_background.cor",)
EVAL_FILES = {
    "wordsim353.tsv": "wordsim353.tsv",
    "simlex999.txt": "simlex999.txt",
    "questions-words.txt": "questions-words.txt",
}
CORPUS_NAME = "wiki.txt"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class PreparedCorpus:
    """Paths and checksum of a prepared corpus folder."""

    corpus: Path
    wordsim353: Path
    simlex999: Path
    analogies: Path
    lines: int
    sha256: str


def gensim_data(name: str) -> Path:
    """Path of a file shipped in gensim's test data."""
    from gensim.test.utils import datapath

    return Path(datapath(name))


def _whitespace_tokens(text: str, token_min_len: int, token_max_len: int, lower: bool) -> list[str]:
    """WikiCorpus tokenizer hook: keep the markup-free text (punctuation included) for our tokenizer."""
    return text.split()


def wiki_articles() -> list[str]:
    """Plain text of each article of the shortened dump, whitespace collapsed, in dump order."""
    from gensim.corpora import WikiCorpus

    wiki = WikiCorpus(
        str(gensim_data(WIKI_DUMP)), dictionary={}, processes=1, tokenizer_func=_whitespace_tokens
    )
    with children_die_with_us():  # gensim's pool: ended with this process, even by kill -9
        articles = progress(wiki.get_texts(), desc="wikipedia articles", unit="art")
        return [" ".join(tokens) for tokens in articles]


def prepare(out_dir: str | Path = "corpora") -> PreparedCorpus:
    """Write ``out_dir/wiki.txt`` and ``out_dir/eval/*``; return their paths and the corpus checksum."""
    out = Path(out_dir)
    lines = wiki_articles()
    for name in TEXT_FILES:
        text = gensim_data(name).read_text(encoding="utf-8")
        lines.extend(" ".join(line.split()) for line in text.splitlines())
    lines = [line for line in lines if line]
    digest = hashlib.sha256()
    with atomic_open(out / CORPUS_NAME, "w") as handle:
        for line in lines:
            handle.write(line + "\n")
            digest.update(line.encode("utf-8") + b"\n")
    eval_dir = out / EVAL_DIR
    eval_dir.mkdir(parents=True, exist_ok=True)
    for source, target in EVAL_FILES.items():
        with atomic_open(eval_dir / target, "wb") as handle, gensim_data(source).open("rb") as src:
            shutil.copyfileobj(src, handle)
    log.info("wrote %d lines to %s", len(lines), out / CORPUS_NAME)
    return PreparedCorpus(
        corpus=out / CORPUS_NAME,
        wordsim353=eval_dir / "wordsim353.tsv",
        simlex999=eval_dir / "simlex999.txt",
        analogies=eval_dir / "questions-words.txt",
        lines=len(lines),
        sha256=digest.hexdigest(),
    )
