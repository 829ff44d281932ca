"""Vectors with nan or inf rows: ``load_vectors`` (behind ``nlp182 index``, ``nlp182 serve`` and
``create_app``) refuses them naming the first bad row, and ``/v1/map`` still answers when such rows
are served anyway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlp182.embeddings.formats import first_nonfinite_row
from nlp182.embeddings.projection import pca_2d
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import FileFormatError
from nlp182.server.app import create_app
from nlp182.server.index import load_vectors

from .conftest import write_run


@pytest.mark.parametrize(("bad", "value"), [([], 0.0), ([0], np.nan), ([37, 5], np.inf), ([99], -np.inf)])
def test_first_nonfinite_row_across_blocks(bad: list[int], value: float) -> None:
    matrix = np.random.default_rng(0).standard_normal((100, 7)).astype(np.float32)
    matrix[bad, 3] = value
    for block_rows in (1, 8, 1000):
        assert first_nonfinite_row(matrix, block_rows) == (min(bad) if bad else None)


def test_a_run_with_a_nan_row_is_refused_naming_file_row_and_word(tmp_path: Path) -> None:
    matrix = np.ones((5, 3), dtype=np.float32)
    run = write_run(tmp_path, Vectors(["a", "b", "c", "d", "e"], matrix))
    matrix[3, 1] = np.nan
    np.save(run / "vectors.npy", matrix)  # a file spoiled after it was written
    with pytest.raises(FileFormatError) as caught:
        load_vectors(run)
    assert str(caught.value).startswith(f"{run / 'vectors.npy'}: row 3 (0-based; word 'd') has a value that")
    with pytest.raises(FileFormatError, match="row 3"):
        create_app(run)


def test_map_leaves_nonfinite_points_out_of_the_fit() -> None:
    points = np.random.default_rng(1).standard_normal((6, 5))
    spoiled = np.insert(points, [2, 4], np.array([[np.nan] * 5, [np.inf, 0, 0, 0, 0]]), axis=0)
    coords = pca_2d(spoiled)
    np.testing.assert_allclose(np.delete(coords, [2, 5], axis=0), pca_2d(points))
    assert coords[[2, 5]].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert pca_2d(np.full((3, 4), np.nan)).tolist() == [[0.0, 0.0]] * 3


def test_map_answers_when_nonfinite_rows_are_served_anyway(real_run: Path, real_vectors: Vectors) -> None:
    app = create_app(real_run)
    state = app.extensions["nlp182"]
    word = real_vectors.words[0]
    neighbours = [other for other, _ in state.queries.neighbors(state.lookup.row(word), 5)]
    state.index.unit = np.array(state.index.unit)  # a copy the test may spoil
    state.index.unit[[state.lookup.row(other) for other in neighbours[:2]]] = np.nan
    answer = app.test_client().get("/v1/map", query_string={"word": word, "k": 5})
    assert answer.status_code == 200
    points = answer.get_json()["points"]
    # the spoiled rows score nan, which ranks below every number: the next rows take their places
    following = [other for other, _ in state.queries.neighbors(state.lookup.row(word), 7)]
    assert [point["word"] for point in points] == [word, *neighbours[2:], *following[3:5]]
    assert all(np.isfinite([point["x"], point["y"], point["score"]]).all() for point in points)
