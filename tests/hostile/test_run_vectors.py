"""A run folder whose ``vectors.npy`` was written by hand with nan or inf rows, through ``nlp182
index`` and ``nlp182 serve``: one error line naming the file and the first bad row, before any
index is built or any port is bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nlp182.embeddings.vectors import Vectors


def _spoiled_run(folder: Path) -> Path:
    """200,000 x 50 float32 vectors (40 MB) written by ``Vectors.save``, then row 150,001 given an inf;
    a flat index built from the finite vectors beforehand."""
    matrix = np.random.default_rng(0).standard_normal((200_000, 50)).astype(np.float32)
    Vectors([f"w{i}" for i in range(len(matrix))], matrix).save(folder)
    matrix[150_001, 7] = np.inf
    np.save(folder / "vectors.npy", matrix)  # spoiled after it was written: the store refuses inf
    return folder


def test_index_of_a_run_with_an_inf_row_is_refused(cli, bounded, tmp_path) -> None:
    run = _spoiled_run(tmp_path / "run")
    outcome = bounded(cli(["index", run, "--kind", "flat"]), 150, rc=2)
    assert "vectors.npy: row 150001 (0-based; word 'w150001') has a value that is nan or inf" in (
        outcome.error_lines[0])
    assert not list(run.glob("*.faiss*"))


def test_serve_of_a_run_with_an_inf_row_is_refused(cli, bounded, tmp_path) -> None:
    run = _spoiled_run(tmp_path / "run")
    outcome = bounded(cli(["serve", run, "--port", "0"], timeout=60), 150, rc=2)
    assert "vectors.npy: row 150001 (0-based; word 'w150001')" in outcome.error_lines[0]
