"""The query core against float64 brute force; read-only rows; evaluation in bounded memory."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nlp182.embeddings import evaluate, query
from nlp182.embeddings.vectors import Vectors
from nlp182.errors import MissingExtraError


@pytest.fixture
def store() -> tuple[np.ndarray, query.Rows]:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(3000, 24)).astype(np.float32) * rng.uniform(0.1, 5.0, size=(3000, 1)).astype(
        np.float32
    )
    matrix[7] = 0.0  # a zero vector scores 0
    return matrix, query.Rows(matrix, np.linalg.norm(matrix, axis=1))


def _unit64(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def _top(scores: np.ndarray, k: int, exclude: set[int], start: int, stop: int) -> list[int]:
    order = [i for i in np.argsort(-scores, kind="stable").tolist() if start <= i < stop and i not in exclude]
    return order[:k]


@pytest.mark.parametrize(("start", "stop"), [(0, None), (0, 500), (100, 2000)])
def test_search_equals_float64_brute_force_across_many_blocks(store, monkeypatch, start, stop) -> None:
    matrix, rows = store
    monkeypatch.setattr(query, "SCORE_BUDGET", 1024)  # 256-row blocks: the running top-k merges ~12 times
    rng = np.random.default_rng(0)
    queries = query.as_queries(rng.normal(size=(6, 24)), 24)
    exclude = [{int(i) for i in rng.integers(0, 3000, size=3)} for _ in range(6)]
    found = query.search(rows, queries, 9, exclude, start, stop)
    reference = queries.astype(np.float64) @ _unit64(matrix).T
    for q, (ids, scores) in enumerate(found):
        expected = _top(reference[q], 9, exclude[q], start, stop or 3000)
        assert ids.tolist() == expected
        np.testing.assert_allclose(scores, reference[q, expected], atol=1e-5)


@pytest.mark.parametrize("budget", [64, 10_000_000])
def test_ties_at_the_cut_keep_the_lower_rows_across_blocks(monkeypatch, budget: int) -> None:
    """Scores equal to the k-th best are taken in row order, as a full sort by (-score, row) does."""
    monkeypatch.setattr(query, "SCORE_BUDGET", budget)  # 64: many small blocks, ties across them
    rng = np.random.default_rng(5)
    matrix = rng.integers(-1, 2, size=(400, 3)).astype(np.float32)  # 26 directions: ties everywhere
    matrix[::7] = 0.0  # zero rows all score 0
    rows = query.Rows(matrix, np.linalg.norm(matrix, axis=1))
    queries = query.as_queries(matrix[[1, 2, 3]], 3)
    for k in (1, 5, 40, 150):
        found = query.search(rows, queries, k, exclude=[{1}, {2}, {3}])
        for q, (ids, _) in enumerate(found):
            scores = query.all_scores(rows, queries[q])  # the same float32 scores, sorted in full
            expected = [i for i in np.lexsort((np.arange(400), -scores)).tolist() if i != q + 1][:k]
            assert ids.tolist() == expected
            left_out = np.setdiff1d(np.arange(400), [*expected, q + 1])
            assert scores[expected[-1]] in scores[left_out], "a tie must straddle the cut to test the rule"
    words = [f"w{i}" for i in range(400)]
    zeros = Vectors(words, np.zeros((400, 3), dtype=np.float32))
    assert [w for w, _ in zeros.similar_by_vector(np.array([0.0, 0.0, 1.0]), topn=5)] == words[:5]


def test_cosmul_equals_float64_brute_force(store, monkeypatch) -> None:
    matrix, rows = store
    monkeypatch.setattr(query, "SCORE_BUDGET", 2048)
    unit = _unit64(matrix)
    questions = np.array([[10, 20, 30], [40, 50, 60], [1, 2, 3]])
    positive = rows.unit(questions[:, 1:].ravel()).reshape(3, 2, 24)
    negative = rows.unit(questions[:, 0])[:, None, :]
    found = query.search_cosmul(rows, positive, negative, 5, [set(q) for q in questions.tolist()])
    for (a, b, c), (ids, scores) in zip(questions, found, strict=True):
        shifted = [(1 + unit @ unit[i]) / 2 for i in (a, b, c)]
        reference = shifted[1] * shifted[2] / (shifted[0] + 1e-6)
        expected = _top(reference, 5, {a, b, c}, 0, 3000)
        assert ids.tolist() == expected
        np.testing.assert_allclose(scores, reference[expected], rtol=1e-5)


def test_indexer_answers_are_filtered_to_exclusions_and_a_range_is_scanned(store) -> None:
    """The index is asked for k, the excluded words and one more; its answers are filtered to the
    exclusions. It is asked again only while its last answer ties the k-th kept one (or too few
    were kept), and an all-zero query, where every row ties, never goes to it. A part of the rows
    (restrict_vocab, clip bounds) is scanned exactly: the index searches them all."""
    _, rows = store

    class Canned:
        """An index over six rows answering in a fixed order, padded with -1 as FAISS pads."""

        def __init__(self) -> None:
            self.calls: list[int] = []

        def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            self.calls.append(k)
            found = np.array([5, 9, 700, 2, 3, 8])[:k]
            ids = np.full((len(queries), k), -1)
            ids[:, : len(found)] = found
            scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
            scores[:, : len(found)] = np.linspace(0.9, 0.4, 6, dtype=np.float32)[: len(found)]
            return scores, ids

    indexer = Canned()
    ones = np.ones((1, 24), dtype=np.float32)
    ids, scores = query.search(rows, ones, 3, [{9}], indexer=indexer)[0]
    # asked for 3 + 1 excluded + 1: four kept past the exclusion, the 5th answer below the 3rd
    assert ids.tolist() == [5, 700, 2] and indexer.calls == [5]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6])
    indexer.calls.clear()
    ids, _ = query.search(rows, ones, 3, [{9, 700, 2, 3}], indexer=indexer)[0]
    assert ids.tolist() == [5, 8] and indexer.calls == [8]  # too few, but the index has no more (-1s)
    indexer.calls.clear()
    ids, _ = query.search(rows, ones, 2, None, indexer=indexer)[0]
    assert ids.tolist() == [5, 9] and indexer.calls == [3]  # its 3rd answer scores below the 2nd: done
    indexer.calls.clear()
    ids, scores = query.search(rows, np.zeros((1, 24), dtype=np.float32), 3, [{1}], indexer=indexer)[0]
    assert ids.tolist() == [0, 2, 3] and scores.tolist() == [0.0, 0.0, 0.0]  # the exact scan's answer
    indexer.calls.clear()
    ranged = query.search(rows, ones, 3, [{9}], 0, 600, indexer)[0]
    exact = query.search(rows, ones, 3, [{9}], 0, 600)[0]
    assert indexer.calls == [] and ranged[0].tolist() == exact[0].tolist()


def test_batched_analogies_equal_one_query_at_a_time(store) -> None:
    matrix, _ = store
    vectors = Vectors([f"w{i}" for i in range(len(matrix))], matrix)
    questions = np.array([[11, 12, 13], [100, 200, 300], [5, 6, 8]])
    for method, single in (("3cosadd", vectors.most_similar), ("3cosmul", vectors.most_similar_cosmul)):
        batched = evaluate.answer_analogies(vectors, questions, method, restrict_vocab=len(vectors))
        for (a, b, c), ids in zip(questions, batched, strict=True):
            one = single(positive=[f"w{b}", f"w{c}"], negative=[f"w{a}"], topn=5)
            assert [f"w{i}" for i in ids.tolist()] == [w for w, _ in one]


def test_rows_handed_out_are_read_only_and_edits_never_touch_the_file(store, tmp_path: Path) -> None:
    matrix, _ = store
    Vectors([f"w{i}" for i in range(len(matrix))], matrix).save(tmp_path)
    before = (tmp_path / "vectors.npy").read_bytes()
    mapped = Vectors.load(tmp_path)
    for row in (mapped["w3"], mapped.get_vector("w3", norm=True), mapped[3], Vectors(["a"], matrix[:1])["a"]):
        assert not row.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            row[0] = 1.0
    mapped["w3"] = np.full(24, 2.0)  # an edit copies the map into memory first
    mapped.add_vectors(["new"], np.ones((1, 24)))
    assert np.all(mapped["w3"] == 2.0) and mapped.most_similar("new", topn=1)
    assert (tmp_path / "vectors.npy").read_bytes() == before


def test_evaluation_peak_memory_stays_bounded(tmp_path: Path) -> None:
    """30k x 32 memory-mapped vectors, 600 analogies: one batch's score matrix alone would be 61 MB."""
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(30_000)]
    Vectors(words, rng.normal(size=(30_000, 32)).astype(np.float32)).save(tmp_path / "run")
    picks = rng.integers(0, 30_000, size=(600, 4))
    lines = [": section"] + [" ".join(words[i] for i in row) for row in picks]
    (tmp_path / "questions.txt").write_text("\n".join(lines) + "\n")
    vectors = Vectors.load(tmp_path / "run")
    tracemalloc.start()
    try:
        for method in evaluate.ANALOGY_METHODS:
            score = evaluate.evaluate_analogies(vectors, tmp_path / "questions.txt", method=method)
            assert score.total == 600
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"peak {peak / 2**20:.1f} MiB")
    assert peak < 32 * 2**20, f"evaluation peaked at {peak / 2**20:.0f} MiB of numpy/Python allocations"


def test_query_core_and_service_path_do_not_import_torch() -> None:
    code = (
        "import sys, nlp182.embeddings.query, nlp182.embeddings.vectors, nlp182.embeddings.evaluate, "
        "nlp182.server.queries; bad = [m for m in ('torch', 'pyarrow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_wmdistance_without_pot_names_the_extra(monkeypatch) -> None:
    vectors = Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32))
    monkeypatch.setitem(sys.modules, "ot", None)  # as if POT were not installed
    with pytest.raises(MissingExtraError, match=r"nlp182\[wmd\]") as info:
        vectors.wmdistance(["a"], ["b"])
    assert isinstance(info.value, ImportError)


def test_wmdistance_with_pot_is_the_hand_computed_transport() -> None:
    pytest.importorskip("ot")
    vectors = Vectors(["a", "b", "c"], np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32))
    # all of "a" moves to "b" (distance sqrt 2) and to "c" (distance 2), half each
    assert vectors.wmdistance(["a"], ["b", "c"]) == pytest.approx((np.sqrt(2) + 2) / 2)
    assert vectors.wmdistance(["a", "zzz"], ["a"]) == 0.0
    assert vectors.wmdistance(["zzz"], ["a"]) == float("inf")


def test_the_service_faiss_index_is_an_indexer_for_most_similar(store) -> None:
    from nlp182.server.config import IndexConfig
    from nlp182.server.index import SimilarityIndex

    matrix, _ = store
    vectors = Vectors([f"w{i}" for i in range(len(matrix))], matrix)
    for kind in ("flat", "hnsw"):
        index = SimilarityIndex.build(vectors, IndexConfig(kind=kind))
        for word in ("w5", "w900", "w2999"):
            exact = vectors.most_similar(word, topn=8)
            found = vectors.most_similar(word, topn=8, indexer=index)
            assert word not in [w for w, _ in found] and len(found) == 8
            if kind == "flat":
                assert [w for w, _ in found] == [w for w, _ in exact]
                np.testing.assert_allclose([s for _, s in found], [s for _, s in exact], atol=1e-5)
            else:  # approximate: most of the exact top 8, with exact scores for what it finds
                assert len({w for w, _ in found} & {w for w, _ in exact}) >= 6
                for w, s in found:
                    assert s == pytest.approx(vectors.similarity(word, w), abs=1e-5)


def test_an_indexer_with_restrict_vocab_answers_from_the_first_rows_exactly() -> None:
    """The first rows point away from the query word: they rank past the index's 4096 answers,
    and the restricted query returned [] (the flat index is exact)."""
    from nlp182.server.config import IndexConfig
    from nlp182.server.index import SimilarityIndex

    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(5000, 8)).astype(np.float32)
    matrix[:10] = -matrix[4000] + 0.05 * rng.normal(size=(10, 8))
    vectors = Vectors([f"w{i}" for i in range(5000)], matrix)
    index = SimilarityIndex.build(vectors, IndexConfig(kind="flat"))
    exact = vectors.most_similar("w4000", topn=3, restrict_vocab=10)
    assert len(exact) == 3
    assert vectors.most_similar("w4000", topn=3, restrict_vocab=10, indexer=index) == exact
    assert vectors.most_similar("w5", topn=3, clip_start=4000, indexer=index) == vectors.most_similar(
        "w5", topn=3, clip_start=4000)


def test_threads_querying_a_fresh_store_share_one_build_of_its_caches(monkeypatch) -> None:
    """Eight threads ask a new store for its lookup and unit rows at once: one build of each."""
    from nlp182.embeddings import vectors as vectors_module

    builds = {"lookup": 0, "unit": 0}
    real_lookup, real_unit = vectors_module.WordLookup, Vectors.get_normed_vectors

    def counted_lookup(*args):
        builds["lookup"] += 1
        time.sleep(0.05)  # a big vocabulary's sort: long enough for the others to arrive
        return real_lookup(*args)

    def counted_unit(self):
        builds["unit"] += 1
        time.sleep(0.05)
        return real_unit(self)

    monkeypatch.setattr(vectors_module, "WordLookup", counted_lookup)
    monkeypatch.setattr(Vectors, "get_normed_vectors", counted_unit)
    store = Vectors([f"w{i}" for i in range(50)], np.random.default_rng(0).normal(size=(50, 4)))
    start, answers = threading.Barrier(8), []

    def query_fresh_store() -> None:
        start.wait()
        answers.append((store.with_prefix("w1", limit=2), store.normed.shape))

    threads = [threading.Thread(target=query_fresh_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == {"lookup": 1, "unit": 1}
    assert answers == [(["w1", "w10"], (50, 4))] * 8
