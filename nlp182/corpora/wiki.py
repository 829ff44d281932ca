"""``nlp182 corpus prepare --wiki``: a Wikipedia ``pages-articles`` dump to a corpus file.

gensim's ``WikiCorpus`` streams the bz2 dump and strips the wiki markup in ``processes`` worker
processes (the expensive part); its tokenizer hook is told to keep the plain text whole, so our
tokenizer decides what a word is, as for every other corpus (``corpora.text.write_corpus``:
one article per line, normalised tokens joined by spaces). Articles shorter than
``min_tokens`` words (redirect stubs, lists) are left out, as gensim's ``make_wiki`` does.
"""

from __future__ import annotations

import os

from nlp182.corpora.text import WrittenCorpus, write_corpus
from nlp182.io import check_input_file


def _keep_text(text: str, token_min_len: int, token_max_len: int, lower: bool) -> list[str]:
    """WikiCorpus tokenizer hook: the markup-free text, split on whitespace only."""
    return text.split()


def prepare_wiki(
    dump: str | os.PathLike[str],
    out: str | os.PathLike[str],
    processes: int | None = None,
    min_tokens: int = 50,
) -> WrittenCorpus:
    """Write every article of ``dump`` with at least ``min_tokens`` words to ``out``."""
    from gensim.corpora import WikiCorpus

    check_input_file(dump, "Wikipedia dump")
    workers = processes or max(1, (os.cpu_count() or 2) - 1)
    wiki = WikiCorpus(
        str(dump), dictionary={}, processes=workers, tokenizer_func=_keep_text, article_min_tokens=min_tokens
    )
    return write_corpus((" ".join(tokens) for tokens in wiki.get_texts()), out)
