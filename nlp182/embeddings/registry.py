"""Embedding methods by name: each trainer module registers itself with :func:`register_embedding`.

A new method is one file in ``nlp182/embeddings/``: a config dataclass and a decorated
``train_<method>(source, config) -> (Vectors, Vocabulary, report)``. ``nlp182 train <name>`` is
built from the registration (the corpus flags, one checked flag per config field, ``--out``) and
writes the run folder that ``eval``, ``neighbors``, ``index`` and ``serve`` read, so nothing else
needs editing (every module of the package is imported on the first lookup). The report is a
dataclass with a ``seconds`` attribute (a field or a property); it becomes ``metrics.json``'s
``train`` entry.

The registration holds data only (help texts, choices, ranges as plain mappings): the flags are
made in ``nlp182.commands``, which this package must not import.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp182.embeddings.vectors import Vectors
from nlp182.registry import Registry
from nlp182.text.corpus import CorpusSource
from nlp182.text.vocab import Vocabulary

Trainer = Callable[[CorpusSource, Any], tuple[Vectors, Vocabulary, Any]]
Record = Callable[[Any], dict[str, Any]]
Summary = Callable[[Vectors, Any, Any], str]


def _discover() -> None:
    """Import every module of ``nlp182.embeddings`` that registers a method, so that its decorator
    has run; the others (the GPU kernels, which would import Triton, the file formats) stay unloaded."""
    package = importlib.import_module("nlp182.embeddings")
    for folder in package.__path__:
        for path in sorted(Path(folder).glob("*.py")):
            if "@register_embedding(" in path.read_text(encoding="utf-8"):
                importlib.import_module(f"nlp182.embeddings.{path.stem}")


METHODS = Registry("embedding method", _discover)


@dataclass(frozen=True)
class EmbeddingMethod:
    """One registered method: its trainer and what ``nlp182 train <name>`` needs to offer it.

    ``record(config)`` gives ``config.json``'s entries besides the corpus; ``summary(vectors,
    config, report)`` the line printed when the run is saved (``-> <out>`` is added).
    """

    name: str
    train: Trainer
    config: type
    help: str
    record: Record
    summary: Summary


def register_embedding(
    name: str,
    *,
    config: type,
    help: str,
    title: str | None = None,
    record: Record | None = None,
    summary: Summary | None = None,
) -> Callable[[Trainer], Trainer]:
    """Decorator: register ``train(source, config) -> (Vectors, Vocabulary, report)`` as ``name``.

    ``config`` is the dataclass the trainer takes; each field, declared with
    :func:`nlp182.settings.setting` (its help, choices and range), becomes a flag of
    ``nlp182 train <name>``.
    ``help`` is the command's one line in ``nlp182 train --help``. By default ``config.json`` says
    ``method: <name>`` and the config's fields, and the closing line reads ``<title>: N words x D
    dims in S s`` (``title`` defaults to the name); ``record`` and ``summary`` replace those.
    """
    heading = title or name

    def default_record(settings: Any) -> dict[str, Any]:
        return {"method": name, **dataclasses.asdict(settings)}

    def default_summary(vectors: Vectors, settings: Any, report: Any) -> str:
        return f"{heading}: {len(vectors)} words x {vectors.dim} dims in {report.seconds:.1f} s"

    return METHODS.register(
        name,
        config=config,
        help=help,
        record=record or default_record,
        summary=summary or default_summary,
    )


def embedding_methods() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return METHODS.names()


def embedding_method(name: str) -> EmbeddingMethod:
    """The registered method ``name``; an unknown name is an error that lists the known ones."""
    entry = METHODS.entry(name)
    return EmbeddingMethod(entry.name, entry.builder, **entry.meta)
