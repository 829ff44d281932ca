"""Run folders: what a training run leaves on disk, written as a whole or not at all.

A run folder holds ``config.json`` (what was asked), ``vocab.txt`` + ``vectors.npy`` (the vectors),
``counts.tsv`` (vocabulary counts), ``metrics.json`` (what was measured) and ``map.png`` (a 2-D PCA
map of a few hundred frequent words).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nlp182.embeddings.projection import pca_2d
from nlp182.embeddings.vectors import COUNTS_FILE, Vectors
from nlp182.io import atomic_write_json, read_json, staged_directory, written_by
from nlp182.text.vocab import Vocabulary

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MAP_FILE = "map.png"
# Map words ranked here: the top ranks are function words that say little on a map.
MAP_RANKS = (50, 350)


def save_map(vectors: Vectors, path: str | os.PathLike[str], title: str) -> None:
    """Draw the labelled PCA map of the words ranked ``MAP_RANKS`` (fewer if the vocabulary is small)."""
    from nlp182.plots import embedding_map  # matplotlib: imported by the runs that draw, not by queries

    start = min(MAP_RANKS[0], max(0, len(vectors) - 2))
    stop = min(MAP_RANKS[1], len(vectors))
    rows = np.arange(start, stop)
    embedding_map(pca_2d(vectors.normed[rows]), [vectors.words[i] for i in rows], path, title=title)


def save_run(
    out: str | os.PathLike[str],
    vectors: Vectors,
    vocab: Vocabulary,
    config: dict[str, Any],
    metrics: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write a complete run folder at ``out``, all at once on success; a run already there (one
    another process finished meanwhile, too) is replaced only with ``overwrite``."""
    with staged_directory(out, overwrite) as staging:
        vectors.save(staging, counts=False)
        vocab.save(staging / COUNTS_FILE)
        atomic_write_json(staging / CONFIG_FILE, config)
        atomic_write_json(staging / METRICS_FILE, {**metrics, "written_by": written_by()})
        save_map(
            vectors, staging / MAP_FILE, title=f"{config.get('method', 'vectors')}: PCA of frequent words"
        )
    return Path(out)


def load_run(run: str | os.PathLike[str], mmap: bool = True) -> tuple[Vectors, dict[str, Any]]:
    """The vectors and config of a run folder."""
    vectors = Vectors.load(run, mmap=mmap)
    return vectors, read_json(Path(run) / CONFIG_FILE)


def update_metrics(
    run: str | os.PathLike[str], key: str, values: dict[str, Any], merge: bool = False
) -> dict[str, Any]:
    """Set ``metrics[key] = values`` in the run's ``metrics.json`` (atomically) and return it all;
    with ``merge``, ``values`` are added to the entries ``metrics[key]`` holds already."""
    path = Path(run) / METRICS_FILE
    metrics = read_json(path) if path.exists() else {}
    metrics[key] = {**metrics.get(key, {}), **values} if merge else values
    atomic_write_json(path, metrics)
    return metrics
