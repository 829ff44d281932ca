"""word2vec's batched and fused Triton kernels, LSA's torch SVD: on CUDA only (gpu.sh runs them)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nlp182.embeddings.lsa import LSAConfig, train_lsa
from nlp182.embeddings.word2vec import Word2VecConfig, train_word2vec
from nlp182.text.corpus import CorpusSource

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("kernel", ["batched", "triton"])
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_word2vec_on_cuda_puts_neighbours_in_the_same_topic(topic_corpus, model: str, kernel: str) -> None:
    path, topic_of = topic_corpus
    config = Word2VecConfig(model=model, vector_size=20, epochs=3, min_count=1, sample=0.0, batch_size=512,
                            alpha=0.05 if model == "cbow" else 0.025, kernel=kernel, device="cuda")
    vectors, _, report = train_word2vec(CorpusSource(str(path)), config)
    assert report.kernel == kernel
    hits = [topic_of[n] == topic_of[w] for w in vectors.words for n, _ in vectors.most_similar(w, topn=5)]
    assert np.mean(hits) > 0.95


def test_lsa_torch_svd_on_cuda_matches_the_cpu_spectrum(topic_corpus) -> None:
    path, topic_of = topic_corpus
    config = LSAConfig(dim=8, min_count=1, svd_iterations=8)
    source = CorpusSource(str(path))
    on_gpu, _, gpu_report = train_lsa(source, dataclasses.replace(config, device="cuda"))
    on_cpu, _, _ = train_lsa(source, dataclasses.replace(config, device="cpu"))
    assert gpu_report.svd_seconds > 0
    # Columns may flip sign between devices; the vector norms (singular values mixed in) may not.
    norms = [np.linalg.norm(run.vectors, axis=1) for run in (on_gpu, on_cpu)]
    np.testing.assert_allclose(*norms, rtol=1e-3, atol=1e-4)
    hits = [topic_of[n] == topic_of[w] for w in on_gpu.words for n, _ in on_gpu.most_similar(w, topn=5)]
    assert np.mean(hits) > 0.9
