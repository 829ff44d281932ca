"""gensim 4.4's own KeyedVectors test cases, replayed against ``Vectors`` on gensim's shipped files.

Every case below is one behaviour from ``gensim/test/test_keyedvectors.py``, from the KeyedVectors
calls of ``gensim/test/test_word2vec.py``, or from the calls gensim tutorials use daily (the
everyday calls). Each case runs the same code on gensim's ``KeyedVectors`` and on ``nlp182``'s ``Vectors`` and
the answers must agree: same words in the same order, numbers within 1e-5, and the same exception
class (ours may be a subclass). The few cases where nlp182 differs on purpose are listed in
``DIFFERENCES`` with the reason (also in the docs' guide ``docs/howto/gensim.md``); their tests check that
the difference is still there and that our answer is the documented one.
"""

from __future__ import annotations

import functools
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.models.keyedvectors import pseudorandom_weak_vector
from gensim.test.test_keyedvectors import save_dict_to_word2vec_formated_file
from gensim.test.utils import datapath

from nlp182.embeddings import evaluate
from nlp182.embeddings.vectors import Vectors

EUCLIDEAN = datapath("euclidean_vectors.bin")
PRE_KV = datapath("word2vec_pre_kv_c")
LEE = datapath("lee_fasttext.vec")
UNICODE_MODEL = datapath("w2v_keyedvectors_load_test.modeldata")
UNICODE_VOCAB = datapath("w2v_keyedvectors_load_test.vocab")
OLD_KV = datapath("old_keyedvectors_320.dat")
ANALOGIES = datapath("questions-words.txt")
WORDSIM = datapath("wordsim353.tsv")
ENTITIES = [f"___some_entity{i}_not_present_in_keyed_vectors___" for i in range(5)]


@dataclass(frozen=True)
class Side:
    """One implementation: gensim's KeyedVectors or nlp182's Vectors, behind the same few calls."""

    name: str
    cls: type

    @property
    def ours(self) -> bool:
        return self.cls is Vectors

    def empty(self, dim: int) -> Any:
        return Vectors.empty(dim) if self.ours else KeyedVectors(dim)

    def load(self, *args: Any, **kwargs: Any) -> Any:
        return self.cls.load_word2vec_format(*args, **kwargs)

    def euclidean(self) -> Any:
        return self.load(EUCLIDEAN, binary=True)

    def load_kv(self, path: str | Path) -> Any:
        return Vectors.load_gensim(path) if self.ours else KeyedVectors.load(str(path))

    def pairs(self, kv: Any, path: str, **kwargs: Any) -> tuple[float, ...]:
        """gensim's method on both sides (and, for ours, the module function it wraps)."""
        pearson, spearman, oov = kv.evaluate_word_pairs(path, **kwargs)
        if self.ours:
            score = evaluate.evaluate_word_pairs(kv, path, **kwargs)
            assert (score.pearson, score.spearman, score.oov_ratio) == (pearson[0], spearman[0], oov)
        return pearson[0], pearson[1], spearman[0], spearman[1], oov

    def analogies(self, kv: Any, path: str, **kwargs: Any) -> tuple[float, list[dict[str, Any]]]:
        """gensim's method on both sides: the accuracy and every section's right and wrong questions."""
        accuracy, sections = kv.evaluate_word_analogies(path, **kwargs)
        if self.ours:
            score = evaluate.evaluate_analogies(kv, path, **kwargs)
            assert (score.accuracy, score.correct) == (accuracy, len(sections[-1]["correct"]))
        return accuracy, sections


GENSIM, OURS = Side("gensim", KeyedVectors), Side("nlp182", Vectors)


@dataclass(frozen=True)
class Raised:
    """A case's outcome when it raised."""

    error: type[BaseException]


CASES: dict[str, Callable[[Side, Path], Any]] = {}


def case(function: Callable[[Side, Path], Any]) -> Callable[[Side, Path], Any]:
    CASES[function.__name__] = function
    return function


def outcome(function: Callable[[Side, Path], Any], side: Side, tmp: Path) -> Any:
    folder = tmp / side.name
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(side, folder)
        except Exception as exc:
            return Raised(type(exc))


def same(ours: Any, theirs: Any) -> bool:
    """Equal answers: words and order exactly, numbers within 1e-5, our error a subclass of theirs."""
    if isinstance(theirs, Raised):
        return isinstance(ours, Raised) and issubclass(ours.error, theirs.error)
    if isinstance(ours, Raised):
        return False
    if isinstance(theirs, np.ndarray) or isinstance(ours, np.ndarray):
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        if ours.dtype.kind in "fc" or theirs.dtype.kind in "fc":
            return ours.shape == theirs.shape and np.allclose(ours, theirs, atol=1e-5, equal_nan=True)
        return ours.shape == theirs.shape and bool(np.all(ours == theirs))
    if isinstance(theirs, (list, tuple)):
        return (
            isinstance(ours, (list, tuple))
            and len(ours) == len(theirs)
            and all(same(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(theirs, dict):
        return (
            isinstance(ours, dict)
            and ours.keys() == theirs.keys()
            and all(same(ours[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, (float, np.floating)) and not isinstance(theirs, bool):
        return isinstance(ours, (float, int, np.number)) and abs(float(ours) - float(theirs)) <= 1e-5
    if isinstance(theirs, (np.integer, np.bool_)):
        theirs = theirs.item()
    if isinstance(ours, (np.integer, np.bool_)):
        ours = ours.item()
    return ours == theirs


# ---------------------------------------------------------------- gensim/test/test_keyedvectors.py
@case
def most_similar(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=5)


@case
def most_similar_rows_of_a_matrix(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar(positive=np.asarray(kv.vectors[0:5]))


def _parameter_forms(method: Callable[..., Any]) -> list[Any]:
    """The four ways gensim's tests pass one positive and one negative word."""
    partial = functools.partial(method, topn=5)
    keywords = [{"positive": "war", "negative": "peace"}, {"positive": ["war"], "negative": ["peace"]}]
    return [partial("war", "peace"), partial(["war"], ["peace"])] + [partial(**k) for k in keywords]


@case
def most_similar_parameter_types(side: Side, tmp: Path) -> Any:
    return _parameter_forms(side.euclidean().most_similar)


@case
def most_similar_cosmul_parameter_types(side: Side, tmp: Path) -> Any:
    return _parameter_forms(side.euclidean().most_similar_cosmul)


@case
def vectors_for_all_list(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    words = [
        "conflict",
        "administration",
        "terrorism",
        "an out-of-vocabulary word",
        "another out-of-vocabulary word",
    ]
    picked = kv.vectors_for_all(words)
    return len(picked), picked.index_to_key, picked["conflict"]


@case
def vectors_for_all_with_copy_vecattrs(side: Side, tmp: Path) -> Any:
    return side.euclidean().vectors_for_all(["conflict"], copy_vecattrs=True).get_vecattr("conflict", "count")


@case
def vectors_for_all_without_copy_vecattrs(side: Side, tmp: Path) -> Any:
    return (
        side.euclidean().vectors_for_all(["conflict"], copy_vecattrs=False).get_vecattr("conflict", "count")
    )


@case
def most_similar_topn_lengths(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return len(kv.most_similar("war", topn=5)), len(kv.most_similar("war", topn=10))


@case
def most_similar_topn_none_gives_every_score(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=None)


@case
def most_similar_topn_zero(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=0)


@case
def most_similar_topn_numpy_zero(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=np.uint8(0))


@case
def relative_cosine_similarity_of_synonyms(side: Side, tmp: Path) -> Any:
    return side.euclidean().relative_cosine_similarity("good", "nice", 10)


@case
def relative_cosine_similarity_of_unrelated_words(side: Side, tmp: Path) -> Any:
    return side.euclidean().relative_cosine_similarity("good", "worst", 10)


@case
def most_similar_unknown_word_raises_key_error(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("not_in_vocab")


@case
def most_similar_restrict_vocab(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=5, restrict_vocab=5)


@case
def most_similar_with_vector_input(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar([kv["war"]], topn=5)


@case
def most_similar_to_given(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar_to_given("war", ["terrorism", "call", "waging"])


@case
def similar_by_word(side: Side, tmp: Path) -> Any:
    return side.euclidean().similar_by_word("war", topn=5)


@case
def similar_by_vector(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.similar_by_vector(kv["war"], topn=5)


@case
def distance(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.distance("war", "conflict"), kv.distance("war", "war")


@case
def similarity(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.similarity("war", "war"), kv.similarity("war", "conflict")


@case
def closer_than_itself(side: Side, tmp: Path) -> Any:
    return side.euclidean().closer_than("war", "war")


@case
def closer_than(side: Side, tmp: Path) -> Any:
    return side.euclidean().closer_than("war", "terrorism")


@case
def rank(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.rank("war", "war"), kv.rank("war", "terrorism")


def _random_vectors(count: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=dim) for _ in range(count)]


@case
def add_single(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    vectors = _random_vectors(5, kv.vector_size)
    for entity, vector in zip(ENTITIES, vectors, strict=True):
        kv.add_vectors(entity, vector)
    empty = side.empty(kv.vector_size)
    for entity, vector in zip(ENTITIES, vectors, strict=True):
        empty.add_vectors(entity, vector)
    return (
        len(kv),
        [kv[e] for e in ENTITIES],
        [empty[e] for e in ENTITIES],
        kv.most_similar(ENTITIES[0], topn=3),
    )


@case
def add_multiple(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    vectors = _random_vectors(5, kv.vector_size)
    kv.add_vectors(ENTITIES, vectors, replace=False)
    empty = side.empty(kv.vector_size)
    empty[ENTITIES] = vectors
    return len(kv), [kv[e] for e in ENTITIES], len(empty), [empty[e] for e in ENTITIES]


@case
def add_keeps_float32(side: Side, tmp: Path) -> Any:
    kv = side.empty(2)
    kv.add_vectors(["a"], np.array([1.0, 1.0], dtype=np.float64).reshape(1, -1))
    return kv.vectors.dtype.name


@case
def set_item(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    sizes = [len(kv)]
    new = _random_vectors(7, kv.vector_size, seed=1)
    kv["___some_new_entity___"] = new[0]
    sizes.append(len(kv))
    kv["war"] = new[1]
    sizes.append(len(kv))
    entities = ["war", "___some_new_entity1___", "___some_new_entity2___", "terrorism", "conflict"]
    kv[entities] = new[2:]
    sizes.append(len(kv))
    return sizes, [kv[e] for e in ["___some_new_entity___", *entities]], kv.most_similar("war", topn=3)


@case
def unicode_errors_strict(side: Side, tmp: Path) -> Any:
    return side.load(UNICODE_MODEL, fvocab=UNICODE_VOCAB, binary=False, unicode_errors="strict")


def _unicode(side: Side, errors: str, suffix: str) -> Any:
    kv = side.load(UNICODE_MODEL, fvocab=UNICODE_VOCAB, binary=False, unicode_errors=errors)
    words = ["ありがとう" + suffix, "どういたしまして" + suffix]
    return (
        [kv.get_vecattr(w, "count") for w in words],
        [kv.key_to_index[w] for w in words],
        [kv.get_vector(w) for w in words],
    )


@case
def unicode_errors_replace(side: Side, tmp: Path) -> Any:
    return _unicode(side, "replace", "\ufffd")


@case
def unicode_errors_ignore(side: Side, tmp: Path) -> Any:
    return _unicode(side, "ignore", "")


def _weak_random(side: Side) -> Any:
    kv = side.empty(100)
    keys = [f"k{i}" for i in range(20)]
    kv.add_vectors(keys, [pseudorandom_weak_vector(100, seed_string=key) for key in keys])
    return kv


@case
def save_reload_text_and_binary(side: Side, tmp: Path) -> Any:
    kv = _weak_random(side)
    answers = []
    for binary in (False, True):
        kv.save_word2vec_format(str(tmp / f"kv{binary}"), binary=binary)
        back = side.load(str(tmp / f"kv{binary}"), binary=binary)
        answers.append((back.index_to_key == kv.index_to_key, bool(np.all(back.vectors == kv.vectors))))
    return answers


@case
def no_header(side: Side, tmp: Path) -> Any:
    kv = _weak_random(side)
    kv.save_word2vec_format(str(tmp / "glove.txt"), binary=False, write_header=False)
    back = side.load(str(tmp / "glove.txt"), binary=False, no_header=True)
    return back.index_to_key == kv.index_to_key, bool(np.all(back.vectors == kv.vectors))


MEAN_KEYS = ["conflict", "administration", "terrorism", "call", "an out-of-vocabulary word"]


@case
def get_mean_vector(side: Side, tmp: Path) -> Any:
    return side.euclidean().get_mean_vector(MEAN_KEYS)


@case
def get_mean_vector_weighted(side: Side, tmp: Path) -> Any:
    return side.euclidean().get_mean_vector(MEAN_KEYS, [1, 2, 3, 1, 2])


@case
def get_mean_vector_raw(side: Side, tmp: Path) -> Any:
    return side.euclidean().get_mean_vector(MEAN_KEYS, pre_normalize=False)


@case
def gensim_320_saved_keyed_vectors(side: Side, tmp: Path) -> Any:
    kv = side.load_kv(OLD_KV)
    return kv.get_vector("computer"), kv.index_to_key, kv.get_vecattr("computer", "count")


W2V_DICTS = (
    {"abc": [1, 2, 3], "cde": [4, 5, 6], "def": [7, 8, 9]},
    {"abc": [1, 2, 3], "cdefg": [4, 5, 6], "d": [7, 8, 9]},
)


def _binary_dicts(side: Side, tmp: Path, dicts: tuple[dict, ...], limits: tuple[int | None, ...]) -> Any:
    answers = []
    for number, w2v in enumerate(dicts):
        path = str(tmp / f"w2v{number}")
        save_dict_to_word2vec_formated_file(path, w2v)
        for limit in limits:
            kv = side.load(path, binary=True, limit=limit)
            answers.append({word: list(kv[word]) for word in kv.index_to_key})
    return answers


@case
def load_binary_basic(side: Side, tmp: Path) -> Any:
    return _binary_dicts(side, tmp, W2V_DICTS, (None,))


@case
def load_binary_limit(side: Side, tmp: Path) -> Any:
    return _binary_dicts(side, tmp, W2V_DICTS, (1, 2))


@case
def load_binary_strips_leading_newlines(side: Side, tmp: Path) -> Any:
    return _binary_dicts(
        side, tmp, ({"\nabc": [1, 2, 3], "cdefdg": [4, 5, 6], "\n\ndef": [7, 8, 9]},), (None, 1)
    )


# ---------------------------------------------------------------- KeyedVectors calls of test_word2vec.py
@case
def load_pre_keyed_vectors_c_format(side: Side, tmp: Path) -> Any:
    kv = side.load(PRE_KV)
    return kv.vectors.shape[0] == len(kv), kv.index_to_key, kv.vectors


@case
def pre_kv_most_similar(side: Side, tmp: Path) -> Any:
    kv = side.load(PRE_KV)
    return [kv.most_similar(word, topn=10) for word in kv.index_to_key[5:200:20]]


@case
def persistence_binary_then_unit_normalize_all(side: Side, tmp: Path) -> Any:
    kv = side.load(PRE_KV)
    word = kv.index_to_key[3]
    kv.save_word2vec_format(str(tmp / "kv.bin"), binary=True)
    back = side.load(str(tmp / "kv.bin"), binary=True)
    normed = side.load(str(tmp / "kv.bin"), binary=True)
    normed.unit_normalize_all()
    return back[word], normed[word], kv.get_vector(word, norm=True)


@case
def load_limit(side: Side, tmp: Path) -> Any:
    return len(side.load(PRE_KV, limit=3).vectors)


@case
def load_half_precision(side: Side, tmp: Path) -> Any:
    full, half = side.load(PRE_KV), side.load(PRE_KV, datatype=np.float16)
    return full.vectors.nbytes == 2 * half.vectors.nbytes, half.vectors.dtype.name


def _wrong_count(side: Side, tmp: Path, binary: bool) -> Any:
    path = tmp / "short"
    side.load(PRE_KV, limit=12).save_word2vec_format(str(path), binary=binary)
    with path.open("r+b") as handle:
        handle.write(b"13")  # promise one vector more than the file holds
    return side.load(str(path), binary=binary)


@case
def too_short_binary_file_raises_eof(side: Side, tmp: Path) -> Any:
    return _wrong_count(side, tmp, True)


@case
def too_short_text_file_raises_eof(side: Side, tmp: Path) -> Any:
    return _wrong_count(side, tmp, False)


@case
def persistence_with_vocabulary_counts(side: Side, tmp: Path) -> Any:
    kv = side.load(PRE_KV)
    kv.set_vecattr(kv.index_to_key[7], "count", 10**6)
    kv.save_word2vec_format(str(tmp / "kv.bin"), str(tmp / "kv.vocab"), binary=True)
    back = side.load(str(tmp / "kv.bin"), str(tmp / "kv.vocab"), binary=True)
    return back.index_to_key[:3], [back.get_vecattr(w, "count") for w in back.index_to_key[:50]]


@case
def n_similarity(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return (
        kv.n_similarity(["war", "peace"], ["peace", "war"]),
        kv.n_similarity(["war"], ["peace"]),
        kv.similarity("war", "peace"),
        kv.n_similarity(["war", "good", "nonword"], ["peace", "bad"]),
    )


@case
def n_similarity_of_nothing_raises(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return [
        outcome(lambda s, t, a=a, b=b: kv.n_similarity(a, b), side, tmp)
        for a, b in ((["war", "peace"], []), ([], ["war", "peace"]), ([], []))
    ]


@case
def similar_by_equals_most_similar(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return (
        kv.similar_by_word("peace", topn=10) == kv.most_similar(positive="peace", topn=10),
        kv.similar_by_vector(kv["peace"], topn=10) == kv.most_similar([kv["peace"]], topn=10),
    )


@case
def most_similar_unit_vector_finds_itself(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar(positive=[kv.get_vector("peace", norm=True)], topn=11)


@case
def most_similar_cosmul(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar_cosmul("peace", topn=10)


@case
def most_similar_cosmul_unit_vector(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar_cosmul(positive=[kv.get_vector("peace", norm=True)], topn=11)


@case
def get_index_of_words_and_rows(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return [kv.get_index(w) for w in ("war", "peace", 17, np.int64(40))]


@case
def evaluate_word_analogies(side: Side, tmp: Path) -> Any:
    return side.analogies(side.load(LEE), ANALOGIES)


@case
def evaluate_word_pairs(side: Side, tmp: Path) -> Any:
    return side.pairs(side.load(LEE), WORDSIM)


@case
def evaluate_word_pairs_dummy4unknown(side: Side, tmp: Path) -> Any:
    return side.pairs(side.load(LEE), WORDSIM, dummy4unknown=True)


@case
def evaluate_word_pairs_case_sensitive(side: Side, tmp: Path) -> Any:
    return side.pairs(side.load(LEE), WORDSIM, case_insensitive=False)


@case
def evaluate_word_analogies_dummy4unknown(side: Side, tmp: Path) -> Any:
    return side.analogies(side.load(LEE), ANALOGIES, dummy4unknown=True)


@case
def evaluate_word_analogies_case_sensitive_restricted(side: Side, tmp: Path) -> Any:
    return side.analogies(side.load(LEE), ANALOGIES, case_insensitive=False, restrict_vocab=1000)


@case
def wmdistance(side: Side, tmp: Path) -> Any:
    pytest.importorskip("ot")
    kv = side.load(LEE)
    first, second = (
        ["human", "interface", "computer"],
        ["survey", "user", "computer", "system", "response", "time"],
    )
    return kv.wmdistance(first, second), kv.wmdistance(second, first), kv.wmdistance(second, second)


# ---------------------------------------------------------------- the everyday calls of gensim's tutorials
@case
def doesnt_match_skips_unknown_words(side: Side, tmp: Path) -> Any:
    return side.euclidean().doesnt_match(["war", "peace", "conflict", "terrorism", "breakfast", "notaword"])


@case
def doesnt_match_one_known_word(side: Side, tmp: Path) -> Any:
    return side.euclidean().doesnt_match(["war", "notaword"])


@case
def get_index_default(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.get_index("notaword", default=-1), kv.get_index(len(kv), default=-7)


@case
def integer_keys_address_rows(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv[3], 3 in kv, len(kv) in kv, kv.similarity(3, "war"), kv.most_similar(3, topn=3)


@case
def list_of_keys(side: Side, tmp: Path) -> Any:
    return side.euclidean()[["war", "peace", "conflict"]]


@case
def distances(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.distances("war"), kv.distances("war", ["peace", "conflict"]), kv.distances(kv["good"], ["war"])


@case
def cosine_similarities(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return side.cls.cosine_similarities(kv["war"], kv[["peace", "good", "conflict"]])


@case
def rank_by_centrality(side: Side, tmp: Path) -> Any:
    return side.euclidean().rank_by_centrality(["war", "peace", "conflict", "good", "breakfast"])


@case
def words_closer_than(side: Side, tmp: Path) -> Any:
    return side.euclidean().words_closer_than("war", "israel")


@case
def similar_by_vector_restrict_vocab(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.similar_by_vector(kv["war"], topn=5, restrict_vocab=300)


@case
def most_similar_words_and_vectors_mixed(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar([kv["war"], "peace"], ["good"], topn=7)


@case
def most_similar_cosmul_words_and_vectors_mixed(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar_cosmul([kv.get_vector("war", norm=True), "peace"], ["good"], topn=7)


@case
def most_similar_weighted_terms(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar([("war", 2.0), "peace"], [("good", -0.5)], topn=7)


@case
def most_similar_clip_range(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar("war", topn=5, clip_start=100, clip_end=1000)


@case
def vecattr_and_sort_by_descending_frequency(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    for rank_, word in enumerate(["peace", "war", "good"]):
        kv.set_vecattr(word, "count", 10**6 - rank_)
    kv.sort_by_descending_frequency()
    return kv.index_to_key[:6], kv.get_vecattr("war", "count"), kv.most_similar("war", topn=3)


@case
def norms_and_normed_vectors(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    kv.fill_norms()
    return kv.norms, kv.get_normed_vectors(), kv.get_vector("war", norm=True)


@case
def save_with_prefix(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    kv.save_word2vec_format(str(tmp / "prefixed.bin"), binary=True, prefix="en/")
    back = KeyedVectors.load_word2vec_format(str(tmp / "prefixed.bin"), binary=True)
    return back.index_to_key[:50], back.vectors


@case
def read_gensim_saved_keyed_vectors(side: Side, tmp: Path) -> Any:
    source = KeyedVectors.load_word2vec_format(LEE)
    source.set_vecattr("government", "count", 12345)
    source.save(str(tmp / "inline.kv"))
    source.save(str(tmp / "beside.kv"), sep_limit=0)  # vectors in beside.kv.vectors.npy
    inline, beside = side.load_kv(tmp / "inline.kv"), side.load_kv(tmp / "beside.kv")
    return (
        inline.index_to_key,
        inline.vectors,
        inline.get_vecattr("government", "count"),
        beside.vectors,
        beside.most_similar("government", topn=5),
    )


@case
def lee_analogy_both_objectives(side: Side, tmp: Path) -> Any:
    kv = side.load(LEE)
    return (
        kv.most_similar(["Australia", "Palestinian"], ["Australian"], topn=10),
        kv.most_similar_cosmul(["Australia", "Palestinian"], ["Australian"], topn=10),
    )


@case
def load_compressed_text(side: Side, tmp: Path) -> Any:
    import gzip

    with open(LEE, "rb") as source, gzip.open(tmp / "lee.vec.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    kv = side.load(str(tmp / "lee.vec.gz"), limit=500)
    return kv.index_to_key, kv.vectors


# ---------------------------------------------------------------- where nlp182 differs on purpose
@case
def most_similar_cosmul_restrict_vocab(side: Side, tmp: Path) -> Any:
    return side.euclidean().most_similar_cosmul("war", topn=5, restrict_vocab=50)


@case
def set_item_with_an_integer_key(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    kv[3] = np.ones(kv.vector_size)
    return len(kv), kv.index_to_key[3] if side.ours else kv.index_to_key[-1]


@case
def zero_vector_scores(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    kv.add_vectors(["zero"], np.zeros((1, kv.vector_size)))
    return kv.most_similar("war", topn=None)[-1]


class _ExactIndexer:
    """An index over unit rows speaking both protocols: gensim's ``most_similar`` and our ``search``."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv
        self.unit = kv.get_normed_vectors()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self.unit.T
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, ids, axis=1), ids

    def most_similar(self, vector: np.ndarray, topn: int) -> list[tuple[str, float]]:
        scores, ids = self.search(vector[None, :], topn)
        return [(self.kv.index_to_key[i], float(s)) for i, s in zip(ids[0], scores[0], strict=True)]


@case
def indexer_answers_most_similar(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar("war", topn=5, indexer=_ExactIndexer(kv))


@case
def indexer_with_restrict_vocab(side: Side, tmp: Path) -> Any:
    kv = side.euclidean()
    return kv.most_similar(kv.index_to_key[600], topn=3, restrict_vocab=20, indexer=_ExactIndexer(kv))


# ---------------------------------------------------------------- gensim's keyword names and edge cases
@case
def gensim_keyword_names(side: Side, tmp: Path) -> Any:
    kv = side.cls.load_word2vec_format(fname=EUCLIDEAN, binary=True)
    kv.save_word2vec_format(fname=str(tmp / "kw.txt"), binary=False)
    kv.set_vecattr("war", "rating", val=3)
    return (
        kv.similar_by_word(word="war", topn=3),
        kv.words_closer_than(word1="war", word2="peace")[:5],
        kv.get_vecattr("war", "rating"),
        side.load(str(tmp / "kw.txt")).index_to_key[:5],
        kv.word_vec("war").tolist()[:3],
    )


@case
def a_file_of_no_words_loads_empty(side: Side, tmp: Path) -> Any:
    (tmp / "empty.txt").write_bytes(b"0 3\n")
    text, binary = side.load(str(tmp / "empty.txt")), side.load(str(tmp / "empty.txt"), binary=True)
    return len(text), text.vector_size, len(binary)


@case
def limit_zero_reads_every_word(side: Side, tmp: Path) -> Any:
    return len(side.load(EUCLIDEAN, binary=True, limit=0))


@case
def float64_text_keeps_its_precision(side: Side, tmp: Path) -> Any:
    kv = side.load(datapath("high_precision.kv.txt"), datatype=np.float64)
    kv.save_word2vec_format(str(tmp / "f64.txt"))
    return side.load(str(tmp / "f64.txt"), datatype=np.float64).vectors


@case
def no_break_space_inside_a_word(side: Side, tmp: Path) -> Any:
    (tmp / "nbsp.txt").write_bytes("2 2\na\u00a0b 1 2\nc 3 4\n".encode())
    kv = side.load(str(tmp / "nbsp.txt"))
    return kv.index_to_key, kv.similarity("a\u00a0b", "c")


@case
def pointwise_calls_see_vectors_edited_in_place(side: Side, tmp: Path) -> Any:
    kv = side.empty(4)
    kv.add_vectors(["a", "b", "c"], np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]], dtype=np.float32))
    kv.fill_norms()
    kv.vectors[1] *= 10
    return kv.similarity("a", "b"), kv.distances("a", ["b", "c"]), kv.rank("a", "c")


@case
def init_sims_replace_makes_unit_vectors(side: Side, tmp: Path) -> Any:
    kv = side.load(EUCLIDEAN, binary=True)
    kv.init_sims(replace=True)
    return np.linalg.norm(kv.vectors[:10], axis=1)


@case
def evaluate_word_analogies_cosmul(side: Side, tmp: Path) -> Any:
    return side.load(LEE).evaluate_word_analogies(ANALOGIES, similarity_function="most_similar_cosmul")


@case
def nan_in_a_vector(side: Side, tmp: Path) -> Any:
    kv = side.empty(3)
    kv.add_vectors(["a", "b", "c"], np.array([[1, 0, 0], [np.nan, 1, 0], [0, 1, 1]], dtype=np.float32))
    return kv.most_similar("a", topn=2)


@case
def a_word_in_another_canonical_unicode_form(side: Side, tmp: Path) -> Any:
    kv = side.empty(3)
    kv.add_vectors(["caf\u00e9", "tea", "cup"], np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32))
    (tmp / "pairs.tsv").write_text("cafe\u0301\ttea\t8\ncafe\u0301\tcup\t2\ntea\tcup\t5\n")
    return "cafe\u0301" in kv, kv.evaluate_word_pairs(str(tmp / "pairs.tsv"))[2]


@case
def a_pairs_file_in_the_official_simlex_layout(side: Side, tmp: Path) -> Any:
    kv = side.empty(3)
    kv.add_vectors(["old", "new", "cup"], np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32))
    (tmp / "SimLex-999.txt").write_text(
        "word1\tword2\tPOS\tSimLex999\tconc(w1)\tconc(w2)\n"
        "old\tnew\tA\t1.58\t2.72\t2.81\nold\tcup\tN\t0.4\t2.72\t4.9\nnew\tcup\tN\t0.9\t2.81\t4.9\n"
    )
    return kv.evaluate_word_pairs(str(tmp / "SimLex-999.txt"))


@case
def a_pair_scored_nan(side: Side, tmp: Path) -> Any:
    kv = side.empty(3)
    kv.add_vectors(["old", "new", "cup"], np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32))
    (tmp / "pairs.tsv").write_text("old\tnew\t8\nold\tcup\tnan\nnew\tcup\t5\nold\tcup\t1\n")
    return kv.evaluate_word_pairs(str(tmp / "pairs.tsv"))


DIFFERENCES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "unicode_errors_strict": (
        "a word that does not decode raises nlp182.errors.FileFormatError (a ValueError, like gensim's "
        "UnicodeDecodeError) naming the file, the line and the unicode_errors option, instead of a bare "
        "UnicodeDecodeError",
        lambda ours: isinstance(ours, Raised) and issubclass(ours.error, ValueError),
    ),
    "most_similar_cosmul_restrict_vocab": (
        "gensim 4.4 accepts restrict_vocab in most_similar_cosmul and ignores it; nlp182 applies it",
        lambda ours: len(ours) == 5,
    ),
    "set_item_with_an_integer_key": (
        "an integer key addresses a row when setting too (gensim adds a new key 3)",
        lambda ours: ours[0] == 2747,
    ),
    "zero_vector_scores": (
        "a zero vector scores 0 instead of NaN (no division by a zero norm)",
        lambda ours: ours == 0.0,
    ),
    "evaluate_word_analogies_cosmul": (
        "similarity_function='most_similar_cosmul' answers with 3CosMul (gensim 4.4 takes the argument "
        "and answers with 3CosAdd)",
        lambda ours: not isinstance(ours, Raised) and ours[0] > 0,
    ),
    "nan_in_a_vector": (
        "a vector holding NaN or inf is refused with an error naming its word (gensim stores it and its "
        "answers hold NaN or leave rows out)",
        lambda ours: isinstance(ours, Raised) and issubclass(ours.error, ValueError),
    ),
    "indexer_answers_most_similar": (
        "an indexer speaks search(queries, k) -> (scores, ids), like the service's FAISS index, and its "
        "answers leave the query words out as the exact search does (gensim returns the indexer's list "
        "as is, query word included)",
        lambda ours: not isinstance(ours, Raised) and ours[0][0] != "war" and len(ours) == 5,
    ),
    "indexer_with_restrict_vocab": (
        "restrict_vocab with an indexer searches the first rows exactly (gensim ignores restrict_vocab "
        "when given an indexer; the index alone returned no answer when none of its nearest rows was "
        "among the first)",
        lambda ours: not isinstance(ours, Raised) and len(ours) == 3,
    ),
    "a_word_in_another_canonical_unicode_form": (
        "a word in another Unicode normal form (NFC, NFD or NFKC: the same text) is the word, in lookups "
        "and evaluation files (gensim compares code points: an NFD 'cafe' + U+0301 is out of vocabulary)",
        lambda ours: ours == (True, 0.0),
    ),
    "a_pairs_file_in_the_official_simlex_layout": (
        "a pairs file with more columns than word1, word2, score (the official SimLex-999, WordSim-353's "
        "set1.tab, Rare Words, SimVerb) is read, the score column found by its header name or as the "
        "first number after the words (gensim skips every line and answers NaN)",
        lambda ours: not isinstance(ours, Raised) and ours[1][0] == pytest.approx(1.0) and ours[2] == 0,
    ),
    "a_pair_scored_nan": (
        "a pair whose score is not a finite number (nan, inf) is skipped as a malformed line (gensim "
        "keeps it, and both correlations are NaN)",
        lambda ours: not isinstance(ours, Raised) and ours[1][0] == pytest.approx(1.0),
    ),
}
GUIDE_PHRASES = {  # how the guide docs/howto/gensim.md names each difference
    "unicode_errors_strict": "Strict decoding error",
    "most_similar_cosmul_restrict_vocab": "`most_similar_cosmul(restrict_vocab=)` is applied",
    "set_item_with_an_integer_key": "Integer keys always address rows",
    "zero_vector_scores": "A zero vector scores 0",
    "indexer_answers_most_similar": "`indexer=` speaks",
    "evaluate_word_analogies_cosmul": "`similarity_function=\"most_similar_cosmul\"` is 3CosMul",
    "indexer_with_restrict_vocab": "`restrict_vocab=` with `indexer=` is applied",
    "nan_in_a_vector": "NaN or inf is refused",
    "a_word_in_another_canonical_unicode_form": "A word in another Unicode normal form is the word",
    "a_pairs_file_in_the_official_simlex_layout": "Published pairs files with more columns are read",
    "a_pair_scored_nan": "A pair scored NaN is skipped",
}
EQUAL = [name for name in CASES if name not in DIFFERENCES]
RAISING = {  # cases whose expected answer is an exception
    "most_similar_unknown_word_raises_key_error",
    "too_short_binary_file_raises_eof",
    "too_short_text_file_raises_eof",
}


@pytest.mark.parametrize("name", EQUAL)
def test_behaviour_equals_gensim(name: str, tmp_path: Path) -> None:
    theirs = outcome(CASES[name], GENSIM, tmp_path)
    ours = outcome(CASES[name], OURS, tmp_path)
    both_raised = isinstance(theirs, Raised) and isinstance(ours, Raised)
    assert name in RAISING or not both_raised, f"{name} raised on both sides: {ours}, {theirs}"
    assert same(ours, theirs), f"{name}: nlp182 gave {ours!r}, gensim {theirs!r}"


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_deliberate_difference_is_documented_and_still_there(name: str, tmp_path: Path) -> None:
    reason, expected = DIFFERENCES[name]
    theirs = outcome(CASES[name], GENSIM, tmp_path)
    ours = outcome(CASES[name], OURS, tmp_path)
    assert not same(ours, theirs), f"{name} now equals gensim: move it to the equal cases"
    assert expected(ours), f"{name}: {ours!r} is not what the documented difference says ({reason})"
    guide = (Path(__file__).parents[2] / "docs" / "howto" / "gensim.md").read_text(encoding="utf-8")
    section = guide.split("## Where nlp182 differs on purpose", 1)[1].split("\n## ", 1)[0]
    assert f"**{GUIDE_PHRASES[name]}" in section, f"docs/howto/gensim.md does not list {name} as a difference"


def test_replay_covers_at_least_60_equal_behaviours() -> None:
    assert len(EQUAL) >= 60 and len(DIFFERENCES) <= 12, (len(EQUAL), len(DIFFERENCES))
    guide = (Path(__file__).parents[2] / "docs" / "howto" / "gensim.md").read_text(encoding="utf-8")
    assert f"{len(EQUAL)} behaviours give gensim's answers, {len(DIFFERENCES)} differ on purpose" in guide


def test_the_store_follows_gensim_where_users_edit_it_or_reach_its_edges() -> None:
    """Assigning ``vectors`` left queries on the old matrix and ``norms = None`` raised; a float set
    into an int attribute was cut to 0; rows near 1e-24 scored 0 (float32 norms underflowed); clip
    bounds outside the vocabulary raised. Each now answers as gensim 4 does."""
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(50)]
    first, second = rng.standard_normal((2, 50, 8)).astype(np.float32)
    ours, theirs = Vectors(words, first), KeyedVectors(8)
    theirs.add_vectors(words, first)
    ours.most_similar("w1")
    ours.vectors, theirs.vectors = second, second.copy()
    theirs.fill_norms(force=True)
    nearest = [w for w, _ in theirs.most_similar("w1", topn=5)]
    assert [w for w, _ in ours.most_similar("w1", topn=5)] == nearest
    ours.norms = None
    assert ours.norms == pytest.approx(np.linalg.norm(second, axis=1), rel=1e-6)
    ours.set_vecattr("w1", "weight", 1)
    with pytest.raises(TypeError, match="would be cut"):
        ours.set_vecattr("w2", "weight", 0.75)
    theirs.set_vecattr("w1", "weight", 1)
    with pytest.raises(TypeError):
        theirs.set_vecattr("w2", "weight", 0.75)
    # NumPy numbers of the kind the column holds are taken (they were refused as objects; gensim
    # takes only the column's exact type)
    ours.set_vecattr("w1", "share", 0.5)
    ours.set_vecattr("w2", "share", np.float32(0.25))
    ours.set_vecattr("w3", "weight", np.int32(7))
    assert ours.get_vecattr("w2", "share") == 0.25 and ours.get_vecattr("w3", "weight") == 7
    tiny = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32) * np.float32(1e-24)
    small, reference = Vectors(["a", "b", "c"], tiny), KeyedVectors(3)
    reference.add_vectors(["a", "b", "c"], tiny.astype(np.float64) * 1e24)  # gensim at a scale it handles
    assert small.n_similarity(["a"], ["b"]) == pytest.approx(reference.n_similarity(["a"], ["b"]), rel=1e-6)
    assert np.linalg.norm(small.get_vector("a", norm=True)) == pytest.approx(1.0, rel=1e-6)
    assert [s for _, s in small.most_similar("a")] == pytest.approx([0.5, 0.5], rel=1e-6)
    clips = ({"clip_start": 60}, {"clip_start": 30, "clip_end": 20}, {"clip_end": -10}, {"clip_start": -5})
    for clip in clips:
        got = ours.most_similar("w1", topn=3, **clip)
        want = theirs.most_similar("w1", topn=3, **clip)
        assert [w for w, _ in got] == [w for w, _ in want], clip


def test_distances_closer_than_and_rank_see_rows_edited_in_place_after_a_query() -> None:
    """A query caches the norms; ``distances`` (and ``closer_than``/``rank`` through it) scores the
    rows as they are after an in-place edit, as gensim does: a cosine distance stays within 0..2."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(6)]
    matrix = rng.standard_normal((6, 4)).astype(np.float32)
    ours, theirs = Vectors(words, matrix.copy()), KeyedVectors(4)
    theirs.add_vectors(words, matrix.copy())
    ours.most_similar("w0", topn=2)
    theirs.most_similar("w0", topn=2)
    ours.vectors[3] *= 10.0
    theirs.vectors[3] *= 10.0
    rows = ours.vectors.astype(np.float64)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(ours.distances("w0"), 1.0 - unit @ unit[0], atol=1e-6)
    np.testing.assert_allclose(ours.distances("w0"), theirs.distances("w0"), atol=1e-6)
    for other in words[1:]:
        assert ours.closer_than("w0", other) == theirs.closer_than("w0", other), other
        assert ours.rank("w0", other) == theirs.rank("w0", other), other
