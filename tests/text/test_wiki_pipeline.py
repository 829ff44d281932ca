"""How ``corpus prepare --wiki`` shares its work: a thread parses the next group of pages while the
workers strip this one's markup and tokenize it. The groups come in order, errors arrive after
the groups before them, the thread stops with the reader, and the workers' words are the
tokenizer's."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from nlp182.corpora.wiki import _article_words, read_ahead
from nlp182.errors import FileFormatError
from nlp182.text.tokenize import WordTokenizer


def _threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name == "wiki-read-ahead"]


def test_every_item_comes_in_order() -> None:
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_the_next_item_is_produced_while_the_caller_holds_this_one() -> None:
    produced: list[int] = []

    def groups() -> Iterator[int]:
        for number in itertools.count():
            produced.append(number)
            yield number

    reader = read_ahead(groups())
    assert next(reader) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) >= 2  # a plain generator would have produced only the item handed out
    reader.close()
    assert len(produced) <= 4  # read ahead by its depth, not to the end


def test_an_error_arrives_after_the_items_before_it() -> None:
    def groups() -> Iterator[int]:
        yield 1
        yield 2
        raise FileFormatError("dump.xml.bz2: not a well-formed MediaWiki dump near page 3")

    reader = read_ahead(groups())
    assert [next(reader), next(reader)] == [1, 2]
    with pytest.raises(FileFormatError, match="near page 3"):
        next(reader)
    assert _threads() == []


def test_closing_the_reader_stops_its_thread() -> None:
    reader = read_ahead(itertools.count())
    assert next(reader) == 0
    reader.close()
    assert _threads() == []


def test_the_workers_give_the_tokenizers_words_of_articles_long_enough() -> None:
    article = "Ängström's café—was built in 1889, by Gustave Eiffel! " * 10  # 80 words by whitespace
    assert _article_words(article, 50, 0, False) == WordTokenizer()(article)
    assert _article_words(article, 80, 0, False) == WordTokenizer()(article)  # 80 or more: kept
    assert _article_words(article, 81, 0, False) == []  # a stub: left out
